"""Imports run one way: core ← attacks and defenses ← experiments ← the face (plots, widgets, cli, bench).

The test reads every labkit module's `import` statements with `ast` (`labkit.dependencies`, function-level
imports included), so a future wrong-way import fails with the offending pair named. Synthetic modules show
the check bites.
"""
from pathlib import Path

import pytest

from labkit.dependencies import imported_modules

PACKAGE = Path(__file__).resolve().parent.parent / "labkit"

# The core: configuration, data, models, the training loop, triggers, pruning, metrics, files — and the helpers
# they share. Core imports only core.
CORE = {"config", "seed", "data", "models", "train", "triggers", "pruning", "metrics", "files", "paths", "errors",
        "compat", "pairs", "dependencies", "knobs"}
FACE = {"plots", "widgets", "cli", "bench", "__main__", "site", "course", "exercises", "report"}


def layer(module: str) -> str:
    """`labkit.attacks.blind` → "attacks"; `labkit.train` → "core"; `labkit` → "package"."""
    parts = module.split(".")
    if parts == ["labkit"]:
        return "package"
    top = parts[1]
    if top in CORE:
        return "core"
    if top in FACE:
        return "face"
    if top in ("distributed", "claims"):  # Dask sweeps and the papers' claims sit beside the experiments they run
        return "experiments"
    return top  # attacks, defenses, experiments, cache


ALLOWED = {
    "core": {"core"},
    "attacks": {"core", "attacks"},
    "defenses": {"core", "defenses"},
    "cache": {"core", "package"},  # the package's __version__ is part of the key
    "experiments": {"core", "attacks", "defenses", "cache", "experiments"},
    "face": {"core", "attacks", "defenses", "cache", "experiments", "face", "package"},
    "package": {"core"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def wrong_way(module: str, imported: set[str]) -> list[tuple[str, str]]:
    """(module, imported) pairs that break the direction."""
    own = layer(module)
    return sorted((module, other) for other in imported if layer(other) not in ALLOWED[own])


def all_violations() -> list[tuple[str, str]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = module_name(path)
        out += wrong_way(name, imported_modules(name, path.read_text(), path.name == "__init__.py"))
    return out


def test_every_import_in_labkit_runs_the_right_way():
    assert all_violations() == [], "wrong-way imports (module, imported): " + ", ".join(
        f"{a} → {b}" for a, b in all_violations())


@pytest.mark.parametrize("module,source,offender", [
    ("labkit.attacks.fake", "from labkit.defenses import fine_pruning\n", "labkit.defenses.fine_pruning"),
    ("labkit.train", "def f():\n    from labkit import cache\n", "labkit.cache"),
    ("labkit.experiments.fake", "import labkit.plots.badnets as p\n", "labkit.plots.badnets"),
    ("labkit.experiments.fake", "from labkit.bench import seconds\n", "labkit.bench"),
    ("labkit.defenses.fake", "from ..attacks import badnets\n", "labkit.attacks.badnets"),
    ("labkit.data", "from labkit.experiments import run\n", "labkit.experiments"),
])
def test_a_synthetic_wrong_way_import_is_caught_and_named(module, source, offender):
    assert wrong_way(module, imported_modules(module, source)) == [(module, offender)]


@pytest.mark.parametrize("module,source", [
    ("labkit.attacks.fake", "from labkit import train, triggers\nfrom labkit.attacks import mgda\n"),
    ("labkit.experiments.fake", "from labkit import cache\nfrom labkit.defenses import strip\n"),
    ("labkit.plots.fake", "from labkit.experiments import run\n"),
])
def test_right_way_imports_pass(module, source):
    assert wrong_way(module, imported_modules(module, source)) == []

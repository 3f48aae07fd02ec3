import os

import pytest
import torch

from labkit import cache


def test_memoize_computes_once_then_reads_disk(tmp_cache):
    calls = []

    def compute():
        calls.append(1)
        return {"value": 3.5, "weights": torch.arange(4.0)}

    first = cache.memoize("demo", {"a": 1}, compute)
    second = cache.memoize("demo", {"a": 1}, compute)
    assert len(calls) == 1
    assert second["value"] == 3.5 and torch.equal(second["weights"], first["weights"])
    assert cache.memoize("demo", {"a": 2}, compute) and len(calls) == 2
    assert cache.entry_path("demo", {"a": 1}).parent == tmp_cache / "ci"


def test_key_depends_on_name_config_and_profile():
    base = cache.key("x", {"a": 1, "b": 2}, "ci")
    assert base == cache.key("x", {"b": 2, "a": 1}, "ci")  # key order does not matter
    assert base != cache.key("y", {"a": 1, "b": 2}, "ci")
    assert base != cache.key("x", {"a": 1, "b": 3}, "ci")
    assert base != cache.key("x", {"a": 1, "b": 2}, "lab")


def test_an_interrupted_computation_leaves_no_entry(tmp_cache):
    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cache.memoize("demo", {"a": 1}, interrupted)
    assert not cache.entry_path("demo", {"a": 1}).exists()


def test_an_interrupted_write_keeps_the_old_entry_and_no_temp_file(tmp_cache, monkeypatch):
    path = cache.entry_path("demo", {"a": 1})
    cache.write(path, "demo", {"value": 1})

    def half_written(obj, stream):
        stream.write(b"partial bytes")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", half_written)
    with pytest.raises(KeyboardInterrupt):
        cache.write(path, "demo", {"value": 2})
    monkeypatch.undo()
    assert cache.read(path) == {"value": 1}
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_a_corrupt_entry_is_recomputed_not_fatal(tmp_cache):
    path = cache.entry_path("demo", {"a": 1})
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x00not a torch file")
    with pytest.warns(UserWarning, match="unreadable"):
        result = cache.memoize("demo", {"a": 1}, lambda: {"value": 7})
    assert result == {"value": 7}
    assert cache.read(path) == {"value": 7}


class Payload:  # an arbitrary object: unpickling it would run code from the file
    pass


def test_only_weights_only_content_is_ever_loaded(tmp_cache):
    path = cache.entry_path("demo", {"a": 1})
    path.parent.mkdir(parents=True)
    torch.save({"evil": Payload()}, path)
    with pytest.warns(UserWarning):
        assert cache.read(path) is None
    assert not path.exists()


def test_clear_removes_entries(tmp_cache):
    cache.memoize("demo", {"a": 1}, lambda: {"v": 1})
    assert cache.clear("ci") == 1
    assert not any((tmp_cache / "ci").glob("*.pt"))


def test_cache_dir_defaults_inside_the_project(monkeypatch):
    from labkit import paths

    monkeypatch.delenv("LABKIT_CACHE_DIR", raising=False)
    monkeypatch.chdir(os.path.expanduser("~"))  # the working directory must not matter
    assert paths.cache_dir() == paths.PROJECT_ROOT / "data" / "cache"
    assert (paths.PROJECT_ROOT / "labkit").is_dir()


def test_data_dir_moves_the_cache_unless_cache_dir_is_set(tmp_path, monkeypatch):
    from labkit import paths

    monkeypatch.delenv("LABKIT_CACHE_DIR", raising=False)
    monkeypatch.setenv("LABKIT_DATA_DIR", str(tmp_path / "datasets"))
    assert paths.data_dir() == tmp_path / "datasets"
    assert paths.cache_dir() == tmp_path / "datasets" / "cache"
    assert cache.entry_path("demo", {"a": 1}).parent == tmp_path / "datasets" / "cache" / "ci"
    monkeypatch.setenv("LABKIT_CACHE_DIR", str(tmp_path / "results"))
    assert paths.cache_dir() == tmp_path / "results" and paths.data_dir() == tmp_path / "datasets"


def test_the_installed_command_prints_both_folders(tmp_path):
    import json
    import subprocess
    import sys

    env = {**os.environ, "LABKIT_DATA_DIR": str(tmp_path)}
    env.pop("LABKIT_CACHE_DIR", None)
    done = subprocess.run([sys.executable, "-m", "labkit", "info", "--json"], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=300)
    info = json.loads(done.stdout)
    assert info["data_dir"] == str(tmp_path) and info["cache_dir"] == str(tmp_path / "cache")


def test_clear_also_removes_orphaned_temporary_files(tmp_cache):
    cache.memoize("demo", {"a": 1}, lambda: {"v": 1})
    orphan = tmp_cache / "ci" / ".demo-abc.pt.x1y2.tmp"  # what a write killed half way leaves
    orphan.write_bytes(b"half")
    assert cache.clear() == 1
    assert list((tmp_cache / "ci").iterdir()) == []


# --- the key follows the code a result depends on ----------------------------------------------------

def _copy_of_labkit(tmp_path):
    import shutil

    from labkit import dependencies

    root = tmp_path / "labkit"
    shutil.copytree(dependencies.PACKAGE_DIR, root, ignore=shutil.ignore_patterns("__pycache__"))
    return root


def _fingerprint(module, root):
    from labkit import dependencies

    return dependencies.fingerprint.__wrapped__(module, root)  # unmemoised: the files change under it


def test_restyling_plots_or_editing_docstrings_and_comments_keeps_every_cached_model(tmp_path):
    root = _copy_of_labkit(tmp_path)
    before = {m: _fingerprint(m, root) for m in ("labkit.experiments.badnets", "labkit.experiments.neural_cleanse")}
    plots = root / "plots" / "__init__.py"
    plots.write_text(plots.read_text() + "\n\ndef restyled(ax):\n    return ax.set_title('new look')\n")
    train_py = root / "train.py"
    text = train_py.read_text()
    text = text.replace('"""Train `model` in place', '"""Train the given `model` in place', 1)  # a docstring
    text = text.replace("EVAL_BATCH = 64", "EVAL_BATCH = 64  # a comment", 1)
    train_py.write_text(text)
    assert {m: _fingerprint(m, root) for m in before} == before


def test_editing_the_training_loop_invalidates_every_model_that_uses_it(tmp_path):
    root = _copy_of_labkit(tmp_path)
    before = {m: _fingerprint(m, root) for m in ("labkit.experiments.badnets", "labkit.experiments.neural_cleanse",
                                                 "labkit.experiments.blind")}
    train_py = root / "train.py"
    train_py.write_text(train_py.read_text().replace("EVAL_BATCH = 64", "EVAL_BATCH = 32", 1))
    after = {m: _fingerprint(m, root) for m in before}
    assert all(after[m] != before[m] for m in before)


def test_an_experiment_depends_on_its_own_code_and_what_it_imports_not_on_the_face():
    from labkit import dependencies

    needed = dependencies.closure("labkit.experiments.neural_cleanse")
    assert {"labkit.train", "labkit.defenses.neural_cleanse", "labkit.experiments.badnets", "labkit.cache"} <= set(needed)
    assert not [m for m in needed if m.split(".")[1:2] in (["plots"], ["widgets"], ["cli"], ["bench"])]
    editing_strip_keeps_neural_cleanse = "labkit.defenses.strip" not in needed
    assert editing_strip_keeps_neural_cleanse


def test_run_keys_its_entry_by_the_experiments_module(tmp_cache):
    from labkit import experiments

    path = experiments.entry_path("badnets", seed=3)
    cfg = experiments.get("badnets").resolve({"seed": 3})
    assert path == cache.entry_path("badnets", cfg, module="labkit.experiments.badnets")
    assert path != cache.entry_path("badnets", cfg)  # the whole-source key is for unnamed modules only

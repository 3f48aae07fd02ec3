"""The arena (issue 19): `labkit run arena --json` gives every (attack, defense) cell, each cell is cached on its
own, and the matrix teaches (ci profile). The lab-profile acceptance test is opt-in (LABKIT_ACCEPTANCE=1): it
trains the whole matrix, about 3.5 minutes cold on 2 cores (197 s measured 2026-12-06)."""
import json
import os

import pytest

from labkit import cli, experiments
from labkit.experiments import arena


@pytest.fixture(scope="module")
def matrix():
    """The ci matrix through the CLI, in the default cache (notebook 08 then reads it back warm)."""
    import contextlib
    import io

    out = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(out):
        mp.setenv("LABKIT_PROFILE", "ci")
        mp.setenv("TQDM_DISABLE", "1")
        assert cli.main(["run", "arena", "--json"]) == 0
    return json.loads(out.getvalue())


def test_the_json_has_every_attack_against_every_defense(matrix):
    assert matrix["attacks"] == list(arena.ATTACKS) and matrix["defenses"] == list(arena.DEFENSES)
    cells = {(c["attack"], c["defense"]) for c in matrix["cells"]}
    assert cells == {(a, d) for a in arena.ATTACKS for d in arena.DEFENSES}
    for c in matrix["cells"]:
        if c["applicable"]:
            assert 0 <= c["attack_success_rate"] <= 1 and 0 <= c["clean_accuracy"] <= 1, c
            assert "attack_success_rate_std" in c and "clean_accuracy_std" in c
        else:
            assert c["attack"] == "blind" and c["defense"] in arena.TRAINING_TIME and "loss" in c["why"]
    filters = [c for c in matrix["cells"] if c["defense"] in arena.FILTERS and c["applicable"]]
    assert all(0 <= c["removed_poison"] <= 1 for c in filters)
    assert all(0 <= c["rejected_triggered"] <= 1 for c in matrix["cells"] if c["defense"] == "strip")


def test_every_cell_is_cached_on_its_own_and_models_are_shared(matrix):
    before = experiments.computed()
    again = experiments.run("arena", profile="ci", use_cache=False)
    after = experiments.computed()
    assert {k for k in after if after[k]["count"] != before.get(k, {}).get("count", 0)} == {"arena"}
    assert again["cells"][0]["attack_success_rate"] == pytest.approx(matrix["cells"][0]["attack_success_rate"])


def test_the_label_filter_finds_relabelled_poison_not_clean_label_poison(matrix):
    cells = {(c["attack"], c["defense"]): c for c in matrix["cells"]}
    assert cells[("badnets", "detection-filter")]["removed_poison"] > 0.9
    assert cells[("sig", "detection-filter")]["removed_poison"] < 0.5


def test_the_strength_sweep_poisons_as_the_arena_and_plots(monkeypatch):
    """`trigger-strength` (notebook 08's explanation of unplanted rows): one victim per strength, the paper's
    setting first, SIG also tested amplified (WaNet has no amplitude), every rate a fraction; the figure draws."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    from labkit.experiments import trigger_strength
    from labkit.plots import arena as arena_plots

    monkeypatch.setenv("LABKIT_PROFILE", "ci")
    for attack, paper in (("sig", 20.0), ("wanet", 0.5)):
        sweep = experiments.run("trigger-strength", dataset="digits", attack=attack, target=0, seed=0)
        assert sweep["strengths"] == list(trigger_strength.STRENGTHS[attack]) and sweep["paper_strength"] == paper
        for key in ("attack_success_rate", "clean_accuracy", "clean_model_rate"):
            assert len(sweep[key]) == 4 and all(0 <= v <= 1 for v in sweep[key]), key
        amplified = sweep["attack_success_rate_amplified"]
        assert all(v is None for v in amplified) if attack == "wanet" else all(0 <= v <= 1 for v in amplified)
        fig, ax = plt.subplots()
        arena_plots.strength_curve(ax, sweep, attack)
        assert len(ax.lines) >= 4
        plt.close(fig)


def test_the_strength_sweep_changes_only_the_strength():
    """At the paper's strength the sweep's poisoned set is the arena's own (same images, labels and trigger)."""
    import torch

    from labkit import config, data
    from labkit.experiments import trigger_strength

    ds = data.load("digits", profile=config.profile("ci"))
    for attack, paper in (("sig", 20.0), ("wanet", 0.5)):
        cfg = experiments.get("arena-cell").resolve(dict(dataset="digits", attack=attack, target=0, seed=0,
                                                         defense="none"), "ci")
        x_arena, y_arena, _ = arena.poisoned_training_set(cfg, ds)
        sweep_cfg = experiments.resolve("trigger-strength", "ci", dataset="digits", attack=attack, target=0, seed=0)
        x_sweep, y_sweep, apply, _ = trigger_strength.poisoned_set(sweep_cfg, ds, paper)
        assert torch.equal(x_arena, x_sweep) and torch.equal(y_arena, y_sweep)
        probe = ds.x_test[:5]
        assert torch.equal(apply(probe), arena.trigger_of(attack, ds.image_shape)(probe))


@pytest.mark.skipif(os.environ.get("LABKIT_ACCEPTANCE") != "1", reason="lab-profile matrix: set LABKIT_ACCEPTANCE=1")
@pytest.mark.xfail(strict=True, reason="not every attack is planted on 16x16 digits in the lab profile (measured "
                                       "2026-12-04 and again 2026-12-06, seeds 0, 1): label-consistent 25%, SIG 0%, WaNet 3% undefended; "
                                       "notebook 08's trigger-strength sweep: SIG <= 5.4% up to 4x its paper's "
                                       "amplitude, WaNet <= 27% up to 8x its warp strength")
def test_acceptance_lab_digits(monkeypatch):
    """Issue 19, fixed before looking: digits, lab profile, its seeds (0, 1), target 0. Every attack is planted
    (undefended success ≥ 40 points above the clean model's rate), some defense brings each below 20%, and some
    defense fails on some attack."""
    monkeypatch.setenv("LABKIT_PROFILE", "lab")
    result = experiments.run("arena", dataset="digits", target=0)
    cells = {(c["attack"], c["defense"]): c for c in result["cells"]}
    for attack in arena.ATTACKS:
        base = cells[(attack, "none")]
        assert base["attack_success_rate"] >= base["clean_model_rate"] + 0.4, f"{attack} is not planted"
        assert min(cells[(attack, d)].get("attack_success_rate", 1) for d in arena.DEFENSES if d != "none") < 0.2
    assert any(c.get("attack_success_rate", 0) >= 0.5 for (a, d), c in cells.items() if d != "none")

import numpy as np
import pytest
import torch

from labkit import experiments
from labkit.errors import LabkitError
from labkit.experiments import Param

CALLS = []


@pytest.fixture
def dummy():
    @experiments.register("test-dummy", {
        "fraction": Param(0.5, float, 0, 1, high_open=True),
        "count": Param(3, int, 1, 10),
        "mode": Param("a", str, choices=("a", "b")),
        "flag": Param(False, bool),
        "epochs": Param(None, int, 1, 100, optional=True),
    }, summary=("score",))
    def run_dummy(cfg):
        CALLS.append(cfg)
        return {"score": cfg.fraction * cfg.count, "weights": torch.ones(100), "mode": cfg.mode}
    CALLS.clear()
    yield "test-dummy"
    experiments._REGISTRY.pop("test-dummy")


def test_run_fills_defaults_caches_and_returns_config(dummy, tmp_cache):
    first = experiments.run(dummy, count=4)
    assert first["score"] == 2.0 and first["config"] == {"fraction": 0.5, "count": 4, "mode": "a", "flag": False, "epochs": None}
    again = experiments.run(dummy, count=4)
    assert len(CALLS) == 1 and again["score"] == 2.0
    experiments.run(dummy, count=4, use_cache=False)
    assert len(CALLS) == 2


@pytest.mark.parametrize("overrides,message", [
    ({"fraction": 1.5}, "fraction must be a float in [0, 1), got 1.5"),
    ({"fraction": 1.0}, "fraction must be a float in [0, 1), got 1"),
    ({"count": 0}, "count must be an int in [1, 10], got 0"),
    ({"count": 2.5}, "count must be an int in [1, 10], got 2.5"),
    ({"mode": "c"}, "mode must be one of a, b, got 'c'"),
    ({"flag": "maybe"}, "flag must be true or false, got 'maybe'"),
    ({"colour": 1}, "unknown key 'colour' for experiment 'test-dummy'; valid keys: fraction, count, mode, flag, epochs"),
])
def test_bad_values_raise_one_line_naming_the_range(dummy, overrides, message):
    with pytest.raises(LabkitError) as error:
        experiments.run(dummy, **overrides)
    assert str(error.value) == message and "\n" not in str(error.value)


def test_text_values_are_parsed_like_the_cli(dummy, tmp_cache):
    params = experiments.get(dummy).params
    assert params["flag"].parse("flag", "true") is True
    assert params["count"].parse("count", "7") == 7
    assert params["epochs"].parse("epochs", "none") is None
    assert experiments.run(dummy, fraction="0.25", count="2")["score"] == 0.5


def test_unknown_experiment_lists_the_registry(dummy):
    with pytest.raises(LabkitError, match="unknown experiment 'nope'; choose one of .*badnets"):
        experiments.run("nope")


def test_sweep_runs_the_grid_in_order_and_reshapes(dummy, tmp_cache):
    grid = {"fraction": [0.1, 0.2], "count": [1, 2, 3]}
    results = experiments.sweep(dummy, grid, progress=False, mode="b")
    assert [r["config"]["count"] for r in results] == [1, 2, 3, 1, 2, 3]
    table = experiments.as_array(results, "score", grid)
    assert table.shape == (2, 3) and np.allclose(table, np.outer([0.1, 0.2], [1, 2, 3]))
    with pytest.raises(LabkitError):
        experiments.sweep(dummy, {"count": [11]}, progress=False)


def test_an_experiment_receives_one_validated_immutable_config(dummy, tmp_cache, monkeypatch):
    monkeypatch.setenv("LABKIT_PROFILE", "ci")
    experiments.run(dummy, count="4", profile="lab")
    cfg = CALLS[-1]
    assert isinstance(cfg, experiments.Config)
    assert cfg.count == 4 and cfg["mode"] == "a" and dict(cfg)["fraction"] == 0.5
    assert cfg.profile.name == "lab"  # the profile asked for, not the environment's
    with pytest.raises(AttributeError, match="immutable"):
        cfg.count = 5
    with pytest.raises(AttributeError, match="no knob 'colour'; knobs: fraction, count"):
        cfg.colour
    assert cfg.but(count=6).count == 6 and cfg.but(count=6).profile.name == "lab"
    with pytest.raises(LabkitError, match="count must be an int in \\[1, 10\\], got 11"):
        cfg.but(count=11)
    assert experiments.resolve(dummy, mode="b").profile.name == "ci"


def test_inside_an_experiment_reading_the_environment_profile_fails(tmp_cache):
    @experiments.register("test-leaky", {"n": Param(1, int)}, summary=())
    def leaky(cfg):
        from labkit import config

        return {"epochs": config.profile().epochs}  # the bug the guard catches: the env, not cfg.profile
    try:
        with pytest.raises(LabkitError, match="experiment 'test-leaky' read the profile from the environment"):
            experiments.run("test-leaky", use_cache=False)
    finally:
        experiments._REGISTRY.pop("test-leaky")


def test_shared_knobs_are_declared_once_and_target_is_checked_against_the_dataset():
    for name in experiments.names():
        params = experiments.get(name).params
        for knob, shared in (("seed", experiments.SEED), ("target", experiments.TARGET)):
            if knob in params:
                assert (params[knob].kind, params[knob].low, params[knob].high) == (shared.kind, shared.low, shared.high), name
        if "dataset" in params and "target" in params:
            assert experiments.check_target in experiments.get(name).checks, name
    with pytest.raises(LabkitError, match="target must be an int in \\[0, 9\\] for digits, got 12"):
        experiments.resolve("badnets", target=12)
    with pytest.raises(LabkitError, match="target must be an int in \\[0, 42\\] for gtsrb, got 43"):
        experiments.resolve("badnets", dataset="gtsrb", target=43)


def test_public_keeps_json_values_and_drops_big_tensors():
    public = experiments.public({"a": 1.0, "t": torch.ones(100), "small": torch.tensor([1, 2]),
                                 "nested": {"x": [1, 2], "y": torch.ones(3, 3)}, "nan": float("nan"),
                                 "model_state": {"fc.bias": torch.zeros(2)}})
    assert public == {"a": 1.0, "small": [1, 2], "nested": {"x": [1, 2]}}


def test_builtin_experiments_are_registered():
    assert {"badnets", "detection"} <= set(experiments.names())

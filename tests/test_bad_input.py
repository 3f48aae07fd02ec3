"""Every bad input gets one line: non-zero exit, exactly one line on stderr, no traceback, no work done.

The probes run `labkit.cli.main` in-process (the same code the `labkit` command runs) and the Python API;
a few go through a real subprocess to check the entry point itself. None of them trains a model: every
value is checked before any work starts (the optimiser hook below would notice).
"""
import re
import subprocess
import sys

import numpy as np
import pytest
from torch.optim.optimizer import register_optimizer_step_post_hook

from labkit import cli, experiments
from labkit.errors import LabkitError

SEED_RANGE = "seed must be an int in [0, 2147483647]"
FRACTION_RANGE = "poison_fraction must be a float in [0, 1)"

CLI_PROBES = [
    # numbers that are not numbers, or not finite, or out of range
    (["run", "badnets", "--set", "seed=nan"], SEED_RANGE + ", got 'nan'"),
    (["run", "badnets", "--set", "seed=inf"], SEED_RANGE + ", got 'inf'"),
    (["run", "badnets", "--set", "seed=1e309"], SEED_RANGE + ", got '1e309'"),
    (["run", "badnets", "--set", "seed="], SEED_RANGE + ", got ''"),
    (["run", "badnets", "--set", "seed=-1"], SEED_RANGE + ", got -1"),
    (["run", "badnets", "--set", "seed=2147483648"], SEED_RANGE + ", got 2147483648"),
    (["run", "badnets", "--set", f"seed={2**70}"], SEED_RANGE + f", got {2**70}"),
    (["run", "badnets", "--set", "seed=1.5"], SEED_RANGE + ", got '1.5'"),
    (["run", "badnets", "--set", "seed=abc"], SEED_RANGE + ", got 'abc'"),
    (["run", "badnets", "--set", "poison_fraction=nan"], FRACTION_RANGE + ", got nan"),
    (["run", "badnets", "--set", "poison_fraction=inf"], FRACTION_RANGE + ", got inf"),
    (["run", "badnets", "--set", "poison_fraction=-inf"], FRACTION_RANGE + ", got -inf"),
    (["run", "badnets", "--set", "poison_fraction=1e309"], FRACTION_RANGE + ", got inf"),
    (["run", "badnets", "--set", "poison_fraction="], FRACTION_RANGE + ", got ''"),
    (["run", "badnets", "--set", "poison_fraction=-0.1"], FRACTION_RANGE + ", got -0.1"),
    (["run", "badnets", "--set", "poison_fraction=1"], FRACTION_RANGE + ", got 1"),
    (["run", "badnets", "--set", "poison_fraction=ten"], FRACTION_RANGE + ", got 'ten'"),
    (["run", "badnets", "--set", "amplitude=0"], "amplitude must be a float in (0, 255], got 0"),
    (["run", "badnets", "--set", "epochs=0"], "epochs must be an int in [1, 1000], got 0"),
    (["run", "badnets", "--set", "epochs=100000"], "epochs must be an int in [1, 1000], got 100000"),
    (["run", "badnets", "--set", "target=-1"], "target must be an int in [0, 9] for digits, got -1"),
    (["run", "badnets", "--set", "target=10"], "target must be an int in [0, 9] for digits, got 10"),
    (["run", "badnets", "--set", "augment=maybe"], "augment must be true or false, got 'maybe'"),
    (["run", "badnets", "--set", "dataset=imagenet"], "dataset must be one of digits, mnist"),
    (["run", "badnets", "--set", "dataset="], "dataset must be one of digits, mnist"),
    # malformed --set / --grid
    (["run", "badnets", "--set", "=3"], "--set takes key=value, got '=3'"),
    (["run", "badnets", "--set", "seed"], "--set takes key=value, got 'seed'"),
    (["run", "badnets", "--set", "seed=1=2"], SEED_RANGE + ", got '1=2'"),
    (["run", "badnets", "--set"], "expected at least one argument"),
    (["run", "badnets", "--set", "colour=red"], "unknown key 'colour' for experiment 'badnets'"),
    (["sweep", "badnets"], "sweep needs at least one --grid"),
    (["sweep", "badnets", "--grid", "seed"], "--grid takes key=value, got 'seed'"),
    (["sweep", "badnets", "--grid", "poison_fraction="], FRACTION_RANGE + ", got ''"),
    (["sweep", "badnets", "--grid", "poison_fraction=0.1,,0.2"], FRACTION_RANGE + ", got ''"),
    (["sweep", "badnets", "--grid", "poison_fraction=0,0.1,nan"], FRACTION_RANGE + ", got nan"),
    (["sweep", "badnets", "--grid", "poison_fraction=0,0.1,2"], FRACTION_RANGE + ", got 2"),
    (["sweep", "badnets", "--grid", "colour=red,blue"], "unknown key 'colour'"),
    # --jobs
    (["sweep", "badnets", "--grid", "seed=0,1", "--jobs", "0"], "--jobs must be an int >= 1, got '0'"),
    (["sweep", "badnets", "--grid", "seed=0,1", "--jobs", "-1"], "--jobs must be an int >= 1, got '-1'"),
    (["sweep", "badnets", "--grid", "seed=0,1", "--jobs", "abc"], "--jobs must be an int >= 1, got 'abc'"),
    (["sweep", "badnets", "--grid", "seed=0,1", "--jobs", "1.5"], "--jobs must be an int >= 1, got '1.5'"),
    # unknown names
    (["run", "nope"], "unknown experiment 'nope'; choose one of"),
    (["sweep", "nope", "--grid", "seed=0"], "unknown experiment 'nope'; choose one of"),
    (["--profile", "huge", "info"], "invalid choice: 'huge'"),
    (["cache", "clear", "--profile", "huge"], "invalid choice: 'huge'"),
    (["bench", "nope"], "unknown benchmark 'nope'; choose one of"),
    (["data", "download", "imagenet"], "unknown dataset 'imagenet'; choose one of digits"),
    (["data", "download"], "data download needs a dataset name"),
    (["data", "frobnicate"], "invalid choice: 'frobnicate'"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    ([], "the following arguments are required: command"),
]

ENV_PROBES = [
    ({"LABKIT_PROFILE": "huge"}, ["info"], "unknown profile 'huge' in LABKIT_PROFILE; choose one of ci, lab, paper"),
    ({"LABKIT_PROFILE": "huge"}, ["run", "badnets"], "unknown profile 'huge'"),
    ({"LABKIT_THREADS": "many"}, ["run", "badnets"], "LABKIT_THREADS must be an int in [1, 1024], got 'many'"),
    ({"LABKIT_THREADS": "0"}, ["run", "badnets"], "LABKIT_THREADS must be an int in [1, 1024], got '0'"),
]

API_PROBES = [
    ({"seed": float("nan")}, SEED_RANGE + ", got nan"),
    ({"seed": float("inf")}, SEED_RANGE + ", got inf"),
    ({"seed": 1e309}, SEED_RANGE + ", got inf"),
    ({"seed": 2**31}, SEED_RANGE + ", got 2147483648"),
    ({"seed": 10**400}, SEED_RANGE + ", got 100000... (401 digits)"),
    ({"seed": np.int64(-1)}, SEED_RANGE + ", got -1"),
    ({"seed": np.float64("nan")}, SEED_RANGE + ", got nan"),
    ({"seed": 2.5}, SEED_RANGE + ", got 2.5"),
    ({"seed": "three"}, SEED_RANGE + ", got 'three'"),
    ({"seed": [1, 2]}, SEED_RANGE + ", got [1, 2]"),
    ({"seed": True}, SEED_RANGE + ", got True"),
    ({"seed": None}, SEED_RANGE + ", got None"),
    ({"poison_fraction": np.float32("nan")}, FRACTION_RANGE + ", got nan"),
    ({"poison_fraction": np.float64(1.5)}, FRACTION_RANGE + ", got 1.5"),
    ({"poison_fraction": 10**400}, FRACTION_RANGE + ", got 100000... (401 digits)"),
    ({"poison_fraction": ""}, FRACTION_RANGE + ", got ''"),
    ({"augment": np.int64(1)}, "augment must be true or false, got"),
    ({"dataset": "imagenet"}, "dataset must be one of digits"),
    ({"colour": "red"}, "unknown key 'colour'"),
]


@pytest.fixture
def no_training():
    """Fails the test if any optimiser takes a step: bad input must be refused before work starts."""
    steps = []
    handle = register_optimizer_step_post_hook(lambda *args: steps.append(1))
    yield
    handle.remove()
    assert not steps, "a model was trained before the bad input was reported"


def one_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1 and err.endswith("\n"), f"expected one line on stderr, got: {err!r}"
    assert "Traceback" not in err and lines[0].startswith("labkit: error: ")
    return lines[0]


@pytest.mark.parametrize("args,fragment", CLI_PROBES, ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_cli_bad_input_is_one_line(capsys, tmp_cache, no_training, args, fragment):
    assert cli.main(args) == 2
    captured = capsys.readouterr()
    assert fragment in one_line(captured.err)
    assert captured.out == ""


@pytest.mark.parametrize("env,args,fragment", ENV_PROBES, ids=lambda v: str(v) if isinstance(v, dict) else None)
def test_bad_environment_is_one_line(capsys, tmp_cache, no_training, monkeypatch, env, args, fragment):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert cli.main(args) == 2
    assert fragment in one_line(capsys.readouterr().err)


@pytest.mark.parametrize("overrides,fragment", API_PROBES, ids=lambda v: repr(v)[:40] if isinstance(v, dict) else None)
def test_python_api_bad_values_raise_one_labkit_error(tmp_cache, no_training, overrides, fragment):
    with pytest.raises(LabkitError) as error:
        experiments.run("badnets", **overrides)
    message = str(error.value)
    assert fragment in message and "\n" not in message
    assert not any(tmp_cache.rglob("*.pt"))


def test_numpy_numbers_are_accepted_as_their_python_values():
    cfg = experiments.get("badnets").resolve({"seed": np.int64(3), "poison_fraction": np.float32(0.25),
                                              "epochs": np.float64(2.0), "augment": np.bool_(True)})
    assert cfg["seed"] == 3 and type(cfg["seed"]) is int
    assert cfg["poison_fraction"] == 0.25 and type(cfg["poison_fraction"]) is float
    assert cfg["epochs"] == 2 and type(cfg["epochs"]) is int and cfg["augment"] is True
    plain = {"seed": 3, "poison_fraction": 0.25, "epochs": 2, "augment": True}
    assert experiments.get("badnets").resolve(plain) == cfg


def test_a_bad_value_late_in_a_grid_fails_before_the_first_training(tmp_cache, no_training):
    with pytest.raises(LabkitError, match=re.escape(FRACTION_RANGE + ", got 2")):
        experiments.sweep("badnets", {"poison_fraction": [0.0, 0.1, 2.0]}, progress=False)
    with pytest.raises(LabkitError, match="target must be an int in \\[0, 9\\] for digits"):
        experiments.sweep("badnets", {"seed": [0, 1]}, target=10, progress=False)
    assert not any(tmp_cache.rglob("*.pt"))


@pytest.mark.parametrize("args,fragment", [
    (["sweep", "badnets", "--grid", "seed=0,1", "--jobs", "abc"], "--jobs must be an int >= 1, got 'abc'"),
    (["run", "badnets", "--set", "seed=2147483648"], SEED_RANGE + ", got 2147483648"),
    (["--profile", "huge", "info"], "invalid choice: 'huge'"),
])
def test_the_installed_entry_point_prints_one_line(tmp_cache, args, fragment):
    done = subprocess.run([sys.executable, "-m", "labkit", *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert fragment in one_line(done.stderr)

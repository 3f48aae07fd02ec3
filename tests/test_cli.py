import json
import subprocess
import sys

import pytest

from labkit import cli


def _labkit(*args, env=None):
    return subprocess.run([sys.executable, "-m", "labkit", *args], capture_output=True, text=True, env=env, timeout=600)


@pytest.mark.parametrize("args,fragment", [
    (["run", "badnets", "--set", "poison_fraction=1.5"], "poison_fraction must be a float in [0, 1), got 1.5"),
    (["run", "badnets", "--set", "amplitude=300"], "amplitude must be a float in (0, 255], got 300"),
    (["run", "badnets", "--set", "colour=red"], "unknown key 'colour'"),
    (["run", "badnets", "--set", "poison_fraction"], "--set takes key=value"),
    (["run", "badnets", "--set", "dataset=imagenet"], "dataset must be one of digits, mnist"),
    (["run", "badnets", "--set", "target=10"], "target must be an int in [0, 9] for digits"),
    (["run", "nope"], "unknown experiment 'nope'"),
    (["sweep", "badnets", "--grid", "poison_fraction=0.1,2"], "poison_fraction must be a float in [0, 1)"),
    (["sweep", "badnets", "--grid", "poison_fraction=0.1", "--jobs", "0"], "--jobs must be an int >= 1"),
    (["data", "download"], "data download needs a dataset name"),
    (["bench", "nope"], "unknown benchmark 'nope'"),
])
def test_bad_input_is_one_line_and_non_zero(capsys, args, fragment):
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert fragment in err and err.count("\n") == 1 and "Traceback" not in err


def test_module_entry_point_reports_without_traceback():
    done = _labkit("run", "badnets", "--set", "poison_fraction=1.5")
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == ["labkit: error: poison_fraction must be a float in [0, 1), got 1.5"]


def test_info_and_data_list(capsys):
    assert cli.main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["profile"] == "ci" and info["datasets"]["digits"] is True and "badnets" in info["experiments"]
    assert cli.main(["data", "list"]) == 0
    assert "digits" in capsys.readouterr().out


def test_missing_dataset_while_offline_names_the_fix(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_DATA_DIR", str(tmp_path))
    assert cli.main(["run", "badnets", "--set", "dataset=fashion-mnist"]) == 2
    err = capsys.readouterr().err
    assert "labkit data download fashion-mnist" in err and err.count("\n") == 1


def test_repeated_set_flags_accumulate(capsys):
    args = cli.parser().parse_args(["run", "badnets", "--set", "seed=1", "--set", "poison_fraction=0.2", "target=3"])
    assert args.set == ["seed=1", "poison_fraction=0.2", "target=3"]


def test_run_help_lists_every_knob_with_its_help_and_range(capsys):
    from labkit import experiments

    assert cli.main(["run", "badnets", "--help"]) == 0
    out = capsys.readouterr().out
    for key, param in experiments.get("badnets").params.items():
        line = next(line for line in out.splitlines() if line.strip().startswith(key + " "))
        assert param.help in line and param.describe() in line
    assert "poison_fraction" in out and "default 0.1" in out
    assert cli.main(["run", "nope", "--help"]) == 2

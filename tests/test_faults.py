"""Nothing lost or corrupted by faults: a `labkit run` killed with SIGKILL mid-training or mid-write leaves no
entry (and `cache clear` removes the orphaned temporary file); two concurrent runs of one config leave one
readable entry; truncated, random, empty, forged and code-executing entries are recomputed and nothing in
them is executed; an unwritable cache folder is reported, in one line, before any training.
"""
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

from labkit import cache, cli, experiments

QUICK = {"epochs": 1, "seed": 11}  # a ci BadNets run of one epoch: about a second
QUICK_ARGS = ["run", "badnets", "--set", "epochs=1", "seed=11", "--json"]

# Runs labkit's CLI after arranging to stop at a chosen moment: it writes `marker` and then sleeps, so the test
# can kill it there with SIGKILL. "training": after three optimiser steps; "writing": after half an entry's bytes.
STALL = r"""
import sys, time, pathlib
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook
moment, marker = sys.argv[1], pathlib.Path(sys.argv[2])

def stall():
    marker.write_text(moment)
    time.sleep(600)

if moment == "training":
    steps = []
    register_optimizer_step_post_hook(lambda *a: (steps.append(1), len(steps) == 3 and stall()))
else:
    real_save = torch.save
    def half_save(obj, stream, *args, **kwargs):
        stream.write(b"PK\x03\x04 half an entry")
        stream.flush()
        stall()
    torch.save = half_save
from labkit import cli
sys.exit(cli.main(sys.argv[3:]))
"""


def labkit(*args, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "labkit", *args], capture_output=True, text=True,
                          env=env, timeout=timeout)


def wait_for(path: Path, process: subprocess.Popen, limit: float = 300) -> None:
    """Poll until `path` exists (the child reached the moment); fail if the child ends first."""
    deadline = time.monotonic() + limit
    while not path.exists():
        if process.poll() is not None:
            pytest.fail(f"the run ended before the fault: {process.stderr.read()}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail("the run never reached the fault point")
        time.sleep(0.05)


def entries(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.pt"))


def temporaries(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.tmp"))


@pytest.mark.parametrize("moment", ["training", "writing"])
def test_a_killed_run_leaves_no_entry_and_the_next_run_succeeds(tmp_cache, tmp_path, moment):
    marker = tmp_path / "reached"
    env = {**os.environ}
    child = subprocess.Popen([sys.executable, "-c", STALL, moment, str(marker), *QUICK_ARGS],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    wait_for(marker, child)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL
    assert entries(tmp_cache) == []  # no entry, whole or half
    if moment == "writing":
        assert len(temporaries(tmp_cache)) == 1  # the interrupted write's orphan ...
    done = labkit("cache", "clear", env=env)
    assert done.returncode == 0, done.stderr
    assert temporaries(tmp_cache) == []  # ... is gone once `cache clear` runs
    done = labkit(*QUICK_ARGS, env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["poisoned_count"] > 0
    assert len(entries(tmp_cache)) == 1 and temporaries(tmp_cache) == []


def test_two_concurrent_runs_of_one_config_leave_one_readable_entry(tmp_cache):
    runs = [subprocess.Popen([sys.executable, "-m", "labkit", *QUICK_ARGS], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], [err for _, err in outputs]
    first, second = (json.loads(out) for out, _ in outputs)
    assert first == second  # computed once: the other run waited on the entry's lock and read it (its seconds too)
    [entry] = entries(tmp_cache)
    assert temporaries(tmp_cache) == []
    assert cache.read(entry, "badnets") is not None


class RunsCode:
    """Unpickling this object would run a shell command that creates a file."""

    def __init__(self, target: Path):
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


def bad_entries(tmp_path: Path) -> dict:
    """name → a function that writes that kind of bad entry at a path."""
    evidence = tmp_path / "code-ran"

    def truncated(path):
        cache.write(path, "badnets", {"poisoned_count": 3})
        path.write_bytes(path.read_bytes()[:100])

    def forged_header(path):  # right header, but of another experiment
        cache.write(path, "strip", {k: 1 for k in experiments.get("badnets").summary})

    return {
        "truncated": truncated,
        "random": lambda path: path.write_bytes(os.urandom(4096)),
        "empty": lambda path: path.write_bytes(b""),
        "empty-dict": lambda path: torch.save({}, path),
        "forged": lambda path: torch.save({"poisoned_count": -7, "clean_accuracy": 2.0}, path),
        "forged-header": forged_header,
        "missing-key": lambda path: cache.write(path, "badnets", {"clean_accuracy": 0.5}),
        "code-pickle": lambda path: path.write_bytes(pickle.dumps({"x": RunsCode(evidence)}, protocol=2)),
        "code-torch": lambda path: torch.save({"x": RunsCode(evidence)}, path),
    }


@pytest.mark.parametrize("kind", list(bad_entries(Path("/unused"))))
def test_a_bad_entry_is_recomputed_and_nothing_in_it_runs(tmp_cache, tmp_path, kind):
    path = experiments.entry_path("badnets", **QUICK)
    path.parent.mkdir(parents=True, exist_ok=True)
    bad_entries(tmp_path)[kind](path)
    with pytest.warns(UserWarning, match="is corrupt"):
        result = experiments.run("badnets", **QUICK)
    assert not (tmp_path / "code-ran").exists()
    assert result["poisoned_count"] > 0 and 0 <= result["clean_accuracy"] <= 1
    again = cache.read(path, "badnets", experiments.get("badnets").summary)
    assert again is not None and again["poisoned_count"] == result["poisoned_count"]


def test_an_entry_keeps_its_header_out_of_the_result_and_records_the_thread_count(tmp_cache):
    result = experiments.run("badnets", **QUICK)
    assert cache.HEADER not in result and result["threads"] == 2
    assert experiments.run("badnets", **QUICK)["clean_accuracy"] == result["clean_accuracy"]


def test_the_thread_count_is_fixed_whatever_the_caller_set(tmp_cache, monkeypatch):
    """A sweep worker with one thread computes the same entry, bit for bit, as a sequential run."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        one = experiments.run("badnets", **QUICK)
    finally:
        torch.set_num_threads(previous)
    assert torch.get_num_threads() == previous
    cache.clear()
    two = experiments.run("badnets", **QUICK)
    assert all(torch.equal(one["model_state"][k], two["model_state"][k]) for k in one["model_state"])
    default_entry = experiments.entry_path("badnets", **QUICK)
    monkeypatch.setenv("LABKIT_THREADS", "1")  # asked for explicitly: another entry
    assert experiments.entry_path("badnets", **QUICK) != default_entry
    assert experiments.run("badnets", **QUICK)["threads"] == 1


@pytest.fixture
def steps():
    taken = []
    handle = register_optimizer_step_post_hook(lambda *args: taken.append(1))
    yield taken
    handle.remove()


def test_a_cache_folder_that_is_a_file_is_reported_before_training(capsys, tmp_path, monkeypatch, steps):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("LABKIT_CACHE_DIR", str(blocker))
    assert cli.main(QUICK_ARGS) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"cache folder {blocker / 'ci'} is not writable" in err and "set LABKIT_CACHE_DIR" in err
    assert steps == []  # nothing was trained and then lost


def test_a_read_only_cache_folder_is_reported_before_training(capsys, tmp_cache, monkeypatch, steps):
    import tempfile

    def refuse(*args, **kwargs):  # what a read-only folder answers (root ignores the mode bits)
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    assert cli.main(QUICK_ARGS) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Permission denied" in err and "set LABKIT_CACHE_DIR" in err
    assert steps == []


def test_an_os_error_at_the_cli_is_one_line_naming_the_path(capsys, tmp_cache, monkeypatch):
    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device", str(tmp_cache / "ci" / "entry.pt"))

    monkeypatch.setattr(cache, "atomic_torch_save", disk_full)
    assert cli.main(QUICK_ARGS) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "No space left on device" in err and str(tmp_cache / "ci") in err

    def unexpected(args):
        raise IsADirectoryError(21, "Is a directory", "/some/path")

    monkeypatch.setattr(cli, "cmd_info", unexpected)
    assert cli.main(["info"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Is a directory on /some/path" in err

"""Sweeps on a Dask LocalCluster of 2 workers: the same numbers as a sequential sweep, written into the
client's cache; a worker killed mid-sweep; an unreachable scheduler; a task that raises."""
import os
import threading
import time

import pytest

from labkit import cli, distributed, experiments
from labkit.errors import LabkitError

GRID = {"seed": [0, 1], "poison_fraction": [0.0, 0.1]}
FIXED = {"epochs": 1}


@pytest.fixture
def cluster_client(tmp_cache, monkeypatch):
    monkeypatch.setenv("LABKIT_PROFILE", "ci")
    with distributed.connect("local:2") as client:  # workers inherit this environment (cache, profile)
        yield client


def test_a_dask_sweep_gives_the_sequential_numbers_and_fills_the_local_cache(cluster_client):
    results = experiments.sweep("badnets", GRID, client=cluster_client, progress=False, **FIXED)
    assert [r["config"]["seed"] for r in results] == [0, 0, 1, 1]  # grid order
    for result, point in zip(results, experiments.grid_configs(GRID)):
        assert experiments.cached("badnets", **FIXED, **point) is not None  # written by the client
        sequential = experiments.run("badnets", use_cache=False, **FIXED, **point)
        for key in ("attack_success_rate", "clean_accuracy", "poisoned_count", "threads"):
            assert result[key] == sequential[key], (key, point)
    again = experiments.sweep("badnets", GRID, client=cluster_client, progress=False, **FIXED)  # all cached: nothing sent
    assert [r["clean_accuracy"] for r in again] == [r["clean_accuracy"] for r in results]


@pytest.fixture
def no_datasets(tmp_path, monkeypatch):
    """An empty data folder (requested before the cluster starts, so its workers inherit it): digits is bundled,
    every other dataset is missing — even where the checkout's data/ holds a downloaded MNIST."""
    monkeypatch.setenv("LABKIT_DATA_DIR", str(tmp_path / "no-datasets"))


def test_a_task_that_raises_fails_in_one_line_and_the_rest_is_cached(no_datasets, cluster_client):
    grid = {"dataset": ["digits", "mnist"]}  # no MNIST in an empty data folder: that point raises on its worker
    with pytest.raises(LabkitError) as error:
        experiments.sweep("badnets", grid, client=cluster_client, progress=False, **FIXED)
    assert "mnist" in str(error.value).lower() and "\n" not in str(error.value)
    assert experiments.cached("badnets", dataset="digits", **FIXED) is not None


def test_a_worker_killed_mid_sweep_is_replaced_and_the_sweep_completes(cluster_client):
    killed = []

    def kill_a_busy_worker():
        deadline = time.time() + 120
        while time.time() < deadline and not killed:
            busy = [worker for worker, tasks in cluster_client.processing().items() if tasks]
            if busy:
                killed.append(busy[0])
                try:  # the worker process dies mid-task; its nanny starts a new one
                    cluster_client.run(os._exit, 1, workers=busy[:1])
                except Exception:  # noqa: BLE001 — the call cannot answer: the worker is gone
                    pass
            time.sleep(0.2)
    killer = threading.Thread(target=kill_a_busy_worker, daemon=True)
    killer.start()
    results = experiments.sweep("badnets", {"seed": [2, 3, 4]}, client=cluster_client, progress=False, epochs=2)
    killer.join(timeout=5)
    assert killed, "no worker was busy to kill"
    assert [r["config"]["seed"] for r in results] == [2, 3, 4]
    assert all(experiments.cached("badnets", seed=s, epochs=2) is not None for s in (2, 3, 4))


def test_an_unreachable_scheduler_is_one_line_and_exits_non_zero(tmp_cache, capsys):
    code = cli.main(["sweep", "badnets", "--grid", "seed=0,1", "--scheduler", "tcp://127.0.0.1:9"])
    err = capsys.readouterr().err.strip()
    assert code != 0 and err.count("\n") == 0
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in err


def test_a_bad_local_worker_count_is_one_line():
    with pytest.raises(LabkitError, match="local:N needs a worker count N >= 1, got 'local:zero'"):
        distributed.client_for("local:zero")


def test_warm_on_a_cluster_writes_the_workers_entries_into_the_local_cache(cluster_client, tmp_cache):
    from labkit import course

    done = course.warm("ci", ["04"], client=cluster_client, progress=False)
    assert done["04_certified_defenses"]["entries_written"] > 0
    assert list((tmp_cache / "ci").glob("certified-*.pt"))
    again = course.warm("ci", ["04"], client=cluster_client, progress=False)
    assert again["04_certified_defenses"]["entries_written"] == 0  # existing entries are kept

"""The course runner behind `labkit warm` and `labkit bench course` (notebooks executed headlessly)."""
import json

import pytest

from labkit import cli, course, train
from labkit.bench import course as course_bench
from labkit.errors import LabkitError


def test_notebooks_are_found_in_order_and_selected_by_name_or_number():
    stems = [p.stem for p in course.notebooks()]
    assert stems == sorted(stems) and stems[0] == "01_badnets" and len(stems) >= 7
    assert [p.stem for p in course.select(["04", "01_badnets"])] == ["04_certified_defenses", "01_badnets"]
    with pytest.raises(LabkitError, match="unknown notebook '99'; choose from 01_badnets"):
        course.select(["99"])


def test_trainings_are_counted_per_process():
    import torch

    before = train.trainings_run()
    model = torch.nn.Linear(4, 2)
    train.train(model, torch.rand(8, 4), torch.randint(0, 2, (8,)), epochs=1, progress=False,
                device=torch.device("cpu"))
    assert train.trainings_run() == before + 1


def test_a_notebook_runs_headless_into_the_given_cache_and_reports_its_cost(tmp_path):
    path = course.select(["04"])[0]  # the convex notebook: seconds in ci, no neural training
    cold = course.execute(path, "ci", cache_dir=tmp_path, progress=False)
    assert cold["seconds"] > 0 and cold["trainings"] == 0
    assert list((tmp_path / "ci").glob("certified-*.pt")), "its experiments were cached where asked"


def test_a_failing_notebook_is_one_line_naming_it(tmp_path):
    import nbformat

    bad = tmp_path / "01_bad.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("raise ValueError('boom')")]), bad)
    with pytest.raises(LabkitError) as error:
        course.execute(bad, "ci", cache_dir=tmp_path, progress=False)
    assert "01_bad.ipynb failed in profile ci" in str(error.value) and "\n" not in str(error.value)


def test_bench_course_json_has_cold_warm_and_units(monkeypatch, capsys):
    monkeypatch.setenv("LABKIT_PROFILE", "ci")  # restored afterwards (bench --profile switches the process)
    calls = []

    def fake_execute(path, profile, *, cache_dir=None, progress=True, position=0, widgets=False):
        calls.append((path.stem, cache_dir))
        return {"seconds": 4.0 if len(calls) <= 2 else 1.0, "trainings": 3}
    monkeypatch.setattr(course, "execute", fake_execute)
    monkeypatch.setattr(course_bench, "unit_seconds", lambda profile: 2.0)
    monkeypatch.setattr(course, "select", lambda names: course.notebooks()[:2])
    assert cli.main(["bench", "course", "--profile", "ci", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["unit_seconds"] == 2.0 and out["profile"] == "ci"
    first = out["notebooks"]["01_badnets"]
    assert first == {"cold_seconds": 4.0, "cold_units": 2.0, "trainings": 3, "warm_seconds": 1.0, "computed": {}}
    assert len({cache for _, cache in calls}) == 1  # cold and warm share one temporary cache


def test_the_unit_is_a_training_after_the_one_that_loads_the_data(monkeypatch):
    readings = iter([0.0, 3.0, 10.0, 15.0, 20.0, 24.0])  # perf_counter around the timed runs: 3, 5, 4 s
    monkeypatch.setattr(course_bench.time, "perf_counter", lambda: next(readings))
    calls = []
    monkeypatch.setattr(course_bench, "run", lambda name, **kw: calls.append((name, kw)))
    assert course_bench.unit_seconds("ci") == 4.0  # the median; the first, untimed run loaded the data
    assert len(calls) == 4 and all(kw["use_cache"] is False for _, kw in calls)


def test_the_kernel_reports_what_it_computed_with_own_seconds(tmp_cache):
    from labkit import experiments

    before = experiments.computed().get("badnets", {"count": 0})["count"]
    experiments.run("badnets", poison_fraction=0.1)
    experiments.run("badnets", poison_fraction=0.1)  # cached: not computed again
    after = experiments.computed()["badnets"]
    assert after["count"] == before + 1 and after["seconds"] > 0


def test_warm_with_widgets_visits_every_widget_position_in_the_kernel(tmp_path):
    import nbformat

    notebook = tmp_path / "01_widget.ipynb"
    code = """from labkit import widgets, experiments
def plot(poison_fraction):
    experiments.run("badnets", poison_fraction=poison_fraction)
widgets.interact(plot, poison_fraction=widgets.choice([0.05, 0.1, 0.2], 0.1, "p"))"""
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)]), notebook)
    plain = course.execute(notebook, "ci", cache_dir=tmp_path / "cache", progress=False)
    assert plain["computed"]["badnets"]["count"] == 1 and plain["trainings"] == 1
    visited = course.execute(notebook, "ci", cache_dir=tmp_path / "cache", progress=False, widgets=True)
    assert visited["computed"]["badnets"]["count"] == 2  # the two positions the first run had not cached
    again = course.execute(notebook, "ci", cache_dir=tmp_path / "cache", progress=False, widgets=True)
    assert again["trainings"] == 0 and again["computed"] == {}


def test_kernels_run_over_unix_sockets_where_the_os_has_them(tmp_path, capfd):
    import os

    import nbformat
    from nbclient import NotebookClient

    client = course.over_local_sockets(NotebookClient(nbformat.v4.new_notebook(), kernel_name="python3"))
    if os.name == "posix":
        assert client.km.transport == "ipc"
    notebook = tmp_path / "01_quiet.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")]), notebook)
    course.execute(notebook, "ci", cache_dir=tmp_path, progress=False)
    assert "without encryption" not in capfd.readouterr().err


def test_bench_course_measures_only_the_notebooks_named(monkeypatch, capsys):
    monkeypatch.setenv("LABKIT_PROFILE", "ci")
    chosen = []
    monkeypatch.setattr(course_bench, "bench_course", lambda names=None: chosen.append(names) or {"notebooks": {}})
    assert cli.main(["bench", "course", "--notebooks", "03", "07", "--json"]) == 0
    assert chosen == [["03", "07"]] and json.loads(capsys.readouterr().out) == {"notebooks": {}}
    assert cli.main(["bench", "dpsgd", "--notebooks", "03"]) != 0
    assert "--notebooks selects notebooks for `labkit bench course` only" in capsys.readouterr().err

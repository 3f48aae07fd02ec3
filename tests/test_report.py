"""`labkit reproduce`: the report runs end to end in the ci profile on digits, every row is complete and its
verdict follows from its own criterion, a second run computes nothing, and bad input is one line."""
import json

import pytest

from labkit import claims, cli, experiments, report


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One ci report on digits (into the project's ci cache, which the notebooks then reuse)."""
    out = tmp_path_factory.mktemp("report")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LABKIT_PROFILE", "ci")
        mp.setenv("TQDM_DISABLE", "1")
        assert cli.main(["reproduce", "--dataset", "digits", "--profile", "ci", "--out", str(out)]) == 0
    return out


def test_every_claim_has_a_paper_value_a_lab_value_and_a_verdict(built):
    result = json.loads((built / "claims.json").read_text(encoding="utf-8"))
    assert (result["dataset"], result["profile"], result["seeds"]) == ("digits", "ci", [0])
    rows = result["claims"]
    assert [r["id"] for r in rows] == [c.id for c in claims.all_claims()]
    for row in rows:
        assert row["paper"] in claims.PAPERS and row["paper_value"] and row["criterion"], row["id"]
        assert row["verdict"] in ("holds", "differs"), row  # digits is bundled: every claim runs
        assert row["lab_value"] and row["lab_value"] != "—", row["id"]
        assert all(len(seq) == 1 for seq in row["values"].values()), row["id"]


def test_each_verdict_follows_from_its_criterion_on_the_recorded_numbers(built):
    for row in json.loads((built / "claims.json").read_text(encoding="utf-8"))["claims"]:
        assert claims.verdict(claims.get(row["id"]).criterion, row["values"]) == row["verdict"], row["id"]
        if row["verdict"] == "differs" and claims.get(row["id"]).why:
            assert row["why"] == claims.get(row["id"]).explain(row["values"])


def test_the_index_names_every_claim_and_shows_its_figures(built):
    index = (built / "index.md").read_text(encoding="utf-8")
    for claim in claims.all_claims():
        assert claim.claim in index
    figures = sorted(p.name for p in built.glob("*.png"))
    assert {"verdicts.png", "label-consistent-epsilon.png", "label-consistent-tau.png",
            "label-consistent-amplitude.png", "label-consistent-loss.png", "blind-tasks.png"} <= set(figures)
    for name in figures:
        assert f"]({name})" in index
        assert (built / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_second_run_reads_every_number_from_the_cache(built, tmp_path):
    before = {k: v["count"] for k, v in experiments.computed().items()}
    result = report.build("digits", "ci", tmp_path / "again", progress=False)
    after = {k: v["count"] for k, v in experiments.computed().items()}
    assert after == before, "a warm report recomputed experiments"
    first = json.loads((built / "claims.json").read_text(encoding="utf-8"))["claims"]
    assert [r["values"] for r in result["claims"]] == [r["values"] for r in first]


def test_a_notebook_table_is_the_same_rows_as_markdown(built):
    table = report.notebook_table("01", "digits", "ci", seeds=[0])
    rows = [c for c in claims.all_claims() if c.notebook == "01"]
    assert table.count("\n") == len(rows) + 2 and all(c.claim in table for c in rows)
    assert "**holds**" in table or "**differs**" in table


@pytest.mark.parametrize("argv,message", [
    (["reproduce", "--dataset", "nope"], "unknown dataset 'nope'"),
    (["reproduce", "--jobs", "0"], "--jobs must be an int >= 1"),
    (["reproduce", "--profile", "huge"], "invalid choice"),
    (["reproduce", "--papers", "badnets,nope"], "unknown paper nope: choose from badnets"),
])
def test_bad_input_is_one_line(argv, message, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and message in err


def test_an_out_path_that_is_a_file_is_one_line(tmp_path, capsys):
    target = tmp_path / "file"
    target.write_text("x")
    assert cli.main(["reproduce", "--out", str(target)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "is a file" in err


def test_each_finished_claim_is_handed_on_at_once_so_a_report_cut_short_keeps_its_rows(built):
    seen = []
    rows = report.evaluate_all("digits", "ci", [0], papers=["badnets"], progress=False,
                               on_row=lambda so_far: seen.append([r["id"] for r in so_far]))
    ids = [c.id for c in claims.all_claims(paper="badnets")]
    assert seen == [ids[:i] for i in range(1, len(ids) + 1)] and [r["id"] for r in rows] == ids


def test_papers_limits_the_report_to_their_rows_and_says_so(built, tmp_path):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TQDM_DISABLE", "1")
        assert cli.main(["reproduce", "--dataset", "digits", "--profile", "ci", "--out", str(tmp_path),
                         "--papers", "strip,badnets"]) == 0
    result = json.loads((tmp_path / "claims.json").read_text(encoding="utf-8"))
    assert result["papers"] == ["badnets", "strip"]
    assert [r["id"] for r in result["claims"]] == [c.id for c in claims.all_claims() if c.paper in ("badnets", "strip")]
    index = (tmp_path / "index.md").read_text(encoding="utf-8")
    assert "Only these papers' rows: badnets, strip." in index and "--papers badnets,strip" in index


def test_two_jobs_measure_the_seeds_in_two_processes_and_give_the_sequential_rows(built, tmp_path):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LABKIT_CACHE_DIR", str(tmp_path / "cold-cache"))  # the workers compute, they do not read `built`'s
        mp.setenv("TQDM_DISABLE", "1")
        rows = report.evaluate_all("digits", "ci", papers=["badnets"], jobs=2, progress=False)
    sequential = [r for r in json.loads((built / "claims.json").read_text(encoding="utf-8"))["claims"]
                  if r["paper"] == "badnets"]
    assert [(r["id"], r["values"], r["verdict"], r["lab_value"]) for r in rows] == \
        [(r["id"], r["values"], r["verdict"], r["lab_value"]) for r in sequential]
    assert all(r["seconds"] > 0 for r in rows)

"""The course site (`labkit.site`, `make site`): built once per session in the `ci` profile, every notebook gets
its page, each page embeds its figures and carries home / previous / next links, and the front page maps the
course and links every notebook.

The build executes all seven notebooks (the ci cache makes a second run quick; cold it costs what running the
notebooks costs). The small parts — the course map's fields, the widget and claim-table hooks — are tested
without a kernel.
"""
import base64
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest

from labkit import site

NOTEBOOKS = site.course()
PNG = b"\x89PNG\r\n\x1a\n"


class Page(HTMLParser):
    """The img sources and link targets of one HTML page."""

    def __init__(self, text: str):
        super().__init__()
        self.images, self.links = [], {}
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        elif tag == "a" and attrs.get("href"):
            self.links.setdefault(attrs["href"], attrs.get("rel"))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    report = site.build("ci", out, log=lambda line: None)
    return out, report


def test_the_course_map_has_every_notebook_with_its_paper_question_and_knob():
    assert len(NOTEBOOKS) >= 7
    for n in NOTEBOOKS:
        assert n.title[:2] == n.stem[:2], n
        assert n.paper != "—" and n.knob != "—", f"{n.stem} has no row in the README's notebook table"
        assert n.question.endswith("?"), f"{n.stem}: no '**The question** (...): ...?' in its first cell"


def test_every_notebook_has_its_page_and_ran_without_error(built):
    out, report = built
    assert set(report["notebooks"]) == {n.stem for n in NOTEBOOKS}
    for n in NOTEBOOKS:
        assert (out / n.page).is_file(), f"no page for {n.stem}"
        assert report["notebooks"][n.stem]["error"] is None, f"{n.stem}: {report['notebooks'][n.stem]['error']}"


@pytest.mark.parametrize("index", range(len(NOTEBOOKS)), ids=[n.stem for n in NOTEBOOKS])
def test_each_page_embeds_its_figures_and_navigates(built, index):
    out, _ = built
    n = NOTEBOOKS[index]
    page = Page((out / n.page).read_text(encoding="utf-8"))
    assert page.images, f"{n.page} shows no figure"
    for src in page.images:
        if src.startswith("data:image/png;base64,"):
            assert base64.b64decode(src.split(",", 1)[1])[:8] == PNG, f"{n.page}: a data: image is no PNG"
        else:
            assert not src.startswith(("http:", "https:", "//")), f"{n.page} loads an image from the network: {src}"
            assert (out / src).is_file(), f"{n.page}: image {src} is missing"
    assert page.links.get("index.html") == "home"
    if index > 0:
        assert page.links.get(NOTEBOOKS[index - 1].page) == "prev"
    if index < len(NOTEBOOKS) - 1:
        assert page.links.get(NOTEBOOKS[index + 1].page) == "next"
    text = (out / n.page).read_text(encoding="utf-8")
    assert "application/vnd.jupyter.widget-view+json" not in text  # dead widgets are replaced by a note
    assert "Traceback" not in text


def test_the_front_page_links_every_notebook_and_shows_its_times(built):
    out, _ = built
    text = (out / "index.html").read_text(encoding="utf-8")
    links = Page(text).links
    for n in NOTEBOOKS:
        assert n.page in links, f"the front page does not link {n.page}"
    assert "<code>ci</code>" in text and "Course map" in text
    timings = json.loads((out / "timings.json").read_text())["ci"]
    assert set(timings) == {n.stem for n in NOTEBOOKS}
    assert all(row.get("computing_s") or row.get("warm_s") for row in timings.values())
    assert re.search(r"(computing \d+ results?:|warm) \d", text)


def test_widget_views_become_a_note_and_progress_bars_vanish():
    view = {"application/vnd.jupyter.widget-view+json": {"model_id": "x"}}
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x", outputs=[
        nbformat.v4.new_output("display_data", data={**view, "text/plain": "sweep badnets:  33%|███ | 1/3"}),
        nbformat.v4.new_output("display_data", data={**view, "text/plain": "VBox(children=(...))"}),
        nbformat.v4.new_output("stream", name="stdout", text="hello\n")])])
    assert site.static_widgets(nb) == 1
    outputs = nb.cells[0].outputs
    assert len(outputs) == 2 and outputs[0]["data"] == {"text/html": site.WIDGET_NOTE}
    assert outputs[1]["text"] == "hello\n"


def test_a_widget_that_carries_its_figure_keeps_it_on_the_page_beside_the_note():
    view = {"application/vnd.jupyter.widget-view+json": {"model_id": "x"}}
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x", outputs=[
        nbformat.v4.new_output("display_data", data={**view, "image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"})])])
    assert site.static_widgets(nb) == 1
    outputs = nb.cells[0].outputs
    assert [o["data"] for o in outputs] == [{"text/html": site.WIDGET_NOTE}, {"image/png": "iVBORw0KGgo="}]


def test_the_claim_table_says_not_built_yet_then_renders_the_report(tmp_path):
    assert "Not built yet" in site.claim_table("lab", tmp_path)
    folder = tmp_path / "digits-lab"
    folder.mkdir()
    (folder / "claims.json").write_text(json.dumps({"claims": [
        {"id": "badnets-1", "paper": "badnets", "notebook": "01_badnets", "claim": "ASR ≥ 99% at 10% <poison>",
         "paper_value": "99.9%", "lab_value": "100.0% ± 0.0", "criterion": "≥ 90%", "verdict": "holds"}]}))
    text = site.claim_table("lab", tmp_path)
    assert "digits-lab" in text and "holds" in text and "&lt;poison&gt;" in text and "Not built yet" not in text
    (folder / "claims.json").write_text("{broken")
    assert "could not be read" in site.claim_table("lab", tmp_path)

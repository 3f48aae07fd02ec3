"""The course site in a real browser: `labkit site` output opened from disk in Debian's chromium — the front
page and notebook 01's page render with their figures (every <img> decoded). Run by `make test-browser`."""
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
SHOTS = ROOT / "data" / "browser"

if os.environ.get("LABKIT_BROWSER_TEST") != "1":
    pytest.skip("the browser test runs on its own: `make test-browser`" + (
        "" if CHROMIUM.exists() else f" (no chromium at {CHROMIUM}: apt-get install -y chromium)"),
        allow_module_level=True)

from playwright.sync_api import sync_playwright  # noqa: E402 — only once the test is sure to run

from labkit import site  # noqa: E402


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    done = site.build("ci", out, ["01"], log=lambda line: None)
    assert not any(row.get("error") for row in done["notebooks"].values()), done
    return out


def rendered_images(page) -> list[int]:
    """naturalWidth of every image on the page (0 = it did not decode)."""
    page.wait_for_load_state("load")
    return page.eval_on_selector_all("img", "images => images.map(i => i.complete ? i.naturalWidth : 0)")


def test_the_front_page_and_a_notebook_page_render_with_their_figures(built):
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto((built / "index.html").as_uri())
        assert "Course map" in page.content()
        links = page.eval_on_selector_all("a", "links => links.map(a => a.getAttribute('href'))")
        notebook_page = next(link for link in links if link and link.startswith("01_badnets"))
        page.screenshot(path=str(SHOTS / "site-index.png"), full_page=True)
        page.goto((built / notebook_page).as_uri())
        widths = rendered_images(page)
        page.screenshot(path=str(SHOTS / "site-01_badnets.png"), full_page=True)
        browser.close()
    assert len(widths) >= 5, f"notebook 01's page shows only {len(widths)} figures"
    assert all(w > 0 for w in widths), f"figures that did not render: {widths}"

"""What a student sees: JupyterLab in a real browser opens a notebook, runs every cell, and a control moves.

`make test-browser` runs this with Debian's chromium, driven by playwright; `make test` skips it. JupyterLab
serves a temporary copy of each notebook, so its autosave never writes outputs into the tracked files.
Screenshots of the widget before and after the move land in data/browser/ (a CI artifact).
"""
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
SHOTS = ROOT / "data" / "browser"
MINUTE = 60_000  # playwright counts milliseconds; nothing here is a timing test, so every wait is generous

if os.environ.get("LABKIT_BROWSER_TEST") != "1":
    pytest.skip("the browser test runs on its own: `make test-browser`" + (
        "" if CHROMIUM.exists() else f" (no chromium at {CHROMIUM}: apt-get install -y chromium)"),
        allow_module_level=True)

from playwright.sync_api import TimeoutError as PlaywrightTimeout, sync_playwright  # noqa: E402 — only once the test is sure to run

SETTINGS = {  # every cell in the page, and no news or update toasts over it
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                        "checkForUpdates": False},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab on a free port with a token, serving copies of the notebooks (`ci` profile)."""
    folder = tmp_path_factory.mktemp("lab")
    for notebook in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"):
        shutil.copy(notebook, folder / notebook.name)
    for name, values in SETTINGS.items():
        (folder / ".settings" / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / ".settings" / name).write_text(json.dumps(values))
    port, token = free_port(), secrets.token_hex(16)
    command = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
               f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--ServerApp.token={token}",
               f"--ServerApp.root_dir={folder}", f"--LabApp.user_settings_dir={folder / '.settings'}",
               f"--LabApp.workspaces_dir={folder / '.workspaces'}"] + (["--allow-root"] if os.geteuid() == 0 else [])
    env = {**os.environ, "LABKIT_PROFILE": "ci", "JUPYTER_RUNTIME_DIR": str(folder / ".runtime")}
    log = folder / "jupyterlab.log"
    with log.open("w") as out:
        server = subprocess.Popen(command, cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            assert server.poll() is None, f"JupyterLab exited:\n{log.read_text()[-3000:]}"
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=5)
                break
            except OSError:
                time.sleep(0.5)
        else:
            raise AssertionError(f"JupyterLab did not answer on {url}:\n{log.read_text()[-3000:]}")
        yield url, token
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail(f"no chromium at {CHROMIUM}: apt-get install -y chromium")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield chromium
        chromium.close()


def kernel_connected(url, token, notebook) -> bool:
    """The notebook's kernel is idle and the page holds a connection to it (the server's own count)."""
    with urllib.request.urlopen(f"{url}/api/sessions?token={token}", timeout=30) as answer:
        sessions = json.load(answer)
    return any(s["path"] == notebook and s["kernel"]["execution_state"] == "idle" and s["kernel"]["connections"] > 0
               for s in sessions)


def run_all_cells(page):
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()


def open_and_run_all(page, url, token, notebook):
    """Open the notebook, check that its kernel starts without a dialog, then Run → Run All Cells."""
    # A fresh workspace of its own: only this notebook open, whatever an earlier test left behind.
    page.goto(f"{url}/lab/workspaces/{Path(notebook).stem}/tree/{notebook}?token={token}")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=5 * MINUTE)
    for _ in range(600):
        if kernel_connected(url, token, notebook) or page.locator(".jp-Dialog").count():
            break
        time.sleep(0.5)
    assert page.locator(".jp-Dialog").count() == 0, page.locator(".jp-Dialog").inner_text()  # e.g. "Select Kernel"
    page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=5 * MINUTE)  # the status bar agrees
    started = """() => [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]
        .some(p => /^\\[(\\*|\\d+)\\]:$/.test(p.textContent.trim()))"""
    run_all_cells(page)
    try:
        page.wait_for_function(started, timeout=MINUTE)
    except PlaywrightTimeout:  # a page still settling can drop the first command; nothing ran, so ask again
        run_all_cells(page)
        page.wait_for_function(started, timeout=MINUTE)
    page.wait_for_function("""() => {
        const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')].map(p => p.textContent.trim());
        return prompts.length > 0 && prompts.every(p => /^\\[\\d+\\]:$/.test(p));
    }""", timeout=30 * MINUTE, polling=1000)
    page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=5 * MINUTE)


def shut_down_kernels(url, token):
    """Stop the kernels a test started, so the next notebook has the CPU to itself."""
    api = f"{url}/api/kernels"
    with urllib.request.urlopen(f"{api}?token={token}", timeout=30) as answer:
        kernels = json.load(answer)
    for kernel in kernels:
        request = urllib.request.Request(f"{api}/{kernel['id']}?token={token}", method="DELETE")
        urllib.request.urlopen(request, timeout=60).close()


def check_outputs(page):
    """No traceback, no dialog, no widget repr; the paper-vs-lab table is HTML."""
    stderr = page.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]').all_inner_texts()
    assert not [text for text in stderr if "Traceback" in text or "the plot failed" in text], stderr
    assert page.locator(".jp-Dialog").count() == 0
    outputs = "\n".join(page.locator(".jp-OutputArea").all_inner_texts())
    assert "Wired(" not in outputs and "VBox(children" not in outputs
    assert page.locator(".jp-OutputArea-output table").count() >= 1


def widget_cells(page):
    """The code cells that show a `widgets.interact` section (exercises bring widgets of their own)."""
    cells = page.locator(".jp-CodeCell").filter(has=page.locator(".jp-OutputArea .labkit-interact"))
    cells.first.wait_for(timeout=MINUTE)
    return cells


def check_one_figure_each(page):
    """Every widget section shows one figure: the live one, under its controls."""
    cells = widget_cells(page)
    for i in range(cells.count()):
        cell = cells.nth(i)
        cell.locator(".widget-output img").first.wait_for(timeout=MINUTE)
        assert cell.locator("img").count() == 1, f"widget section {i + 1} shows {cell.locator('img').count()} figures"


WATCH = """(cell) => {
    const before = cell.querySelector('.widget-output img').src;
    window.seen = {};
    new MutationObserver(() => {
        const now = performance.now();
        if (!window.seen.busy && cell.innerText.includes('computing')) window.seen.busy = now;
        const img = cell.querySelector('.widget-output img');
        if (!window.seen.figure && img && img.src !== before) window.seen.figure = now;
    }).observe(cell, {subtree: true, childList: true, characterData: true, attributes: true});
    window.seen.moved = performance.now();
}"""


def move_and_watch(page, cell, move, shot):
    """Move one control; the status line must say 'computing' before the figure changes, then settle."""
    cell.scroll_into_view_if_needed()
    SHOTS.mkdir(parents=True, exist_ok=True)
    cell.screenshot(path=SHOTS / f"{shot}-before.png")
    cell.evaluate(WATCH)
    move(cell)
    try:  # what the student sees while it works (a cached setting may redraw before the screenshot)
        cell.get_by_text("computing").wait_for(timeout=5_000)
        cell.screenshot(path=SHOTS / f"{shot}-computing.png")
    except PlaywrightTimeout:
        pass
    page.wait_for_function("() => window.seen.figure", timeout=10 * MINUTE, polling=200)
    seen = page.evaluate("window.seen")
    assert seen.get("busy") and seen["busy"] <= seen["figure"], f"no activity shown before the figure changed: {seen}"
    page.wait_for_function("(cell) => !cell.innerText.includes('computing')", arg=cell.element_handle(),
                           timeout=10 * MINUTE, polling=200)
    assert cell.locator("img").count() == 1
    assert "the plot failed" not in cell.inner_text()
    cell.screenshot(path=SHOTS / f"{shot}-after.png")
    page.screenshot(path=SHOTS / f"{shot}-page.png", full_page=False)


def step_slider_left(cell):
    handle = cell.locator(".widget-slider .noUi-handle").first
    handle.focus()
    handle.press("ArrowLeft")


def pick_other_option(cell):
    select = cell.locator(".widget-dropdown select").first
    current = select.input_value()
    other = next(v for v in select.locator("option").evaluate_all("os => os.map(o => o.value)") if v != current)
    select.select_option(other)


@pytest.mark.parametrize("notebook, section, move", [
    ("01_badnets.ipynb", 0, step_slider_left),                   # a slider: a new setting may train a model
    ("06_fine_pruning_and_strip.ipynb", -1, pick_other_option),  # a dropdown: STRIP's threshold method
], ids=["01-slider", "06-dropdown"])
def test_a_student_runs_the_notebook_and_moves_a_control(lab, browser, notebook, section, move):
    url, token = lab
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(MINUTE)
    try:
        open_and_run_all(page, url, token, notebook)
        check_outputs(page)
        check_one_figure_each(page)
        cells = widget_cells(page)
        cell = cells.nth(section if section >= 0 else cells.count() + section)
        assert cell.locator(".widget-slider, .widget-dropdown").first.is_visible()
        move_and_watch(page, cell, move, Path(notebook).stem)
        check_outputs(page)
    except Exception:
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=SHOTS / f"{Path(notebook).stem}-failed.png")  # what the page showed, for the CI log
        raise
    finally:
        page.close()
        shut_down_kernels(url, token)

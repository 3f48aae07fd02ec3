"""Every notebook is a py:percent source paired with a committed .ipynb that equals jupytext's
conversion of it and carries no outputs, execution counts or widget state."""
import json
import subprocess
from pathlib import Path

import jupytext
import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))


def committed_text(path: Path) -> str:
    """The version in git's index when this is a git checkout (what gets committed), else the file."""
    try:
        done = subprocess.run(["git", "show", f":{path.relative_to(ROOT)}"], cwd=ROOT,
                              capture_output=True, text=True, timeout=30)
        if done.returncode == 0:
            return done.stdout
    except (OSError, subprocess.SubprocessError):
        pass
    return path.read_text()


def test_there_are_notebooks():
    assert any(p.name.startswith("01_badnets") for p in SOURCES)


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_ipynb_is_the_conversion_of_its_source(source):
    paired = source.with_suffix(".ipynb")
    assert paired.exists(), f"run: jupytext --to ipynb {source.name}"
    expected = jupytext.read(source)
    notebook = json.loads(committed_text(paired))
    want = [(c.cell_type, c.source.strip()) for c in expected.cells]
    have = [(c["cell_type"], "".join(c["source"]).strip()) for c in notebook["cells"]]
    assert have == want, f"{paired.name} is out of date: jupytext --to ipynb --update {source.name}"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_committed_ipynb_has_no_outputs_or_widget_state(source):
    notebook = json.loads(committed_text(source.with_suffix(".ipynb")))
    assert "widgets" not in notebook.get("metadata", {})
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [] and cell.get("execution_count") is None


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_notebook_shape(source):
    cells = jupytext.read(source).cells
    code = [c for c in cells if c.cell_type == "code"]
    assert "parameters" in code[0].metadata.get("tags", []), "first code cell must be the tagged parameters cell"
    assert "PROFILE" in code[0].source
    text = "\n".join(c.source for c in cells if c.cell_type == "markdown").lower()
    assert "threat model" in text and "paper vs" in text and "exercises" in text
    assert "widgets.interact(" in "\n".join(c.source for c in code)

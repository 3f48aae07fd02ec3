"""requirements.txt, pyproject.toml and environment.yml must name the same packages at the same pins."""
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PIN = re.compile(r"^\s*(?:-\s+)?([A-Za-z0-9_.\-]+)==([A-Za-z0-9_.+\-]+)\s*$")


def _pins(lines) -> dict[str, str]:
    found = {}
    for line in lines:
        match = PIN.match(line.split("#")[0])
        if match:
            found[match.group(1).lower()] = match.group(2)
    return found


def requirements() -> dict[str, str]:
    return _pins((ROOT / "requirements.txt").read_text().splitlines())


def pyproject() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = project["dependencies"] + [d for group in project["optional-dependencies"].values() for d in group]
    return _pins(specs)


def environment() -> dict[str, str]:
    lines = (ROOT / "environment.yml").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "- pip:")
    return _pins(lines[start + 1:])


def test_every_requirement_is_an_exact_pin():
    lines = [l.split("#")[0].strip() for l in (ROOT / "requirements.txt").read_text().splitlines()]
    assert all(PIN.match(l) for l in lines if l), "requirements.txt must hold exact pins only"


def test_the_three_files_agree():
    assert requirements() == pyproject() == environment()


def test_torch_is_pinned_to_the_machine_build():
    pins = requirements()
    assert pins["torch"] == "2.13.0" and pins["torchvision"] == "0.28.0"


def test_environment_is_conda_forge_python_311():
    text = (ROOT / "environment.yml").read_text()
    assert "conda-forge" in text and re.search(r"-\s*python=3\.11\b", text)


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    head = readme[:1500]
    assert "make lab" in head and "make test" in head
    ci_lines = [l for l in (ROOT / ".ci" / "run").read_text().splitlines() if l.strip() and not l.startswith("#")]
    assert ci_lines[-1].strip() == "make test"
    makefile = (ROOT / "Makefile").read_text()
    assert "LABKIT_PROFILE=ci" in makefile and "--nbmake" in makefile and "--ip=127.0.0.1" in makefile

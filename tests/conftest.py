"""Shared fixtures: every test runs in the `ci` profile with a private, empty result cache."""
import pytest


@pytest.fixture(autouse=True)
def ci_profile(monkeypatch):
    monkeypatch.setenv("LABKIT_PROFILE", "ci")
    monkeypatch.setenv("TQDM_DISABLE", "1")


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch):
    """A fresh cache directory for this test only."""
    monkeypatch.setenv("LABKIT_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def shell(tmp_path, monkeypatch):
    """A real IPython shell (as in a kernel, less the frontend), so that display() records its outputs;
    removed again afterwards. Shared by the widget and exercise tests."""
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    config = Config()
    config.HistoryManager.enabled = False
    yield InteractiveShell.instance(config=config)
    InteractiveShell.clear_instance()

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

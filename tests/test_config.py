import pytest

from labkit import config
from labkit.errors import LabkitError


def test_default_profile_is_lab(monkeypatch):
    monkeypatch.delenv("LABKIT_PROFILE", raising=False)
    monkeypatch.delenv("CI", raising=False)
    assert config.profile().name == "lab"


def test_ci_true_implies_ci_unless_profile_is_set(monkeypatch):
    monkeypatch.delenv("LABKIT_PROFILE", raising=False)
    monkeypatch.setenv("CI", "true")
    assert config.profile().name == "ci"
    monkeypatch.setenv("LABKIT_PROFILE", "paper")
    assert config.profile().name == "paper"


def test_unknown_profile_names_the_choices(monkeypatch):
    monkeypatch.setenv("LABKIT_PROFILE", "huge")
    with pytest.raises(LabkitError, match="ci, lab, paper"):
        config.profile()


def test_use_profile_switches_and_none_keeps(monkeypatch):
    assert config.use_profile("lab").name == "lab"
    assert config.use_profile(None).name == "lab"
    with pytest.raises(LabkitError, match="unknown profile"):
        config.use_profile("fast")


def test_pick_follows_the_profile(monkeypatch):
    for name in ("ci", "lab", "paper"):
        monkeypatch.setenv("LABKIT_PROFILE", name)
        assert config.pick(ci=1, lab=2, paper=3) == {"ci": 1, "lab": 2, "paper": 3}[name]


def test_profiles_are_frozen_and_grow_with_the_profile():
    ci, lab = config.PROFILES["ci"], config.PROFILES["lab"]
    with pytest.raises(Exception):
        ci.epochs = 99
    assert ci.epochs <= lab.epochs <= config.PROFILES["paper"].epochs
    assert config.PROFILES["paper"].train_size is None
    assert all(0 <= f < 1 for p in config.PROFILES.values() for f in p.poison_fractions)


def test_device_is_cpu_outside_paper(monkeypatch):
    monkeypatch.setenv("LABKIT_PROFILE", "lab")
    assert config.device().type == "cpu"


def test_keep_profile_restores_the_environment(monkeypatch):
    import os

    monkeypatch.setenv("LABKIT_PROFILE", "ci")
    with config.keep_profile():
        config.use_profile("paper")
        assert config.profile().name == "paper"
    assert os.environ["LABKIT_PROFILE"] == "ci"
    monkeypatch.delenv("LABKIT_PROFILE")
    try:
        with config.keep_profile():
            config.use_profile("lab")
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        pass
    assert "LABKIT_PROFILE" not in os.environ

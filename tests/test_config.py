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


def test_sizes_follow_the_profile_given_or_active(monkeypatch):
    sizes = config.Sizes(ci=dict(n=1), lab=dict(n=2), paper=dict(n=3))
    for name in ("ci", "lab", "paper"):
        monkeypatch.setenv("LABKIT_PROFILE", name)
        assert sizes.of()["n"] == {"ci": 1, "lab": 2, "paper": 3}[name]
        assert sizes.of("lab")["n"] == 2 and sizes.of(config.PROFILES["paper"])["n"] == 3
    with pytest.raises(TypeError):
        sizes.of("ci")["n"] = 5  # read-only
    with pytest.raises(LabkitError, match="unknown profile"):
        sizes.of("fast")


def test_sizes_must_name_the_same_keys_in_every_profile():
    with pytest.raises(LabkitError, match="'paper' and 'ci' differ in key 'm'"):
        config.Sizes(ci=dict(n=1), lab=dict(n=2), paper=dict(n=3, m=4))


def test_every_paper_declares_its_sizes_one_way():
    """Each experiment module that has profile-dependent sizes declares one `SIZES = config.Sizes(...)`."""
    import importlib
    import pkgutil

    import labkit.experiments as package

    declared = []
    for module in pkgutil.iter_modules(package.__path__):
        mod = importlib.import_module(f"labkit.experiments.{module.name}")
        source = open(mod.__file__).read()
        assert "config.pick" not in source and "def profile_sizes" not in source, module.name
        if hasattr(mod, "SIZES"):
            assert isinstance(mod.SIZES, config.Sizes), module.name
            declared.append(module.name)
    assert {"dpsgd", "label_consistent", "fine_pruning", "neural_cleanse", "blind", "certified"} <= set(declared)


def test_inside_an_experiment_the_environment_profile_cannot_be_read():
    with config.reading_forbidden("badnets"):
        with pytest.raises(LabkitError, match="use cfg.profile"):
            config.profile()
        assert config.profile("ci").name == "ci"  # an explicit profile is fine
    assert config.profile().name in config.PROFILE_NAMES


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


def test_lab_caps_a_victims_default_training_at_max_steps_but_not_an_explicit_epoch_count():
    lab = config.PROFILES["lab"]
    assert lab.epochs_for(1347) == lab.epochs  # digits: 22 steps an epoch, 15 epochs = 330 steps, under the cap
    assert lab.epochs_for(10000) == 4  # MNIST: 157 steps an epoch → ceil(600 / 157)
    assert lab.epochs_for(10000) * -(-10000 // lab.batch_size) >= lab.max_steps  # never fewer steps than the cap
    assert lab.epochs_for(10000, 2) == 2  # a smaller default is kept
    assert lab.epochs_for(10**6) == 1
    for name in ("ci", "paper"):
        profile = config.PROFILES[name]
        assert profile.max_steps is None and profile.epochs_for(60000) == profile.epochs

"""Blind backdoors: the compromised loss, the calculator, evasion, DP-style shaping, the experiment,
and the acceptance numbers on digits in the lab profile."""
import pytest
import torch
import torch.nn.functional as F

from labkit import data, experiments, models, triggers
from labkit.attacks import blind, calculator, mgda
from labkit.errors import LabkitError
from labkit.experiments import blind as blind_exp

SHAPE = (1, 16, 16)


def batch(n=16, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(n, *SHAPE, generator=gen), torch.randint(10, (n,), generator=gen)


def pattern_synth(target=3):
    return blind.label_as(target, triggers.make("badnets", SHAPE), "pattern")


def small_model(seed=0, classes=10):
    return models.build("small-cnn", SHAPE, classes, seed=seed)


# ---- calculator ------------------------------------------------------------------------------

def test_calculator_answers_and_labels():
    assert calculator.ANSWERS[:19] == tuple(range(19))
    assert len(calculator.ANSWERS) == len(set(calculator.ANSWERS)) == 19 + 21  # sums 0..18 + products > 18
    codes = torch.tensor([0, 23, 77, 99, 58])  # 0+0, 2+3, 7+7, 9+9, 5+8
    sums = [calculator.ANSWERS[i] for i in calculator.sum_class(codes)]
    products = [calculator.ANSWERS[i] for i in calculator.product_class(codes)]
    assert sums == [0, 5, 14, 18, 13] and products == [0, 6, 49, 81, 40]
    with pytest.raises(LabkitError):
        calculator.answer_class(torch.tensor([19]))  # 19 is neither a digit sum nor a digit product


def test_side_by_side_keeps_digits_apart_and_the_corner_free():
    left, right = torch.zeros(2, *SHAPE), torch.ones(2, *SHAPE)
    pair = calculator.side_by_side(left, right)
    assert pair.shape == (2, *SHAPE)
    assert float(pair[:, :, 4:12, :8].sum()) == 0 and bool((pair[:, :, 4:12, 8:] == 1).all())
    trig = triggers.make("badnets", SHAPE)
    assert float((trig.mask * pair[0, 0]).sum()) == 0  # the trigger lands on black canvas, not on a digit


def test_make_pairs_codes_match_the_digits():
    ds = data.load("digits")
    x, codes = calculator.make_pairs(ds.x_train, ds.y_train, 50, seed=1)
    again_x, again_codes = calculator.make_pairs(ds.x_train, ds.y_train, 50, seed=1)
    assert torch.equal(codes, again_codes) and torch.equal(x, again_x)
    assert x.shape == (50, *ds.image_shape) and int(codes.min()) >= 0 and int(codes.max()) <= 99


# ---- the compromised loss --------------------------------------------------------------------

def test_fixed_scales_combine_the_two_losses():
    x, y = batch()
    synth, model = pattern_synth(), small_model()
    loss_fn = blind.BlindLoss(synth, balance="fixed", fixed_scales=(0.7, 0.3))
    loss = loss_fn(model, x, y)
    expected = 0.7 * F.cross_entropy(model(x), y) + 0.3 * F.cross_entropy(model(synth.inputs(x)), torch.full_like(y, 3))
    assert float(loss.detach()) == pytest.approx(float(expected.detach()), rel=1e-6)
    assert loss_fn.weights().tolist() == [[0.7, 0.3]] and loss_fn.active().tolist() == [True]


def test_mgda_weights_are_the_min_norm_point_of_the_task_gradients():
    x, y = batch()
    synth, model = pattern_synth(), small_model()
    loss_fn = blind.BlindLoss(synth, balance="mgda", normalization="l2")
    loss_fn(model, x, y)
    alpha = loss_fn.weights()[0]
    params = list(model.parameters())
    losses = [F.cross_entropy(model(x), y), F.cross_entropy(model(synth.inputs(x)), torch.full_like(y, 3))]
    grads = torch.stack([torch.cat([g.flatten() for g in torch.autograd.grad(l, params)]) for l in losses])
    expected = mgda.scales(grads, torch.stack(losses).detach(), "l2").weights
    assert alpha.tolist() == pytest.approx(expected.tolist(), abs=1e-5)
    assert float(alpha.sum()) == pytest.approx(1.0) and bool((alpha >= 0).all())
    assert all(p.grad is None for p in model.parameters())  # MGDA's gradients never leak into .grad


def test_threshold_keeps_the_attack_off_until_the_clean_loss_is_low():
    x, y = batch()
    model = small_model()
    off = blind.BlindLoss(pattern_synth(), balance="fixed", threshold=1e-6)
    loss = off(model, x, y)
    assert float(loss.detach()) == pytest.approx(float(F.cross_entropy(model(x), y).detach()), rel=1e-6)
    assert off.active().tolist() == [False] and off.weights().tolist() == [[1.0, 0.0]]
    on = blind.BlindLoss(pattern_synth(), balance="fixed", threshold=100.0)
    on(model, x, y)
    assert on.active().tolist() == [True]


def test_threshold_uses_the_recent_mean_clean_loss():
    loss_fn = blind.BlindLoss(pattern_synth(), balance="fixed", threshold=2.0, window=3)
    model = small_model()
    x, y = batch()
    clean = float(F.cross_entropy(model(x), y).detach())
    loss_fn.threshold = clean + 1e-3  # first batch: mean = clean < T → on
    loss_fn(model, x, y)
    loss_fn.threshold = clean - 1e-3  # same batch again: mean = clean ≥ T → off
    loss_fn(model, x, y)
    assert loss_fn.active().tolist() == [True, False]


def test_evasion_trains_its_own_trigger_and_adds_the_third_loss():
    x, y = batch()
    model = small_model()
    loss_fn = blind.BlindLoss(pattern_synth(), balance="mgda", evasion=True)
    loss_fn(model, x, y)
    first_mask = loss_fn.trigger_model().mask().detach().clone()
    loss = loss_fn(model, x, y)
    assert not torch.equal(first_mask, loss_fn.trigger_model().mask().detach())  # one NC step per batch
    assert loss_fn.weights().shape == (2, 3) and loss_fn.weights().sum(1).tolist() == pytest.approx([1.0, 1.0])
    assert all(p.grad is None for p in model.parameters())  # the NC step leaves θ's gradient alone
    trigger_grads = [p.grad.clone() for p in loss_fn.trigger_model().parameters()]
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    after = [p.grad for p in loss_fn.trigger_model().parameters()]
    assert all(torch.equal(a, b) for a, b in zip(trigger_grads, after))  # L_ev does not reach the trigger


def test_bad_settings_raise_one_line_errors():
    synth = pattern_synth()
    with pytest.raises(LabkitError, match="balance"):
        blind.BlindLoss(synth, balance="pcgrad")
    with pytest.raises(LabkitError, match="normalization"):
        blind.BlindLoss(synth, normalization="max")
    with pytest.raises(LabkitError, match="3 weights"):
        blind.BlindLoss(synth, balance="fixed", evasion=True, fixed_scales=(0.5, 0.5))
    with pytest.raises(LabkitError, match="sum to 1"):
        blind.BlindLoss(synth, balance="fixed", fixed_scales=(0.5, 0.7))
    with pytest.raises(LabkitError, match="single target"):
        blind.BlindLoss(blind.add_multiply(triggers.make("badnets", SHAPE)), evasion=True)


def test_gradient_shaping_clips_the_batch_gradient():
    model = small_model()
    x, y = batch()
    F.cross_entropy(model(x), y).mul(100).backward()
    blind.shape_gradient(model, clip=0.5, noise_multiplier=0.0, batch=len(y), gen=torch.Generator().manual_seed(0))
    norm = torch.cat([p.grad.flatten() for p in model.parameters()]).norm()
    assert float(norm) == pytest.approx(0.5, rel=1e-4)


def test_training_loop_is_deterministic_and_uses_the_given_loss():
    ds = data.load("digits")
    x, y = ds.x_train[:128], ds.y_train[:128]
    runs = []
    for _ in range(2):
        model = small_model()
        loss_fn = blind.BlindLoss(pattern_synth(), balance="mgda")
        history = blind.train_with_loss(model, x, y, loss_fn, epochs=1, batch_size=32, progress=False)
        runs.append((history[0]["loss"], loss_fn.weights()))
    assert runs[0][0] == runs[1][0] and torch.equal(runs[0][1], runs[1][1])
    assert runs[0][1].shape == (4, 2)  # one record per step: 128 / 32 batches


# ---- the experiment --------------------------------------------------------------------------

@pytest.mark.parametrize("overrides,fragment", [
    ({"synthesizer": "calculator", "evasion": True}, "single target"),
    ({"synthesizer": "calculator", "neural_cleanse": True}, "single target"),
    ({"backdoor_scale": 0.8, "evasion": True, "evasion_scale": 0.3}, "must be <= 1"),
    ({"synthesizer": "sticker"}, "synthesizer must be one of"),
    ({"balance": "sum"}, "balance must be one of"),
    ({"normalization": "max"}, "normalization must be one of"),
    ({"threshold": 0}, "threshold must be"),
    ({"backdoor_scale": 1.5}, "backdoor_scale must be a float in [0, 1]"),
    ({"mgda_max_iter": -1}, "mgda_max_iter must be"),
    ({"grad_clip": -1.0}, "grad_clip must be"),
])
def test_experiment_rejects_bad_configs(overrides, fragment):
    with pytest.raises(LabkitError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        experiments.get("blind").resolve(overrides)


def test_experiment_reports_and_caches(tmp_cache):
    first = experiments.run("blind", synthesizer="pixel", balance="fixed", epochs=2)
    for key in ("main_accuracy_clean", "main_accuracy_backdoored", "backdoor_accuracy_clean", "backdoor_accuracy"):
        assert 0 <= first[key] <= 1
    assert first["weights"].shape[1] == 2 and len(first["history"]) == 2
    assert first["anomaly_index"] is None  # no Neural Cleanse run (summary keys are always present, None when not computed)
    again = experiments.run("blind", synthesizer="pixel", balance="fixed", epochs=2)
    assert again["backdoor_accuracy"] == first["backdoor_accuracy"]
    assert any(tmp_cache.rglob("blind-normal-*.pt"))


def test_strip_against_the_blind_model_is_cached_and_unchanged_by_it(tmp_cache, monkeypatch):
    result = experiments.run("blind", synthesizer="pixel", balance="fixed", epochs=1)
    first = blind_exp.strip_report(result, n=8)
    assert 0 <= first["far"] <= 1 and any(tmp_cache.rglob("blind-strip-*.pt"))
    monkeypatch.setattr(blind_exp, "_strip_report", lambda *a: pytest.fail("recomputed a cached STRIP report"))
    again = blind_exp.strip_report(result, n=8)
    assert again["far"] == first["far"] and torch.equal(again["benign_entropies"], first["benign_entropies"])


# ---- acceptance: digits, lab profile, seed 0 -------------------------------------------------

def test_acceptance_pattern_backdoor(tmp_cache, monkeypatch):
    """Pattern backdoor ≥ 90% with main accuracy within 2 points of normal training (MGDA)."""
    monkeypatch.setenv("LABKIT_PROFILE", "lab")
    r = experiments.run("blind", synthesizer="pattern", balance="mgda", seed=0)
    assert r["backdoor_accuracy"] >= 0.9, r["backdoor_accuracy"]
    assert abs(r["main_accuracy_backdoored"] - r["main_accuracy_clean"]) <= 0.02
    assert r["backdoor_accuracy_clean"] < 0.1  # θ has no backdoor


def test_acceptance_calculator(tmp_cache, monkeypatch):
    """The calculator switches sum → product on ≥ 80% of triggered test pairs."""
    monkeypatch.setenv("LABKIT_PROFILE", "lab")
    r = experiments.run("blind", synthesizer="calculator", balance="mgda", seed=0)
    assert r["backdoor_accuracy"] >= 0.8, r["backdoor_accuracy"]
    assert r["backdoor_accuracy_clean"] < 0.1


def test_acceptance_evasion_lowers_the_anomaly_index(tmp_cache, monkeypatch):
    """With L_ev, Neural Cleanse's anomaly index of the target label drops clearly (seed 0)."""
    monkeypatch.setenv("LABKIT_PROFILE", "lab")
    plain = experiments.run("blind", synthesizer="pattern", neural_cleanse=True, seed=0)
    evaded = experiments.run("blind", synthesizer="pattern", evasion=True, seed=0, **blind_exp.EVASION)
    assert evaded["anomaly_index"] <= plain["anomaly_index"] - 1.0, (plain["anomaly_index"], evaded["anomaly_index"])
    assert evaded["backdoor_accuracy"] >= 0.9

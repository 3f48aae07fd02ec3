"""DP-SGD defense (issue 5): Opacus wiring, the matched SGD baseline, frozen layers, ε accounting,
the experiment's knobs, and the acceptance check in the lab profile."""
import math

import pytest
import torch
import torch.nn.functional as F

from labkit import data, experiments
from labkit.defenses import dpsgd as dp
from labkit.errors import LabkitError
from labkit.experiments import dpsgd as dpx


def tiny_model(seed=0):
    ds = data.load("digits")
    model, _ = dpx.build_model(ds, 8, seed)
    return ds, model


def flat_params(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_sgd_baseline_equals_dp_with_no_noise_and_no_clipping_on_a_full_lot():
    """q = 1 (lot = N): every Poisson lot is the whole set, so one DP step is the SGD step."""
    ds, model_dp = tiny_model()
    _, model_sgd = tiny_model()
    x, y = ds.x_train[:96], ds.y_train[:96]
    settings = dp.DPSettings(noise_multiplier=0.0, max_grad_norm=1e6, lot_size=96, epochs=2, lr=0.05)
    dp.train_dp(model_dp, x, y, settings, seed=3, device=torch.device("cpu"), progress=False)
    dp.train_sgd(model_sgd, x, y, settings, seed=3, device=torch.device("cpu"), progress=False)
    before = flat_params(tiny_model()[1])
    assert not torch.allclose(flat_params(model_dp), before)  # it trained
    assert torch.allclose(flat_params(model_dp), flat_params(model_sgd), atol=1e-5, rtol=1e-4)


def test_dp_gradient_is_the_sgd_gradient_in_expectation_under_poisson_lots():
    """σ = 0, no clipping, q = 1/4: the mean of Opacus' lot gradients is the full-batch mean gradient."""
    ds, model = tiny_model()
    x, y = ds.x_train[:64], ds.y_train[:64]
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    full = torch.cat([p.grad.flatten() for p in model.parameters()]).clone()
    model.zero_grad()
    settings = dp.DPSettings(noise_multiplier=0.0, max_grad_norm=1e6, lot_size=16, lr=0.1)
    _, private, optimizer, criterion, loader = dp.make_private(model, x, y, settings, seed=0,
                                                               device=torch.device("cpu"))
    total, lots = torch.zeros_like(full), 0
    for _ in range(100):
        for xb, yb in loader:
            optimizer.zero_grad(set_to_none=True)
            criterion(private(xb), yb).backward()
            optimizer.pre_step()  # clip + noise + divide by the expected lot: p.grad, no update
            total += torch.cat([p.grad.flatten() for p in model.parameters()])
            lots += 1
    mean = total / lots
    assert lots == 400
    assert (mean - full).norm() / full.norm() < 0.1


def test_baseline_lr_matches_opacus_normalisation():
    assert dp.baseline_lr(0.3, 128) == pytest.approx(0.3)  # Opacus divides by the expected lot = the batch
    assert dp.baseline_lr(0.3, 128, expected_lot_size=64) == pytest.approx(0.6)
    assert dp.baseline_lr(0.3, 128, clip_scale=0.1) == pytest.approx(0.03)


def test_clip_scale_is_one_without_clipping_and_shrinks_with_it():
    ds, model = tiny_model()
    x, y = ds.x_train[:64], ds.y_train[:64]
    assert dp.clip_scale(model, x, y, 1e6) == 1.0
    norms = dp.per_example_gradient_norms(model, x, y)
    assert float(norms.min()) > 1.0  # every example is clipped at C = 1 ...
    scale = dp.clip_scale(model, x, y, 1.0)
    assert 1.0 / float(norms.max()) - 1e-6 <= scale <= 1.0 / float(norms.min()) + 1e-6  # ... by 1/‖g‖


def test_frozen_layers_stay_frozen_under_dp_training():
    ds, model = tiny_model()
    frozen = dp.freeze_all_but(model, ("fc2",))
    assert frozen and all(not name.startswith("fc2") for name in frozen)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    settings = dp.DPSettings(noise_multiplier=1.0, lot_size=64, epochs=1, lr=0.5)
    dp.train_dp(model, ds.x_train[:256], ds.y_train[:256], settings, seed=0, progress=False)
    after = model.state_dict()
    for name in frozen:
        assert torch.equal(after[name], before[name]), name
    assert not torch.equal(after["fc2.weight"], before["fc2.weight"])
    assert all(not hasattr(p, "grad_sample") for p in model.parameters())  # Opacus' hooks are gone


def test_freeze_rejects_unknown_layers():
    _, model = tiny_model()
    with pytest.raises(LabkitError, match="no layer 'fc9'"):
        dp.freeze_all_but(model, ("fc9",))


def test_reported_epsilon_matches_opacus_accountant_called_directly():
    from opacus.accountants import PRVAccountant, RDPAccountant

    ds, model = tiny_model()
    x, y = ds.x_train[:300], ds.y_train[:300]
    settings = dp.DPSettings(noise_multiplier=1.3, lot_size=50, epochs=2, lr=0.1)
    info = dp.train_dp(model, x, y, settings, seed=0, progress=False)
    assert info["steps"] == 12 and info["sample_rate"] == pytest.approx(1 / 6)
    direct = RDPAccountant()
    for _ in range(info["steps"]):
        direct.step(noise_multiplier=1.3, sample_rate=1 / 6)
    assert info["epsilon"] == pytest.approx(direct.get_epsilon(delta=1e-5), rel=1e-9)
    assert dp.epsilon(1.3, 1 / 6, 12) == pytest.approx(info["epsilon"], rel=1e-9)
    prv = PRVAccountant()
    prv.history = [(1.3, 1 / 6, 12)]
    assert dp.epsilon(1.3, 1 / 6, 12, accountant="prv") == pytest.approx(prv.get_epsilon(delta=1e-5), rel=1e-6)


def test_epsilon_is_finite_for_positive_sigma_and_decreasing_in_sigma():
    n, lot, epochs = 1347, 128, 30  # the lab profile's digits run
    q, steps = dp.sample_rate(n, lot), dp.steps_for(n, lot, epochs)
    sigmas = (1 / 3, 2 / 3, 1.0, 2.0, 4.0)
    eps = [dp.epsilon(s, q, steps) for s in sigmas]
    assert all(math.isfinite(e) and e > 0 for e in eps)
    assert all(a > b for a, b in zip(eps, eps[1:]))
    assert dp.epsilon(0.0, q, steps) == float("inf")


def test_experiment_runs_reports_and_is_deterministic(tmp_cache):
    kw = dict(noise_multiplier=1.0, poison_fraction=0.02, epochs=2, seed=4)
    first = experiments.run("dpsgd", use_cache=False, **kw)
    again = experiments.run("dpsgd", use_cache=False, **kw)
    for key in ("attack_success_rate", "attack_success_rate_classified", "clean_accuracy", "epsilon", "rare_accuracy"):
        assert first[key] == again[key]
    assert math.isfinite(first["epsilon"]) and first["delta"] == 1e-5
    assert first["poisoned_count"] == round(0.02 * len(data.load("digits").y_train))
    assert 0 <= first["attack_success_rate_classified"] <= 1 and 0 <= first["clean_accuracy"] <= 1
    public = experiments.public(first)
    assert {"attack_success_rate", "attack_success_rate_classified", "clean_accuracy", "epsilon", "delta"} <= set(public)
    baseline = experiments.run("dpsgd", use_cache=False, training="sgd", **kw)
    assert baseline["epsilon"] == float("inf") and 0 < baseline["effective_lr"] < 0.5  # clipping-matched


def test_frozen_procedure_keeps_pretrained_layers(tmp_cache):
    result = experiments.run("dpsgd", procedure="frozen", epochs=2, trainable="fc2", poison_fraction=0.05)
    assert result["frozen_unchanged"] is True
    assert result["private_size"] == len(data.load("digits").y_train) - round(0.3 * len(data.load("digits").y_train))
    pre = experiments.run("dpsgd-pretrain", public_fraction=0.3, seed=0)
    state = result["model_state"]
    assert torch.equal(state["conv1.weight"], pre["model_state"]["conv1.weight"])
    assert not torch.equal(state["fc2.weight"], pre["model_state"]["fc2.weight"])


def test_public_and_private_splits_are_disjoint():
    public, private = dpx.public_split(100, 0.3)
    assert len(public) == 30 and len(private) == 70
    assert not set(public.tolist()) & set(private.tolist())


@pytest.mark.parametrize("key,value,message", [
    ("noise_multiplier", -1, r"noise_multiplier must be a float in \[0, 100\]"),
    ("clip", 0, r"clip must be a float in \(0, 1e\+06\]"),
    ("trigger", "badnets", "trigger must be one of four-corner, x"),
    ("grad_sample_mode", "magic", "grad_sample_mode must be one of hooks, ew, functorch, ghost"),
    ("procedure", "half", "procedure must be one of scratch, frozen"),
    ("lot_size", 0, r"lot_size must be an int in \[1, 100000\]"),
])
def test_bad_knobs_give_one_line_errors(key, value, message):
    with pytest.raises(LabkitError, match=message):
        experiments.get("dpsgd").resolve({key: value})


def test_settings_reject_bad_values():
    with pytest.raises(LabkitError, match="grad_sample_mode"):
        dp.DPSettings(grad_sample_mode="nope").check()
    with pytest.raises(LabkitError, match="noise_multiplier"):
        dp.DPSettings(noise_multiplier=-0.5).check()


@pytest.mark.parametrize("mode", ["hooks", "ew", "functorch", "ghost"])
def test_grad_sample_modes_clip_the_same_gradient(mode):
    """Each selectable mode's clipped lot gradient (σ = 0, C = 1) equals plain per-example clipping."""
    ds, model = tiny_model()
    x, y = ds.x_train[:32], ds.y_train[:32]
    norms = dp.per_example_gradient_norms(model, x, y)
    params = list(model.parameters())
    expected = [torch.zeros_like(p) for p in params]
    for xi, yi, norm in zip(x, y, norms):
        grads = torch.autograd.grad(F.cross_entropy(model(xi[None]), yi[None]), params)
        for e, g in zip(expected, grads):
            e += g * min(1.0, 1.0 / (float(norm) + 1e-6))
    settings = dp.DPSettings(noise_multiplier=0.0, max_grad_norm=1.0, lot_size=32, lr=1e-9, grad_sample_mode=mode)
    _, private, optimizer, criterion, _ = dp.make_private(model, x, y, settings, seed=0, device=torch.device("cpu"))
    optimizer.zero_grad(set_to_none=True)
    criterion(private(x), y).backward()
    optimizer.pre_step()
    got = torch.cat([p.grad.flatten() for p in params])
    want = torch.cat([e.flatten() for e in expected]) / 32
    assert torch.allclose(got, want, atol=1e-5, rtol=1e-3)


def test_lab_acceptance_dp_sgd_cuts_attack_success_at_one_percent(monkeypatch, tmp_cache):
    """Digits, lab profile, procedure (a), 1% poison (for each seed σ = 0 and σ = 1 see the same
    poisoned set), averaged over three seeds: ASR at σ = 1 is at least 20 points below σ = 0.

    Three seeds, not the profile's two: single runs scatter by ±0.15 in ASR at σ = 1 (seeds 0–2
    gave 0.51, 0.76, 0.56), so a two-seed mean is too noisy for a fixed margin. Slow: six
    DP-SGD trainings of the lab CNN (the issue's acceptance criterion)."""
    monkeypatch.setenv("LABKIT_PROFILE", "lab")
    seeds = (0, 1, 2)
    runs = {sigma: [experiments.run("dpsgd", noise_multiplier=sigma, poison_fraction=0.01, seed=s)
                    for s in seeds] for sigma in (0.0, 1.0)}
    mean = {sigma: sum(r["attack_success_rate_classified"] for r in rs) / len(rs) for sigma, rs in runs.items()}
    assert mean[1.0] < mean[0.0] - 0.2, mean
    assert all(math.isfinite(r["epsilon"]) for r in runs[1.0])
    assert all(r["epsilon"] == float("inf") for r in runs[0.0])


def test_opacus_mnist_example_epsilon_parity():
    """Opacus' MNIST example (σ = 1.1, C = 1, 60 epochs, q = 0.004, δ = 1e-5): this lab's sample rate and step
    count are the example's; the README's ε = 2.91 is the RDP curve under Mironov's conversion (within 5%), and
    today's accountants report less for the very same steps (RDP with the tighter conversion ≈ 2.50)."""
    parity = dp.opacus_example_parity()
    assert parity["q"] == pytest.approx(0.004) and parity["steps"] == 15000
    assert parity["rdp_classic_conversion"] == pytest.approx(parity["readme"], rel=0.05)
    assert parity["rdp"] == pytest.approx(2.50, abs=0.02)
    assert parity["prv"] < parity["rdp"] < parity["rdp_classic_conversion"]
    assert dp.epsilon_classic_rdp(0.0, 0.004, 10) == float("inf") and dp.epsilon_classic_rdp(1.0, 0.004, 0) == 0.0

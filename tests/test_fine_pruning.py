"""Fine-pruning: activation ranking, exact channel masks that survive fine-tuning, the loop, the
pruning-aware attack, the experiments' keys, and the acceptance numbers on digits in the lab profile."""
import pytest
import torch

from labkit import experiments, models, train
from labkit.attacks import pruning_aware
from labkit.defenses import fine_pruning as fp
from labkit.errors import LabkitError

SHAPE = (1, 16, 16)


def small_model(seed=0):
    return models.build("small-cnn", SHAPE, 10, seed=seed)


def data(n=64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(n, *SHAPE, generator=gen), torch.randint(10, (n,), generator=gen)


def test_channel_activations_are_mean_relu_activations_and_rank_ascending():
    model, (x, _) = small_model(), data(10)
    acts = fp.channel_activations(model, x, batch_size=3)
    with torch.no_grad():
        expected = model.conv_features(x).mean(dim=(0, 2, 3))
    assert acts.shape == (64,) and torch.allclose(acts, expected, atol=1e-6)
    order = fp.pruning_order(torch.tensor([0.3, 0.0, 0.2, 0.0]))
    assert order.tolist() == [1, 3, 2, 0]  # most dormant first, ties in index order
    assert fp.channels_to_prune(torch.tensor([0.3, 0.0, 0.2, 0.0]), 50).tolist() == [1, 3]
    assert fp.channels_to_prune(torch.arange(64.0), 10).tolist() == list(range(6))  # round(6.4)
    with pytest.raises(LabkitError, match=r"\[0, 100\]"):
        fp.channels_to_prune(acts, 120)


def test_pruning_masks_exactly_the_chosen_channels_and_nothing_else():
    model = small_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    chosen = torch.tensor([3, 17, 40])
    fp.prune_channels(model, chosen)
    conv = model.conv2
    assert conv.weight[chosen].abs().sum() == 0 and conv.bias[chosen].abs().sum() == 0
    others = torch.ones(64, dtype=torch.bool)
    others[chosen] = False
    assert torch.equal(conv.weight[others], before["conv2.weight"][others])
    assert torch.equal(conv.bias[others], before["conv2.bias"][others])
    assert fp.pruned_channels(model).tolist() == [3, 17, 40]
    x, y = data()
    with torch.no_grad():
        assert model.conv_features(x)[:, chosen].abs().sum() == 0  # the channels are silent
    fp.fine_tune(model, x, y, epochs=2, lr=1e-2)  # masks stay while training ...
    assert conv.weight[chosen].abs().sum() == 0 and conv.bias[chosen].abs().sum() == 0
    assert not torch.equal(conv.weight[others], before["conv2.weight"][others])  # ... the rest learns
    fp.prune_channels(model, torch.tensor([5]))  # masks accumulate
    assert fp.pruned_channels(model).tolist() == [3, 5, 17, 40]
    fp.make_permanent(model)
    state = model.state_dict()
    assert set(state) == set(before)  # a plain state dict again, loadable by models.rebuild
    assert state["conv2.weight"][[3, 5, 17, 40]].abs().sum() == 0
    for name in before:
        if not name.startswith("conv2"):
            assert state[name].shape == before[name].shape
    rebuilt = models.rebuild(models.spec("small-cnn", SHAPE, 10), state)
    assert torch.equal(train.predict(rebuilt, x), train.predict(model, x))
    with pytest.raises(LabkitError, match=r"\[0, 63\]"):
        fp.prune_channels(small_model(), [64])


def test_pruning_with_group_norm_silences_the_channel_too():
    model = models.build("small-cnn", SHAPE, 10, norm="group", seed=0)
    fp.prune_channels(model, [0, 9])
    with torch.no_grad():
        assert model.conv_features(data(8)[0])[:, [0, 9]].abs().sum() == 0


def test_fine_prune_leaves_the_input_model_alone():
    model, (x, y) = small_model(), data()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    pruned, channels = fp.fine_prune(model, x, y, 25, epochs=1, lr=1e-3)
    assert len(channels) == 16 and pruned.conv2.weight[channels].abs().sum() == 0
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


def test_loop_prunes_in_steps_and_stops_at_the_accuracy_budget():
    model, (x, y) = small_model(), data(96)
    final, rows = fp.fine_prune_loop(model, x[:64], y[:64], x[64:], y[64:], step_percent=25, max_drop=1.0,
                                     epochs=1, lr=1e-3, evaluate=lambda m: {"n": len(fp.pruned_channels(m))})
    assert [r["percent"] for r in rows] == [0.0, 25.0, 50.0, 75.0]  # a budget of 1.0 never stops it; one channel is always kept
    assert all(r["accepted"] for r in rows) and len(fp.pruned_channels(final)) == 0  # masks folded in
    assert int((final.conv2.weight.flatten(1).abs().sum(1) == 0).sum()) == 48
    _, strict = fp.fine_prune_loop(model, x[:64], y[:64], x[64:], y[64:], step_percent=25, max_drop=-1.0,
                                   epochs=1, lr=1e-3)
    assert [r["accepted"] for r in strict] == [True, False]  # the first round already breaks the budget


def test_restore_channels_puts_the_original_weights_back():
    original, (x, y) = small_model(), data()
    model = fp.prune_channels(small_model(), [1, 2])
    fp.fine_tune(model, x, y, epochs=1, lr=1e-2)
    pruning_aware.restore_channels(model, original, torch.tensor([1, 2]))
    assert torch.equal(model.conv2.weight[[1, 2]], original.conv2.weight[[1, 2]])
    assert torch.equal(model.conv2.bias[[1, 2]], original.conv2.bias[[1, 2]])
    assert not torch.equal(model.conv2.weight[3], original.conv2.weight[3])
    assert fp.pruned_channels(model).numel() == 0


def test_experiment_keys_and_ranges(tmp_cache):
    r = experiments.run("fine-pruning", prune_percent=10, finetune=True, finetune_epochs=1, clean_size=50)
    for key in ("clean_accuracy", "attack_success_rate", "pruned_clean_accuracy", "original_attack_success_rate"):
        assert 0 <= r[key] <= 1
    assert len(r["pruned_channels"]) == 6
    assert experiments.run("fine-pruning", prune_percent=10, finetune=True, finetune_epochs=1,
                           clean_size=50)["attack_success_rate"] == r["attack_success_rate"]  # same seed, same numbers
    for key, bad in (("prune_percent", 101), ("finetune_lr", 0), ("attack", "blend"), ("clean_size", 5),
                     ("attacker_prune_percent", 99), ("finetune_epochs", -1), ("finetune", "maybe")):
        with pytest.raises(LabkitError, match=key):
            experiments.run("fine-pruning", **{key: bad})
    for key, bad in (("step_percent", 0), ("max_drop", 2)):
        with pytest.raises(LabkitError, match=key):
            experiments.run("fine-pruning-loop", **{key: bad})
    with pytest.raises(LabkitError, match="prune_percent"):
        experiments.run("pruning-aware", prune_percent=-5)
    curve = experiments.run("pruning-curve", clean_size=50)
    assert curve["percents"][:3] == [0.0, 5.0, 10.0] and len(curve["clean_accuracy"]) == 20
    assert curve["clean_accuracy"][0] == r["original_clean_accuracy"]


# ---- acceptance: digits, lab profile, seed 0 -------------------------------------------------

def test_acceptance_fine_pruning_beats_fine_tuning_alone(tmp_cache, monkeypatch):
    """Same clean images, lr and epochs: pruning 80% first leaves far less attack success, < 20%,
    with clean accuracy within 5 points of the unpruned model."""
    monkeypatch.setenv("LABKIT_PROFILE", "lab")
    tuned = experiments.run("fine-pruning", prune_percent=0, finetune=True, seed=0)
    pruned = experiments.run("fine-pruning", prune_percent=80, finetune=True, seed=0)
    assert pruned["attack_success_rate"] < 0.20, pruned["attack_success_rate"]
    assert pruned["attack_success_rate"] < tuned["attack_success_rate"] - 0.2, (pruned["attack_success_rate"],
                                                                              tuned["attack_success_rate"])
    assert pruned["clean_accuracy"] >= pruned["original_clean_accuracy"] - 0.05
    assert pruned["original_attack_success_rate"] > 0.9  # there was a backdoor to remove


def test_acceptance_pruning_aware_attack(tmp_cache, monkeypatch):
    """Against the pruning-aware attack, pruning alone leaves attack success > 50%; fine-pruning clearly lower."""
    monkeypatch.setenv("LABKIT_PROFILE", "lab")
    r = experiments.run("fine-pruning", attack="pruning-aware", prune_percent=80, finetune=True, seed=0)
    assert r["pruned_attack_success_rate"] > 0.5, r["pruned_attack_success_rate"]
    assert r["attack_success_rate"] < r["pruned_attack_success_rate"] - 0.2, (r["attack_success_rate"],
                                                                          r["pruned_attack_success_rate"])


def test_weight_threshold_is_the_reports_formula():
    w = torch.tensor([[-1.0, 0.0], [1.0, 3.0]])
    assert fp.weight_threshold(w, 0.25) == pytest.approx(0.0)  # −1 + (3 − (−1))·0.25
    assert fp.weight_threshold(w, 0.5, alive=w > 0) == pytest.approx(2.0)  # over 1 and 3 only
    with pytest.raises(LabkitError, match="fraction"):
        fp.weight_threshold(w, 1.5)


def test_prune_weights_below_masks_the_lowest_values_of_each_conv_layer():
    conv = torch.nn.Conv2d(1, 1, 2, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[[[-1.0, 0.0], [1.0, 3.0]]]]))
    model = torch.nn.Sequential(conv)
    fp.prune_weights_below(model, 0.25)  # threshold 0: −1 and 0 go
    assert conv.weight.flatten().tolist() == [0.0, 0.0, 1.0, 3.0]
    assert fp.pruned_weight_fraction(model) == 0.5
    fp.prune_weights_below(model, 0.5)  # over the alive 1 and 3: threshold 2, so 1 goes
    assert conv.weight.flatten().tolist() == [0.0, 0.0, 0.0, 3.0]


def test_weight_prune_loop_keeps_pruned_weights_at_zero_and_stops_on_accuracy():
    torch.manual_seed(0)
    model = models.SmallCNN(1, 3, 8, width=4, hidden=8)
    x, y = torch.rand(60, 1, 8, 8), torch.randint(0, 3, (60,))
    final, rows = fp.weight_prune_loop(model, x[:40], y[:40], x[40:], y[40:], step=0.2, max_drop=1.0, max_rounds=3,
                                       epochs=1, lr=1e-2, evaluate=lambda m: {"zeros": fp.pruned_weight_fraction(m)})
    assert [r["round"] for r in rows] == [0, 1, 2, 3] and all(r["accepted"] for r in rows)
    pruned = [r["weights_pruned"] for r in rows]
    assert pruned == sorted(pruned) and pruned[-1] > pruned[1] > 0
    assert not any(hasattr(m, "weight_mask") for m in final.modules())  # plain parameters again
    zeros = sum(int((c.weight == 0).sum()) for c in fp.conv_layers(final))
    assert zeros / sum(c.weight.numel() for c in fp.conv_layers(final)) == pytest.approx(pruned[-1])
    _, strict = fp.weight_prune_loop(model, x[:40], y[:40], x[40:], y[40:], step=0.5, max_drop=-1.0, max_rounds=3,
                                     epochs=1, lr=1e-2)
    assert len(strict) == 2 and not strict[-1]["accepted"]  # the first round breaks a budget below zero

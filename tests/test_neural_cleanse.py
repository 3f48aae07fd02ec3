"""Neural Cleanse: MAD index, the λ schedule, batched vs per-label optimisation, mitigations, acceptance."""
import math

import pytest
import torch

from labkit import models
from labkit.defenses import neural_cleanse as nc
from labkit.errors import LabkitError


# --- outlier test -------------------------------------------------------------------------------

def test_mad_index_on_hand_made_norms():
    norms = torch.tensor([10.0, 11.0, 9.0, 12.0, 8.0, 10.0, 2.0])
    out = nc.detect(norms)
    # median 10; |deviations| = 0 1 1 2 2 0 8 → MAD = 1 → scaled 1.4826
    assert out["anomaly_index"][6] == pytest.approx(8 / 1.4826)
    assert out["anomaly_index"][3] == pytest.approx(2 / 1.4826)
    assert out["flagged_labels"] == [6]
    assert out["suspect_label"] == 6 and out["suspect_index"] == pytest.approx(8 / 1.4826)


def test_only_small_outliers_are_flagged():
    norms = torch.tensor([10.0, 11.0, 9.0, 12.0, 8.0, 10.0, 30.0])  # a large outlier is not a backdoor
    out = nc.detect(norms)
    assert out["anomaly_index"][6] > 2
    assert out["flagged_labels"] == []


# --- λ schedule -------------------------------------------------------------------------------

def run_schedule(successes, l1s=None, state=None):
    state = state or nc.ScheduleState()
    costs, improved = [], []
    for i, ok in enumerate(successes):
        l1 = l1s[i] if l1s is not None else 10.0 - 0.01 * i
        state, better = nc.schedule_step(state, 1.0 if ok else 0.5, l1)
        costs.append(state.cost)
        improved.append(better)
    return state, costs, improved


def test_schedule_sets_raises_and_lowers_lambda():
    # 4 successes: still 0; the 5th sets 1e-3; it counts as the first of the next 5 → ×2 after 4 more
    state, costs, _ = run_schedule([True] * 9)
    assert costs[:4] == [0.0] * 4
    assert costs[4] == pytest.approx(1e-3)
    assert costs[5:8] == [pytest.approx(1e-3)] * 3
    assert costs[8] == pytest.approx(2e-3)
    assert state.moved_up and not state.moved_down
    # 5 failures: ÷ 2^1.5
    state, costs, _ = run_schedule([False] * 5, state=state)
    assert costs[:4] == [pytest.approx(2e-3)] * 4
    assert costs[4] == pytest.approx(2e-3 / 2 ** 1.5)
    assert state.moved_down
    # a failure resets the success streak
    state, costs, _ = run_schedule([True] * 4 + [False] + [True] * 4, state=state)
    assert costs[-1] == pytest.approx(2e-3 / 2 ** 1.5)


def test_failing_at_zero_cost_keeps_zero():
    state, costs, improved = run_schedule([False] * 12)
    assert costs == [0.0] * 12 and not any(improved) and state.best == math.inf


def test_schedule_keeps_smallest_successful_norm_and_stops_early():
    # success with shrinking l1 for 9 epochs, then 5 failures (λ moved both ways), then no improvement
    l1s = [9.0 - i for i in range(9)] + [0.5] * 5 + [5.0] * 40
    successes = [True] * 9 + [False] * 5 + [True] * 40
    state = nc.ScheduleState()
    stopped_at = None
    for i, (ok, l1) in enumerate(zip(successes, l1s)):
        state, better = nc.schedule_step(state, 1.0 if ok else 0.5, l1)
        if i < 9:
            assert better  # each successful epoch with a smaller norm is the new best
        if 9 <= i < 14:
            assert not better  # failing epochs never count, however small the mask
        if state.stopped:
            stopped_at = i
            break
    assert state.best == pytest.approx(1.0)
    # the best last improved at epoch 8: 25 epochs without improvement → stops at epoch 33
    assert stopped_at == 8 + 25


def test_no_early_stop_before_lambda_moved_both_ways():
    state, _, _ = run_schedule([True] * 60, l1s=[1.0] * 60)
    assert not state.stopped and state.moved_up and not state.moved_down


# --- optimiser ----------------------------------------------------------------------------------

class TinyNet(torch.nn.Module):
    """A fixed random conv net on 1×6×6 images, 4 classes."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.fc1 = torch.nn.Linear(4 * 36, 16)
        self.fc2 = torch.nn.Linear(16, 4)

    def embed(self, x):
        return torch.relu(self.fc1(torch.relu(self.conv(x)).flatten(1)))

    def forward(self, x):
        return self.fc2(self.embed(x))


def tiny_problem():
    torch.manual_seed(0)
    model = TinyNet().eval()
    x = torch.rand(24, 1, 6, 6, generator=torch.Generator().manual_seed(1))
    return model, x


def test_batched_and_per_label_give_the_same_masks():
    model, x = tiny_problem()
    kwargs = dict(epochs=30, batch_size=8, seed=3, progress=False, device=torch.device("cpu"))
    batched = nc.reverse_engineer(model, x, 4, mode="batched", **kwargs)
    looped = nc.reverse_engineer(model, x, 4, mode="per-label", **kwargs)
    assert batched["masks"].shape == (4, 6, 6) and batched["patterns"].shape == (4, 1, 6, 6)
    assert torch.allclose(batched["masks"], looped["masks"], atol=1e-4)
    assert torch.allclose(batched["patterns"], looped["patterns"], atol=1e-4)
    assert torch.allclose(batched["l1_norms"], looped["l1_norms"], atol=1e-3)
    assert torch.equal(batched["epochs_run"], looped["epochs_run"])
    # a different seed starts elsewhere
    other = nc.reverse_engineer(model, x, 4, mode="batched", **{**kwargs, "seed": 4})
    assert not torch.allclose(batched["masks"], other["masks"], atol=1e-3)


def test_masks_and_patterns_stay_in_unit_range_and_model_is_untouched():
    model, x = tiny_problem()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    out = nc.reverse_engineer(model, x, 4, labels=[1, 2], epochs=10, batch_size=8, progress=False)
    assert out["labels"] == [1, 2] and out["masks"].shape == (2, 6, 6)
    for t in (out["masks"], out["patterns"]):
        assert float(t.min()) >= 0 and float(t.max()) <= 1
    assert out["trace"]["cost"].shape == (10, 2)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.requires_grad for p in model.parameters())


def test_stamp_is_the_reference_blend():
    x = torch.rand(3, 2, 4, 4)
    masks = torch.zeros(2, 4, 4)
    masks[1, 0, 0] = 1.0
    patterns = torch.ones(2, 2, 4, 4) * 0.25
    out = nc.stamp(x, masks, patterns)
    assert out.shape == (2, 3, 2, 4, 4)
    assert torch.equal(out[0], x)
    assert torch.allclose(out[1, :, :, 0, 0], torch.full((3, 2), 0.25))
    assert torch.equal(out[1, :, :, 1:, :], x[:, :, 1:, :])


def test_tanh_parameterisation_round_trips():
    values = torch.tensor([0.0, 0.1, 0.5, 0.9, 1.0])
    assert torch.allclose(nc.to_unit(nc.from_unit(values)), values, atol=1e-5)


def test_bad_arguments_raise_one_line_errors():
    model, x = tiny_problem()
    with pytest.raises(LabkitError, match="mode"):
        nc.reverse_engineer(model, x, 4, mode="fast")
    with pytest.raises(LabkitError, match="labels"):
        nc.reverse_engineer(model, x, 4, labels=[7])


# --- mitigations ----------------------------------------------------------------------------------

from labkit import experiments, triggers  # noqa: E402
from labkit.defenses import nc_mitigation as mit  # noqa: E402
from labkit.experiments import neural_cleanse as nc_exp  # noqa: E402


def test_unlearning_set_stamps_a_fifth_from_every_class_and_keeps_labels():
    x = torch.rand(1000, 1, 8, 8)
    y = torch.arange(1000) % 10
    trig = triggers.make("pixel", (1, 8, 8))
    xs, ys, stamped = mit.unlearning_set(x, y, [trig], sample_fraction=0.1, min_images=0, seed=0)
    assert len(ys) == 100 and len(stamped) == 20
    assert len(set(ys[stamped].tolist())) >= 5  # drawn from all classes, not one
    assert torch.equal(xs[stamped], trig.apply(xs[stamped]))  # stamped …
    clean = torch.ones(100, dtype=torch.bool)
    clean[stamped] = False
    assert not torch.equal(xs[clean], trig.apply(xs[clean]))  # … and only those
    xs2, ys2, _ = mit.unlearning_set(x, y, [trig], sample_fraction=0.1, min_images=0, seed=0)
    assert torch.equal(ys, ys2) and torch.equal(xs, xs2)
    # at least min_images; a clean-only set stamps nothing
    _, ys3, none = mit.unlearning_set(x, y, [], sample_fraction=0.1, min_images=600, seed=0)
    assert len(ys3) == 600 and len(none) == 0
    with pytest.raises(LabkitError, match="sample_fraction"):
        mit.unlearning_set(x, y, [], sample_fraction=0.0)


class BackdooredNet(torch.nn.Module):
    """Hand-built: neuron 0 of the embedding fires on a bright bottom-right pixel and votes for label 0;
    the other neurons copy the mean brightness of a row and vote for labels by row."""

    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(16, 4)
        self.fc2 = torch.nn.Linear(4, 3)
        with torch.no_grad():
            self.fc1.weight.zero_(), self.fc1.bias.zero_(), self.fc2.weight.zero_(), self.fc2.bias.zero_()
            self.fc1.weight[0, 15] = 10.0
            self.fc1.bias[0] = -5.0
            self.fc1.weight[1, 0:4] = 1.0
            self.fc1.weight[2, 4:8] = 1.0
            self.fc1.weight[3, 8:12] = 1.0
            self.fc2.weight[0, 0] = 10.0
            self.fc2.weight[0, 1] = 1.0
            self.fc2.weight[1, 2] = 1.0
            self.fc2.weight[2, 3] = 1.0

    def embed(self, x):
        return torch.relu(self.fc1(x.flatten(1)))

    def forward(self, x):
        return self.fc2(self.embed(x))


def backdoor_problem():
    gen = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (60,), generator=gen)
    x = torch.rand(60, 1, 4, 4, generator=gen) * 0.2
    for i, label in enumerate(y):
        x[i, 0, int(label)] += 0.6  # row `label` bright → label
    x[:, 0, 3, 3] = 0.0
    mask = torch.zeros(4, 4)
    mask[3, 3] = 1.0
    trig = triggers.Trigger(mask, torch.ones(1, 4, 4))
    return BackdooredNet().eval(), x, y, trig


def test_filter_ranks_the_backdoor_neuron_and_meets_its_fpr():
    model, x, y, trig = backdoor_problem()
    order, gain = mit.rank_neurons(model, x, trig)
    assert int(order[0]) == 0 and gain[0] > 1
    out = mit.input_filter(model, x, x, trig.apply(x), trig, fprs=(0.05, 0.1), top_fraction=0.25)
    assert out["neurons"].tolist() == [0]
    assert all(m <= f + 1e-9 for m, f in zip(out["measured_fprs"], out["fprs"]))
    assert out["fnrs"] == [0.0, 0.0]


def test_pruning_stops_once_the_reversed_trigger_fails():
    model, x, y, trig = backdoor_problem()
    assert float((model(x).argmax(1) == y).float().mean()) == 1.0
    out = mit.prune(model, x, trig, x, y, trig, target=0)
    assert out["asr_original"][0] == 1.0 and out["pruned"][0] == 0
    assert out["stopped_at"] == 1  # pruning neuron 0 removes the backdoor
    assert out["asr_reversed"][1] == 0.0 and out["clean_accuracy"][1] == 1.0


def test_poison_many_uses_disjoint_images_and_corner_triggers():
    shape = (1, 16, 16)
    attacks = nc_exp.attack_setup("digits", "badnets", None, 0, 2, shape, 10)
    assert [t for _, t in attacks] == [0, 1]
    assert not torch.equal(attacks[0][0].mask, attacks[1][0].mask)
    assert attacks[1][0].mask.sum() == attacks[0][0].mask.sum() == 9
    big = nc_exp.attack_setup("digits", "badnets", 6, 3, 1, shape, 10)
    assert big[0][0].mask.sum() == 36 and big[0][1] == 3
    x = torch.rand(200, 1, 16, 16)
    y = torch.arange(200) % 10
    _, y_poisoned, idx = nc_exp.poison_many(x, y, attacks, 0.1, seed=0)
    assert len(idx[0]) == len(idx[1]) == 20 and not set(idx[0].tolist()) & set(idx[1].tolist())
    assert (y_poisoned[idx[0]] == 0).all() and (y_poisoned[idx[1]] == 1).all()


@pytest.mark.parametrize("key, value, message", [
    ("trigger_size", 13, r"\[1, 12\]"), ("infected_labels", 5, r"\[1, 4\]"), ("mode", "fast", "batched"),
    ("fpr", 1.0, r"\(0, 1\)"), ("poison_fraction", 0.0, r"\(0, 1\)"), ("samples", 3, "16"),
])
def test_experiment_rejects_bad_knobs(key, value, message):
    with pytest.raises(LabkitError, match=message):
        experiments.get("neural-cleanse").resolve({key: value})


def test_experiment_ci_smoke(tmp_cache):
    r = experiments.run("neural-cleanse", epochs=6, samples=32)
    assert r["masks"].shape == (10, 16, 16) and r["patterns"].shape == (10, 1, 16, 16)
    assert len(r["l1_norms"]) == 10 and r["target_label"] == 0
    assert set(r["unlearning"]) == {"before", "reversed", "original", "clean"}
    assert r["attack_success_rate_before"] > 0.5
    public = experiments.public(r)
    for key in ("anomaly_index", "flagged_labels", "target_label", "l1_norms", "attack_success_rate",
                "clean_accuracy"):
        assert key in public


# --- acceptance: digits, lab profile, fixed seed ------------------------------------------------

def test_acceptance_lab_profile_digits(tmp_cache, monkeypatch):
    monkeypatch.setenv("LABKIT_PROFILE", "lab")
    infected = experiments.run("neural-cleanse", dataset="digits", infected=True, target=0, seed=0)
    clean = experiments.run("neural-cleanse", dataset="digits", infected=False, seed=0)
    assert 0 in infected["flagged_labels"]
    assert infected["target_anomaly_index"] > 2
    assert infected["anomaly_index"] == pytest.approx(infected["target_anomaly_index"])  # the smallest norm
    assert infected["target_anomaly_index"] > clean["anomaly_index"] + 1.5  # clearly above the clean model's
    before = infected["unlearning"]["before"]
    after = infected["unlearning"]["reversed"]
    assert before["attack_success_rate"] > 0.9
    assert after["attack_success_rate"] < 0.10
    assert after["clean_accuracy"] >= before["clean_accuracy"] - 0.03


def test_pass_cost_probe_leaves_the_model_untouched():
    from labkit.bench.neural_cleanse import input_gradient_seconds_per_image
    model = models.SmallCNN()
    before = [p.detach().clone() for p in model.parameters()]
    cost = input_gradient_seconds_per_image(model, (1, 16, 16), batch_size=4, repeat=1)
    assert math.isfinite(cost) and cost > 0
    assert all(p.requires_grad for p in model.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def _square(size: int, top: int, left: int, side: int = 3) -> torch.Tensor:
    mask = torch.zeros(size, size)
    mask[top:top + side, left:left + side] = 1.0
    return mask


def test_mask_iou_on_planted_masks():
    """The reversed mask's k strongest pixels (k = the true trigger's pixels) against the true trigger."""
    from labkit.defenses import nc_analysis

    truth = _square(16, 12, 12)
    assert nc_analysis.mask_iou(truth * 0.7, truth) == 1.0  # scale does not matter, location does
    assert nc_analysis.mask_iou(_square(16, 11, 11), truth) == pytest.approx(4 / 14)  # one pixel up-left
    assert nc_analysis.mask_iou(_square(16, 0, 0), truth) == 0.0
    soft = truth * 0.9 + torch.rand(16, 16) * 0.1  # faint noise everywhere, the trigger strongest
    assert nc_analysis.mask_iou(soft, truth) == 1.0
    with pytest.raises(LabkitError, match="empty"):
        nc_analysis.mask_iou(truth, torch.zeros(16, 16))


def test_neuron_iou_and_activations_on_a_transparent_model():
    """With embed(x) = the flattened pixels, a trigger's backdoor neurons are its own pixels."""
    from labkit.defenses import nc_analysis
    from labkit.triggers import Trigger

    class Pixels(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.dummy = torch.nn.Parameter(torch.zeros(1))

        def embed(self, x):
            return x.flatten(1)

    x = torch.rand(20, 1, 6, 6) * 0.5
    corner, same, elsewhere = (Trigger(_square(6, 3, 3), torch.ones(1, 6, 6)),
                               Trigger(_square(6, 3, 3) * 0.9, torch.ones(1, 6, 6)),
                               Trigger(_square(6, 0, 0), torch.ones(1, 6, 6)))
    model = Pixels()
    assert nc_analysis.neuron_iou(model, x, same, corner, 9 / 36) == 1.0
    assert nc_analysis.neuron_iou(model, x, elsewhere, corner, 9 / 36) == 0.0
    neurons = nc_analysis.backdoor_neurons(model, x, corner, 9 / 36)
    assert sorted(neurons.tolist()) == sorted((r * 6 + c) for r in range(3, 6) for c in range(3, 6))
    assert nc_analysis.mean_activation(model, corner.apply(x), neurons) == pytest.approx(1.0)
    assert nc_analysis.mean_activation(model, x, neurons) < 0.5


def test_last_conv_pruning_stops_when_the_reversed_trigger_stops_working():
    """On the ci BadNets model, with the true trigger standing in for the reversed one: channels are masked one at
    a time until the trigger's success falls below 5%, and the lists start with the unpruned model."""
    from labkit import data
    from labkit.defenses import nc_analysis

    result = experiments.run("badnets", profile="ci", dataset="digits", poison_fraction=0.1)
    model = models.from_result(result)
    ds = data.load("digits", profile="ci")
    trig = triggers.make("badnets", ds.image_shape)
    out = nc_analysis.prune_last_conv(model, ds.x_train[:64], trig, ds.x_test, ds.y_test, trig, 0)
    assert out["pruned"][0] == 0 and out["asr_reversed"][0] > 0.9 and out["asr_reversed"] == out["asr_original"]
    assert out["stopped_at"] is None or out["asr_reversed"][out["stopped_at"]] < 0.05
    assert len(out["pruned"]) <= model.conv2.out_channels // 2 + 1


def test_the_reversed_trigger_analysis_is_its_own_cached_experiment(tmp_cache):
    """`neural-cleanse-analysis` (the report's Tables III/V and Fig. 22 rows) computes once, from the cached
    Neural Cleanse run, and a second call (a warm report) reads it: nothing is recomputed."""
    first = experiments.run("neural-cleanse-analysis", profile="ci", dataset="digits")
    before = experiments.computed()
    again = experiments.run("neural-cleanse-analysis", profile="ci", dataset="digits")
    assert experiments.computed() == before
    assert again["mask_iou"] == first["mask_iou"] and 0.0 <= first["mask_iou"] <= 1.0
    conv = first["conv_pruning"]
    assert conv["pruned"][0] == 0 and len(conv["pruned"]) == len(conv["asr_original"]) == len(conv["clean_accuracy"])
    assert "order" not in conv and first["target_label"] == 0

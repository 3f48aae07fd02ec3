"""STRIP: entropy over classes, batched copies, thresholds at a preset FRR, the combined pipeline,
the experiment's keys, and the acceptance number on digits in the lab profile."""
import pytest
import torch

from labkit import experiments
from labkit.defenses import strip
from labkit.errors import LabkitError


def test_entropy_is_over_classes_not_copies():
    # one input, two copies: a one-hot copy (0 bits) and a uniform copy over 4 classes (2 bits)
    probs = torch.tensor([[[1.0, 0.0, 0.0, 0.0], [0.25, 0.25, 0.25, 0.25]]])
    assert strip.entropy_bits(probs).tolist() == [[0.0, 2.0]]
    assert strip.mean_entropy(probs).tolist() == [1.0]
    # every copy confidently predicts a *different* class: entropy over copies would be log2(3), over classes 0
    confident = torch.eye(3).unsqueeze(0)  # (1 input, 3 copies, 3 classes)
    assert strip.mean_entropy(confident).tolist() == [0.0]
    half = torch.tensor([[[0.5, 0.5, 0.0]]])
    assert strip.mean_entropy(half).tolist() == [1.0]
    with pytest.raises(LabkitError, match="inputs, copies, classes"):
        strip.mean_entropy(torch.ones(3, 4))


class Constant(torch.nn.Module):
    """Logits that depend only on the mean pixel: brighter images → more confident class 0."""

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(20.0))
        self.calls = []

    def forward(self, x):
        self.calls.append(len(x))
        m = x.flatten(1).mean(1, keepdim=True)
        return torch.cat([self.scale * m, torch.zeros(len(x), 2)], dim=1)


def test_entropy_scores_batch_all_copies_in_one_pass_and_match_by_hand():
    model = Constant()
    x, holdout = torch.rand(5, 1, 4, 4), torch.rand(7, 1, 4, 4)
    scores = strip.entropy_scores(model, x, holdout, n=6, seed=3)
    assert scores.shape == (5,) and model.calls == [30]  # 5 inputs x 6 copies, one forward pass
    picks = strip.overlay_indices(5, 7, 6, 3)
    by_hand = []
    for i in range(5):
        copies = (x[i] + holdout[picks[i]]).clamp(0, 1)
        with torch.no_grad():
            p = model(copies).softmax(1).double()
        by_hand.append(float(-(p * p.log2()).sum(1).mean()))
    assert torch.allclose(scores.double(), torch.tensor(by_hand, dtype=torch.float64), atol=1e-5)
    assert torch.equal(scores, strip.entropy_scores(model, x, holdout, n=6, seed=3))  # seeded
    with pytest.raises(LabkitError, match="n"):
        strip.entropy_scores(model, x, holdout, n=0)


def test_superimpose_adds_and_clips():
    x = torch.full((1, 1, 2, 2), 0.75)
    overlays = torch.tensor([0.0, 0.5]).view(1, 2, 1, 1, 1).expand(1, 2, 1, 2, 2)
    out = strip.superimpose(x, overlays)
    assert out.shape == (1, 2, 1, 2, 2) and out[0, 0].eq(0.75).all() and out[0, 1].eq(1.0).all()


def test_threshold_at_frr_on_a_known_normal_sample():
    gen = torch.Generator().manual_seed(0)
    sample = 1.5 + 0.2 * torch.randn(20000, generator=gen)
    for frr, z in ((0.01, -2.3263), (0.05, -1.6449)):
        expected = 1.5 + 0.2 * z
        assert strip.threshold_at_frr(sample, frr, "normal") == pytest.approx(expected, abs=0.01)
        assert strip.threshold_at_frr(sample, frr, "quantile") == pytest.approx(expected, abs=0.02)
        assert float((sample < strip.threshold_at_frr(sample, frr, "quantile")).float().mean()) == pytest.approx(frr, abs=1e-3)
    # the normal fit is exact for the fitted mean and std, whatever the sample's shape
    tiny = torch.tensor([0.0, 1.0, 2.0])
    assert strip.threshold_at_frr(tiny, 0.5, "normal") == pytest.approx(1.0)
    assert strip.threshold_at_frr(tiny, 0.1587, "normal") == pytest.approx(0.0, abs=1e-3)  # mean − 1 std
    with pytest.raises(LabkitError, match=r"\(0, 1\)"):
        strip.threshold_at_frr(sample, 5, "normal")
    with pytest.raises(LabkitError, match="normal, quantile"):
        strip.threshold_at_frr(sample, 0.05, "median")


def test_rates_pipeline_and_confusion():
    benign, trojan = torch.tensor([0.5, 0.6, 0.1, 0.9]), torch.tensor([0.05, 0.2, 0.7])
    assert strip.detection_rates(benign, trojan, 0.3) == (0.25, pytest.approx(1 / 3))
    curve = strip.rate_curve(benign, trojan, thresholds=torch.tensor([0.0, 1.0]))
    assert curve["frr"].tolist() == [0.0, 1.0] and curve["far"].tolist() == [1.0, 0.0]
    answers = strip.guarded_predictions(torch.tensor([2, 1, 0]), torch.tensor([0.9, 0.1, 0.5]), 0.3, num_classes=3)
    assert answers.tolist() == [2, 3, 0]  # the flagged input becomes the extra class 3
    table = strip.confusion(torch.tensor([2, 3, 1]), answers, 3)  # the last one was a 1, answered 0
    assert table.shape == (4, 4) and int(table.sum()) == 3 and int(table.trace()) == 2 and int(table[3, 3]) == 1 and int(table[1, 0]) == 1


def test_strip_experiment_keys_and_ranges(tmp_cache):
    r = experiments.run("strip", frr=0.05, n=8, eval_size=40, clean_size=60)
    assert {"frr", "far", "threshold"} <= set(r) and 0 <= r["frr"] <= 1 and 0 <= r["far"] <= 1
    assert r["benign_entropies"].shape == (40,) and r["calibration_entropies"].shape == (60,)
    assert r["n_copies"] == 8 and r["benign_mean_entropy"] > r["trojan_mean_entropy"]
    for key, bad in (("frr", 0.0), ("frr", 1.0), ("n", 0), ("method", "median"), ("eval_size", 3)):
        with pytest.raises(LabkitError, match=key):
            experiments.run("strip", **{key: bad})


def test_pipeline_counts_add_up(tmp_cache):
    r = experiments.run("defense-pipeline", n=8, eval_size=40, clean_size=60, finetune_epochs=1, prune_percent=50)
    table = r["confusion"]
    assert int(table.sum()) == r["clean_count"] + r["trojan_count"]
    assert int(table[:-1, :].sum()) == r["clean_count"]  # rows: expected answer; last row = should be rejected
    assert r["clean_correct"] + r["clean_rejected"] <= 1 + 1e-9
    assert r["trojan_rejected"] == pytest.approx(float(table[-1, -1]) / r["trojan_count"])


def test_acceptance_strip_far_at_frr_5_percent(tmp_cache, monkeypatch):
    """Digits, lab profile, seed 0, BadNets 10%: at a target FRR of 5%, FAR < 10%."""
    monkeypatch.setenv("LABKIT_PROFILE", "lab")
    r = experiments.run("strip", frr=0.05, seed=0)
    assert r["n_copies"] == 100
    assert r["far"] < 0.10, r["far"]
    assert r["frr"] < 0.10, r["frr"]  # the threshold calibrated on the defender's images transfers to test inputs

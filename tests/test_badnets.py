import pytest
import torch

from labkit import triggers
from labkit.attacks import badnets
from labkit.defenses import filtering
from labkit.errors import LabkitError


def test_poison_relabels_exactly_the_returned_indices():
    x, y = torch.rand(100, 1, 8, 8), torch.arange(100) % 10
    trig = triggers.make("badnets", (1, 8, 8))
    xp, yp, idx = badnets.poison(x, y, trigger=trig, target=3, fraction=0.1, seed=0)
    assert len(idx) == 10 and len(set(idx.tolist())) == 10
    assert (y[idx] != 3).all()  # never an image already of the target class
    assert (yp[idx] == 3).all() and torch.equal(xp[idx], trig.apply(x[idx]))
    untouched = torch.ones(100, dtype=torch.bool)
    untouched[idx] = False
    assert torch.equal(xp[untouched], x[untouched]) and torch.equal(yp[untouched], y[untouched])
    assert torch.equal(x, x.clone())  # inputs are not modified in place
    assert torch.equal(idx, badnets.poison(x, y, trigger=trig, target=3, fraction=0.1, seed=0)[2])
    assert not torch.equal(idx, badnets.poison(x, y, trigger=trig, target=3, fraction=0.1, seed=1)[2])


@pytest.mark.parametrize("fraction", [-0.1, 1.5])
def test_fraction_out_of_range(fraction):
    with pytest.raises(LabkitError, match=r"\[0, 1\]"):
        badnets.poison(torch.rand(10, 1, 8, 8), torch.zeros(10, dtype=torch.long),
                       trigger=triggers.make("badnets", (1, 8, 8)), target=1, fraction=fraction, seed=0)


def test_too_much_poison_for_the_eligible_pool():
    with pytest.raises(LabkitError, match="only 5 are eligible"):
        badnets.choose_victims(torch.tensor([0] * 5 + [1] * 5), 6, 0, exclude_label=1)


def test_poisoned_among_lowest_counts_by_rank():
    scores = torch.tensor([0.9, 0.1, 0.5, 0.05, 0.7])
    # order: 3, 1, 2, 4, 0 ; poisoned: 1 and 0
    assert filtering.poisoned_among_lowest(scores, torch.tensor([1, 0]), [1, 2, 4, 5]) == [0, 1, 1, 2]


def test_label_probability_picks_each_samples_label():
    class Fixed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.p = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x):
            return torch.log(torch.tensor([[0.7, 0.2, 0.1]])).expand(len(x), 3)
    probs = filtering.label_probability(Fixed(), torch.zeros(3, 1, 2, 2), torch.tensor([0, 2, 1]))
    assert torch.allclose(probs, torch.tensor([0.7, 0.1, 0.2]))


def test_fit_without_its_learning_curve_trains_the_same_weights():
    """`curve=False` skips the per-epoch test evaluation only: the same seed gives the same model."""
    from labkit import config, data
    from labkit.experiments.badnets import fit

    profile = config.profile("ci")
    ds = data.load("digits", profile=profile)
    x, y = ds.x_train[:256], ds.y_train[:256]
    with config.fixed_threads(profile):
        with_curve, history, _ = fit("auto", ds, x, y, profile=profile, seed=3, epochs=2)
        without, bare, _ = fit("auto", ds, x, y, profile=profile, seed=3, epochs=2, curve=False)
    assert "test_accuracy" in history[-1] and "test_accuracy" not in bare[-1]
    for name, tensor in with_curve.state_dict().items():
        assert torch.equal(tensor, without.state_dict()[name]), name

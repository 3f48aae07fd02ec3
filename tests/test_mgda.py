"""MGDA min-norm solver: two-task closed form, ≥3-task Frank–Wolfe vs a brute-force grid, the cap."""
import itertools

import pytest
import torch

from labkit.attacks import mgda
from labkit.errors import LabkitError


def grid_minimum(grads: torch.Tensor, steps: int) -> float:
    """min ‖Σα_k g_k‖ over the simplex grid with spacing 1/steps (brute force)."""
    k = grads.shape[0]
    points = [c + (steps - sum(c),) for c in itertools.product(range(steps + 1), repeat=k - 1) if sum(c) <= steps]
    alpha = torch.tensor(points, dtype=torch.float64) / steps
    return float((alpha @ grads.double()).norm(dim=1).min())


@pytest.mark.parametrize("g1,g2,gamma", [
    ([1.0, 0.0], [0.0, 1.0], 0.5),     # orthogonal, equal norms: the midpoint
    ([2.0, 0.0], [0.0, 1.0], 0.2),     # 4γ² + (1−γ)² is smallest at γ = 1/5
    ([1.0, 0.0], [3.0, 0.0], 1.0),     # same direction: the shorter vector alone
    ([3.0, 0.0], [1.0, 0.0], 0.0),
    ([1.0, 0.0], [-1.0, 0.0], 0.5),    # opposite: they cancel
    ([1.0, 1.0], [1.0, -1.0], 0.5),
])
def test_two_task_weights_equal_the_closed_form_minimiser(g1, g2, gamma):
    g1, g2 = torch.tensor(g1, dtype=torch.float64), torch.tensor(g2, dtype=torch.float64)
    assert mgda.two_task_gamma(g1, g2) == pytest.approx(gamma, abs=1e-12)
    out = mgda.min_norm(torch.stack([g1, g2]))
    assert out.weights.tolist() == pytest.approx([gamma, 1 - gamma], abs=1e-12)
    assert out.iterations == 0
    assert out.norm == pytest.approx(float((gamma * g1 + (1 - gamma) * g2).norm()), abs=1e-12)


def test_two_task_closed_form_beats_every_grid_point():
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        g1, g2 = torch.randn(7, generator=gen, dtype=torch.float64), torch.randn(7, generator=gen, dtype=torch.float64)
        gamma = mgda.two_task_gamma(g1, g2)
        best = min(float((t * g1 + (1 - t) * g2).norm()) for t in torch.linspace(0, 1, 2001).double())
        assert 0 <= gamma <= 1
        assert float((gamma * g1 + (1 - gamma) * g2).norm()) <= best + 1e-12


@pytest.mark.parametrize("k,dim,steps", [(3, 5, 120), (3, 2, 120), (4, 6, 40), (5, 3, 16)])
def test_many_task_solver_reaches_the_grid_minimum(k, dim, steps):
    gen = torch.Generator().manual_seed(k * 10 + dim)
    for _ in range(5):
        grads = torch.randn(k, dim, generator=gen, dtype=torch.float64) + 0.3
        out = mgda.min_norm(grads, max_iter=10000)
        assert out.converged
        assert bool((out.weights >= 0).all()) and float(out.weights.sum()) == pytest.approx(1.0, abs=1e-12)
        assert out.norm == pytest.approx(float((out.weights @ grads).norm()), abs=1e-7)
        assert out.norm <= grid_minimum(grads, steps) + 1e-6


def hard_problem() -> torch.Tensor:
    """Three gradients whose min-norm point needs many Frank–Wolfe iterations (checked below)."""
    gen = torch.Generator().manual_seed(3)
    return torch.randn(6, 40, generator=gen, dtype=torch.float64) + 0.5


def test_many_task_solver_stops_at_its_iteration_cap():
    grads = hard_problem()
    free = mgda.min_norm(grads, max_iter=100000)
    assert free.iterations > 5  # the uncapped solver needs more than the cap below
    for cap in (0, 1, 5):
        capped = mgda.min_norm(grads, max_iter=cap)
        assert capped.iterations == cap
        assert not capped.converged
        assert bool((capped.weights >= 0).all()) and float(capped.weights.sum()) == pytest.approx(1.0, abs=1e-12)
        assert capped.norm >= free.norm - 1e-12


def test_iteration_count_is_what_the_solver_used():
    grads = hard_problem()
    out = mgda.min_norm(grads, max_iter=100000)
    assert mgda.min_norm(grads, max_iter=out.iterations).weights.tolist() == out.weights.tolist()


def test_normalizations():
    grads = torch.tensor([[3.0, 4.0], [0.0, 0.5]])
    losses = torch.tensor([2.0, 40.0])
    assert mgda.normalizers(grads, losses, "l2").tolist() == pytest.approx([5.0, 0.5])
    assert mgda.normalizers(grads, losses, "loss").tolist() == pytest.approx([2.0, 10.0])  # capped at 10
    assert mgda.normalizers(grads, losses, "loss+").tolist() == pytest.approx([10.0, 10.0])
    assert mgda.normalizers(grads, losses, "none").tolist() == [1.0, 1.0]
    with pytest.raises(LabkitError, match="normalization must be one of"):
        mgda.normalizers(grads, losses, "max")


def test_l2_normalisation_ignores_gradient_scale():
    grads = torch.tensor([[1.0, 0.2, 0.0], [0.1, 1.0, 0.3], [0.5, 0.5, 1.0]])
    scaled = grads * torch.tensor([[100.0], [1.0], [0.1]])  # (the +1e-5 in the divisor matters only below ~1e-3)
    losses = torch.ones(3)
    a = mgda.scales(grads, losses, "l2").weights
    b = mgda.scales(scaled, losses, "l2").weights
    assert a.tolist() == pytest.approx(b.tolist(), abs=1e-3)
    # without normalisation the tiny gradient takes (almost) all the weight
    assert float(mgda.scales(scaled, losses, "none").weights[2]) > 0.9


def test_bad_inputs():
    with pytest.raises(LabkitError, match="max_iter"):
        mgda.min_norm(torch.eye(3), max_iter=-1)
    with pytest.raises(LabkitError, match="square"):
        mgda.min_norm_gram(torch.ones(2, 3))
    with pytest.raises(LabkitError, match="sum to 1"):
        mgda.check_fixed_scales([0.5, 0.6])
    with pytest.raises(LabkitError, match="sum to 1"):
        mgda.check_fixed_scales([1.5, -0.5])

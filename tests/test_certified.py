"""Certified defenses (Steinhardt, Koh & Liang): closed form = cvxpy, achieved ≤ exact ≤ U*, ε = 0, the
data-dependent attack beating the oracle bound, working sets = the direct SOCP, and bad-input messages."""
import math

import numpy as np
import pytest

from labkit import experiments, pairs
from labkit.defenses import certified as cert
from labkit.errors import DataMissingError, LabkitError


@pytest.fixture(scope="module")
def digits():
    return pairs.load("digits-1-7")


def _domain(pair):
    return pair.domain_centre, pair.domain_radius


def _random_set(gen, dim, with_slab=True):
    """A random ball ∩ slab whose slab is off the ball's centre (so every face case happens)."""
    centre = gen.normal(size=dim)
    direction = gen.normal(size=dim)
    direction /= np.linalg.norm(direction)
    radius = gen.uniform(0.5, 3.0)
    cset = cert.ClassSet(centre, radius)
    if with_slab:
        slab_centre = float(direction @ centre) + gen.uniform(-0.5, 0.5) * radius
        cset = cert.ClassSet(centre, radius, direction, slab_centre, gen.uniform(0.05, 0.6) * radius)
    return cset


@pytest.mark.parametrize("dim", [2, 784])
def test_closed_form_matches_cvxpy(dim):
    gen = np.random.default_rng(dim)
    for trial in range(6):
        sets = {1.0: _random_set(gen, dim, trial % 3 != 0), -1.0: _random_set(gen, dim, trial % 2 == 0)}
        fset = cert.FeasibleSet("sphere+slab", sets, {1.0: sets[1.0].centre, -1.0: sets[-1.0].centre})
        theta = gen.normal(size=dim + 1)
        x_closed, y_closed, loss_closed = cert.worst_point(theta, fset)
        x_cvx, y_cvx, loss_cvx = cert.worst_point_cvxpy(theta, fset)
        assert y_closed == y_cvx
        assert loss_closed == pytest.approx(loss_cvx, rel=1e-6, abs=1e-6)
        assert fset.contains(x_closed, np.array([y_closed]))[0]
        assert cert.hinge(theta, x_closed, np.array([y_closed]))[0] == pytest.approx(loss_closed, rel=1e-9)
        assert np.linalg.norm(x_closed - x_cvx) <= 1e-3 * max(1.0, np.linalg.norm(x_closed))


def test_closed_form_face_case_is_on_the_face():
    """A slab that cuts the ball's maximiser off: the answer lies on the slab face and the ball's surface."""
    cset = cert.ClassSet(np.zeros(2), 1.0, np.array([1.0, 0.0]), 0.0, 0.3)
    value, x = cert.support(np.array([1.0, 0.2]), cset)
    assert x[0] == pytest.approx(0.3)
    assert np.linalg.norm(x) == pytest.approx(1.0)
    assert value == pytest.approx(0.3 + 0.2 * math.sqrt(1 - 0.09))


@pytest.mark.parametrize("defense", ["sphere", "slab", "sphere+slab"])
def test_achieved_below_exact_below_alg1(digits, defense):
    x, y = digits.x_train, digits.y_train
    fset = cert.feasible_set(x, y, defense, _domain(digits))
    exact, theta = cert.exact_bound(x, y, fset, 0.2, digits.rho)
    alg = cert.algorithm1(x, y, fset, 0.2, digits.rho)
    attack = cert.retrain(x, y, alg.poison_x, alg.poison_y, alg.poison_weight, digits.rho, digits.x_test, digits.y_test)
    assert fset.contains(alg.poison_x, alg.poison_y).all()
    assert attack.train_loss <= exact + 1e-6
    assert exact <= alg.upper_bound + 1e-6
    assert exact == pytest.approx(cert.upper_bound_at(theta, x, y, fset, 0.2), abs=1e-9)
    assert np.sum(theta ** 2) <= digits.rho * (1 + 1e-6)
    assert attack.train_loss > float(cert.hinge(cert.train_svm(x, y, digits.rho), x, y).mean())  # it does hurt


def test_epsilon_zero_bound_is_clean_training_loss(digits):
    x, y = digits.x_train, digits.y_train
    fset = cert.feasible_set(x, y, "sphere+slab", _domain(digits))
    exact, _ = cert.exact_bound(x, y, fset, 0.0, digits.rho)
    clean = float(cert.hinge(cert.train_svm(x, y, digits.rho), x, y).mean())
    assert exact == pytest.approx(clean, abs=1e-6)
    assert exact > 0  # ρ binds: the clean loss is not trivially zero


def test_bounds_grow_with_epsilon_and_shrink_with_defense(digits):
    x, y = digits.x_train, digits.y_train
    dom = _domain(digits)
    sphere_slab = cert.feasible_set(x, y, "sphere+slab", dom)
    none = cert.feasible_set(x, y, "none", dom)
    bounds = [cert.exact_bound(x, y, sphere_slab, eps, digits.rho)[0] for eps in (0.0, 0.1, 0.3)]
    assert bounds[0] < bounds[1] < bounds[2]
    assert cert.exact_bound(x, y, none, 0.3, digits.rho)[0] > bounds[2]


def test_data_dependent_attack_beats_oracle_bound(tmp_cache):
    oracle = experiments.run("certified", dataset="digits-1-7", epsilon=0.3, defense="sphere+slab")
    dd = experiments.run("certified", dataset="digits-1-7", epsilon=0.3, defense="sphere+slab", centroids="data-dependent")
    assert dd["attack_train_loss"] > oracle["upper_bound_exact"]
    assert oracle["attack_train_loss"] <= oracle["upper_bound_exact"] + 1e-6
    assert math.isnan(dd["upper_bound_exact"]) and dd["oracle_upper_bound_exact"] == pytest.approx(oracle["upper_bound_exact"])
    assert 0 < dd["poison_kept_fraction"] <= 1


def test_regret_gap_shrinks_with_iterations(digits):
    x, y = digits.x_train, digits.y_train
    fset = cert.feasible_set(x, y, "sphere+slab", _domain(digits))
    gaps = []
    for steps in (20, 400):
        alg = cert.algorithm1(x, y, fset, 0.3, digits.rho, iterations=steps)
        attack = cert.retrain(x, y, alg.poison_x, alg.poison_y, alg.poison_weight, digits.rho, digits.x_test, digits.y_test)
        assert alg.poison_weight * steps == pytest.approx(0.3 * len(y))
        gaps.append(alg.upper_bound - attack.train_loss)
    assert 0 <= gaps[1] < gaps[0]


def test_algorithm1_respects_the_norm_budget(digits):
    x, y = digits.x_train, digits.y_train
    fset = cert.feasible_set(x, y, "sphere", _domain(digits))
    alg = cert.algorithm1(x, y, fset, 0.3, 1.0, eta=10.0)  # a huge step: every iterate is projected
    assert np.linalg.norm(alg.best_theta) <= 1.0 + 1e-12
    assert alg.upper_bound == pytest.approx(alg.u_history.min())


def test_working_set_equals_direct_socp():
    pair = pairs.synthetic(600, 40, seed=1)
    fset = cert.feasible_set(pair.x_train, pair.y_train, "sphere+slab", _domain(pair))
    direct = cert.hinge_program(pair.x_train, pair.y_train, 1.0, fset=fset, epsilon=0.2, working_set=False)
    grown = cert.hinge_program(pair.x_train, pair.y_train, 1.0, fset=fset, epsilon=0.2, working_set=True)
    assert grown[0] == pytest.approx(direct[0], abs=1e-6)
    assert grown[2]["working_set_size"] < 600 and grown[2]["rounds"] >= 2
    assert cert.hinge_program(pair.x_train, pair.y_train, 1.0)[0] > 0.05  # overlapping classes: margin points exist


def test_feasible_sets_hold_most_clean_points(digits):
    x, y = digits.x_train, digits.y_train
    sphere = cert.feasible_set(x, y, "sphere", _domain(digits), percentile=70)
    assert sphere.contains(x, y).mean() == pytest.approx(0.7, abs=0.02)
    both = cert.feasible_set(x, y, "sphere+slab", _domain(digits), percentile=90)
    assert 0.75 < both.contains(x, y).mean() <= 0.9 + 1e-9
    assert cert.feasible_set(x, y, "none", _domain(digits)).contains(x, y).all()


def test_toy_pair_is_seeded():
    a, b, c = pairs.load("toy-2d", seed=0), pairs.load("toy-2d", seed=0), pairs.load("toy-2d", seed=1)
    assert np.array_equal(a.x_train, b.x_train) and not np.array_equal(a.x_train, c.x_train)
    assert set(np.unique(a.y_train)) == {-1.0, 1.0} and a.x_train.dtype == np.float64


def test_digits_pair_shape(digits):
    assert digits.dim == 64 and digits.x_train.dtype == np.float64
    assert set(np.unique(digits.y_train)) == {-1.0, 1.0}
    assert 0 <= digits.x_train.min() and digits.x_train.max() <= 1


def test_cli_style_run_prints_the_issue_keys(tmp_cache):
    result = experiments.run("certified", dataset="toy-2d", epsilon=0.1, defense="sphere+slab")
    for key in ("upper_bound_exact", "upper_bound_alg1", "attack_train_loss", "attack_test_loss",
                "attack_test_error", "clean_test_error"):
        assert key in experiments.public(result)
    assert result["attack_train_loss"] <= result["upper_bound_exact"] + 1e-6 <= result["upper_bound_alg1"] + 2e-6


def test_same_seed_same_numbers(tmp_cache):
    a = experiments.run("certified", use_cache=False, dataset="toy-2d", epsilon=0.2, seed=3)
    b = experiments.run("certified", use_cache=False, dataset="toy-2d", epsilon=0.2, seed=3)
    assert a["upper_bound_alg1"] == b["upper_bound_alg1"] and a["attack_train_loss"] == b["attack_train_loss"]


@pytest.mark.parametrize("overrides, message", [
    ({"epsilon": 1.5}, "epsilon must be a float in [0, 1]"),
    ({"percentile": 0}, "percentile must be a float in (0, 100]"),
    ({"defense": "box"}, "defense must be one of none, sphere, slab, sphere+slab"),
    ({"dataset": "cifar-1-7"}, "dataset must be one of digits-1-7, mnist-1-7, toy-2d"),
    ({"centroids": "median"}, "centroids must be one of oracle, data-dependent"),
    ({"rho": -1.0}, "rho must be a float in (0, 10000]"),
    ({"iterations": 0}, "iterations must be an int in [1, 100000]"),
    ({"eta": 0.0}, "eta must be a float in (0, 1e+06]"),
    ({"defense": "none", "centroids": "data-dependent"}, "centroids=data-dependent needs a defense"),
])
def test_bad_inputs_name_the_valid_range(overrides, message, tmp_cache):
    with pytest.raises(LabkitError, match=None) as info:
        experiments.run("certified", **overrides)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_module_level_bad_inputs(digits):
    x, y = digits.x_train, digits.y_train
    with pytest.raises(LabkitError, match="defense must be one of"):
        cert.feasible_set(x, y, "ball", _domain(digits))
    with pytest.raises(LabkitError, match="labels must be −1 and \\+1"):
        cert.feasible_set(x, np.zeros_like(y), "sphere", _domain(digits))
    with pytest.raises(LabkitError, match="percentile must be"):
        cert.class_radii(x, y, cert.class_centroids(x, y), 150)
    with pytest.raises(LabkitError, match="rho must be > 0"):
        cert.algorithm1(x, y, cert.feasible_set(x, y, "sphere", _domain(digits)), 0.1, 0.0)
    with pytest.raises(LabkitError, match="unknown dataset"):
        pairs.load("imdb")


def test_empty_feasible_set_is_reported():
    cset = cert.ClassSet(np.zeros(2), 1.0, np.array([1.0, 0.0]), 5.0, 0.5)  # the slab misses the ball
    with pytest.raises(LabkitError, match="feasible set is empty"):
        cert.support(np.ones(2), cset)


def test_mnist_missing_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_DATA_DIR", str(tmp_path / "nothing-here"))
    from labkit import data

    data._load_full.cache_clear()
    with pytest.raises(DataMissingError, match="labkit data download mnist"):
        pairs.load("mnist-1-7")
    data._load_full.cache_clear()


def test_algorithm1_at_epsilon_zero_is_the_clean_loss(digits):
    """No attacker (ε = 0, so T = εn = 0 steps): U* is the clean SVM's training loss, not the loss at θ⁰ = 0 (= 1),
    and it equals the exact bound at ε = 0; there is no candidate poison."""
    x, y = digits.x_train, digits.y_train
    fset = cert.feasible_set(x, y, "sphere+slab", _domain(digits))
    alg = cert.algorithm1(x, y, fset, 0.0, digits.rho)
    clean = float(cert.hinge(cert.train_svm(x, y, digits.rho), x, y).mean())
    exact, _ = cert.exact_bound(x, y, fset, 0.0, digits.rho)
    assert alg.upper_bound == pytest.approx(clean, abs=1e-6)
    assert alg.upper_bound == pytest.approx(exact, abs=1e-4)
    assert alg.upper_bound < 0.5
    assert alg.poison_x.shape == (0, x.shape[1]) and alg.poison_weight == 0.0
    result = experiments.run("certified", profile="ci", dataset="digits-1-7", epsilon=0.0)
    assert result["upper_bound_alg1"] == pytest.approx(result["clean_train_loss"], abs=1e-6)

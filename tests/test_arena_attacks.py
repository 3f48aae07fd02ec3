"""The arena's attacks from outside the seeds (issue 19): Blended, SIG, WaNet — their trigger properties."""
import pytest
import torch

from labkit.attacks import blended, sig, wanet
from labkit.errors import LabkitError

SHAPE = (1, 16, 16)


def images(n=60, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, *SHAPE, generator=g), torch.arange(n) % 10


def test_blended_is_the_convex_combination_alpha_pattern_plus_one_minus_alpha_image():
    x, _ = images()
    pattern = blended.random_pattern(SHAPE, seed=3)
    assert torch.equal(pattern, blended.random_pattern(SHAPE, seed=3)) and pattern.min() >= 0 and pattern.max() <= 1
    for alpha in (0.05, 0.2, 1.0):
        out = blended.blend(x, pattern, alpha)
        assert torch.allclose(out, alpha * pattern + (1 - alpha) * x)
        assert out.min() >= 0 and out.max() <= 1
    assert torch.allclose(blended.blend(x, pattern, 1.0), pattern.expand_as(x))
    # each pixel moves by exactly α·(pattern − x): the trigger's weight is α
    assert torch.allclose(blended.blend(x, pattern, 0.2) - x, 0.2 * (pattern - x), atol=1e-6)


def test_blended_poisons_a_fraction_of_the_non_target_images_and_relabels_them():
    x, y = images()
    pattern = blended.random_pattern(SHAPE, seed=1)
    xp, yp, idx = blended.poison(x, y, pattern=pattern, alpha=0.2, target=0, fraction=0.1, seed=0)
    assert len(idx) == 6 and (y[idx] != 0).all() and (yp[idx] == 0).all()
    untouched = torch.ones(len(y), dtype=torch.bool)
    untouched[idx] = False
    assert torch.equal(xp[untouched], x[untouched]) and torch.equal(yp[untouched], y[untouched])
    assert torch.allclose(xp[idx], blended.blend(x[idx], pattern, 0.2))


@pytest.mark.parametrize("alpha", [0, -0.1, 1.5])
def test_blended_rejects_a_weight_outside_zero_one(alpha):
    with pytest.raises(LabkitError, match="alpha"):
        blended.blend(torch.zeros(1, *SHAPE), torch.zeros(SHAPE), alpha)


def test_sig_signal_is_a_horizontal_sinusoid_of_amplitude_delta_on_the_0_255_scale():
    v = sig.signal(SHAPE, delta=20, frequency=6)
    assert v.shape == SHAPE
    assert torch.allclose(v, v[:, :1, :].expand_as(v))  # the same on every row
    assert v.abs().max() <= 20 / 255 + 1e-7 and v.abs().max() > 0.8 * 20 / 255
    assert abs(float(v[0, 0].sum())) < 1e-5  # whole cycles across the width average to zero
    with pytest.raises(LabkitError, match="Nyquist"):
        sig.signal(SHAPE, frequency=8)
    with pytest.raises(LabkitError, match="0–255"):
        sig.signal(SHAPE, delta=0.0)


def test_sig_corrupts_only_target_class_images_and_never_changes_a_label():
    x, y = images(100)
    v = sig.signal(SHAPE)
    xp, yp, idx = sig.poison(x, y, signal_image=v, target=3, fraction=0.5, seed=0)
    assert torch.equal(yp, y)  # clean-label: labels unchanged
    assert len(idx) == 5 and (y[idx] == 3).all()
    changed = (xp != x).flatten(1).any(dim=1)
    assert set(torch.nonzero(changed).flatten().tolist()) <= set(idx.tolist())
    assert torch.allclose(xp[idx], (x[idx] + v).clamp(0, 1)) and xp.min() >= 0 and xp.max() <= 1


def test_wanet_field_is_a_valid_sampling_grid_a_small_smooth_displacement_fixed_by_the_seed():
    field = wanet.warping_field(SHAPE, seed=0)
    assert field.shape == (16, 16, 2) and field.min() >= -1 and field.max() <= 1
    assert torch.equal(field, wanet.warping_field(SHAPE, seed=0))
    assert not torch.equal(field, wanet.warping_field(SHAPE, seed=1))
    displacement = (field - wanet.identity_grid(16, 16)) * (16 - 1) / 2  # in pixels
    assert 0 < displacement.abs().mean() < 1.0  # sub-pixel on average: imperceptible
    # smooth: neighbouring pixels move alike (the k×k control grid is upsampled)
    assert (displacement[:, 1:] - displacement[:, :-1]).abs().mean() < 0.5 * displacement.abs().mean()


def test_wanet_warp_keeps_images_in_0_1_and_the_identity_grid_changes_nothing():
    x, _ = images()
    assert torch.allclose(wanet.warp(x, wanet.identity_grid(16, 16)), x, atol=1e-5)
    warped = wanet.warp(x, wanet.warping_field(SHAPE, seed=0))
    assert warped.shape == x.shape and warped.min() >= 0 and warped.max() <= 1
    assert not torch.allclose(warped, x, atol=1e-3)
    noisy = wanet.noisy_fields(wanet.warping_field(SHAPE, seed=0), 5, seed=1)
    assert noisy.shape == (5, 16, 16, 2) and noisy.min() >= -1 and noisy.max() <= 1


def test_wanet_poison_relabels_attack_samples_and_keeps_noise_mode_labels():
    x, y = images(100)
    field = wanet.warping_field(SHAPE, seed=0)
    xp, yp, attack, noise = wanet.poison(x, y, field=field, target=0, fraction=0.1, seed=0)
    assert len(attack) == 10 and (y[attack] != 0).all() and (yp[attack] == 0).all()
    assert len(noise) == 20 and not set(attack.tolist()) & set(noise.tolist())
    assert torch.equal(yp[noise], y[noise])
    assert torch.allclose(xp[attack], wanet.warp(x[attack], field))
    with pytest.raises(LabkitError, match="grid"):
        wanet.warping_field(SHAPE, seed=0, grid=1)

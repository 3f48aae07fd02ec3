import pytest
import torch

from labkit import triggers
from labkit.errors import LabkitError

GREY = (1, 8, 8)


def test_full_amplitude_replaces_masked_pixels_only():
    x = torch.full((2, *GREY), 0.5)
    trig = triggers.badnets(GREY)
    out = trig.apply(x)
    mask = trig.mask.bool()
    assert torch.equal(out[:, 0][:, ~mask], x[:, 0][:, ~mask])
    assert torch.equal(out[0, 0][mask], trig.pattern[0][mask])
    # bottom-right corner, one pixel in from the edge: rows/cols 4..6 of an 8x8 image
    assert mask[4:7, 4:7].all() and mask.sum() == 9


def test_reduced_amplitude_adds_on_white_subtracts_on_black_then_clips():
    x = torch.tensor([0.5, 0.1, 0.95]).view(3, 1, 1, 1).expand(3, *GREY).clone()
    trig = triggers.badnets(GREY, amplitude=32)
    out = trig.apply(x)
    white = trig.mask.bool() & (trig.pattern[0] == 1)
    black = trig.mask.bool() & (trig.pattern[0] == 0)
    step = 32 / 255
    assert torch.allclose(out[0, 0][white], torch.tensor(0.5 + step))
    assert torch.allclose(out[0, 0][black], torch.tensor(0.5 - step))
    assert torch.allclose(out[1, 0][black], torch.tensor(0.0))  # 0.1 - 0.125 clipped at 0
    assert torch.allclose(out[2, 0][white], torch.tensor(1.0))  # 0.95 + 0.125 clipped at 1
    assert torch.equal(out[0, 0][~trig.mask.bool()], x[0, 0][~trig.mask.bool()])


def test_amplitude_255_equals_the_original_trigger():
    x = torch.rand(4, 3, 16, 16)
    full = triggers.make("badnets", (3, 16, 16))
    additive = triggers.Trigger(full.mask, full.pattern, 254.999, "nearly")
    assert torch.allclose(full.apply(x), additive.apply(x), atol=1e-3)


def test_four_corner_is_horizontally_symmetric_and_covers_each_corner():
    trig = triggers.four_corner((1, 16, 16))
    assert torch.equal(trig.mask, trig.mask.flip(1))
    assert torch.equal(trig.pattern * trig.mask, (trig.pattern * trig.mask).flip(-1))
    assert trig.area() == 36
    for rows in (slice(0, 5), slice(11, 16)):
        for cols in (slice(0, 5), slice(11, 16)):
            assert trig.mask[rows, cols].sum() == 9


def test_x_pattern_is_red_on_colour_and_white_on_grey():
    colour = triggers.x_pattern((3, 16, 16))
    strokes = colour.mask.bool()
    assert strokes.sum() == 5  # a 3x3 cross
    assert (colour.pattern[0][strokes] == 1).all() and (colour.pattern[1:, strokes] == 0).all()
    grey = triggers.x_pattern((1, 16, 16))
    assert (grey.pattern[0][grey.mask.bool()] == 1).all()


def test_single_pixel_and_square():
    assert triggers.single_pixel((1, 16, 16)).area() == 1
    square = triggers.white_square((1, 16, 16))
    assert square.area() == 9 and (square.pattern[0][square.mask.bool()] == 1).all()


def test_grey_pattern_broadcasts_to_colour_images():
    trig = triggers.make("badnets", (1, 16, 16))
    assert trig.apply(torch.zeros(2, 3, 16, 16)).shape == (2, 3, 16, 16)


def test_single_image_and_batch_agree():
    x = torch.rand(3, 1, 16, 16)
    trig = triggers.make("four-corner", (1, 16, 16), amplitude=64)
    assert torch.equal(trig.apply(x)[1], trig.apply(x[1]))


@pytest.mark.parametrize("amplitude", [0, -1, 256])
def test_bad_amplitude_names_the_range(amplitude):
    with pytest.raises(LabkitError, match=r"\(0, 255\]"):
        triggers.make("badnets", GREY, amplitude)


def test_unknown_preset_lists_the_presets():
    with pytest.raises(LabkitError, match="badnets, four-corner, x, pixel, square"):
        triggers.make("heart", GREY)

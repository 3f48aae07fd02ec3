import numpy as np
import torch

from labkit.seed import generator, rng, seed_everything


def test_seed_everything_repeats_every_generator():
    seed_everything(7)
    first = (torch.rand(3), np.random.rand(3))
    seed_everything(7)
    second = (torch.rand(3), np.random.rand(3))
    assert torch.equal(first[0], second[0]) and np.array_equal(first[1], second[1])


def test_explicit_generators_do_not_touch_global_state():
    seed_everything(0)
    expected = torch.rand(2)
    seed_everything(0)
    torch.randperm(10, generator=generator(3))
    rng(3).random()
    assert torch.equal(torch.rand(2), expected)
    assert torch.equal(torch.randperm(10, generator=generator(3)), torch.randperm(10, generator=generator(3)))

"""The generative models behind latent interpolation (the thesis' WGAN-GP, the lab's VAE): they train,
embedding by gradient descent reduces reconstruction error, and interpolation moves from the target
image towards the other."""
import math

import pytest
import torch

from labkit.attacks import latent
from labkit.errors import LabkitError
from labkit.models import Generator


@pytest.fixture(scope="module")
def blobs():
    """Two 'classes' of 8x8 images: a bright top half and a bright bottom half, plus noise."""
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(128, 1, 8, 8, generator=gen) * 0.2
    x[:64, :, :4] += 0.7
    x[64:, :, 4:] += 0.7
    return x.clamp(0, 1)


@pytest.fixture(scope="module")
def vae(blobs):
    model, history = latent.train_vae(blobs, latent=4, hidden=64, epochs=40, seed=0)
    assert history[-1] < history[0]
    return model


def test_vae_generates_images_in_range(vae):
    out = vae.generate(torch.randn(5, 4))
    assert out.shape == (5, 1, 8, 8) and out.min() >= 0 and out.max() <= 1


def test_embedding_reduces_reconstruction_error(vae, blobs):
    x = blobs[::8]
    start = latent.reconstruction_error(vae, x, torch.zeros(len(x), 4))
    z = latent.embed(vae, x, steps=200, init="zeros")
    after = latent.reconstruction_error(vae, x, z)
    assert after.mean() < 0.7 * start.mean()
    encoder_start = latent.reconstruction_error(vae, x, vae.encode(x)[0].detach())
    refined = latent.reconstruction_error(vae, x, latent.embed(vae, x, steps=100, init="encoder"))
    assert refined.mean() <= encoder_start.mean() + 1e-6
    assert all(p.requires_grad for p in vae.parameters())  # the generator is frozen only while embedding


def test_interpolation_moves_towards_the_other_image(vae, blobs):
    x_target, x_other = blobs[:8], blobs[64:72]
    dist = []
    for tau in (0.0, 0.5, 1.0):
        out = latent.interpolate(vae, x_target, x_other, tau, steps=100)
        dist.append(float((out - x_other).flatten(1).norm(dim=1).mean()))
    assert dist[0] > dist[1] > dist[2]
    with pytest.raises(LabkitError):
        latent.interpolate(vae, x_target, x_other, 1.2)
    with pytest.raises(LabkitError):
        latent.embed(vae, x_target, init="random")


def test_gradient_penalty_of_a_linear_critic_is_the_weight_norm_gap():
    """D(x) = w·x has ∇D = w everywhere, so the penalty is (‖w‖ − 1)² whatever the real and fake images."""
    gen = torch.Generator().manual_seed(3)
    w = torch.randn(64, generator=gen, dtype=torch.float64)
    real = torch.rand(16, 1, 8, 8, generator=gen, dtype=torch.float64)
    fake = torch.rand(16, 1, 8, 8, generator=gen, dtype=torch.float64)
    value = latent.gradient_penalty(lambda x: x.flatten(1) @ w, real, fake, torch.Generator().manual_seed(0))
    assert float(value) == pytest.approx(float((w.norm() - 1) ** 2), rel=1e-12)


@pytest.fixture(scope="module")
def wgan(blobs):
    return latent.train_wgan_gp(blobs[::2], latent=4, hidden=64, iterations=30, batch_size=32, seed=0)


def test_wgan_gp_is_deterministic_and_generates_images_in_range(wgan, blobs):
    model, history = wgan
    again, history_again = latent.train_wgan_gp(blobs[::2], latent=4, hidden=64, iterations=30, batch_size=32,
                                                seed=0)
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), again.parameters()))
    assert history == history_again and history["iteration"] == [30]
    assert all(math.isfinite(v) for v in history["wasserstein"] + history["generator_loss"])
    out = model.generate(torch.randn(5, 4))
    assert isinstance(model, Generator) and not model.training
    assert out.shape == (5, 1, 8, 8) and out.min() >= 0 and out.max() <= 1


def test_embedding_into_a_generator_recovers_a_planted_code(wgan):
    model, _ = wgan
    z_star = torch.randn(8, 4, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        x = model.generate(z_star)
    start = latent.reconstruction_error(model, x, torch.zeros(8, 4)).mean()
    after = latent.reconstruction_error(model, x, latent.embed(model, x, steps=200)).mean()  # default: from zeros
    assert after < 0.05 * start, f"embedding left {after:.4f} of the error at z = 0 ({start:.4f}); want < 5 %"
    assert all(p.requires_grad for p in model.parameters())
    assert latent.interpolate(model, x[:4], x[4:], 0.5, steps=20).shape == (4, 1, 8, 8)
    with pytest.raises(LabkitError, match="init='zeros'"):
        latent.embed(model, x, init="encoder")


def test_wgan_gp_bad_arguments_name_the_valid_range(blobs):
    for kwargs, match in (({"iterations": 0}, "iterations must be at least 1"),
                          ({"critic_steps": 0}, "critic_steps must be at least 1"),
                          ({"penalty": -1.0}, "penalty must be at least 0")):
        with pytest.raises(LabkitError, match=match):
            latent.train_wgan_gp(blobs, **kwargs)

"""The generative model behind latent interpolation: it trains, embedding by gradient descent
reduces reconstruction error, and interpolation moves from the target image towards the other."""
import pytest
import torch

from labkit.attacks import latent
from labkit.errors import LabkitError


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

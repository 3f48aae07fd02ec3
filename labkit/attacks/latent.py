"""Latent-space interpolation with a small generative model trained here (thesis 3.3.1, 7.4).

The thesis trains a WGAN; here a small fully connected VAE (fast on CPU) plays the generator
G: R^d → images. A training image x is *embedded* by gradient descent on the latent code,
z = argmin_z ‖x − G(z)‖₂ (the thesis' procedure: it never uses an encoder at attack time;
we start from the VAE encoder's mean, or from zeros), and a poisoned image is

    x_τ = G((1 − τ)·z_target + τ·z_other),

so τ is the *degree of interpolation towards the other class*: τ = 0 is the best reproduction
of the target image, τ = 1 of the other image. (The thesis writes G(τ·z₁ + (1 − τ)·z₂) but
describes and plots τ = 0 as the original and picks τ = 0.2 as label-consistent; that only
holds with τ measured towards the other class, which is what this module implements.)
Images (N, C, H, W) on the 0–1 pixel scale.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from labkit.errors import LabkitError
from labkit.models import VAE
from labkit.seed import generator
from labkit.train import train


def vae_loss(model: VAE, x: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
    """Negative ELBO per image: Bernoulli reconstruction (pixels in [0, 1]) + KL(q(z|x) ‖ N(0, I))."""
    mu, logvar = model.encode(x)
    eps = torch.randn(mu.shape, generator=gen).to(mu.device)
    z = mu + eps * torch.exp(0.5 * logvar)
    recon = F.binary_cross_entropy_with_logits(model.decode_logits(z), x, reduction="sum")
    kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return (recon + kl) / len(x)


def train_vae(x: torch.Tensor, *, latent: int = 16, hidden: int = 256, epochs: int = 60, batch_size: int = 64,
              lr: float = 1e-3, seed: int = 0, device: torch.device | None = None) -> tuple[VAE, list[float]]:
    """A VAE fitted to images `x` (N, C, H, W) in [0, 1]; returns (model in eval mode, per-epoch loss)."""
    torch.manual_seed(seed)
    model = VAE(x.shape[1:], latent, hidden)
    noise = generator(seed + 1)
    unlabelled = torch.zeros(len(x), dtype=torch.int64)
    history = train(model, x, unlabelled, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, device=device,
                    loss_fn=lambda m, xb, _: vae_loss(m, xb, noise), progress=False, desc="VAE")
    return model.cpu().eval(), [row["loss"] for row in history]


def reconstruction_error(model: VAE, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """(N,) ‖x − G(z)‖₂ on the 0–1 pixel scale."""
    with torch.no_grad():
        return (x - model.generate(z)).flatten(1).norm(dim=1)


def embed(model: VAE, x: torch.Tensor, *, steps: int = 300, lr: float = 0.05, init: str = "encoder") -> torch.Tensor:
    """z = argmin_z ‖x − G(z)‖₂² by Adam on z alone (the generator is frozen); (N, latent).

    `init`: "encoder" starts from the encoder's mean, "zeros" from the prior's mean.
    """
    if init == "encoder":
        with torch.no_grad():
            z0 = model.encode(x)[0]
    elif init == "zeros":
        z0 = torch.zeros(len(x), model.latent)
    else:
        raise LabkitError(f"unknown init {init!r}; choose encoder or zeros")
    for p in model.parameters():
        p.requires_grad_(False)
    z = z0.clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    for _ in range(steps):
        loss = (x - model.generate(z)).pow(2).flatten(1).sum(dim=1).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    for p in model.parameters():
        p.requires_grad_(True)
    return z.detach()


def interpolate(model: VAE, x_target: torch.Tensor, x_other: torch.Tensor, tau: float,
                steps: int = 300) -> torch.Tensor:
    """G((1 − τ)·z_target + τ·z_other) for paired images (N, C, H, W); τ in [0, 1] towards `x_other`."""
    if not 0 <= tau <= 1:
        raise LabkitError(f"tau must be in [0, 1], got {tau}")
    z_target = embed(model, x_target, steps=steps)
    z_other = embed(model, x_other, steps=steps)
    with torch.no_grad():
        return model.generate((1 - tau) * z_target + tau * z_other)

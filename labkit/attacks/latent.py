"""Latent-space interpolation with a small generative model trained here (thesis 3.3.1, 7.4).

The thesis' route: a WGAN-GP (Gulrajani et al. 2017) trained on only the two classes between which
it interpolates gives a generator G: R^d → images (`train_wgan_gp`: small MLPs, minutes on CPU).
A training image x is *embedded* by gradient descent on the latent code alone,
z = argmin_z ‖x − G(z)‖₂ (the thesis runs 1000 steps of gradient descent with step size 0.1;
here Adam, from z = 0 for a GAN), and a poisoned image is

    x_τ = G((1 − τ)·z_target + τ·z_other),

so τ is the *degree of interpolation towards the other class*: τ = 0 is the best reproduction
of the target image, τ = 1 of the other image. (The thesis writes G(τ·z₁ + (1 − τ)·z₂) but
describes and plots τ = 0 as the original and picks τ = 0.2 as label-consistent; that only
holds with τ measured towards the other class, which is what this module implements.)

The lab's earlier alternative, still here: a small fully connected VAE (`train_vae`) as G, whose
encoder gives the embedding a starting point (the search itself is the same; the thesis never
uses an encoder at attack time). `embed` and `interpolate` take either model.
Images (N, C, H, W) on the 0–1 pixel scale.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from labkit.errors import LabkitError
from labkit.models import VAE, Critic, Generator
from labkit.seed import generator
from labkit.train import progress_kwargs, train

LOG_EVERY = 50  # train_wgan_gp's history: one row per this many generator steps (and one at the end)


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


def gradient_penalty(critic, real: torch.Tensor, fake: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """WGAN-GP's penalty without its weight λ: mean over images of (‖∇_x̂ D(x̂)‖₂ − 1)², at
    x̂ = u·real + (1 − u)·fake with u ~ U(0, 1) per image drawn from `gen`.

    x̂ is detached from `real` and `fake`, so the penalty trains the critic only; `create_graph=True`
    keeps the gradient norm differentiable with respect to the critic's weights."""
    u = torch.rand(len(real), *([1] * (real.dim() - 1)), generator=gen).to(real.device)
    x_hat = (u * real + (1 - u) * fake).detach().requires_grad_(True)
    grad, = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()


def train_wgan_gp(x: torch.Tensor, *, latent: int = 32, hidden: int = 256, iterations: int = 2000,
                  critic_steps: int = 5, batch_size: int = 64, lr: float = 1e-4, betas=(0.5, 0.9),
                  penalty: float = 10.0, seed: int = 0, device: torch.device | None = None,
                  progress: bool = False) -> tuple[Generator, dict[str, list[float]]]:
    """A WGAN-GP fitted to images `x` (N, C, H, W) in [0, 1] (thesis: the two classes to interpolate between).

    `iterations` generator steps, each after `critic_steps` critic steps on fresh real batches (drawn with
    replacement) and fresh noise. The critic maximises E[D(real)] − E[D(fake)] − penalty·GP, the generator
    maximises E[D(G(z))]; both with Adam(lr, betas). Deterministic for a `seed` on CPU.
    Returns (generator in eval mode on CPU, history): `iteration`, `wasserstein` (the critic's estimate
    E[D(real)] − E[D(fake)]), `gradient_penalty` and `generator_loss` (−E[D(G(z))]), each averaged over
    the generator steps since the previous row; a row every `LOG_EVERY` steps and one at the end.
    """
    if iterations < 1:
        raise LabkitError(f"iterations must be at least 1, got {iterations}")
    if critic_steps < 1:
        raise LabkitError(f"critic_steps must be at least 1, got {critic_steps}")
    if penalty < 0:
        raise LabkitError(f"penalty must be at least 0, got {penalty}")
    torch.manual_seed(seed)
    shape = x.shape[1:]
    device = device or torch.device("cpu")
    gen_model, critic = Generator(shape, latent, hidden).to(device), Critic(shape, hidden).to(device)
    gen_opt = torch.optim.Adam(gen_model.parameters(), lr=lr, betas=betas)
    critic_opt = torch.optim.Adam(critic.parameters(), lr=lr, betas=betas)
    batches, noise = generator(seed), generator(seed + 1)  # which real images; z and the penalty's u

    def real_batch() -> torch.Tensor:
        return x[torch.randint(len(x), (batch_size,), generator=batches)].to(device)

    def latent_batch() -> torch.Tensor:
        return torch.randn(batch_size, latent, generator=noise).to(device)

    history = {"iteration": [], "wasserstein": [], "gradient_penalty": [], "generator_loss": []}
    sums = dict.fromkeys(("wasserstein", "gradient_penalty", "generator_loss"), 0.0)
    since = 0
    bar = tqdm(range(1, iterations + 1), desc="WGAN-GP", leave=False, **progress_kwargs(progress))
    for it in bar:
        for _ in range(critic_steps):  # the critic: a Wasserstein estimate, kept 1-Lipschitz by the penalty
            real = real_batch()
            with torch.no_grad():
                fake = gen_model(latent_batch())
            estimate = critic(real).mean() - critic(fake).mean()
            gp = gradient_penalty(critic, real, fake, noise)
            critic_opt.zero_grad(set_to_none=True)
            (penalty * gp - estimate).backward()
            critic_opt.step()
        critic.requires_grad_(False)  # the generator: move fakes to where the critic scores real images
        gen_loss = -critic(gen_model(latent_batch())).mean()
        gen_opt.zero_grad(set_to_none=True)
        gen_loss.backward()
        gen_opt.step()
        critic.requires_grad_(True)
        # the last critic step's estimate and penalty stand for this generator step
        for key, value in (("wasserstein", estimate), ("gradient_penalty", gp), ("generator_loss", gen_loss)):
            sums[key] += float(value.detach())
        since += 1
        if it % LOG_EVERY == 0 or it == iterations:
            history["iteration"].append(it)
            for key in sums:
                history[key].append(sums[key] / since)
                sums[key] = 0.0
            since = 0
            bar.set_postfix(wasserstein=f"{history['wasserstein'][-1]:.3f}")
    return gen_model.cpu().eval(), history


def reconstruction_error(model: VAE | Generator, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """(N,) ‖x − G(z)‖₂ on the 0–1 pixel scale."""
    with torch.no_grad():
        return (x - model.generate(z)).flatten(1).norm(dim=1)


def embed(model: VAE | Generator, x: torch.Tensor, *, steps: int = 300, lr: float = 0.05,
          init: str | None = None) -> torch.Tensor:
    """z = argmin_z ‖x − G(z)‖₂² by Adam on z alone (the generator is frozen); (N, latent).

    `init`: "encoder" starts from a VAE encoder's mean, "zeros" from the prior's mean;
    None (default): "encoder" for a model that has one (the VAE), else "zeros" (a GAN's generator).
    """
    has_encoder = hasattr(model, "encode")
    if init is None:
        init = "encoder" if has_encoder else "zeros"
    if init == "encoder":
        if not has_encoder:
            raise LabkitError(f"init='encoder' needs a model with an encoder (a VAE), not a {type(model).__name__}; "
                              "use init='zeros'")
        with torch.no_grad():
            z0 = model.encode(x)[0]
    elif init == "zeros":
        z0 = torch.zeros(len(x), model.latent)
    else:
        raise LabkitError(f"unknown init {init!r}; choose encoder or zeros")
    trainable = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    z = z0.clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    for _ in range(steps):
        loss = (x - model.generate(z)).pow(2).flatten(1).sum(dim=1).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    for p, flag in zip(model.parameters(), trainable):
        p.requires_grad_(flag)
    return z.detach()


def interpolate(model: VAE | Generator, x_target: torch.Tensor, x_other: torch.Tensor, tau: float,
                steps: int = 300) -> torch.Tensor:
    """G((1 − τ)·z_target + τ·z_other) for paired images (N, C, H, W); τ in [0, 1] towards `x_other`.

    `model`: a WGAN-GP `Generator` (the thesis) or a `VAE`; each image is embedded with `embed`'s default start."""
    if not 0 <= tau <= 1:
        raise LabkitError(f"tau must be in [0, 1], got {tau}")
    z_target = embed(model, x_target, steps=steps)
    z_other = embed(model, x_other, steps=steps)
    with torch.no_grad():
        return model.generate((1 - tau) * z_target + tau * z_other)

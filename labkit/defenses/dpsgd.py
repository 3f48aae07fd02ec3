"""DP-SGD as a backdoor defense (Turner, chapters 5–6 and 7.10), trained with Opacus.

DP-SGD (Abadi et al.): sample a lot by Poisson sampling (each example with probability
q = lot_size / N), clip each example's gradient to L2 norm ≤ C, sum, add Gaussian noise of
standard deviation σ·C, divide by the expected lot size, take an SGD step. Opacus does every
one of those steps (`PrivacyEngine.make_private`); this module only wires it to labkit's models
and reports the privacy ε at δ from Opacus' accountant.

Two procedures (the experiment's `procedure` key):
- "scratch": the whole network is trained with DP-SGD;
- "frozen": the thesis' procedure scaled down — a model pretrained on public data is frozen
  except its last layers (`freeze_all_but`), and only those are DP-trained.

The non-private baseline (`train_sgd`) uses the same optimizer, lot size, epochs and frozen
layers, with the learning rate given by `baseline_lr` so that the effective step matches.

Images are (N, C, H, W) float in [0, 1] (0–1 pixel scale); labels (N,) int64.
Models must not contain BatchNorm (use `models.build(..., norm="group")`).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from labkit.errors import LabkitError
from labkit.seed import generator
from labkit.train import make_optimizer, prepare, run_epochs
from labkit.train import train as train_plain

# Opacus' per-sample-gradient engines that this lab's GroupNorm CNN supports. The default is the
# one the `dpsgd` benchmark measured fastest among the correct ones: "ghost" (ghost clipping: the
# per-example norms without materialising per-example gradients, then a second, reweighted
# backward pass); on the lab CNN, CPU: ghost ≈ 2.8×, ew ≈ 5.4×, hooks ≈ 6.7×, functorch ≈ 7.2× a
# non-private step.
GRAD_SAMPLE_MODES = ("hooks", "ew", "functorch", "ghost")
DEFAULT_GRAD_SAMPLE_MODE = "ghost"
ACCOUNTANTS = ("rdp", "prv", "gdp")
DEFAULT_ACCOUNTANT = "rdp"
DELTA = 1e-5
MOMENTUM = 0.9
# Largest physical batch pushed through the network at once; larger lots are split by
# Opacus' BatchMemoryManager (the noise is still added once per logical lot).
MAX_PHYSICAL_BATCH = 512


@dataclass(frozen=True)
class DPSettings:
    """DP-SGD's knobs. `max_grad_norm` is C (L2, on the flattened per-example gradient);
    `noise_multiplier` is σ (noise std = σ·C on the summed lot gradient); `lot_size` is the
    expected lot (Poisson sampling rate q = lot_size / N); `lr` the SGD step (momentum 0.9)."""

    noise_multiplier: float = 1.0
    max_grad_norm: float = 1.0
    lot_size: int = 128
    epochs: int = 30
    lr: float = 0.5
    momentum: float = MOMENTUM
    grad_sample_mode: str = DEFAULT_GRAD_SAMPLE_MODE
    accountant: str = DEFAULT_ACCOUNTANT
    delta: float = DELTA

    def check(self) -> None:
        if self.noise_multiplier < 0 or not math.isfinite(self.noise_multiplier):
            raise LabkitError(f"noise_multiplier must be a float >= 0, got {self.noise_multiplier}")
        if not self.max_grad_norm > 0:
            raise LabkitError(f"max_grad_norm (clip) must be a float > 0, got {self.max_grad_norm}")
        if self.lot_size < 1:
            raise LabkitError(f"lot_size must be an int >= 1, got {self.lot_size}")
        if self.grad_sample_mode not in GRAD_SAMPLE_MODES:
            raise LabkitError(f"unknown grad_sample_mode {self.grad_sample_mode!r}; "
                              f"choose one of {', '.join(GRAD_SAMPLE_MODES)}")
        if self.accountant not in ACCOUNTANTS:
            raise LabkitError(f"unknown accountant {self.accountant!r}; choose one of {', '.join(ACCOUNTANTS)}")
        if not 0 < self.delta < 1:
            raise LabkitError(f"delta must be in (0, 1), got {self.delta}")


def freeze_all_but(model: nn.Module, trainable: tuple[str, ...]) -> list[str]:
    """Freeze every parameter except those of the sub-modules named in `trainable`
    (e.g. ("fc1", "fc2")); returns the names of the frozen parameters."""
    names = dict(model.named_modules())
    missing = [name for name in trainable if name not in names]
    if missing:
        raise LabkitError(f"model has no layer {missing[0]!r}; layers: {', '.join(n for n in names if n)}")
    frozen = []
    for name, param in model.named_parameters():
        keep = any(name == t or name.startswith(t + ".") for t in trainable)
        param.requires_grad_(keep)
        if not keep:
            frozen.append(name)
    return frozen


def baseline_lr(dp_lr: float, lot_size: int, expected_lot_size: float | None = None,
                clip_scale: float = 1.0) -> float:
    """The non-private baseline's learning rate whose effective step matches DP-SGD's.

    Two factors. (1) Normalisation: Opacus (loss_reduction="mean") divides the summed clipped
    gradients by the *expected* lot size q·N, the baseline's mean loss by the actual batch:
    factor expected / actual, 1 when both are `lot_size` (the thesis' TensorFlow Privacy set-up
    averaged over 16 microbatches instead, hence its 1/16). (2) Clipping: with per-example
    gradient norms ‖g‖ ≫ C, DP-SGD's step is about C/‖g‖ times SGD's at the same lr; `clip_scale`
    (measured by `clip_scale` on the initial model) carries that factor, so the baseline does not
    take 10× larger steps.
    With no clipping (C ≥ every ‖g‖), clip_scale = 1 and the two agree in expectation.
    """
    expected = lot_size if expected_lot_size is None else expected_lot_size
    return dp_lr * lot_size / expected * clip_scale


def clip_scale(model: nn.Module, x: torch.Tensor, y: torch.Tensor, max_grad_norm: float,
               sample: int = 128) -> float:
    """‖mean of clipped per-example gradients‖ / ‖mean gradient‖ of `model` on the first `sample`
    examples (at most 1): how much DP-SGD's clipping shrinks its step relative to plain SGD's."""
    params = [p for p in model.parameters() if p.requires_grad]
    plain = [torch.zeros_like(p) for p in params]
    clipped = [torch.zeros_like(p) for p in params]
    model.eval()
    for xi, yi in zip(x[:sample], y[:sample]):
        grads = torch.autograd.grad(F.cross_entropy(model(xi[None]), yi[None]), params)
        norm = float(torch.sqrt(sum((g ** 2).sum() for g in grads)))
        factor = min(1.0, max_grad_norm / (norm + 1e-6))  # Opacus' clipping factor
        for s_plain, s_clip, g in zip(plain, clipped, grads):
            s_plain += g
            s_clip += factor * g
    ratio = _norm(clipped) / max(_norm(plain), 1e-12)
    return float(min(1.0, ratio))


def _norm(tensors) -> float:
    return float(torch.sqrt(sum((t ** 2).sum() for t in tensors)))


def sample_rate(n: int, lot_size: int) -> float:
    """Opacus' Poisson sampling rate for `n` examples in lots of `lot_size`: 1 / ceil(n / lot)."""
    return 1.0 / math.ceil(n / lot_size)


def steps_for(n: int, lot_size: int, epochs: int) -> int:
    """Optimizer steps in `epochs` passes (Opacus draws ceil(n / lot) lots per epoch)."""
    return int(math.ceil(n / lot_size) * epochs)


def epsilon(noise_multiplier: float, q: float, steps: int, delta: float = DELTA,
            accountant: str = DEFAULT_ACCOUNTANT) -> float:
    """ε of `steps` Poisson-subsampled Gaussian steps (rate q, noise σ) at δ, from Opacus'
    accountant without training (for widgets and planning). σ = 0 gives inf (no privacy)."""
    if noise_multiplier <= 0:
        return float("inf")
    if steps <= 0:
        return 0.0
    from opacus.accountants import create_accountant

    acc = create_accountant(mechanism=accountant)
    acc.history = [(float(noise_multiplier), float(q), int(steps))]
    return float(acc.get_epsilon(delta=delta))


def epsilon_classic_rdp(noise_multiplier: float, q: float, steps: int, delta: float = DELTA) -> float:
    """ε from the same Rényi-DP curve as Opacus' RDP accountant (`compute_rdp`, its default orders α), but
    converted to (ε, δ) with Mironov's original bound ε = min_α RDP(α) + log(1/δ)/(α − 1) (Mironov 2017,
    Prop. 3). Opacus' accountant now uses the tighter conversion of Balle et al. (2020), so for the same σ, q
    and steps it reports a smaller ε; example READMEs written with the older conversion quote this one."""
    if noise_multiplier <= 0:
        return float("inf")
    if steps <= 0:
        return 0.0
    from opacus.accountants import RDPAccountant
    from opacus.accountants.analysis.rdp import compute_rdp

    orders = RDPAccountant.DEFAULT_ALPHAS
    rdp = compute_rdp(q=float(q), noise_multiplier=float(noise_multiplier), steps=int(steps), orders=orders)
    return float(min(r + math.log(1 / delta) / (alpha - 1) for r, alpha in zip(rdp, orders)))


# Opacus' MNIST example (examples/mnist.py, its README's "(2.91, 1e-5)-DP" row): σ = 1.1, C = 1.0, 60 epochs
# of 60,000 images at sample rate 0.004 (`-sr=0.004`: Poisson lots of 240 expected), δ = 1e-5; 96.78% accuracy
# (their SampleConvNet, averaged over 10 runs). The present example draws lots of 64 (q = 1/938) instead.
OPACUS_MNIST_EXAMPLE = {"noise_multiplier": 1.1, "max_grad_norm": 1.0, "epochs": 60, "train_size": 60000,
                        "lot_size": 240, "delta": 1e-5, "readme_epsilon": 2.91, "readme_accuracy": 0.9678}


def opacus_example_parity(example: dict = OPACUS_MNIST_EXAMPLE) -> dict:
    """ε of this lab's DP path (its sample rate and step count for the example's data, lot and epochs) under
    the RDP and PRV accountants, beside the README's: {q, steps, readme, rdp, prv, rdp_classic_conversion}."""
    q = sample_rate(example["train_size"], example["lot_size"])
    steps = steps_for(example["train_size"], example["lot_size"], example["epochs"])
    sigma, delta = example["noise_multiplier"], example["delta"]
    out = {"q": q, "steps": steps, "readme": example["readme_epsilon"],
           "rdp_classic_conversion": epsilon_classic_rdp(sigma, q, steps, delta)}
    out.update({name: epsilon(sigma, q, steps, delta, accountant=name) for name in ("rdp", "prv")})  # gdp: experimental
    return out


def _loader(x: torch.Tensor, y: torch.Tensor, lot_size: int, seed: int) -> DataLoader:
    return DataLoader(TensorDataset(x, y), batch_size=lot_size, shuffle=False, generator=generator(seed))


def make_private(model: nn.Module, x: torch.Tensor, y: torch.Tensor, settings: DPSettings, seed: int,
                 device: torch.device | None = None):
    """Opacus' `make_private` on `model` (trainable parameters only) with SGD + momentum.

    Returns (engine, private_model, optimizer, criterion, loader): the loader draws Poisson
    lots with a generator seeded by `seed`; the noise comes from its own seeded generator.
    """
    from opacus import PrivacyEngine

    settings.check()
    device = device or next(model.parameters()).device
    if not any(p.requires_grad for p in model.parameters()):
        raise LabkitError("every parameter is frozen: nothing to train")
    model.train()  # Opacus validates the module in training mode
    optimizer = make_optimizer(model, "sgd", settings.lr)
    for group in optimizer.param_groups:
        group["momentum"] = settings.momentum
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Secure RNG turned off.*")
        engine = PrivacyEngine(accountant=settings.accountant)
    noise_gen = torch.Generator(device=device).manual_seed(int(seed) + 1)
    out = engine.make_private(
        module=model, optimizer=optimizer, data_loader=_loader(x, y, settings.lot_size, seed),
        noise_multiplier=float(settings.noise_multiplier), max_grad_norm=float(settings.max_grad_norm),
        grad_sample_mode=settings.grad_sample_mode, criterion=nn.CrossEntropyLoss(),
        noise_generator=noise_gen, poisson_sampling=True)
    if settings.grad_sample_mode == "ghost":
        private_model, dp_optimizer, criterion, loader = out
    else:
        (private_model, dp_optimizer, loader), criterion = out, nn.CrossEntropyLoss()
    return engine, private_model, dp_optimizer, criterion, loader


def train_dp(model: nn.Module, x: torch.Tensor, y: torch.Tensor, settings: DPSettings, *, seed: int = 0,
             device: torch.device | None = None,
             eval_sets: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
             progress: bool = True, desc: str = "dp-sgd") -> dict:
    """Train `model`'s trainable parameters in place with DP-SGD (Opacus); frozen ones stay.

    Returns {"history": per-epoch dicts (epoch, loss, <name>_accuracy), "epsilon": ε at
    settings.delta (inf when σ = 0), "delta", "steps", "sample_rate", "accountant"}.
    """
    from opacus.utils.batch_memory_manager import BatchMemoryManager

    device = prepare(model, seed, device)
    engine, private_model, optimizer, criterion, loader = make_private(model, x, y, settings, seed, device)
    with warnings.catch_warnings(), BatchMemoryManager(
            data_loader=loader, max_physical_batch_size=MAX_PHYSICAL_BATCH, optimizer=optimizer) as lots:
        # benign: the images do not require gradients, so the first layer's hook sees outputs only
        warnings.filterwarnings("ignore", message="Full backward hook is firing")
        history = run_epochs(private_model, optimizer, lambda epoch: ((xb, yb, None) for xb, yb in lots),
                             epochs=settings.epochs, device=device,
                             loss_fn=lambda net, xb, yb: criterion(net(xb), yb),
                             eval_sets=eval_sets, eval_model=model, progress=progress, desc=desc)
    steps = sum(count for _, _, count in engine.accountant.history)
    eps = float("inf") if settings.noise_multiplier == 0 else float(engine.get_epsilon(settings.delta))
    private_model.to_standard_module()  # removes Opacus' hooks and per-sample attributes
    model.eval()
    return {"history": history, "epsilon": eps, "delta": settings.delta, "steps": int(steps),
            "sample_rate": sample_rate(len(y), settings.lot_size), "accountant": settings.accountant,
            "lr": settings.lr}


def train_sgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, settings: DPSettings, *, seed: int = 0,
              device: torch.device | None = None,
              eval_sets: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
              progress: bool = True, desc: str = "sgd baseline") -> dict:
    """The thesis' SGD baseline: same optimizer (SGD, momentum), lot size, epochs and frozen
    layers as `train_dp`, shuffled batches, no clipping or noise, lr from `baseline_lr` (with the
    initial model's `clip_scale`). The returned dict also holds that "lr"."""
    settings.check()
    if settings.momentum != MOMENTUM:
        raise LabkitError(f"the SGD baseline uses momentum {MOMENTUM} (labkit.train); got {settings.momentum}")
    lr = baseline_lr(settings.lr, settings.lot_size,
                     clip_scale=clip_scale(model.cpu(), x, y, settings.max_grad_norm))
    history = train_plain(model, x, y, epochs=settings.epochs, batch_size=settings.lot_size, lr=lr,
                          optimizer="sgd", seed=seed, device=device, eval_sets=eval_sets,
                          progress=progress, desc=desc)
    return {"history": history, "epsilon": float("inf"), "delta": settings.delta,
            "steps": steps_for(len(y), settings.lot_size, settings.epochs),
            "sample_rate": sample_rate(len(y), settings.lot_size), "accountant": "none", "lr": lr}


def per_example_gradient_norms(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(N,) L2 norms of each example's loss gradient over the trainable parameters (the
    quantity DP-SGD clips to C), by plain autograd one example at a time."""
    params = [p for p in model.parameters() if p.requires_grad]
    norms = []
    model.eval()
    for xi, yi in zip(x, y):
        loss = F.cross_entropy(model(xi[None]), yi[None])
        grads = torch.autograd.grad(loss, params)
        norms.append(torch.sqrt(sum((g ** 2).sum() for g in grads)))
    return torch.stack(norms).detach()

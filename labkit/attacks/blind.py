"""Blind backdoors (Bagdasaryan & Shmatikov): the attacker compromises the *loss computation*.

The training code stays as it was — `loss = loss_fn(model, x, y); loss.backward(); opt.step()` —
but `loss_fn` is replaced by a `BlindLoss`, which per batch
1. computes the main loss L_m = CE(θ(x), y);
2. if the recent clean loss is below the threshold T (optional), synthesises backdoor inputs
   x* = μ(x) (a trigger stamped on the batch) and labels y* = ν(y), and computes
   L_m* = CE(θ(x*), y*);
3. optionally (Neural Cleanse evasion) takes one Neural Cleanse step on its own trigger model
   (mask m, pattern p: the smallest trigger that sends the batch to the target label) and
   computes L_ev = CE(θ((1−m)x + m·p), y): inputs carrying *that* trigger keep their label;
4. returns α0·L_m + α1·L_m* (+ α2·L_ev) with α from MGDA (min-norm point of the normalised
   task gradients) or fixed scales, and records α for every step.

Images (N, C, H, W) in [0, 1] (0–1 pixel scale). The attacker never sees the dataset, the
hyperparameters or the trained model: only the batches that pass through the loss.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from labkit import config
from labkit.attacks import calculator, mgda
from labkit.errors import LabkitError
from labkit.models import TriggerModel
from labkit.train import train
from labkit.triggers import Trigger

BALANCES = ("mgda", "fixed")
TASKS = ("main", "backdoor", "evasion")


@dataclass(frozen=True)
class Synthesizer:
    """μ and ν: `inputs(x)` stamps the trigger; `backdoor_label(y)` / `main_label(y)` map the
    dataset's labels to the backdoor task's and the main task's class indices."""

    name: str
    trigger: Trigger
    main_label: Callable[[torch.Tensor], torch.Tensor]
    backdoor_label: Callable[[torch.Tensor], torch.Tensor]
    target: int | None = None  # the single backdoor label, when there is one

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        return self.trigger.apply(x)


def label_as(target: int, trigger: Trigger, name: str) -> Synthesizer:
    """Classification backdoor: any input with `trigger` is labelled `target` (the slides' 'hen')."""
    return Synthesizer(name, trigger, lambda y: y, lambda y: torch.full_like(y, target), target)


def add_multiply(trigger: Trigger) -> Synthesizer:
    """The calculator: labels are pair codes; main task = sum, backdoor task = product."""
    return Synthesizer("calculator", trigger, calculator.sum_class, calculator.product_class, None)


@dataclass
class StepRecord:
    active: bool
    weights: list[float]  # α for (main, backdoor[, evasion]); (1, 0[, 0]) when inactive
    losses: list[float]


@dataclass
class BlindLoss:
    """The compromised loss: `loss = blind(model, x, y)` in place of `CE(model(x), y)`.

    balance: "mgda" or "fixed" (then `fixed_scales` = α, summing to 1). normalization: MGDA's
    gradient normalisation (mgda.NORMALIZATIONS). threshold: attack only while the mean clean
    loss of the last `window` batches is below it (None: always). evasion: add L_ev, with one
    Neural Cleanse step (Adam, lr `nc_lr`, L1 weight `nc_lambda`) on the trigger model per batch.
    """

    synthesizer: Synthesizer
    balance: str = "mgda"
    normalization: str = "loss+"
    fixed_scales: tuple[float, ...] = (0.5, 0.5)
    evasion: bool = False
    threshold: float | None = None
    window: int = 10
    mgda_max_iter: int = 250
    nc_lr: float = 0.1
    nc_lambda: float = 1e-3
    seed: int = 0
    records: list[StepRecord] = field(default_factory=list)

    def __post_init__(self):
        if self.balance not in BALANCES:
            raise LabkitError(f"balance must be one of {', '.join(BALANCES)}, got {self.balance!r}")
        if self.normalization not in mgda.NORMALIZATIONS:
            raise LabkitError(f"normalization must be one of {', '.join(mgda.NORMALIZATIONS)}, got {self.normalization!r}")
        if self.evasion and self.synthesizer.target is None:
            raise LabkitError("the Neural Cleanse evasion loss needs a single target label (not the calculator)")
        tasks = 3 if self.evasion else 2
        if self.balance == "fixed":
            if len(self.fixed_scales) != tasks:
                raise LabkitError(f"fixed_scales needs {tasks} weights (main, backdoor{', evasion' if self.evasion else ''})")
            mgda.check_fixed_scales(self.fixed_scales)
        self._recent = deque(maxlen=self.window)
        self._trigger_model: TriggerModel | None = None
        self._nc_opt = None

    @property
    def tasks(self) -> tuple[str, ...]:
        return TASKS if self.evasion else TASKS[:2]

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        y_main = self.synthesizer.main_label(y)
        loss_main = F.cross_entropy(model(x), y_main)
        self._recent.append(float(loss_main.detach()))
        if self.threshold is not None and sum(self._recent) / len(self._recent) >= self.threshold:
            zeros = [0.0] * (len(self.tasks) - 1)
            self.records.append(StepRecord(False, [1.0] + zeros, [float(loss_main.detach())] + zeros))
            return loss_main
        losses = [loss_main,
                  F.cross_entropy(model(self.synthesizer.inputs(x)), self.synthesizer.backdoor_label(y))]
        if self.evasion:
            trigger_model = self._neural_cleanse_step(model, x)
            with torch.no_grad():
                x_nc = trigger_model(x)
            losses.append(F.cross_entropy(model(x_nc), y_main))
        stacked = torch.stack(losses)
        if self.balance == "mgda":
            params = [p for p in model.parameters() if p.requires_grad]
            grads = torch.stack([torch.cat([g.flatten() for g in torch.autograd.grad(loss, params, retain_graph=True)])
                                 for loss in losses])
            alpha = mgda.scales(grads, stacked.detach(), self.normalization, self.mgda_max_iter).weights
        else:
            alpha = torch.tensor(self.fixed_scales, dtype=torch.float64)
        self.records.append(StepRecord(True, alpha.tolist(), stacked.detach().tolist()))
        return (alpha.to(stacked.dtype).to(stacked.device) * stacked).sum()

    def _neural_cleanse_step(self, model: nn.Module, x: torch.Tensor) -> TriggerModel:
        """One step of Neural Cleanse's objective CE(θ(trigger(x)), target) + λ‖m‖₁ on the trigger only."""
        if self._trigger_model is None:
            self._trigger_model = TriggerModel(x.shape[1:], self.seed).to(x.device)
            self._nc_opt = torch.optim.Adam(self._trigger_model.parameters(), lr=self.nc_lr, betas=(0.5, 0.9))
        tm = self._trigger_model
        target = torch.full((len(x),), self.synthesizer.target, dtype=torch.int64, device=x.device)
        objective = F.cross_entropy(model(tm(x)), target) + self.nc_lambda * tm.mask().sum()
        grads = torch.autograd.grad(objective, list(tm.parameters()))  # the model's .grad stays untouched
        for p, g in zip(tm.parameters(), grads):
            p.grad = g
        self._nc_opt.step()
        return tm

    def trigger_model(self) -> TriggerModel | None:
        """The evasion's current Neural Cleanse trigger (None before the first evasion step)."""
        return self._trigger_model

    def weights(self) -> torch.Tensor:
        """(steps, tasks) α recorded at every training step."""
        return torch.tensor([r.weights for r in self.records], dtype=torch.float64)

    def active(self) -> torch.Tensor:
        """(steps,) whether the attack was switched on at each step."""
        return torch.tensor([r.active for r in self.records], dtype=torch.bool)


def normal_loss(main_label: Callable[[torch.Tensor], torch.Tensor] = lambda y: y):
    """The unmodified training loss: CE(θ(x), main_label(y))."""
    def loss_fn(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(model(x), main_label(y))
    return loss_fn


def train_with_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn, *, epochs: int,
                    batch_size: int = 64, lr: float = 3e-3, optimizer: str = "adam", seed: int = 0,
                    grad_clip: float | None = None, noise_multiplier: float = 0.0,
                    device: torch.device | None = None, evaluate: Callable[[nn.Module], dict] | None = None,
                    progress: bool = True, desc: str = "train") -> list[dict]:
    """The victim's training loop — `labkit.train.train` itself — with the loss computation `loss_fn`.

    DP-style gradient shaping (the slides' g = Clip(∇ℓ, S) + N(0, σ²)): with `grad_clip` = S the
    batch gradient is clipped to L2 norm S and Gaussian noise of std `noise_multiplier`·S/batch
    is added to every coordinate (the noise DP-SGD adds to a mean of clipped gradients).
    Returns one dict per epoch: `epoch`, `loss` (mean of what `loss_fn` returned), plus `evaluate(model)`.
    """
    device = device or config.device()
    noise_gen = torch.Generator(device=device).manual_seed(seed + 1)
    shaping = None if grad_clip is None else (
        lambda m, batch: shape_gradient(m, grad_clip, noise_multiplier, batch, noise_gen))
    return train(model, x, y, epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer, seed=seed,
                 device=device, loss_fn=loss_fn, after_backward=shaping,
                 track=None if evaluate is None else (lambda m, epoch: evaluate(m)), progress=progress, desc=desc)


def shape_gradient(model: nn.Module, clip: float, noise_multiplier: float, batch: int,
                   gen: torch.Generator) -> None:
    """Clip the model's whole gradient to L2 norm `clip`, then add N(0, (σ·clip/batch)²) noise."""
    params = [p for p in model.parameters() if p.grad is not None]
    nn.utils.clip_grad_norm_(params, clip)
    if noise_multiplier > 0:
        std = noise_multiplier * clip / batch
        for p in params:
            p.grad.add_(torch.randn(p.grad.shape, generator=gen, device=p.grad.device) * std)

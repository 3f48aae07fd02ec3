"""THE training loop (tqdm.auto progress, optional crop+flip augmentation, CUDA when the
profile allows, deterministic on CPU), with the hooks the papers need — a loss over the batch
(blind backdoors' loss computation, a VAE's ELBO), a per-batch transform (PGD adversarial
training), a step after backward (gradient shaping) — and batched evaluation helpers.

Images are (N, C, H, W) float in [0, 1]; labels (N,) int64.
"""
from __future__ import annotations

from typing import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from labkit import config
from labkit.seed import generator, seed_everything

# Forward passes without batch statistics (eval mode) run EVAL_BATCH images at a time: on the CPU 64-image chunks
# keep the activations in cache — 2,000 MNIST images through the lab CNN take 0.17–0.21 s in chunks of 64 against
# 0.87 s in chunks of 1,024 (one thread; `labkit bench eval-batch`). Each image's output is the same bits in any
# batch of at least SMALLEST_CHUNK images, but oneDNN takes other kernels for a few images (batches of 1–3 on one
# thread; 1–3, 5–7 and 9–11 on two), so a short last chunk joins the one before it (tests/test_train.py).
EVAL_BATCH = 64
SMALLEST_CHUNK = 16


def chunks(x: torch.Tensor, size: int = EVAL_BATCH) -> list[torch.Tensor]:
    """`x` split along its first dimension into pieces of `size` rows, a last piece of fewer than SMALLEST_CHUNK
    rows joined to the one before it (so every piece of a long `x` has at least SMALLEST_CHUNK rows)."""
    pieces = list(x.split(size))
    if len(pieces) > 1 and len(pieces[-1]) < SMALLEST_CHUNK:
        pieces[-2:] = [torch.cat(pieces[-2:])]
    return pieces


def progress_kwargs(progress: bool) -> dict:
    """tqdm keyword arguments: off when `progress` is False; otherwise tqdm decides (TQDM_DISABLE=1 hides bars)."""
    return {} if progress else {"disable": True}


def augmenter(image_size: int, padding: int | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
    """Random crop (zero padding, default image_size/8) + horizontal flip, per image, via torchvision."""
    from labkit.compat import transforms_v2

    v2 = transforms_v2()
    pad = max(1, image_size // 8) if padding is None else padding
    per_image = v2.Compose([v2.RandomCrop(image_size, padding=pad), v2.RandomHorizontalFlip()])
    return lambda batch: torch.stack([per_image(image) for image in batch])


def make_optimizer(model: nn.Module, kind: str, lr: float, weight_decay: float = 0.0):
    params = [p for p in model.parameters() if p.requires_grad]
    if kind == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if kind == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {kind!r}; choose adam or sgd")


LR_SCHEDULES = ("constant", "cosine")


def make_schedule(opt, kind: str, total_steps: int):
    """A per-step learning-rate scheduler: constant, or cosine annealing to 0 over `total_steps`."""
    if kind == "constant":
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
    if kind == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, total_steps))
    raise ValueError(f"unknown lr_schedule {kind!r}; choose one of {', '.join(LR_SCHEDULES)}")


def prepare(model: nn.Module, seed: int, device: torch.device | None = None) -> torch.device:
    """Seed every generator with `seed`, move `model` to `device` (None: the active profile's) and return
    it: how every training in labkit starts (`train` and DP-SGD's `train_dp`)."""
    seed_everything(seed)
    device = device or config.device()
    model.to(device)
    return device


Batch = tuple[torch.Tensor, torch.Tensor, "torch.Tensor | None"]  # images, labels, their indices (or None)
_TRAININGS = [0]  # run_epochs calls in this process


def trainings_run() -> int:
    """How many trainings (`run_epochs` calls) this process has run: what `labkit bench course` counts."""
    return _TRAININGS[0]


def run_epochs(model: nn.Module, opt, batches: Callable[[int], Iterable[Batch]], *, epochs: int,
               device: torch.device, scheduler=None,
               loss_fn: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
               batch_transform: Callable[[nn.Module, torch.Tensor, torch.Tensor, int, torch.Tensor], torch.Tensor] | None = None,
               after_backward: Callable[[nn.Module, int], None] | None = None,
               eval_sets: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
               eval_model: nn.Module | None = None, track: Callable[[nn.Module, int], dict] | None = None,
               progress: bool = True, desc: str = "train") -> list[dict]:
    """THE loop: for each epoch, for each (xb, yb, idx) of `batches(epoch)`: transform, forward, loss,
    backward, `after_backward`, optimiser step, scheduler step. Returns one dict per epoch (see `train`).

    `batches` decides the sampling (shuffled mini-batches in `train`, Opacus' Poisson lots in DP-SGD);
    `eval_model` is evaluated instead of `model` (DP-SGD trains a wrapper of the model it reports on)."""
    _TRAININGS[0] += 1
    history = []
    bar = tqdm(range(1, epochs + 1), desc=desc, leave=False, **progress_kwargs(progress))
    for epoch in bar:
        model.train()
        total, count = 0.0, 0
        for xb, yb, idx in batches(epoch):
            if batch_transform is not None:
                xb = batch_transform(model, xb, yb, epoch, idx)
                model.train()
            xb, yb = xb.to(device), yb.to(device)
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model, xb, yb) if loss_fn is not None else F.cross_entropy(model(xb), yb)
            loss.backward()
            if after_backward is not None:
                after_backward(model, len(yb))
            opt.step()
            if scheduler is not None:
                scheduler.step()
            total += float(loss.item()) * len(yb)
            count += len(yb)
        row = {"epoch": epoch, "loss": total / max(count, 1)}
        for name, (xe, ye) in (eval_sets or {}).items():
            row[f"{name}_accuracy"] = accuracy(eval_model or model, xe, ye)
        if track is not None:
            row.update(track(model, epoch))
        history.append(row)
        bar.set_postfix(loss=f"{row['loss']:.3f}")
    model.eval()
    return history


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int, batch_size: int = 64,
          lr: float = 3e-3, optimizer: str = "adam", weight_decay: float = 0.0, lr_schedule: str = "constant",
          augment: bool = False,
          seed: int = 0, device: torch.device | None = None,
          eval_sets: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
          track: Callable[[nn.Module, int], dict] | None = None,
          loss_fn: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
          batch_transform: Callable[[nn.Module, torch.Tensor, torch.Tensor, int, torch.Tensor], torch.Tensor] | None = None,
          after_backward: Callable[[nn.Module, int], None] | None = None,
          progress: bool = True, desc: str = "train") -> list[dict]:
    """Train `model` in place with shuffled mini-batches and `optimizer`; return one dict per epoch.

    Each dict holds `epoch`, `loss` (mean training loss), and `<name>_accuracy` for each
    of `eval_sets`, plus whatever `track(model, epoch)` returns (e.g. per-group losses).
    `lr_schedule`: "constant", or "cosine" (lr falls to 0 along a half cosine over all steps).
    Hooks: `loss_fn(model, xb, yb)` replaces cross-entropy; `batch_transform(model, xb, yb, epoch,
    idx)` returns the batch's images to train on (before they move to the device); `after_backward(
    model, batch_len)` runs between backward and the optimiser step (e.g. clip and add noise).
    """
    device = prepare(model, seed, device)
    opt = make_optimizer(model, optimizer, lr, weight_decay)
    scheduler = make_schedule(opt, lr_schedule, epochs * -(-len(y) // batch_size))
    augment_fn = augmenter(x.shape[-1]) if augment else None
    order_gen = generator(seed)

    def shuffled(epoch: int):
        for idx in torch.randperm(len(y), generator=order_gen).split(batch_size):
            xb = x[idx] if augment_fn is None else augment_fn(x[idx])
            yield xb, y[idx], idx

    return run_epochs(model, opt, shuffled, epochs=epochs, device=device, scheduler=scheduler, loss_fn=loss_fn,
                      batch_transform=batch_transform, after_backward=after_backward, eval_sets=eval_sets,
                      track=track, progress=progress, desc=desc)


def forward_in_chunks(model: nn.Module, x: torch.Tensor, batch_size: int = EVAL_BATCH) -> torch.Tensor:
    """`model(x)` for x (N, ...) on the model's device, `batch_size` rows at a time, concatenated: the same
    numbers as one pass for a model in eval mode (no batch statistics), with autograd flowing through
    (input gradients of Neural Cleanse and PGD), faster on the CPU (see EVAL_BATCH)."""
    if model.training and any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        raise ValueError("forward_in_chunks needs the model in eval mode: BatchNorm's batch statistics span chunks")
    return torch.cat([model(xb) for xb in chunks(x, batch_size)])


@torch.no_grad()
def logits(model: nn.Module, x: torch.Tensor, batch_size: int = EVAL_BATCH) -> torch.Tensor:
    """(N, classes) logits on CPU, computed in eval mode in batches on the model's device."""
    model.eval()
    device = next(model.parameters()).device
    return torch.cat([model(xb.to(device)).cpu() for xb in chunks(x, batch_size)]) if len(x) else torch.empty(0)


def predict(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """(N,) predicted labels."""
    return logits(model, x).argmax(dim=1)


def predict_proba(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """(N, classes) softmax probabilities."""
    return logits(model, x).softmax(dim=1)


def per_sample_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(N,) cross-entropy of each sample."""
    return F.cross_entropy(logits(model, x), y, reduction="none")


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of `x` classified as `y`."""
    return float((predict(model, x) == y).float().mean()) if len(y) else float("nan")

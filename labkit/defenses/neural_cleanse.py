"""Neural Cleanse (Wang et al., S&P 2019): reverse-engineer the smallest trigger for every label,
then flag labels whose trigger is abnormally small (MAD outlier test).

Follows the authors' reference implementation (bolunwang/backdoor, `visualizer.py`):
- mask m (H, W), shared by all channels, and pattern p (C, H, W), both through tanh into [0, 1]:
  m = tanh(a) / (2 − ε) + 0.5; the stamped image is x' = (1 − m)⊙x + m⊙p in pixel space (0–1 scale);
- loss CE(f(x'), label) + λ·‖m‖₁, Adam(lr 0.1, betas 0.5 / 0.9), random uniform initialisation;
- λ schedule (`schedule_step`): λ = 0 until the attack succeeds on ≥ 99% of inputs for 5 epochs in a row,
  then 1e-3; ×2 after 5 successful epochs, ÷2^1.5 after 5 failing ones; keep the smallest-‖m‖₁ mask
  among successful epochs; stop early once λ has moved up and down and the best has not improved
  for 25 epochs.

The reference scans labels one at a time. `reverse_engineer(mode="batched")` optimises every label
at once: the masks and patterns are stacked (L, ...) tensors and each mini-batch is stamped with all L
triggers and sent through the model in one forward pass. Labels do not interact (each label's loss
depends only on its own mask and pattern, and Adam is element-wise), so both modes solve the same
problems; `mode="per-label"` runs the same code with L = 1 for comparison.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from labkit import config
from labkit.errors import LabkitError
from labkit.metrics import anomaly_index, flag_small_outliers
from labkit.seed import generator
from labkit.triggers import from_unit, stamp, to_unit
from labkit.train import chunks, forward_in_chunks, progress_kwargs

MODES = ("batched", "per-label")


@dataclass(frozen=True)
class Schedule:
    """The reference's λ-schedule constants (gtsrb_visualize_example.py)."""

    init_cost: float = 1e-3  # λ once the attack first succeeds for `patience` epochs
    threshold: float = 0.99  # an epoch "succeeds" when this fraction of stamped inputs hits the label
    patience: int = 5  # epochs in a row before λ is set / raised / lowered
    up: float = 2.0  # λ multiplier after `patience` successful epochs
    down: float = 2.0 ** 1.5  # λ divisor after `patience` failing epochs
    early_stop_patience: int = 25  # epochs without a better mask before stopping (once λ moved both ways)
    early_stop_threshold: float = 1.0  # "better" means best < threshold × previous best


@dataclass(frozen=True)
class ScheduleState:
    """Where one label's λ schedule stands; `best` is the smallest successful ‖m‖₁ so far."""

    cost: float = 0.0
    set_counter: int = 0
    up_counter: int = 0
    down_counter: int = 0
    moved_up: bool = False
    moved_down: bool = False
    best: float = math.inf
    early_best: float = math.inf
    early_counter: int = 0
    stopped: bool = False


def schedule_step(state: ScheduleState, success: float, l1: float,
                  schedule: Schedule = Schedule()) -> tuple[ScheduleState, bool]:
    """One epoch of the reference's bookkeeping, in its order: keep best → early stop → adjust λ.

    `success` is the epoch's attack success (fraction), `l1` its mean ‖m‖₁ (pixels).
    Returns (new state, improved): `improved` means the current mask is the new best to keep.
    """
    s = schedule
    improved = success >= s.threshold and l1 < state.best
    best = l1 if improved else state.best
    early_counter, early_best = state.early_counter, state.early_best
    if best < math.inf:  # only count once a successful mask exists
        early_counter = early_counter + 1 if best >= s.early_stop_threshold * early_best else 0
    early_best = min(best, early_best)
    if state.moved_up and state.moved_down and early_counter >= s.early_stop_patience:
        return replace(state, best=best, early_best=early_best, early_counter=early_counter, stopped=True), improved

    cost, set_counter = state.cost, state.set_counter
    up_counter, down_counter = state.up_counter, state.down_counter
    moved_up, moved_down = state.moved_up, state.moved_down
    if cost == 0 and success >= s.threshold:
        set_counter += 1
        if set_counter >= s.patience:  # first λ: from here the schedule starts afresh
            cost, up_counter, down_counter, moved_up, moved_down = s.init_cost, 0, 0, False, False
    else:
        set_counter = 0
    if success >= s.threshold:
        up_counter, down_counter = up_counter + 1, 0
    else:
        up_counter, down_counter = 0, down_counter + 1
    if up_counter >= s.patience:
        up_counter, cost, moved_up = 0, cost * s.up, True
    elif down_counter >= s.patience:
        down_counter, cost, moved_down = 0, cost / s.down, True
    new = ScheduleState(cost, set_counter, up_counter, down_counter, moved_up, moved_down,
                        best, early_best, early_counter, False)
    return new, improved


def initial_parameters(num_labels: int, image_shape, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference's random start (uniform mask and pattern), as tanh parameters (L, H, W), (L, C, H, W)."""
    channels, height, width = image_shape
    gen = generator(seed)
    mask = torch.rand(num_labels, height, width, generator=gen)
    pattern = torch.rand(num_labels, channels, height, width, generator=gen)
    return from_unit(mask), from_unit(pattern)


def optimisation_copy(model, device: torch.device):
    """A frozen eval-mode copy of `model` on `device` in channels-last layout; the caller's model is untouched.

    Reverse engineering needs gradients for the input only, so the copy's parameters are frozen. On CPU the
    channels-last layout speeds up the max-pool and ReLU passes that weigh most in this input-gradient work:
    all 10 labels of the lab profile's digits model take 17.5 s instead of 21 s on 2 cores.
    """
    net = copy.deepcopy(model).eval().to(device, memory_format=torch.channels_last)
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def _optimise(model, x: torch.Tensor, labels: list[int], mask_raw: torch.Tensor, pattern_raw: torch.Tensor,
              *, epochs: int, batch_size: int, lr: float, seed: int, schedule: Schedule,
              device: torch.device, progress: bool, desc: str) -> dict:
    """Optimise len(labels) triggers together from the given tanh parameters; see `reverse_engineer`."""
    count = len(labels)
    mask_raw = mask_raw.clone().to(device).requires_grad_(True)
    pattern_raw = pattern_raw.clone().to(device).requires_grad_(True)
    opt = torch.optim.Adam([mask_raw, pattern_raw], lr=lr, betas=(0.5, 0.9))
    targets = torch.tensor(labels, device=device)
    states = [ScheduleState() for _ in range(count)]
    best_mask = torch.zeros(count, *mask_raw.shape[1:])
    best_pattern = torch.zeros(count, *pattern_raw.shape[1:])
    found = [False] * count
    trace = {key: torch.full((epochs, count), float("nan")) for key in ("cost", "success", "l1")}
    order_gen = generator(seed)
    epochs_run = [0] * count
    bar = tqdm(range(epochs), desc=desc, leave=False, **progress_kwargs(progress))
    for epoch in bar:
        active = [i for i in range(count) if not states[i].stopped]
        if not active:
            break
        rows = torch.tensor(active, device=device)
        cost = torch.tensor([states[i].cost for i in active], device=device)
        hits = torch.zeros(len(active), device=device)
        l1_sum = torch.zeros(len(active), device=device)
        batches = 0
        for idx in torch.randperm(len(x), generator=order_gen).split(batch_size):
            xb = x[idx].to(device)
            masks, patterns = to_unit(mask_raw[rows]), to_unit(pattern_raw[rows])
            stamped = stamp(xb, masks, patterns)  # (A, B, C, H, W): one forward pass for all labels
            out = forward_in_chunks(model, stamped.flatten(0, 1)).view(len(active), len(idx), -1)
            wanted = targets[rows][:, None].expand(-1, len(idx))
            ce = F.cross_entropy(out.flatten(0, 1), wanted.flatten(), reduction="none").view(len(active), -1).mean(1)
            l1 = masks.abs().sum(dim=(1, 2))
            loss = (ce + cost * l1).sum()  # labels are independent: the sum's gradient is each label's own
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            hits += (out.argmax(-1) == wanted).float().mean(1).detach()
            l1_sum += l1.detach()
            batches += 1
        success, mean_l1 = (hits / batches).cpu(), (l1_sum / batches).cpu()
        for j, i in enumerate(active):
            trace["cost"][epoch, i] = states[i].cost
            trace["success"][epoch, i], trace["l1"][epoch, i] = success[j], mean_l1[j]
            states[i], improved = schedule_step(states[i], float(success[j]), float(mean_l1[j]), schedule)
            epochs_run[i] = epoch + 1
            if improved:  # the reference keeps the mask as it stands at the end of the epoch
                best_mask[i] = to_unit(mask_raw[i]).detach().cpu()
                best_pattern[i] = to_unit(pattern_raw[i]).detach().cpu()
                found[i] = True
    for i in range(count):
        if not found[i]:  # no successful mask: keep the last one, as the reference does
            best_mask[i] = to_unit(mask_raw[i]).detach().cpu()
            best_pattern[i] = to_unit(pattern_raw[i]).detach().cpu()
    return {"masks": best_mask, "patterns": best_pattern, "found": found, "epochs_run": epochs_run,
            "final_cost": [s.cost for s in states], "trace": trace}


def reverse_engineer(model, x_clean: torch.Tensor, num_classes: int, *, labels=None, mode: str = "batched",
                     epochs: int = 120, batch_size: int = 32, lr: float = 0.1, seed: int = 0,
                     schedule: Schedule = Schedule(), device: torch.device | None = None,
                     progress: bool = True) -> dict:
    """The smallest trigger that sends every image of `x_clean` (N, C, H, W; 0–1) to each label.

    `labels` defaults to all `num_classes`; `mode` is "batched" (all labels in one problem) or
    "per-label" (the reference's loop). `epochs` is the most epochs per label (the reference: up to
    1,000, over 1,000 images in batches of 32; experiments take the profile's from their sizes).
    Returns per-label (L = len(labels)) tensors: `masks` (L, H, W) and `patterns` (L, C, H, W) in [0, 1],
    `l1_norms` (L,) = ‖m‖₁ in pixels, `success` (L,) attack success of the kept trigger on `x_clean`,
    `found` (L,) bool (a ≥ 99% mask was found), `epochs_run` (L,), `final_cost` (L,), and `trace`
    {cost, success, l1: (epochs, L) per-epoch values, NaN after a label stopped}.
    """
    if mode not in MODES:
        raise LabkitError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    labels = list(range(num_classes)) if labels is None else [int(label) for label in labels]
    if not labels or any(not 0 <= label < num_classes for label in labels):
        raise LabkitError(f"labels must be in [0, {num_classes - 1}], got {labels}")
    if x_clean.ndim != 4 or len(x_clean) == 0:
        raise LabkitError(f"x_clean must be a non-empty (N, C, H, W) batch, got shape {tuple(x_clean.shape)}")
    device = device or config.device()
    net = optimisation_copy(model, device)
    mask_raw, pattern_raw = initial_parameters(len(labels), x_clean.shape[1:], seed)
    settings = dict(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, schedule=schedule,
                    device=device, progress=progress)
    if mode == "batched":
        parts = [_optimise(net, x_clean, labels, mask_raw, pattern_raw, desc="neural cleanse (all labels)",
                           **settings)]
    else:
        parts = [_optimise(net, x_clean, [label], mask_raw[i:i + 1], pattern_raw[i:i + 1],
                           desc=f"neural cleanse (label {label})", **settings)
                 for i, label in enumerate(labels)]
    masks = torch.cat([p["masks"] for p in parts])
    patterns = torch.cat([p["patterns"] for p in parts])
    return {
        "labels": labels,
        "masks": masks,
        "patterns": patterns,
        "l1_norms": masks.abs().sum(dim=(1, 2)),
        "success": trigger_success(net, x_clean, masks, patterns, labels),
        "found": torch.tensor([f for p in parts for f in p["found"]]),
        "epochs_run": torch.tensor([e for p in parts for e in p["epochs_run"]]),
        "final_cost": torch.tensor([c for p in parts for c in p["final_cost"]]),
        "trace": {key: torch.cat([p["trace"][key] for p in parts], dim=1) for key in ("cost", "success", "l1")},
    }


@torch.no_grad()
def trigger_success(model, x: torch.Tensor, masks: torch.Tensor, patterns: torch.Tensor, labels) -> torch.Tensor:
    """(L,) fraction of `x` sent to labels[l] by trigger l (masks (L, H, W), patterns (L, C, H, W))."""
    model.eval()
    device = next(model.parameters()).device
    rates = []
    for mask, pattern, label in zip(masks, patterns, labels):
        stamped = stamp(x, mask[None], pattern[None])[0]
        pred = torch.cat([model(xb.to(device)).argmax(1).cpu() for xb in chunks(stamped)])
        rates.append(float((pred == label).float().mean()))
    return torch.tensor(rates)


def detect(l1_norms, threshold: float = 2.0) -> dict:
    """MAD outlier test on per-label ‖m‖₁ (L,): `anomaly_index` (L,) = |v − median| / (1.4826·MAD);
    `flagged_labels`: positions below the median with index > `threshold`; `suspect_label`: the
    smallest norm and `suspect_index` its anomaly index (the paper's Fig. 3 quantity)."""
    norms = torch.as_tensor(l1_norms, dtype=torch.float64)
    index = anomaly_index(norms)
    suspect = int(norms.argmin())
    return {"anomaly_index": index, "flagged_labels": flag_small_outliers(norms, threshold),
            "suspect_label": suspect, "suspect_index": float(index[suspect])}

"""STRIP (Gao et al. 2019): flag trojaned inputs at run time by superimposing them with clean images.

A clean input blended with other clean images gets varied, uncertain predictions (high entropy);
a trojaned input keeps predicting the target class because the trigger survives the blend
(low entropy). For each input x: N perturbed copies x + h_j (h_j random held-out clean images,
added and clipped to [0, 1] as the paper's `cv2.addWeighted(x, 1, h, 1, 0)` saturates), the
Shannon entropy in bits of each copy's softmax **over classes**, averaged over the N copies.
An input is flagged when its entropy is below a threshold chosen at a preset false rejection
rate on benign entropies. Images are (N, C, H, W) in [0, 1] (0–1 pixel scale).
"""
from __future__ import annotations

import math

import torch

from labkit.errors import LabkitError
from labkit.metrics import frr_far
from labkit.seed import generator
from labkit.train import forward_in_chunks

METHODS = ("normal", "quantile")
MAX_COPIES_PER_PASS = 8192  # copies superimposed at once: inputs per chunk = this // n (at least 1)


def superimpose(x: torch.Tensor, overlays: torch.Tensor) -> torch.Tensor:
    """x (B, C, H, W) and overlays (B, n, C, H, W) → (B, n, C, H, W) copies x + overlay, clipped to [0, 1]."""
    return (x.unsqueeze(1) + overlays).clamp(0, 1)


def entropy_bits(probs: torch.Tensor) -> torch.Tensor:
    """Shannon entropy in bits over the **last** axis (classes): (..., M) → (...). 0·log 0 = 0."""
    probs = probs.double()
    return -(probs * torch.log2(probs.clamp_min(1e-300))).sum(-1)


def mean_entropy(probs: torch.Tensor) -> torch.Tensor:
    """probs (B, n, M) of each input's n perturbed copies → (B,) entropy over classes, averaged over copies."""
    if probs.ndim != 3:
        raise LabkitError(f"expected probabilities of shape (inputs, copies, classes), got {tuple(probs.shape)}")
    return entropy_bits(probs).mean(dim=1)


def overlay_indices(count: int, holdout_size: int, n: int, seed: int) -> torch.Tensor:
    """(count, n) random indices into the held-out set, drawn with their own generator."""
    if holdout_size < 1:
        raise LabkitError("STRIP needs at least one held-out clean image to superimpose")
    return torch.randint(holdout_size, (count, n), generator=generator(seed))


@torch.no_grad()
def entropy_scores(model, x: torch.Tensor, x_holdout: torch.Tensor, n: int = 100, seed: int = 0) -> torch.Tensor:
    """(N,) STRIP entropy (bits) of each input `x` (N, C, H, W) against held-out clean images `x_holdout`.

    Each input gets `n` copies superimposed with random held-out images; the copies of a chunk of inputs
    go through the model `train.EVAL_BATCH` at a time. Low entropy = suspicious.
    """
    if n < 1:
        raise LabkitError(f"n (perturbed copies per input) must be an int in [1, 100000], got {n}")
    model.eval()
    device = next(model.parameters()).device
    picks = overlay_indices(len(x), len(x_holdout), n, seed)
    chunk = max(1, MAX_COPIES_PER_PASS // n)
    out = []
    for start in range(0, len(x), chunk):
        xb = x[start:start + chunk].to(device)
        overlays = x_holdout[picks[start:start + chunk]].to(device)  # (B, n, C, H, W)
        copies = superimpose(xb, overlays)
        logits = forward_in_chunks(model, copies.flatten(0, 1))  # all B·n copies, EVAL_BATCH at a time
        out.append(mean_entropy(logits.softmax(-1).view(len(xb), n, -1)).float().cpu())
    return torch.cat(out) if out else torch.empty(0)


def threshold_at_frr(benign_entropies: torch.Tensor, frr: float, method: str = "normal") -> float:
    """Entropy threshold that rejects a fraction `frr` of benign inputs (flag when entropy < threshold).

    method="normal" (the paper): fit a normal to the benign entropies (mean, sample std) and take
    its `frr` quantile; method="quantile": the empirical `frr` quantile of the benign entropies.
    """
    if not 0 < frr < 1:
        raise LabkitError(f"frr must be a float in (0, 1) (a fraction, not a percent), got {frr}")
    if method not in METHODS:
        raise LabkitError(f"unknown threshold method {method!r}; choose one of {', '.join(METHODS)}")
    values = torch.as_tensor(benign_entropies, dtype=torch.float64).flatten()
    if len(values) < 2:
        raise LabkitError("threshold_at_frr needs at least two benign entropies")
    if method == "normal":
        normal = torch.distributions.Normal(values.mean(), values.std())
        return float(normal.icdf(torch.tensor(frr, dtype=torch.float64)))
    return float(torch.quantile(values, frr))


def detection_rates(benign_entropies: torch.Tensor, trojan_entropies: torch.Tensor,
                    threshold: float) -> tuple[float, float]:
    """(FRR, FAR) at `threshold` via `labkit.metrics.frr_far`."""
    return frr_far(torch.as_tensor(benign_entropies), torch.as_tensor(trojan_entropies), threshold)


def rate_curve(benign_entropies: torch.Tensor, trojan_entropies: torch.Tensor,
               thresholds: torch.Tensor | None = None, points: int = 200) -> dict:
    """FRR and FAR at each of `thresholds` (default: `points` values spanning both score ranges)."""
    benign, trojan = torch.as_tensor(benign_entropies), torch.as_tensor(trojan_entropies)
    if thresholds is None:
        both = torch.cat([benign, trojan])
        low, high = float(both.min()), float(both.max())
        pad = 0.02 * (high - low) + 1e-6
        thresholds = torch.linspace(low - pad, high + pad, points)
    rates = [frr_far(benign, trojan, float(t)) for t in thresholds]
    return {"thresholds": torch.as_tensor(thresholds, dtype=torch.float32),
            "frr": torch.tensor([r[0] for r in rates]), "far": torch.tensor([r[1] for r in rates])}


def is_trojaned(entropies: torch.Tensor, threshold: float) -> torch.Tensor:
    """(N,) bool: STRIP's verdict (entropy below the threshold)."""
    return torch.as_tensor(entropies) < threshold


def guarded_predictions(predictions: torch.Tensor, entropies: torch.Tensor, threshold: float,
                        num_classes: int) -> torch.Tensor:
    """The combined pipeline's answer: the (fine-pruned) model's prediction, or `num_classes`
    (an extra "rejected" class, the report's M+1) where STRIP flags the input."""
    out = torch.as_tensor(predictions).clone()
    out[is_trojaned(entropies, threshold)] = num_classes
    return out


def confusion(truth: torch.Tensor, answers: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(num_classes + 1, num_classes + 1) counts: rows = expected answer, columns = given answer.

    The last row/column is the "rejected" class; a triggered input's expected answer is rejection.
    """
    size = num_classes + 1
    index = torch.as_tensor(truth).long() * size + torch.as_tensor(answers).long()
    return torch.bincount(index, minlength=size * size).view(size, size)


def entropy_normal_pdf(values: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """The normal density fitted to `values` (mean, sample std), evaluated on `grid` (for plots)."""
    values = torch.as_tensor(values, dtype=torch.float64)
    mean, std = float(values.mean()), float(values.std())
    grid = torch.as_tensor(grid, dtype=torch.float64)
    return torch.exp(-0.5 * ((grid - mean) / std) ** 2) / (std * math.sqrt(2 * math.pi))

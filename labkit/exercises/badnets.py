"""Notebook 01 (BadNets): the thesis' reduced-amplitude trigger and its simple detection score."""
from __future__ import annotations

import torch
from torch import nn

from labkit import triggers
from labkit.defenses import filtering
from labkit.exercises.core import Case, Exercise, Mistake

NOTEBOOK = "01_badnets"


# --- stamp_reduced: the trigger at amplitude a (thesis §3.5) ---

def _stamp_reference(x, mask, pattern, amplitude):
    return triggers.Trigger(mask, pattern, float(amplitude)).apply(x)


def _stamp_cases() -> list[Case]:
    gen = torch.Generator().manual_seed(1)
    grey, colour = (1, 16, 16), (3, 16, 16)
    bad, four, cross = (triggers.make(n, s) for n, s in (("badnets", grey), ("four-corner", grey), ("x", colour)))
    images = torch.rand((4, *grey), generator=gen)
    return [
        Case("4 random images (4, 1, 16, 16), BadNets trigger, amplitude 32", (images, bad.mask, bad.pattern, 32.0)),
        Case("the same images at full amplitude 255 (the BadNets paste)", (images, bad.mask, bad.pattern, 255.0)),
        Case("all-white images, amplitude 64 (white + a/255 must stay 1)", (torch.ones(2, *grey), bad.mask, bad.pattern, 64.0)),
        Case("all-black images, amplitude 16", (torch.zeros(2, *grey), bad.mask, bad.pattern, 16.0)),
        Case("one image (1, 16, 16) without a batch axis, four-corner trigger, amplitude 128",
             (images[0], four.mask, four.pattern, 128.0)),
        Case("3 random colour images (3, 3, 16, 16), the red 'x' trigger, amplitude 8",
             (torch.rand((3, *colour), generator=gen), cross.mask, cross.pattern, 8.0)),
    ]


def _sign(pattern):
    return 2 * pattern - 1


STAMP = Exercise(
    name="stamp_reduced", notebook=NOTEBOOK, pixels=True,
    summary="stamp a trigger at amplitude a: paste at a ≥ 255, else add ±a/255 on its white/black pixels and clip",
    reference=_stamp_reference, reference_name="labkit.triggers.Trigger.apply", cases=_stamp_cases,
    mistakes=(
        Mistake("inside the mask your pixels are pure black and white: that is the paste, or ±amplitude added on "
                "the 0–1 scale. Below 255 the thesis adds ±a/255 (a on the 0–255 scale, §3.5) and clips",
                lambda x, m, p, a: (x + m * _sign(p) * a).clamp(0, 1)),
        Mistake("clip the result to [0, 1]: a white pixel plus a/255 stays white, a black one minus a/255 stays black",
                lambda x, m, p, a: x + m * _sign(p) * (a / 255) if a < 255 else (1 - m) * x + m * p),
        Mistake("black pattern pixels *subtract* a/255: the sign is +1 on white (pattern 1) and −1 on black (pattern 0)",
                lambda x, m, p, a: (x + m * p * (a / 255)).clamp(0, 1)),
        Mistake("that is a blend (1 − α·m)·x + α·m·p; the thesis adds ±a/255 and clips instead",
                lambda x, m, p, a: (1 - (a / 255) * m) * x + (a / 255) * m * p),
    ),
)


# --- detection_score: the trusted model's probability of each sample's own label (thesis §3.1, §7.3) ---

class _GivenLogits(nn.Module):
    """A "model" whose input is its logits: feeding it log-probabilities returns those probabilities."""

    def __init__(self):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(0))  # labkit's predict helpers read the device from a parameter

    def forward(self, x):
        return x


def _score_reference(probs, labels):
    return filtering.label_probability(_GivenLogits(), torch.as_tensor(probs, dtype=torch.float64).log(),
                                       torch.as_tensor(labels))


def _score_cases() -> list[Case]:
    gen = torch.Generator().manual_seed(2)
    probs = torch.softmax(3 * torch.randn(8, 10, generator=gen, dtype=torch.float64), dim=1)
    labels = torch.randint(10, (8,), generator=gen)
    one_hot = torch.eye(4, dtype=torch.float64)[[0, 1, 2, 3, 0]]
    return [
        Case("8 samples, 10 classes, random softmax outputs", (probs, labels)),
        Case("one-hot outputs, labels that agree and disagree", (one_hot, torch.tensor([0, 1, 0, 3, 2]))),
        Case("a single sample", (probs[:1], labels[:1])),
        Case("every sample labelled 0", (probs, torch.zeros(8, dtype=torch.int64))),
    ]


def _take(probs, labels):
    return probs[torch.arange(len(labels)), labels]


SCORE = Exercise(
    name="detection_score", notebook=NOTEBOOK,
    summary="the trusted model's probability of each training sample's own label (low = suspicious)",
    reference=_score_reference, reference_name="labkit.defenses.filtering.label_probability", cases=_score_cases,
    mistakes=(
        Mistake("score each sample by the probability of *its own label*, probs[i, labels[i]], not by the model's top "
                "probability: a mislabelled image is one the model is sure belongs to another class",
                lambda probs, labels: probs.max(dim=1).values),
        Mistake("a low score must mean suspicious: return the probability of the label itself (the inspector reads "
                "the lowest scores first)", lambda probs, labels: 1 - _take(probs, labels)),
        Mistake("return the probability of the label, not its logarithm", lambda probs, labels: _take(probs, labels).log()),
        Mistake("return a probability per sample, not whether the model's prediction equals the label",
                lambda probs, labels: (probs.argmax(dim=1) == labels).double()),
    ),
)

EXERCISES = (STAMP, SCORE)

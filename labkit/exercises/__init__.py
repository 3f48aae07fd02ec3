"""Self-checking exercises: every notebook ends with a few, of two kinds.

- *Write it*: complete a short function the lesson just explained, then `exercises.check(fn)`. It runs `fn`
  against labkit's own implementation on random and edge-case inputs and prints ✓, or what is off with one
  hint (a shape, the 0–1 vs 0–255 pixel scale, a known mistake, the first failing input). A stub left as is
  prints "not attempted yet" and raises nothing.
- *Predict, then run*: `exercises.predict(question, choices=..., answer=..., reason=...)` asks in a widget
  before the cell that shows the answer, and reveals the reason once answered (`labkit.exercises.predict`).

One module per notebook declares its exercises (`EXERCISES`); solutions live in `notebooks/solutions/`.
This is face code: it imports the core, attacks and defenses, and nothing imports it.
"""
from __future__ import annotations

from typing import Callable

from labkit.exercises import (arena, badnets, blind, certified, dpsgd, fine_pruning, label_consistent,
                              neural_cleanse)
from labkit.exercises.core import NOT_ATTEMPTED, Case, Exercise, Mistake, Verdict, evaluate
from labkit.exercises.predict import Prediction, predict

__all__ = ["check", "predict", "for_notebook", "EXERCISES", "NOT_ATTEMPTED", "Case", "Exercise", "Mistake",
           "Prediction", "Verdict"]

MODULES = (badnets, label_consistent, dpsgd, certified, neural_cleanse, fine_pruning, blind, arena)
EXERCISES: dict[str, Exercise] = {}
for _module in MODULES:
    for _exercise in _module.EXERCISES:
        if _exercise.name in EXERCISES:
            raise RuntimeError(f"two exercises are named {_exercise.name!r}")
        EXERCISES[_exercise.name] = _exercise


def for_notebook(stem: str) -> list[Exercise]:
    """The write-it exercises of notebook `stem` (e.g. "01_badnets"), in the order they are declared."""
    return [e for e in EXERCISES.values() if e.notebook == stem]


def check(fn: Callable | None, name: str | None = None) -> Verdict:
    """Check the student's `fn` against labkit's implementation and print the verdict (✓, one hint, or
    "not attempted yet"). The exercise is found by the function's name, or by `name` if you renamed it.
    Never raises: the returned `Verdict` is truthy only when every input matched."""
    key = name or getattr(fn, "__name__", None)
    exercise = EXERCISES.get(key)
    if exercise is None:
        verdict = Verdict(str(key), False, f"✗ no exercise is called {key!r}: keep the function's name from the "
                                           f"exercise cell, or pass it: check(fn, name=...). Known: "
                                           f"{', '.join(EXERCISES)}")
    else:
        verdict = evaluate(exercise, fn)
    print(verdict.message)
    return verdict

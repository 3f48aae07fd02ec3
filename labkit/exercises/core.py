"""What a *write it* exercise is, and how `check` judges a student's function.

An `Exercise` names the function the student completes, labkit's own implementation of it (`reference`,
same signature), the inputs it is tried on (`cases`: random ones and edge cases, fixed seeds) and the
`mistakes` worth a specific hint (a wrong implementation each: when the student's output equals a mistake's,
its hint is the one shown). `evaluate` runs the student's function on every case and stops at the first
disagreement with ONE hint, in this order: an exception or a missing return value, a known mistake, the
number of returned values, the shape, NaNs, the 0–1 vs 0–255 pixel scale, and finally the first differing value.
A stub left as is (it raises NotImplementedError, or returns None or `...`) is "not attempted yet": nothing
raises, so a headless run of a notebook stays green.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

PASS, FAIL, TODO = "✓", "✗", "…"
NOT_ATTEMPTED = "not attempted yet"


@dataclass(frozen=True)
class Case:
    """One input: the arguments, and how a hint describes them (`label`)."""

    label: str
    args: tuple
    kwargs: dict = field(default_factory=dict)

    def call(self, fn: Callable) -> Any:
        """`fn` on private copies of the arguments (a function that edits its input changes nothing else)."""
        return fn(*copy.deepcopy(self.args), **copy.deepcopy(self.kwargs))


@dataclass(frozen=True)
class Mistake:
    """A wrong answer students give (`fn`, the exercise's signature) and the hint that fixes it."""

    hint: str
    fn: Callable


@dataclass(frozen=True)
class Exercise:
    """A function the student writes, checked against labkit's `reference` on `cases()`.

    `outputs` names the values of a function that returns a tuple (hints say which one is off); `pixels`
    marks outputs that are images on the 0–1 scale (enables the 0–255 hint); `canonical(output)` puts outputs in
    one form before comparing (e.g. sorts a set of indices); `accept(got, expected, case)` also takes answers
    that differ from labkit's output but are right too (a tie broken otherwise, another point of a set).
    """

    name: str
    notebook: str
    summary: str
    reference: Callable
    reference_name: str
    cases: Callable[[], list[Case]]
    mistakes: tuple[Mistake, ...] = ()
    outputs: tuple[str, ...] | None = None
    pixels: bool = False
    rtol: float = 1e-5
    atol: float = 1e-6
    accept: Callable[[Any, Any, Case], bool] | None = None
    canonical: Callable[[Any], Any] | None = None


@dataclass(repr=False)
class Verdict:
    """What `check` found: `passed` True (✓), False (✗, with its hint) or None (not attempted yet).

    Truthy only when passed. It prints itself when made, so in a notebook it displays nothing more.
    """

    name: str
    passed: bool | None
    message: str

    def __bool__(self) -> bool:
        return self.passed is True

    def __repr__(self) -> str:
        return self.message

    def _ipython_display_(self) -> None:
        """Nothing: `check` printed the message already (a cell ending in `check(fn)` shows it once)."""


class _Failed(Exception):
    """Internal: one hint, raised from deep inside a comparison."""


def evaluate(exercise: Exercise, fn: Callable | None) -> Verdict:
    """Run `fn` on every case of `exercise`; the verdict carries one hint (never raises)."""
    name = exercise.name
    if fn is None or fn is Ellipsis:
        return _todo(name)
    if not callable(fn):
        return Verdict(name, False, f"{FAIL} {name}: expected a function, got {type(fn).__name__}")
    cases = exercise.cases()
    for index, case in enumerate(cases):
        expected = case.call(exercise.reference)
        try:
            got = case.call(fn)
        except NotImplementedError:
            if index == 0:
                return _todo(name)
            return _fail(name, "raised NotImplementedError: one branch is still to write", case)
        except Exception as error:  # noqa: BLE001 — the student's code may raise anything; it is a hint, not a crash
            return _fail(name, f"raised {type(error).__name__}: {error}", case)
        if got is None or got is Ellipsis:
            if index == 0:
                return _todo(name)
            return _fail(name, "returned None: does every branch end in `return`?", case)
        try:
            hint = diagnose(exercise, got, expected, case)
        except Exception as error:  # noqa: BLE001 — an output too odd to compare is a hint too
            hint = f"could not compare your output (a {type(got).__name__}) with labkit's: {error}"
        if hint:
            return _fail(name, hint, case)
    return Verdict(name, True, f"{PASS} {name}: matches {exercise.reference_name} on {len(cases)} inputs "
                               f"(random ones and edge cases)")


def _todo(name: str) -> Verdict:
    return Verdict(name, None, f"{TODO} {name}: {NOT_ATTEMPTED} — write the function above, then run this cell again")


def _fail(name: str, hint: str, case: Case) -> Verdict:
    return Verdict(name, False, f"{FAIL} {name}: {hint}\n   failing input: {describe(case)}")


def describe(case: Case) -> str:
    """The case's label, and the arguments themselves when they are small enough to read."""
    small = [_short(a) for a in case.args] + [f"{k}={_short(v)}" for k, v in case.kwargs.items()]
    if all(s is not None for s in small):
        return f"{case.label} — arguments ({', '.join(small)})"
    return case.label


def _short(value: Any) -> str | None:
    if isinstance(value, (bool, int, float, str)) or value is None:
        return repr(value)
    if isinstance(value, tuple) and all(isinstance(v, (int, float)) for v in value):
        return repr(value)  # a shape such as (1, 16, 16)
    array = as_array(value)
    if array is not None and array.size <= 12:
        return np.array2string(array, precision=4, separator=", ").replace("\n", "")
    if isinstance(value, tuple) and len(value) <= 4 and all(_short(v) is not None for v in value):
        return "(" + ", ".join(_short(v) for v in value) + ")"
    return None


def as_array(value: Any) -> np.ndarray | None:
    """A float64 numpy array from a tensor, array, number or nested list; None if it is not numeric."""
    if isinstance(value, (str, bytes)):
        return None
    try:
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu()
            value = value.double() if value.dtype != torch.bool else value.to(torch.float64)
            return value.numpy()
        array = np.asarray(value)
        if array.dtype == object or array.dtype.kind in "USV":
            return None
        return array.astype(np.float64)
    except (TypeError, ValueError, RuntimeError):
        return None


def matches(got: Any, expected: Any, rtol: float = 1e-5, atol: float = 1e-6) -> bool:
    """True when two outputs agree (tuples element by element, arrays by value and shape)."""
    if isinstance(expected, (tuple, list)) and not _numeric_list(expected):
        return (isinstance(got, (tuple, list)) and len(got) == len(expected)
                and all(matches(g, e, rtol, atol) for g, e in zip(got, expected)))
    g, e = as_array(got), as_array(expected)
    if g is None or e is None:
        return False
    if g.shape != e.shape and not (g.size == e.size == 1):
        return False
    return bool(np.allclose(g.reshape(e.shape), e, rtol=rtol, atol=atol, equal_nan=True))


def _numeric_list(value) -> bool:
    return all(isinstance(v, (int, float, np.integer, np.floating)) for v in value)


def diagnose(exercise: Exercise, got: Any, expected: Any, case: Case) -> str | None:
    """None when `got` is right for `case`, else the one hint that says what is off: a known mistake first
    (its hint is the most specific), then the number of values, the shape, NaNs, the scale, the first value."""
    got, expected = _canonical(exercise, got), _canonical(exercise, expected)
    if matches(got, expected, exercise.rtol, exercise.atol) or _accepted(exercise, got, expected, case):
        return None
    for mistake in exercise.mistakes if not _new_nans(got, expected) else ():  # a NaN has its own hint
        try:
            wrong = _canonical(exercise, case.call(mistake.fn))
        except Exception:  # noqa: BLE001 — a mistake that does not apply to this input
            continue
        if matches(got, wrong, exercise.rtol, exercise.atol) and not matches(wrong, expected, exercise.rtol, exercise.atol):
            return mistake.hint
    try:
        if exercise.outputs:
            if not isinstance(got, (tuple, list)) or len(got) != len(exercise.outputs):
                count = len(got) if isinstance(got, (tuple, list)) else 1
                raise _Failed(f"return {len(exercise.outputs)} values ({', '.join(exercise.outputs)}), got {count}")
            for g, e, what in zip(got, expected, exercise.outputs):
                _structure(g, e, f" of {what}")
        else:
            _structure(got, expected, "")
    except _Failed as failed:
        return str(failed)
    pairs = zip(got, expected, exercise.outputs) if exercise.outputs else [(got, expected, None)]
    for g, e, what in pairs:
        if not matches(g, e, exercise.rtol, exercise.atol):
            return _value_hint(as_array(g), as_array(e), what, exercise)
    return "the output differs from labkit's"  # not reached: some value differed


def _new_nans(got: Any, expected: Any) -> bool:
    """True when `got` holds a NaN where labkit's output has a number (tuples: in any element)."""
    if isinstance(expected, (tuple, list)) and not _numeric_list(expected):
        return isinstance(got, (tuple, list)) and any(_new_nans(g, e) for g, e in zip(got, expected))
    g, e = as_array(got), as_array(expected)
    if g is None or e is None or g.size != e.size:
        return False
    return bool((np.isnan(g).reshape(-1) & ~np.isnan(e).reshape(-1)).any())


def _canonical(exercise: Exercise, output: Any) -> Any:
    if exercise.canonical is None:
        return output
    try:
        return exercise.canonical(output)
    except Exception:  # noqa: BLE001 — an output that cannot be put in form is compared as it is
        return output


def _accepted(exercise: Exercise, got: Any, expected: Any, case: Case) -> bool:
    if exercise.accept is None:
        return False
    try:
        return bool(exercise.accept(got, expected, case))
    except Exception:  # noqa: BLE001 — a malformed answer is simply not accepted
        return False


def _structure(got: Any, expected: Any, what: str) -> None:
    """Raise a hint when `got` is not numeric, has the wrong shape, or holds NaNs where labkit has numbers."""
    g, e = as_array(got), as_array(expected)
    if e is None:
        return
    if g is None:
        raise _Failed(f"expected a number or an array{what}, got a {type(got).__name__}")
    if g.shape != e.shape and not (g.size == e.size == 1):
        fix = ""
        if g.size == e.size and tuple(d for d in g.shape if d != 1) == tuple(d for d in e.shape if d != 1):
            fix = " (an axis of length 1 too many or too few: flatten or reshape)"
        elif g.ndim == e.ndim and sorted(g.shape) == sorted(e.shape):
            fix = " (the axes are in the wrong order)"
        elif g.ndim == e.ndim - 1:
            fix = " (one axis too few)"
        elif g.ndim == e.ndim + 1:
            fix = " (one axis too many)"
        raise _Failed(f"wrong shape{what}: expected {tuple(e.shape)}, got {tuple(g.shape)}{fix}")
    bad = np.isnan(g).reshape(-1) & ~np.isnan(e).reshape(-1)
    if bad.any():
        where = np.unravel_index(int(np.argmax(bad)), e.shape) if e.ndim else ()
        raise _Failed(f"NaN{what} at index {list(map(int, where))} where labkit has {e.reshape(-1)[np.argmax(bad)]:.4g}"
                      " — a 0/0 or log(0)? Look at this input's zeros")


def _value_hint(g: np.ndarray, e: np.ndarray, what: str | None, exercise: Exercise) -> str:
    """The 0–255 scale hint for images, else the first value that differs."""
    of = f" of {what}" if what else ""
    g = g.reshape(e.shape)
    if exercise.pixels and e.size and float(e.max()) <= 1 + 1e-6:
        if float(np.nanmax(g)) > 1 + 1e-3:
            return (f"values{of} run up to {float(np.nanmax(g)):.4g}, but images here are on the 0–1 pixel scale: "
                    "divide 0–255 amounts (amplitudes, ε) by 255, and clip to [0, 1]")
        if float(np.nanmin(g)) < -1e-3:
            return f"values{of} go down to {float(np.nanmin(g)):.4g}: pixels live in [0, 1] — clip the result"
    close = np.isclose(g, e, rtol=exercise.rtol, atol=exercise.atol, equal_nan=True)
    flat = int(np.argmin(close.reshape(-1)))
    if e.ndim == 0:
        return f"expected {float(e):.6g}{of}, got {float(g):.6g}"
    where = [int(i) for i in np.unravel_index(flat, e.shape)]
    return (f"{int((~close).sum())} of {e.size} values{of} differ; the first at index {where}: "
            f"expected {e.reshape(-1)[flat]:.6g}, got {g.reshape(-1)[flat]:.6g}")

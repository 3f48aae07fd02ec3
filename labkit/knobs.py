"""A knob: one setting of an experiment — its default, type, allowed range or choices and a one-line help —
with parsing from command-line text and a check that names the valid range in one line."""
from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np

from labkit.errors import LabkitError


@dataclass(frozen=True)
class Param:
    """One knob: its default, type, allowed range or choices, and a one-line help."""

    default: Any
    kind: type = float
    low: float | None = None  # inclusive unless low_open
    high: float | None = None  # inclusive unless high_open
    low_open: bool = False
    high_open: bool = False
    choices: tuple | None = None
    help: str = ""
    optional: bool = False  # None allowed (e.g. "use the profile's size")

    def but(self, **changes) -> "Param":
        """This knob with some fields changed, e.g. `SEED.but(help="...")`."""
        return dataclasses.replace(self, **changes)

    def _number(self, value) -> str:
        """`value` as the user should read it: integers as integers, floats compactly."""
        if isinstance(value, numbers.Integral) or (self.kind is int and float(value).is_integer()):
            digits = str(int(value))
            return digits if len(digits) <= 24 else f"{digits[:6]}... ({len(digits)} digits)"
        return f"{value:g}"

    def describe(self) -> str:
        if self.choices is not None:
            return "one of " + ", ".join(str(c) for c in self.choices)
        if self.kind is bool:
            return "true or false"
        if self.low is None and self.high is None:
            return f"a{'n' if self.kind is int else ''} {self.kind.__name__}"
        left = "(" if self.low_open else "["
        right = ")" if self.high_open else "]"
        low = "-inf" if self.low is None else self._number(self.low)
        high = "inf" if self.high is None else self._number(self.high)
        return f"a{'n' if self.kind is int else ''} {self.kind.__name__} in {left}{low}, {high}{right}"

    def _bad(self, name: str, shown) -> LabkitError:
        return LabkitError(f"{name} must be {self.describe()}, got {shown}")

    def parse(self, name: str, text: str):
        """Value from command-line text."""
        if self.optional and text.strip().lower() in ("none", "null", ""):
            return None
        if self.kind is bool:
            lowered = text.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise self._bad(name, repr(text))
        if self.kind is int:
            try:
                return int(text)
            except ValueError:
                pass
            try:
                number = float(text)
            except ValueError:
                raise self._bad(name, repr(text)) from None
            if not math.isfinite(number) or not number.is_integer():
                raise self._bad(name, repr(text))
            return int(number)
        try:
            return self.kind(text)
        except (ValueError, OverflowError):
            raise self._bad(name, repr(text)) from None

    def check(self, name: str, value):
        """`value` coerced to the param's type, or a LabkitError naming the valid range.

        Python and numpy numbers are both accepted (`np.int64(3)`, `np.float32(0.1)`)."""
        if value is None and (self.optional or self.default is None):
            return None
        if isinstance(value, str) and self.kind is not str:
            value = self.parse(name, value)
        if self.kind is bool:
            if not isinstance(value, (bool, np.bool_)):
                raise self._bad(name, repr(value))
            value = bool(value)
        elif self.kind in (int, float):
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
                raise self._bad(name, repr(value))
            if self.kind is int and isinstance(value, numbers.Integral):
                value = int(value)
            else:
                try:
                    number = float(value)
                except OverflowError:
                    raise self._bad(name, self._number(value)) from None
                if not math.isfinite(number):
                    raise self._bad(name, number)
                if self.kind is int and not number.is_integer():
                    raise self._bad(name, repr(number))
                value = int(number) if self.kind is int else number
            below = self.low is not None and (value <= self.low if self.low_open else value < self.low)
            above = self.high is not None and (value >= self.high if self.high_open else value > self.high)
            if below or above:
                raise self._bad(name, self._number(value))
        else:
            value = self.kind(value)
        if self.choices is not None and value not in self.choices:
            raise self._bad(name, repr(value))
        return value

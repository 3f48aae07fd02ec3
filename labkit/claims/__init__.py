"""The papers' claims, each written once: what the paper reports, what this lab measures, and the criterion
that decides whether the claim holds here.

A `Claim` names its paper and notebook, quotes the paper's figure (`paper_value`, from `../shared/papers/`),
and measures *one seed* with `measure(Setting) -> {name: number}` through the experiment registry (so the
cache serves every number it has computed before). `evaluate` runs it over the profile's seeds and applies
the `Criterion` to the per-seed numbers:

    holds    the criterion is met,
    differs  it is not (the row's `why` says what the lab knows about the difference),
    not run  the claim cannot run here (a dataset it does not apply to, or one that is not on disk).

Criteria are small pure functions of `{name: [one value per seed]}`, so their verdicts are tested on
synthetic numbers. The reproduction report (`labkit.report`, `labkit reproduce`) and the notebooks' closing
tables read the same definitions. One module per paper registers its claims: `badnets`, `label_consistent`,
`blind`.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

from labkit.errors import DataMissingError, LabkitError

PAPERS = ("badnets", "label-consistent", "dpsgd", "certified", "neural-cleanse", "fine-pruning", "strip", "blind")
VERDICTS = ("holds", "differs", "not run")
Values = Mapping[str, Sequence[float]]  # measurement name → one value per seed


# ---------------------------------------------------------------- criteria

@dataclass(frozen=True)
class Criterion:
    """`text` says the rule in words (it is printed in the report); `test(values) -> bool` applies it."""

    text: str
    test: Callable[[Values], bool]

    def __call__(self, values: Values) -> bool:
        return bool(self.test(values))


def mean(values: Sequence[float]) -> float:
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return sum(finite) / len(finite) if finite else float("nan")


def std(values: Sequence[float]) -> float:
    """Population standard deviation over the seeds (0 for one seed)."""
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if len(finite) < 2:
        return 0.0
    m = sum(finite) / len(finite)
    return math.sqrt(sum((v - m) ** 2 for v in finite) / len(finite))


def _pct(x: float) -> str:
    return f"{x:.0%}" if abs(x * 100 - round(x * 100)) < 1e-9 else f"{x:.1%}"


def at_least(key: str, threshold: float, *, percent: bool = True) -> Criterion:
    """The mean of `key` over the seeds is ≥ `threshold`."""
    shown = _pct(threshold) if percent else f"{threshold:g}"
    return Criterion(f"mean {key} ≥ {shown}", lambda v: mean(v[key]) >= threshold)


def at_most(key: str, threshold: float, *, percent: bool = True) -> Criterion:
    """The mean of `key` over the seeds is ≤ `threshold`."""
    shown = _pct(threshold) if percent else f"{threshold:g}"
    return Criterion(f"mean {key} ≤ {shown}", lambda v: mean(v[key]) <= threshold + 1e-12)


def below(key: str, threshold: float, *, percent: bool = True) -> Criterion:
    """The mean of `key` over the seeds is < `threshold`."""
    shown = _pct(threshold) if percent else f"{threshold:g}"
    return Criterion(f"mean {key} < {shown}", lambda v: mean(v[key]) < threshold)


def exceeds_by(high: str, low: str, points: float) -> Criterion:
    """mean(high) − mean(low) ≥ `points` (fractions: 0.3 is 30 percentage points)."""
    return Criterion(f"mean {high} − mean {low} ≥ {points * 100:g} points",
                     lambda v: mean(v[high]) - mean(v[low]) >= points - 1e-12)


def close_to(key: str, reference: str, points: float) -> Criterion:
    """|mean(key) − mean(reference)| ≤ `points`."""
    return Criterion(f"|mean {key} − mean {reference}| ≤ {points * 100:g} points",
                     lambda v: abs(mean(v[key]) - mean(v[reference])) <= points + 1e-12)


def ordered(*keys: str, strict: Sequence[bool] | None = None) -> Criterion:
    """keys[0] ≥ keys[1] ≥ … on *every* seed; `strict[i]` makes the i-th step '>' instead of '≥'."""
    strict = tuple(strict) if strict is not None else (False,) * (len(keys) - 1)
    if len(strict) != len(keys) - 1:
        raise LabkitError(f"ordered: {len(keys)} keys need {len(keys) - 1} strictness flags, got {len(strict)}")
    text = keys[0] + "".join(f" {'>' if s else '≥'} {k}" for s, k in zip(strict, keys[1:])) + " on every seed"

    def test(v: Values) -> bool:
        seeds = len(v[keys[0]])
        for i in range(seeds):
            for s, a, b in zip(strict, keys, keys[1:]):
                if not (v[a][i] > v[b][i] if s else v[a][i] >= v[b][i]):
                    return False
        return seeds > 0
    return Criterion(text, test)


def ratio_at_least(high: str, low: str, factor: float) -> Criterion:
    """mean(high) ≥ `factor` · mean(low)."""
    return Criterion(f"mean {high} ≥ {factor:g} × mean {low}", lambda v: mean(v[high]) >= factor * mean(v[low]))


def all_of(*criteria: Criterion) -> Criterion:
    return Criterion(" and ".join(c.text for c in criteria), lambda v: all(c(v) for c in criteria))


def verdict(criterion: Criterion, values: Values | None) -> str:
    """'holds' / 'differs' from the per-seed `values`; 'not run' when there are none."""
    if not values or not any(len(seq) for seq in values.values()):
        return "not run"
    return "holds" if criterion(values) else "differs"


# ---------------------------------------------------------------- claims

@dataclass(frozen=True)
class Setting:
    """Where one seed of a claim is measured: dataset, profile name, seed."""

    dataset: str
    profile: str
    seed: int


@dataclass(frozen=True)
class Claim:
    """One claim of one paper. `measure(setting)` returns one seed's numbers (fractions for rates);
    `show(values)` formats them for the table (default: each value as mean ± std over seeds); `datasets`
    are those the claim applies to; `why` explains a known difference from the paper (report text): a string,
    or `why(values)` when the explanation quotes this run's own numbers (they move with dataset, profile and
    thread count, so a fixed text would quote another run's)."""

    id: str
    paper: str
    notebook: str
    claim: str
    paper_value: str
    measure: Callable[[Setting], dict]
    criterion: Criterion
    show: Callable[[Values], str] | None = None
    datasets: tuple[str, ...] = ("digits", "mnist", "fashion-mnist")
    why: str | Callable[[Values], str] = ""
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.paper not in PAPERS:
            raise LabkitError(f"claim {self.id!r}: unknown paper {self.paper!r}; choose one of {', '.join(PAPERS)}")

    def explain(self, values: Values) -> str:
        """The known reason for a difference, with this run's numbers where `why` quotes them."""
        return self.why(values) if callable(self.why) else self.why

    def lab_value(self, values: Values) -> str:
        if self.show is not None:
            return self.show(values)
        return "; ".join(f"{k} {spread(seq)}" for k, seq in values.items())


def per_seed(seq: Sequence[float], form: str = ".0%") -> str:
    """Each seed's value: '57% and 86%' (three seeds: '57%, 86% and 90%'); `form` is a format spec."""
    shown = [format(value, form) for value in seq]
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " and " + shown[-1]


def spread(seq: Sequence[float], percent: bool = True, decimals: int = 2) -> str:
    """'93.1% ± 2.0%' (or, not `percent`, '2.41 ± 0.10' with `decimals`) over the seeds; one seed: the value alone."""
    m, s = mean(seq), std(seq)
    if percent:
        return f"{m:.1%}" + (f" ± {s:.1%}" if len(seq) > 1 else "")
    return f"{m:.{decimals}f}" + (f" ± {s:.{decimals}f}" if len(seq) > 1 else "")


_CLAIMS: dict[str, Claim] = {}
NOTES: dict[str, str] = {}  # paper → what the report says before its rows (units, settings, choices)


def note(paper: str, text: str) -> None:
    """The paragraph the report prints above `paper`'s rows."""
    NOTES[paper] = " ".join(text.split())


def register(claim: Claim) -> Claim:
    if claim.id in _CLAIMS:
        raise LabkitError(f"claim {claim.id!r} is defined twice")
    _CLAIMS[claim.id] = claim
    return claim


@functools.cache
def discover() -> None:
    """Import every paper's claims module once (each registers its claims)."""
    from labkit.experiments import import_submodules

    import_submodules(__name__, __path__)


def all_claims(paper: str | None = None, notebook: str | None = None) -> list[Claim]:
    """Every registered claim, by paper (in `PAPERS` order), then in definition order (optionally one paper's or
    one notebook's)."""
    discover()
    out = sorted(_CLAIMS.values(), key=lambda c: PAPERS.index(c.paper))
    if paper is not None:
        out = [c for c in out if c.paper == paper]
    if notebook is not None:
        out = [c for c in out if c.notebook == notebook]
    return out


def get(claim_id: str) -> Claim:
    discover()
    if claim_id not in _CLAIMS:
        raise LabkitError(f"unknown claim {claim_id!r}; choose one of {', '.join(_CLAIMS)}")
    return _CLAIMS[claim_id]


def measure_seed(claim: Claim, dataset: str, profile: str, seed: int) -> tuple[dict, str]:
    """({name: value} for one seed, reason it was not run or ''): `claim.measure` at that seed."""
    if dataset not in claim.datasets:
        return {}, f"applies to {', '.join(claim.datasets)}"
    try:
        return {key: float(value) for key, value in claim.measure(Setting(dataset, profile, seed)).items()}, ""
    except DataMissingError as error:
        return {}, str(error)


def measure_seeds(claim: Claim, dataset: str, profile: str, seeds: Sequence[int]) -> tuple[dict, str]:
    """({name: [value per seed]}, reason it was not run or ''), measuring `claim` on each seed."""
    per_seed = []
    for seed in seeds:
        measured, not_run = measure_seed(claim, dataset, profile, seed)
        if not_run:
            return {}, not_run
        per_seed.append(measured)
    return gather(per_seed), ""


def gather(per_seed: Sequence[Mapping[str, float]]) -> dict[str, list[float]]:
    """[{name: value} per seed] → {name: [value per seed]}."""
    values: dict[str, list[float]] = {}
    for measured in per_seed:
        for key, value in measured.items():
            values.setdefault(key, []).append(value)
    return values


def evaluate(claim: Claim, dataset: str, profile: str, seeds: Sequence[int]) -> dict:
    """The claim's report row: id, paper, notebook, claim, paper_value, lab_value, criterion, verdict, plus
    `values` (per seed), `seeds`, `why` (the known reason for a difference, or why it was not run)."""
    values, not_run = measure_seeds(claim, dataset, profile, seeds)
    return row(claim, seeds, values, not_run)


def row(claim: Claim, seeds: Sequence[int], values: Values, not_run: str = "") -> dict:
    """The report row of `claim` from its per-seed `values` (empty, with `not_run` saying why, when not run)."""
    result = verdict(claim.criterion, values)
    return {
        "id": claim.id, "paper": claim.paper, "notebook": claim.notebook, "claim": claim.claim,
        "paper_value": claim.paper_value,
        "lab_value": claim.lab_value(values) if values else "—",
        "criterion": claim.criterion.text, "verdict": result,
        "values": values, "seeds": list(seeds),
        "why": not_run if result == "not run" else (claim.explain(values) if result == "differs" else ""),
    }

"""The experiment registry: name → pure function of a config → result dict, cached on disk.

Each paper's module in this package registers its experiments with `@register(name, params)`;
modules are discovered automatically. (Their benchmarks live in `labkit.bench`.) Knobs are
declared once, as `Param`s; the knobs every poisoning experiment shares (`DATASET`, `TARGET`,
`SEED`, `POISON_FRACTION`) are declared here, and `target` is checked against the dataset's
classes for every experiment that has both.

`run(name, profile=None, **knobs)` validates the knobs (one-line errors naming the valid range),
fills defaults, and calls the experiment with one `Config` — `cfg.seed`, `cfg.profile` (the
profile's sizes), `cfg.device` — or returns the cached result.
"""
from __future__ import annotations

import contextlib
import functools
import importlib
import itertools
import math
import pkgutil
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping

import torch
from tqdm.auto import tqdm

from labkit import cache, config
from labkit.errors import LabkitError
from labkit.knobs import Param
from labkit.train import progress_kwargs

__all__ = ["Param", "Config", "DATASET", "TARGET", "SEED", "POISON_FRACTION", "check_target", "register", "run",
           "resolve", "cached", "store", "sweep", "computed", "names", "get", "entry_path", "grid_configs", "as_array", "public", "discover"]


class Config(Mapping):
    """One experiment's validated knobs, read as `cfg.seed` (or `cfg["seed"]`), and the profile it runs
    in: `cfg.profile` (a `config.Profile`: shared sizes), `cfg.device`, `cfg.sizes(SIZES)` (the paper's
    own). Immutable; `cfg.but(**changes)` is a validated copy. Iterating gives the knobs (the cache key)."""

    __slots__ = ("experiment", "profile", "_values")

    def __init__(self, experiment: str, values: dict, profile: config.Profile):
        object.__setattr__(self, "experiment", experiment)
        object.__setattr__(self, "profile", profile)
        object.__setattr__(self, "_values", dict(values))

    def __getattr__(self, key: str):
        try:
            return self._values[key]
        except KeyError:
            raise AttributeError(f"experiment {self.experiment!r} has no knob {key!r}; "
                                 f"knobs: {', '.join(self._values)}") from None

    def __setattr__(self, key, value):
        raise AttributeError("a Config is immutable; use cfg.but(key=value)")

    def __getitem__(self, key: str):
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        knobs = ", ".join(f"{k}={v!r}" for k, v in self._values.items())
        return f"Config({self.experiment!r}, {knobs}, profile={self.profile.name!r})"

    @property
    def device(self):
        """The torch device this profile computes on (CUDA only where the profile allows it)."""
        return config.device(self.profile)

    def sizes(self, table: config.Sizes) -> Mapping[str, Any]:
        """The paper's own sizes (`table`, declared in its module) for this config's profile."""
        return table.of(self.profile)

    def but(self, **changes) -> "Config":
        """A validated copy with some knobs changed (same experiment and profile)."""
        return get(self.experiment).resolve({**self._values, **changes}, self.profile.name)


# Knobs shared by the poisoning experiments: declared once; `.but(default=..., help=...)` adapts one.
DATASET = Param("digits", str, help="dataset to poison")  # choices filled from labkit.data below
TARGET = Param(0, int, help="the attacker's target label (one of the dataset's classes; checked by check_target)")
SEED = Param(0, int, 0, 2**31 - 1, help="seed for poisoning, init and training order")
POISON_FRACTION = Param(0.1, float, 0, 1, high_open=True, help="fraction of the training set poisoned")


def _with_dataset_choices(param: Param) -> Param:
    from labkit import data

    return param if param.choices is not None else param.but(choices=tuple(data.DATASETS))


def check_target(cfg: Mapping) -> None:
    """`target` must be one of `dataset`'s classes (the count comes from `labkit.data`); applied to every
    experiment with both knobs."""
    from labkit import data

    if cfg["dataset"] not in data.DATASETS:
        return
    classes = data.DATASETS[cfg["dataset"]].num_classes
    if not 0 <= cfg["target"] < classes:
        raise LabkitError(f"target must be an int in [0, {classes - 1}] for {cfg['dataset']}, got {cfg['target']}")


@dataclass(frozen=True)
class Experiment:
    name: str
    fn: Callable[[Config], dict]
    params: dict[str, Param]
    summary: tuple[str, ...]  # result keys the CLI prints
    doc: str = ""
    checks: tuple[Callable[[Mapping], None], ...] = field(default_factory=tuple)

    def resolve(self, overrides: Mapping, profile: str | None = None) -> Config:
        """The full, validated config in `profile` (None: the environment's): defaults overridden by
        `overrides`."""
        unknown = sorted(set(overrides) - set(self.params))
        if unknown:
            raise LabkitError(f"unknown key {unknown[0]!r} for experiment {self.name!r}; "
                              f"valid keys: {', '.join(self.params)}")
        values = {key: param.check(key, overrides.get(key, param.default)) for key, param in self.params.items()}
        for check in self.checks:
            check(values)
        return Config(self.name, values, config.profile(profile))


_REGISTRY: dict[str, Experiment] = {}


def register(name: str, params: dict[str, Param], summary: tuple[str, ...] = (),
             checks: tuple[Callable[[Mapping], None], ...] = ()):
    """Decorator: register `fn(cfg: Config) -> dict` as experiment `name` with knobs `params`.

    A `dataset` knob without choices gets labkit.data's datasets; experiments with `dataset` and
    `target` get `check_target`."""
    params = dict(params)
    if "dataset" in params:
        params["dataset"] = _with_dataset_choices(params["dataset"])
    if "dataset" in params and "target" in params:
        checks = (check_target, *checks)

    def wrap(fn):
        _REGISTRY[name] = Experiment(name, fn, params, tuple(summary), (fn.__doc__ or "").strip(), tuple(checks))
        return fn
    return wrap


def import_submodules(package: str, path) -> None:
    """Import every module of `package` (`path` is its `__path__`): each registers what it defines."""
    for module in pkgutil.iter_modules(path):
        importlib.import_module(f"{package}.{module.name}")


@functools.cache
def discover() -> None:
    """Import every module of this package once (each registers its experiments)."""
    import_submodules(__name__, __path__)


def names() -> list[str]:
    discover()
    return sorted(_REGISTRY)


def get(name: str) -> Experiment:
    discover()
    if name not in _REGISTRY:
        raise LabkitError(f"unknown experiment {name!r}; choose one of {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def run(name: str, *, profile: str | None = None, use_cache: bool = True, **overrides) -> dict:
    """The result dict of experiment `name` with knobs `overrides` in `profile` (None: the environment's
    choice, `config.profile_name()`), from the cache when possible.

    The experiment computes from its `Config` alone: while it runs, reading the profile from the
    environment raises. The result always holds the experiment's summary keys (None where this
    configuration computes no such value), `config` (the knobs) and `threads` (the torch thread count)."""
    experiment = get(name)
    cfg = experiment.resolve(overrides, profile)

    def compute() -> dict:
        with config.reading_forbidden(name), _timed(name):
            result = experiment.fn(cfg)
        return {**{k: None for k in experiment.summary}, **result, "threads": config.threads(cfg.profile)}

    result = cache.memoize(name, dict(cfg), compute, profile=cfg.profile, enabled=use_cache,
                           required=experiment.summary, module=experiment.fn.__module__)
    return {**result, "config": dict(cfg)}


# What this process computed (cache misses): experiment name → [count, own seconds]. "Own" excludes the time
# spent in experiments it ran itself (a DP-SGD run computing its clean reference model counts that once,
# under the reference). `labkit bench course` reads it to say where a notebook's time goes.
_COMPUTED: dict[str, list] = {}
_CHILD_SECONDS: list[float] = []  # one accumulator per experiment being computed, innermost last


@contextlib.contextmanager
def _timed(name: str):
    """Count one computation of experiment `name` and add its own seconds to `_COMPUTED`."""
    start = time.perf_counter()
    _CHILD_SECONDS.append(0.0)
    try:
        yield
    finally:
        total = time.perf_counter() - start
        own = total - _CHILD_SECONDS.pop()
        if _CHILD_SECONDS:
            _CHILD_SECONDS[-1] += total
        count_seconds = _COMPUTED.setdefault(name, [0, 0.0])
        count_seconds[0] += 1
        count_seconds[1] += own


def computed() -> dict[str, dict]:
    """What this process computed rather than read from the cache: {experiment: {"count", "seconds"}}, seconds
    being each experiment's own (the experiments it ran inside are listed under their own names)."""
    return {name: {"count": count, "seconds": round(seconds, 2)} for name, (count, seconds) in _COMPUTED.items()}


def cached(name: str, *, profile: str | None = None, **overrides) -> dict | None:
    """The cached result of `run(name, profile=profile, **overrides)`, or None when it is not on disk (or is
    corrupt, which removes it): nothing is computed."""
    experiment = get(name)
    cfg = experiment.resolve(overrides, profile)
    path = cache.entry_path(name, dict(cfg), cfg.profile.name, module=experiment.fn.__module__)
    result = cache.read(path, name, experiment.summary)
    return None if result is None else {**result, "config": dict(cfg)}


def store(name: str, result: dict, *, profile: str | None = None, **overrides) -> None:
    """Write `result` — computed elsewhere, e.g. on a Dask worker, by `run(..., use_cache=False)` without its
    "config" — into this machine's cache as `run(name, profile=profile, **overrides)`'s entry."""
    experiment = get(name)
    cfg = experiment.resolve(overrides, profile)
    missing = [k for k in experiment.summary if k not in result]
    if missing:
        raise LabkitError(f"a result of {name!r} without {missing[0]!r} cannot be cached")
    path = cache.entry_path(name, dict(cfg), cfg.profile.name, module=experiment.fn.__module__)
    cache.ensure_writable(path.parent)
    cache.write(path, name, {k: v for k, v in result.items() if k != "config"})


def resolve(name: str, profile: str | None = None, **overrides) -> Config:
    """The validated `Config` that `run(name, profile=profile, **overrides)` computes from."""
    return get(name).resolve(overrides, profile)


def entry_path(name: str, *, profile: str | None = None, **overrides):
    """Where `run(name, **overrides)` keeps its result in the cache (the file need not exist)."""
    experiment = get(name)
    cfg = experiment.resolve(overrides, profile)
    return cache.entry_path(name, dict(cfg), cfg.profile.name, module=experiment.fn.__module__)


def grid_configs(grid: dict[str, list]) -> list[dict]:
    """Every combination of the grid's values, in order."""
    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


def sweep(name: str, grid: dict[str, list], *, profile: str | None = None, progress: bool = True,
          client=None, **fixed) -> list[dict]:
    """`run` over every combination of `grid` (with `fixed` settings); results in grid order. With a Dask
    `client` (`labkit.distributed.client_for`), the points not cached here run on its cluster."""
    if client is not None:
        from labkit import distributed

        return distributed.sweep(client, name, grid, profile=profile, progress=progress, **fixed)
    configs = grid_configs(grid)
    experiment = get(name)
    for cfg in configs:
        experiment.resolve({**fixed, **cfg}, profile)  # every point is checked before the first training
    bar = tqdm(configs, desc=f"sweep {name}", leave=False, **progress_kwargs(progress))
    return [run(name, profile=profile, **fixed, **cfg) for cfg in bar]


def as_array(results: list[dict], key: str, grid: dict[str, list]):
    """`results[i][key]` from a `sweep` over `grid`, as a numpy array shaped like the grid."""
    import numpy as np

    return np.array([r[key] for r in results], dtype=float).reshape([len(v) for v in grid.values()])


def public(result: dict) -> dict:
    """The JSON-able part of a result: numbers, strings, small 1-D tensors as lists, and lists and dicts
    of them; large tensors and model weights (keys ending in "state") are dropped."""
    def convert(value):
        if isinstance(value, torch.Tensor):
            return value.tolist() if value.numel() <= 64 and value.ndim <= 1 else None
        if isinstance(value, dict):
            out = {k: convert(v) for k, v in value.items()}
            return {k: v for k, v in out.items() if v is not None}
        if isinstance(value, (list, tuple)):
            items = [convert(v) for v in value]
            return None if any(v is None for v in items) else items
        if isinstance(value, float) and not math.isfinite(value):
            return None if math.isnan(value) else str(value)
        if isinstance(value, (bool, int, float, str)) or value is None:
            return value
        return None
    kept = {k: v for k, v in result.items() if not k.endswith("state")}  # model weights are not for JSON
    return {k: v for k, v in convert(kept).items() if v is not None}

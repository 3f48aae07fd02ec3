"""`labkit` command line: info · data list|download NAME · run · sweep · bench · warm · site · reproduce · cache clear.

Bad input — including malformed flags, which argparse would answer with usage lines — exits with
status 2 and one line naming the valid values; an operating-system error (a folder that cannot be
written, a full disk) with one line naming the path. Never a traceback.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor

from labkit.errors import LabkitError


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error raises `LabkitError` (one line on stderr) instead of printing usage."""

    def error(self, message: str):
        flag, sep, rest = message.partition(": must be ")
        if sep and flag.startswith("argument "):  # "argument --jobs: must be ..." → "--jobs must be ..."
            message = f"{flag.removeprefix('argument ')} must be {rest}"
        raise LabkitError(f"{message} (see `{self.prog} --help`)")


def positive_int(text: str) -> int:
    """argparse type: an int >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an int >= 1, got {text!r}")
    return value


def _pairs(items: list[str], flag: str) -> dict[str, str]:
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise LabkitError(f"{flag} takes key=value, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def _parse_values(name: str, raw: dict[str, str]) -> dict:
    from labkit import experiments

    params = experiments.get(name).params
    out = {}
    for key, text in raw.items():
        if key not in params:
            raise LabkitError(f"unknown key {key!r} for experiment {name!r}; valid keys: {', '.join(params)}")
        out[key] = params[key].parse(key, text)
    return out


def _print(result: dict, as_json: bool, summary: tuple[str, ...]) -> None:
    from labkit import experiments

    public = experiments.public(result)
    if as_json:
        print(json.dumps(public, indent=2, sort_keys=True))
        return
    for key in summary or [k for k, v in public.items() if isinstance(v, (int, float, str))]:
        value = public.get(key)
        print(f"{key:32s} {value:.4f}" if isinstance(value, float) else f"{key:32s} {value}")


def cmd_info(args) -> None:
    import torch

    from labkit import __version__, bench, compat, config, data, experiments, paths

    prof = config.profile()
    info = {
        "labkit": __version__, "torch": torch.__version__, "profile": prof.name, "device": str(config.device()),
        "data_dir": str(paths.data_dir()), "cache_dir": str(paths.cache_dir()),
        "datasets": {name: data.is_present(name) for name in data.DATASETS},
        "experiments": experiments.names(), "benchmarks": bench.names(),
        "sizes": {k: v for k, v in vars(prof).items() if k != "name"},
        "torchvision_guard_applied": compat.guard_was_needed(),
    }
    if args.json:
        print(json.dumps(info, indent=2, default=list))
        return
    for key, value in info.items():
        print(f"{key:28s} {value}")


def cmd_data(args) -> None:
    from labkit import data, paths

    if args.action == "list":
        for name, info in data.DATASETS.items():
            state, detail = data.status(name)
            print(f"{name:14s} {state:8s} {detail if state == 'damaged' else info.description}")
        print(f"data directory: {paths.data_dir()}")
        return
    if not args.name:
        raise LabkitError(f"data download needs a dataset name; choose one of {', '.join(data.DATASETS)}")
    print(f"{args.name} ready in {data.download(args.name)}")


def experiment_help(name: str) -> str:
    """`labkit run NAME --help`: the experiment's docstring and every knob with its default, range and help."""
    from labkit import experiments

    experiment = experiments.get(name)
    lines = [f"usage: labkit run {name} [--set KEY=VALUE ...] [--json] [--no-cache]", "",
             experiment.doc.splitlines()[0] if experiment.doc else name, "", "knobs (--set KEY=VALUE):"]
    width = max(len(key) for key in experiment.params)
    for key, param in experiment.params.items():
        default = "none" if param.default is None else repr(param.default)
        lines.append(f"  {key:{width}s}  {param.help or ''} — {param.describe()}; default {default}")
    lines += ["", "prints: " + ", ".join(experiment.summary)]
    return "\n".join(lines)


def cmd_run(args) -> None:
    from labkit import experiments

    if args.help:
        print(experiment_help(args.experiment))
        return
    values = _parse_values(args.experiment, _pairs(args.set, "--set"))
    result = experiments.run(args.experiment, use_cache=not args.no_cache, **values)
    _print(result, args.json, experiments.get(args.experiment).summary)


def _sweep_worker(job):
    name, cfg = job
    from labkit import experiments

    return experiments.public(experiments.run(name, **cfg))  # with config.threads(), as a sequential run


def cmd_sweep(args) -> None:
    from labkit import experiments

    experiment = experiments.get(args.experiment)
    fixed = _parse_values(args.experiment, _pairs(args.set, "--set"))
    grid_text = _pairs(args.grid, "--grid")
    if not grid_text:
        raise LabkitError("sweep needs at least one --grid key=v1,v2,...")
    grid = {key: [_parse_values(args.experiment, {key: v})[key] for v in values.split(",")]
            for key, values in grid_text.items()}
    configs = [{**fixed, **cfg} for cfg in experiments.grid_configs(grid)]
    for cfg in configs:
        experiment.resolve(cfg)  # every bad value is reported before any work starts
    scheduler = args.scheduler or os.environ.get("LABKIT_SCHEDULER", "").strip()
    if scheduler:
        from labkit import distributed

        with distributed.connect(scheduler) as client:
            results = [experiments.public(r) for r in experiments.sweep(args.experiment, grid, client=client, **fixed)]
    elif args.jobs == 1:
        results = [experiments.public(experiments.run(args.experiment, **cfg)) for cfg in configs]
    else:
        import multiprocessing

        from labkit import config

        note_oversubscription(args.jobs, config.threads())
        with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            results = list(pool.map(_sweep_worker, [(args.experiment, cfg) for cfg in configs]))
    if args.json:
        print(json.dumps(results, indent=2, sort_keys=True))
        return
    keys = list(grid) + list(experiment.summary)
    print("  ".join(f"{k:>18s}" for k in keys))
    for result in results:
        row = [result["config"].get(k) if k in grid else result.get(k) for k in keys]
        print("  ".join(f"{v:>18.4f}" if isinstance(v, float) else f"{str(v):>18s}" for v in row))


def _flat(values: dict, prefix: str = "") -> list[tuple[str, object]]:
    """Nested measurements as (dotted key, value) rows."""
    rows = []
    for key, value in values.items():
        if isinstance(value, dict):
            rows += _flat(value, f"{prefix}{key}.")
        else:
            rows.append((f"{prefix}{key}", value))
    return rows


def cmd_bench(args) -> None:
    from labkit import bench, config

    if args.bench_profile:
        config.use_profile(args.bench_profile)
    if args.notebooks:
        if args.names != ["course"]:
            raise LabkitError("--notebooks selects notebooks for `labkit bench course` only")
        from labkit.bench import course as course_bench

        results = {"course": course_bench.bench_course(args.notebooks)}
    else:
        results = bench.run(args.names or None)
    if args.json:  # one benchmark named: its own object; otherwise {name: object}
        chosen = results[args.names[0]] if len(args.names or []) == 1 else results
        print(json.dumps(chosen, indent=2, sort_keys=True))
        return
    for name, values in results.items():
        print(f"[{name}]")
        for key, value in _flat(values):
            print(f"  {key:36s} {value:.4g}" if isinstance(value, float) else f"  {key:36s} {value}")


def cmd_warm(args) -> None:
    from labkit import course

    scheduler = args.scheduler or os.environ.get("LABKIT_SCHEDULER", "").strip()
    if scheduler:
        from labkit import distributed

        with distributed.connect(scheduler) as client:
            done = course.warm(args.warm_profile, args.notebooks or None, client=client, widgets=args.widgets)
    else:
        done = course.warm(args.warm_profile, args.notebooks or None, jobs=args.jobs, widgets=args.widgets)
    for name, row in done.items():
        print(f"{name:36s} {row['seconds']:8.1f} s  {row['trainings']} trainings")


def cmd_cache(args) -> None:
    from labkit import cache

    print(f"removed {cache.clear(args.profile)} cached results")


def cmd_site(args) -> None:
    from labkit import site

    done = site.build(args.site_profile, args.out, args.notebooks or None)
    failed = [name for name, row in done["notebooks"].items() if row["error"]]
    if failed:
        raise LabkitError(f"the site was built, but {', '.join(failed)} stopped with an error (see its page)")


def note_oversubscription(jobs: int, threads: int) -> None:
    """Say on stderr when `jobs` processes of `threads` torch threads each oversubscribe this machine's cores."""
    cores = os.cpu_count() or 1
    if jobs * threads > cores:
        print(f"labkit: note: {jobs} jobs x {threads} threads each oversubscribe {cores} cores; every run keeps "
              f"{threads} threads so its cached result matches a sequential run's (LABKIT_THREADS="
              f"{max(1, cores // jobs)} fits them, with that thread count's numbers)", file=sys.stderr)


def cmd_reproduce(args) -> None:
    from labkit import config, report

    profile = args.reproduce_profile or config.profile_name()
    papers = args.papers.split(",") if args.papers else None
    if args.jobs > 1:
        note_oversubscription(args.jobs, config.threads(profile))
    result = report.build(args.dataset, profile, args.out, jobs=args.jobs, papers=papers)
    counts = {v: sum(r["verdict"] == v for r in result["claims"]) for v in ("holds", "differs", "not run")}
    width = max(len(r["id"]) for r in result["claims"])
    for row in result["claims"]:
        print(f"{row['id']:{width}s}  {row['verdict']:8s}  {row['lab_value']}")
    print(f"{counts['holds']} hold, {counts['differs']} differ, {counts['not run']} not run — "
          f"{result['seconds']:.0f} s; report in {result['folder']}/index.md")


def parser() -> argparse.ArgumentParser:
    top = OneLineParser(prog="labkit", description="The poisoning & backdoor lab's command line.")
    top.add_argument("--profile", choices=("ci", "lab", "paper"), help="override LABKIT_PROFILE")
    sub = top.add_subparsers(dest="command", required=True)

    p = sub.add_parser("info", help="versions, profile, directories, datasets, experiments")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_info)

    p = sub.add_parser("data", help="list datasets or download one")
    p.add_argument("action", choices=("list", "download"))
    p.add_argument("name", nargs="?")
    p.set_defaults(fn=cmd_data)

    p = sub.add_parser("run", help="run one experiment (cached); `labkit run NAME --help` lists its knobs",
                       add_help=False)
    p.add_argument("experiment")
    p.add_argument("-h", "--help", action="store_true", help="the experiment's knobs, defaults and ranges")
    p.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE")
    p.add_argument("--json", action="store_true")
    p.add_argument("--no-cache", action="store_true", help="recompute even when a cached result exists")
    p.set_defaults(fn=cmd_run)

    p = sub.add_parser("sweep", help="run an experiment over a grid of values")
    p.add_argument("experiment")
    p.add_argument("--grid", nargs="+", action="extend", default=[], metavar="KEY=V1,V2,...")
    p.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE")
    p.add_argument("--jobs", type=positive_int, default=1, help="parallel processes (an int >= 1)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run the grid on a Dask cluster: tcp://host:8786, or local:N workers here "
                        "(default: LABKIT_SCHEDULER; results are written to this machine's cache)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_sweep)

    p = sub.add_parser("bench", help="benchmarks (ratios against same-run baselines); `bench course` times the notebooks")
    p.add_argument("names", nargs="*")
    p.add_argument("--json", action="store_true")
    p.add_argument("--profile", dest="bench_profile", choices=("ci", "lab", "paper"), help="profile to measure in")
    p.add_argument("--notebooks", nargs="+", metavar="NOTEBOOK",
                   help="with `course`: only these notebooks (names or numbers, e.g. 03 07)")
    p.set_defaults(fn=cmd_bench)

    p = sub.add_parser("warm", help="fill the cache for every notebook of a profile (run them headlessly)")
    p.add_argument("notebooks", nargs="*", help="notebook names or numbers (default: all)")
    p.add_argument("--profile", dest="warm_profile", choices=("ci", "lab", "paper"), help="profile to warm")
    p.add_argument("--jobs", type=positive_int, default=None,
                   help="notebooks at once (default: cores / threads per experiment)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run each notebook on a Dask worker (tcp://host:8786 or local:N; default LABKIT_SCHEDULER); "
                        "the entries they compute are written to this machine's cache")
    p.add_argument("--widgets", action="store_true",
                   help="also every position the notebooks' widgets offer (far more compute: a room warmed overnight)")
    p.set_defaults(fn=cmd_warm)

    p = sub.add_parser("site", help="the course as static HTML: run the notebooks, write their pages and a course map")
    p.add_argument("notebooks", nargs="*", help="notebook names or numbers (default: all)")
    p.add_argument("--profile", dest="site_profile", choices=("ci", "lab", "paper"), help="profile to run them in")
    p.add_argument("--out", default=None, help="output folder (default: data/site)")
    p.set_defaults(fn=cmd_site)

    p = sub.add_parser("reproduce", help="the papers' claims measured here, with verdicts: data/reports/<dataset>-<profile>/")
    p.add_argument("--dataset", default="digits", help="digits (bundled), mnist or fashion-mnist (default: digits)")
    p.add_argument("--profile", dest="reproduce_profile", choices=("ci", "lab", "paper"), help="profile to measure in")
    p.add_argument("--out", default=None, help="output folder (default: data/reports/<dataset>-<profile>)")
    p.add_argument("--jobs", type=positive_int, default=1,
                   help="processes measuring the claims' seeds at once, each with the sequential run's thread count "
                        "(LABKIT_THREADS=1 --jobs 2 uses 2 cores best)")
    p.add_argument("--papers", default=None, metavar="P1,P2",
                   help="only these papers' rows, comma-separated (default: all): badnets, label-consistent, dpsgd, "
                        "certified, neural-cleanse, fine-pruning, strip, blind")
    p.set_defaults(fn=cmd_reproduce)

    p = sub.add_parser("cache", help="manage cached results")
    p.add_argument("action", choices=("clear",))
    p.add_argument("--profile", dest="cache_profile", choices=("ci", "lab", "paper"))
    p.set_defaults(fn=lambda a: cmd_cache(argparse.Namespace(profile=a.cache_profile)))
    return top


def os_error_line(error: OSError) -> str:
    """One line for an operating-system error: what failed, on which path, and what to do."""
    where = f" on {error.filename}" if error.filename else ""
    return (f"{error.strerror or type(error).__name__}{where}; check that the path exists and is writable, "
            f"or point LABKIT_CACHE_DIR / LABKIT_DATA_DIR elsewhere")


def main(argv: list[str] | None = None) -> int:
    try:
        args = parser().parse_args(argv)
        if args.profile:
            from labkit import config

            config.use_profile(args.profile)
        args.fn(args)
    except LabkitError as error:
        print(f"labkit: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"labkit: error: {os_error_line(error)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("labkit: interrupted (cached results so far are intact)", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

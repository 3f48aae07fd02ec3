"""The reproduction report: every paper's claims, measured here, with a verdict (`labkit reproduce`).

`build(dataset, profile)` evaluates each claim of `labkit.claims` over the profile's seeds (through the
experiment registry and its cache: a warm cache makes the report instant, and an interrupted run resumes
where it stopped), draws the figures that explain the verdicts, and writes
`<data>/reports/<dataset>-<profile>/`: `claims.json` (`{"claims": [{id, paper, notebook, claim, paper_value,
lab_value, criterion, verdict, values, seeds, why, seconds}, …], "dataset", "profile", "seeds", "seconds",
"complete"}`, rewritten after each claim, so a report cut short keeps its finished rows),
`index.md` and its PNG figures. `notebook_table(notebook, …)` is the same rows as Markdown, for the
notebooks' closing tables.
"""
from __future__ import annotations

import contextlib
import json
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm.auto import tqdm

from labkit import claims, config, data, paths
from labkit.errors import LabkitError
from labkit.experiments import run
from labkit.files import atomic_write, atomic_write_bytes


def default_out(dataset: str, profile: str) -> Path:
    return paths.data_dir() / "reports" / f"{dataset}-{profile}"


def check_papers(papers: Sequence[str] | None) -> list[str]:
    """`papers` (None: every paper) in the registry's order; a one-line error names the valid ones."""
    known = list(claims.PAPERS)
    if papers is None:
        return known
    unknown = [p for p in papers if p not in known]
    if unknown or not papers:
        raise LabkitError(f"unknown paper {', '.join(unknown) or '(none given)'}: choose from {', '.join(known)}")
    return [p for p in known if p in papers]


def _measure_one(job: tuple[str, str, str, int]) -> tuple[dict, str, float]:
    """One seed of one claim, in a worker process: (values, reason not run, seconds)."""
    claim_id, dataset, profile, seed = job
    start = time.perf_counter()
    values, not_run = claims.measure_seed(claims.get(claim_id), dataset, profile, seed)
    return values, not_run, time.perf_counter() - start


def evaluate_all(dataset: str, profile: str, seeds: Sequence[int] | None = None, *, papers: Sequence[str] | None = None,
                 jobs: int = 1, progress: bool = True, on_row=None) -> list[dict]:
    """Every claim's row (of `papers`, default all) in definition order; a progress bar over claims.
    `jobs` > 1 measures the (claim, seed) pairs in that many processes, each with the thread count a
    sequential run uses (`LABKIT_THREADS`, else the profile's), so the numbers do not depend on `jobs`; pairs
    are handed out in order, so the workers mostly measure different seeds of a claim, and an experiment two
    of them need at once is computed by one while the other waits on the cache (`cache.computing`).
    `on_row(rows so far)` is called after each claim (the report writes its partial claims.json there); a
    row's `seconds` is the time its seeds took, summed over workers when `jobs` > 1."""
    data.check_name(dataset)
    seeds = tuple(seeds if seeds is not None else config.profile(profile).seeds)
    chosen = [c for c in claims.all_claims() if papers is None or c.paper in papers]
    bar = tqdm(total=len(chosen), desc=f"reproduce {dataset}-{profile}", disable=not progress or None)
    rows: list[dict] = []

    def add(row: dict) -> None:
        rows.append(row)
        bar.update()
        if on_row is not None:
            on_row(rows)
    pairs = [(c.id, dataset, profile, seed) for c in chosen for seed in seeds]
    try:
        with contextlib.ExitStack() as stack:
            if jobs == 1:
                measured = map(_measure_one, pairs)  # lazily, one pair at a time, in this process
            else:
                pool = stack.enter_context(ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")))
                measured = pool.map(_measure_one, pairs)
            for claim in chosen:
                bar.set_postfix_str(claim.id)
                per_seed = [next(measured) for _ in seeds]
                not_run = next((reason for _, reason, _ in per_seed if reason), "")
                values = {} if not_run else claims.gather([v for v, _, _ in per_seed])
                add({**claims.row(claim, seeds, values, not_run),
                     "seconds": round(sum(t for _, _, t in per_seed), 2)})
    finally:
        bar.close()
    return rows


def notebook_table(notebook: str, dataset: str, profile: str | None = None, seeds: Sequence[int] | None = None) -> str:
    """The closing "paper vs this lab" table of `notebook` ("01" …): its claims as Markdown rows with verdicts."""
    prof = config.profile(profile).name
    rows = evaluate_all(dataset, prof, seeds, progress=False,
                        papers=sorted({c.paper for c in claims.all_claims(notebook=notebook)}))
    rows = [r for r in rows if r["notebook"] == notebook]
    return markdown(rows)


def markdown(rows: list[dict]) -> str:
    """Rows as a Markdown table: claim, paper, this lab, criterion, verdict (bold)."""
    from labkit.plots import markdown_table

    return markdown_table([[r["claim"], r["paper_value"], r["lab_value"], r["criterion"], f"**{r['verdict']}**"]
                           for r in rows], ["claim", "paper", "this lab", "criterion", "verdict"])


# ---------------------------------------------------------------- figures

def figures(dataset: str, profile: str, seeds: Sequence[int], rows: list[dict]) -> dict[str, object]:
    """{file name: matplotlib figure} for the claims that ran (they read the runs the claims cached)."""
    from matplotlib import pyplot as plt

    from labkit import plots
    from labkit.plots import reproduce as rp

    claims.discover()
    plots.setup()
    ran = {r["id"] for r in rows if r["verdict"] != "not run"}
    out = {}
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(rows) + 0.6))
    rp.verdict_strip(ax, rows)
    ax.set_title(f"verdicts — {dataset}, profile {profile}, seeds {list(seeds)}")
    out["verdicts.png"] = fig
    if "lc-epsilon-grows" in ran:
        out["label-consistent-epsilon.png"] = _epsilon_figure(dataset, profile, seeds)
    if "lc-latent-tau" in ran:
        out["label-consistent-tau.png"] = _tau_figure(rows)
    if "lc-amplitude-32" in ran:
        out["label-consistent-amplitude.png"] = _amplitude_figure(rows)
    if "lc-loss-stays-high" in ran:
        out["label-consistent-loss.png"] = _loss_figure(dataset, profile, seeds[0])
    if "blind-pattern" in ran:
        out["blind-tasks.png"] = _blind_figure(rows)
    if "dpsgd-four-corner" in ran:
        out["dpsgd-sigma.png"] = _dpsgd_figure(rows)
    if "dpsgd-sigma-sweep" in ran:
        out["dpsgd-sweep.png"] = _sweep_figure(rows)
    if "fp-spare-capacity" in ran:
        out["fine-pruning-width.png"] = _width_figure(dataset, profile, seeds[0])
    if "fp-report-table3" in ran:
        out["fine-pruning-weights.png"] = _weights_figure(dataset, profile, seeds[0])
    return out


def _dpsgd_figure(rows: list[dict]):
    """Attack success and accuracy at σ = 0 and σ = 1 for each DP-SGD row (mean over seeds, seeds as dots)."""
    from matplotlib import pyplot as plt

    from labkit.plots import ACC_COLOUR, ASR_COLOUR, _percent_axis

    ids = [i for i in ("dpsgd-four-corner", "dpsgd-x-trigger", "dpsgd-frozen") if _row(rows, i)["values"]]
    fig, ax = plt.subplots(figsize=(7, 3.8))
    for j, claim_id in enumerate(ids):
        v = _row(rows, claim_id)["values"]
        for k, (key, colour) in enumerate((("asr", ASR_COLOUR), ("accuracy", ACC_COLOUR))):
            for m, sigma in enumerate(("0", "1")):
                x = j + (2 * k + m - 1.5) * 0.2
                values = v[f"{key}_sigma{sigma}"]
                ax.bar(x, np.mean(values), 0.18, color=colour, alpha=0.45 if sigma == "0" else 1.0,
                       label=f"{key}, σ = {sigma}" if j == 0 else None)
                ax.plot([x] * len(values), values, "k.", ms=3)
    ax.set_xticks(range(len(ids)), [i.removeprefix("dpsgd-") for i in ids])
    ax.set_ylim(0, 1.05)
    _percent_axis(ax.yaxis)
    ax.legend(fontsize=8, ncol=2)
    ax.set_title("DP-SGD at 3% poisoned: σ = 0 (pale) vs σ = 1")
    return fig


def _sweep_figure(rows: list[dict]):
    """One panel per poison fraction: four-corner ASR (solid) and accuracy (dashed) over the thesis' σ grid, the
    'x' trigger and frozen layers as markers at σ = 0 and 1 (means over seeds; seeds as dots)."""
    from matplotlib import pyplot as plt

    from labkit.claims import dpsgd as dpc
    from labkit.plots import ACC_COLOUR, ASR_COLOUR, _percent_axis

    v = _row(rows, "dpsgd-sigma-sweep")["values"]
    fig, axes = plt.subplots(1, len(dpc.SWEEP_POISON), figsize=(4.6 * len(dpc.SWEEP_POISON), 3.8), sharey=True)
    for ax, fraction in zip(np.atleast_1d(axes), dpc.SWEEP_POISON):
        for metric, colour, style in (("asr", ASR_COLOUR, "-"), ("accuracy", ACC_COLOUR, "--")):
            values = [v[dpc.sweep_key("four-corner", fraction, s, metric)] for s in dpc.SWEEP_SIGMAS]
            ax.plot(dpc.SWEEP_SIGMAS, [np.mean(x) for x in values], style, color=colour, marker="o",
                    label=f"four-corner, {'attack success' if metric == 'asr' else 'accuracy'}")
            for sigma, x in zip(dpc.SWEEP_SIGMAS, values):
                ax.plot([sigma] * len(x), x, "k.", ms=3)
        for name, marker in (("x", "x"), ("frozen", "s")):
            ax.plot([0.0, 1.0], [np.mean(v[dpc.sweep_key(name, fraction, s)]) for s in (0.0, 1.0)], ":",
                    marker=marker, color=ASR_COLOUR, alpha=0.7, label=f"{name}, attack success")
        ax.set_xlabel("noise multiplier σ")
        ax.set_title(f"{fraction:.0%} of the training set poisoned")
        ax.set_ylim(0, 1.05)
        _percent_axis(ax.yaxis)
    np.atleast_1d(axes)[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def _width_figure(dataset: str, profile: str, seed: int):
    from matplotlib import pyplot as plt

    from labkit.experiments import fine_pruning as fpx
    from labkit.plots import fine_pruning as fplots

    runs = [run("fine-pruning-width", profile=profile, dataset=dataset, seed=seed, width=w)
            for w in fpx.SIZES.of(profile)["widths"]]
    fig, ax = plt.subplots(figsize=(7, 3.8))
    fplots.width_sweep(ax, runs)
    ax.set_title(f"fine-pruning against the last conv layer's width (seed {seed})")
    return fig


def _weights_figure(dataset: str, profile: str, seed: int):
    from matplotlib import pyplot as plt

    from labkit.plots import fine_pruning as fplots

    result = run("fine-pruning-weights", profile=profile, dataset=dataset, seed=seed)
    fig, ax = plt.subplots(figsize=(7, 3.8))
    fplots.weight_rounds(ax, result["rounds"], max_drop=0.01)
    ax.set_title(f"the report's weight-threshold fine-pruning (seed {seed})")
    return fig


def _row(rows: list[dict], claim_id: str) -> dict:
    return next(r for r in rows if r["id"] == claim_id)


def _epsilon_figure(dataset: str, profile: str, seeds: Sequence[int]):
    from matplotlib import pyplot as plt

    from labkit.attacks import label_consistent as lc
    from labkit.claims import label_consistent as lcc
    from labkit.plots import reproduce as rp

    epsilons = lcc.SIZES.of(profile)["epsilons"]
    sizes, success = [], []
    for eps in epsilons:
        per_seed = []
        for seed in seeds:
            r = lcc.curve_run(claims.Setting(dataset, profile, seed), eps)
            per_seed.append((r["perturbation_l2"], r["attack_success_rate"]))
        success.append([p[1] for p in per_seed])
        sizes.append(np.mean([p[0] for p in per_seed]))
    ds = data.load(dataset, profile=profile)
    norm = float(ds.x_train.flatten(1).norm(dim=1).mean())
    sizes = [size / norm for size in sizes]
    thesis = {f"thesis ε={e:g}": e / lc.REFERENCE_IMAGE_NORM for e in (300, 600, 1200)}
    per_pixel = {f"ε={e:g}": lc.scale_epsilon(e, "l2", ds.image_shape) / norm for e in (300, 600, 1200)}
    fig, ax = plt.subplots(figsize=(7, 4))
    rp.epsilon_curve(ax, sizes, np.array(success), thesis, per_pixel)
    ax.set_title(f"ε curve ({dataset}, half of the target class poisoned): solid lines = thesis ε on CIFAR-10, "
                 f"dotted = the per-pixel conversion", fontsize=8)
    return fig


def _tau_figure(rows: list[dict]):
    from matplotlib import pyplot as plt

    from labkit.plots import reproduce as rp

    v = _row(rows, "lc-latent-tau")["values"]
    taus = [float(k.removeprefix("latent_")) for k in v if k.startswith("latent_")]
    curves = {"GAN latent": np.array([v[f"latent_{t:g}"] for t in taus]),
              "pixel": np.array([v[f"pixel_{t:g}"] for t in taus])}
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    rp.tau_curves(ax, taus, curves, {f"PGD ℓ2, ε={v['working_epsilon'][0]:g}": np.array(v["pgd"]),
                                     "baseline": np.array(v["baseline"])})
    ax.set_title("interpolation towards the source class: latent (GAN) vs pixels")
    return fig


def _amplitude_figure(rows: list[dict]):
    from matplotlib import pyplot as plt

    from labkit.plots import reproduce as rp

    v = _row(rows, "lc-amplitude-32")["values"]
    keys = [k for k in v if k.startswith("asr_")]
    eps = max(float(k.split("_e")[-1]) for k in keys)
    amps = sorted({float(k.split("_a")[1].split("_f")[0]) for k in keys})
    fractions = sorted({float(k.split("_f")[1].split("_e")[0]) for k in keys})
    at_amp = {f"a={a:g}": np.array([v[f"asr_a{a:g}_f{f:g}_e{eps:g}"] for f in fractions]) for a in amps}
    at_full = {f"a={a:g}": np.array([v[f"full_a{a:g}_f{f:g}_e{eps:g}"] for f in fractions]) for a in amps}
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    rp.amplitude_boundary(ax, fractions, at_amp, at_full)
    ax.set_title(f"reduced-amplitude trigger, PGD ℓ2 ε={eps:g} (image-norm)")
    return fig


def _loss_figure(dataset: str, profile: str, seed: int):
    from matplotlib import pyplot as plt

    from labkit.claims import label_consistent as lcc
    from labkit.plots import label_consistent as lcplots

    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    lcplots.loss_dynamics(ax, lcc.headline(claims.Setting(dataset, profile, seed))["history"],
                          f"training loss, headline PGD run (seed {seed})")
    return fig


def _blind_figure(rows: list[dict]):
    from matplotlib import pyplot as plt

    from labkit.plots import reproduce as rp

    runs = [("pattern", "blind-pattern"), ("calculator", "blind-calculator"), ("single pixel", "blind-single-pixel"),
            ("evasion, MGDA", "blind-nc-evasion"), ("evasion, fixed", "blind-nc-evasion-fixed")]
    runs = [(label, cid) for label, cid in runs if _row(rows, cid)["verdict"] != "not run"]
    vals = [_row(rows, cid)["values"] for _, cid in runs]
    fig, ax = plt.subplots(figsize=(7, 3.8))
    rp.task_bars(ax, [label for label, _ in runs], [claims.mean(v["main_clean"]) for v in vals],
                 [claims.mean(v["main_backdoored"]) for v in vals], [claims.mean(v["backdoor"]) for v in vals])
    ax.set_title("blind backdoors: main task and backdoor (means over seeds)")
    return fig


# ---------------------------------------------------------------- the report

def index_markdown(result: dict, figure_names: Sequence[str]) -> str:
    """index.md: the claim table, each differing claim's reason, the figures, how it was made."""
    rows = result["claims"]
    counts = {v: sum(r["verdict"] == v for r in rows) for v in claims.VERDICTS}
    lines = [f"# Reproduction report — {result['dataset']}, profile `{result['profile']}`", "",
             f"Seeds {result['seeds']} (lab values are mean ± std over them). {counts['holds']} claims hold, "
             f"{counts['differs']} differ, {counts['not run']} not run. Computed in {result['seconds']:.0f} s "
             f"(cached runs are read, not recomputed).", ""]
    for paper in claims.PAPERS:
        chosen = [r for r in rows if r["paper"] == paper]
        if not chosen:
            continue
        lines += [f"## {paper} (notebook {chosen[0]['notebook']})", ""]
        if paper in claims.NOTES:
            lines += [claims.NOTES[paper], ""]
        lines.append(markdown(chosen))
        for r in chosen:
            if r["why"]:
                lines.append(f"- **{r['id']}** ({r['verdict']}): {r['why']}")
        lines.append("")
    lines += ["## Figures", ""] + [f"![{name}]({name})" for name in figure_names]
    only = result.get("papers", list(claims.PAPERS))
    option = "" if list(only) == list(claims.PAPERS) else f" --papers {','.join(only)}"
    if option:
        lines[4:4] = [f"Only these papers' rows: {', '.join(only)}.", ""]
    lines += ["", f"Made by `labkit reproduce --dataset {result['dataset']} --profile {result['profile']}{option}`; "
              "`claims.json` holds every row with its per-seed values."]
    return "\n".join(lines) + "\n"


def build(dataset: str, profile: str | None = None, out: Path | str | None = None, *, jobs: int = 1,
          progress: bool = True, papers: Sequence[str] | None = None) -> dict:
    """Evaluate every claim (of `papers`, default all), write claims.json, index.md and the figures into `out`;
    return the JSON object (its "papers" lists the papers whose rows it holds)."""
    prof = config.profile(profile).name
    data.check_name(dataset)
    papers = check_papers(papers)
    folder = Path(out) if out is not None else default_out(dataset, prof)
    if folder.exists() and not folder.is_dir():
        raise LabkitError(f"--out {folder} is a file; name a folder")
    start = time.perf_counter()
    seeds = config.profile(prof).seeds
    folder.mkdir(parents=True, exist_ok=True)

    def partial(rows: list[dict]) -> None:  # a report cut short keeps the rows it finished
        atomic_write_bytes(json.dumps({"dataset": dataset, "profile": prof, "seeds": list(seeds), "claims": rows,
                                       "seconds": round(time.perf_counter() - start, 1), "complete": False},
                                      indent=2, ensure_ascii=False).encode(), folder / "claims.json")

    rows = evaluate_all(dataset, prof, seeds, jobs=jobs, progress=progress, on_row=partial, papers=papers)
    result = {"dataset": dataset, "profile": prof, "seeds": list(seeds), "papers": list(papers), "claims": rows,
              "seconds": round(time.perf_counter() - start, 1), "complete": True}
    figs = figures(dataset, prof, seeds, rows)
    for name, fig in figs.items():
        atomic_write(folder / name, lambda stream, fig=fig: fig.savefig(stream, format="png", dpi=110,
                                                                         bbox_inches="tight"))
    from matplotlib import pyplot as plt

    for fig in figs.values():
        plt.close(fig)
    atomic_write_bytes(json.dumps(result, indent=2, ensure_ascii=False).encode(), folder / "claims.json")
    atomic_write_bytes(index_markdown(result, list(figs)).encode(), folder / "index.md")
    result["folder"] = str(folder)
    return result

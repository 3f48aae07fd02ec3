"""The course as a static site: `make site` / `labkit site [--profile P] [--out DIR] [NOTEBOOK ...]`.

Each `notebooks/NN_name.py` (the jupytext source, so what is built is what is reviewed) is executed by nbclient
with the notebook's kernel, in `notebooks/`, with `LABKIT_PROFILE=<profile>` — the experiments read and fill the
result cache as a student's run would, so a warm cache makes the build quick. nbconvert's `lab` template, extended
by the small template below, writes one page per notebook: every figure embedded as a `data:` PNG, every table as
HTML, a home / previous / next bar at top and bottom, and each interactive control replaced by a note (a static
page has no kernel to move it). `index.html` is the course map — per notebook its paper, its question, the knob a
student turns (the paper and knob from the README's notebook table) and the time it took to run here — followed
by the reproduction report's claim table once that report exists.

Times: a run that only read the cache is recorded as *warm*; one that computed results as *computing* with how
many it computed (all of them on an empty cache, a few after a code change invalidated some). The last of each is
kept in `<out>/timings.json` per profile, so the map shows both. The pages need nothing from the network,
except MathJax (from its CDN, as nbconvert's template has it) for the one formula in notebook 05.
"""
from __future__ import annotations

import datetime
import html
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from labkit import config, paths
from labkit.course import over_local_sockets
from labkit.errors import LabkitError

NOTEBOOKS = paths.PROJECT_ROOT / "notebooks"
README = paths.PROJECT_ROOT / "README.md"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_NOTE = ('<p class="site-widget">An interactive control sits here in JupyterLab (<code>make lab</code>); '
               'this page shows the figure at the control\'s default setting.</p>')


def default_out() -> Path:
    return paths.data_dir() / "site"


@dataclass(frozen=True)
class Notebook:
    stem: str  # "01_badnets"
    title: str  # the first heading, e.g. "01 · BadNets: a backdoor from a handful of mislabelled images"
    paper: str
    question: str  # markdown
    knob: str  # markdown
    source: Path

    @property
    def page(self) -> str:
        return f"{self.stem}.html"


def _readme_table(readme: Path = README) -> dict[str, tuple[str, str]]:
    """`| \\`01_badnets\\` | paper | knob |` rows of the README's notebook table → {stem: (paper, knob)}."""
    rows = {}
    text = readme.read_text(encoding="utf-8") if readme.exists() else ""
    for match in re.finditer(r"^\|\s*`(\d\d_\w+)`\s*\|([^|]*)\|([^|]*)\|\s*$", text, re.M):
        rows[match[1]] = (match[2].strip(), match[3].strip())
    return rows


def _capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


def course(folder: Path = NOTEBOOKS, readme: Path = README) -> list[Notebook]:
    """The notebooks in course order, each with its title, paper, question and knob."""
    import jupytext

    table = _readme_table(readme)
    out = []
    for source in sorted(folder.glob("[0-9][0-9]_*.py")):
        cells = jupytext.read(source).cells
        first = next((c.source for c in cells if c.cell_type == "markdown"), "")
        title = re.search(r"^#\s+(.+)$", first, re.M)
        asked = re.search(r"\*\*The question\*\*\s*(?:\(([^)]*)\))?\s*:?\s*(.*?\?)(?=\s|$)", first, re.S)
        paper, knob = table.get(source.stem, ((asked[1] or "") if asked else "", "—"))
        question = _capitalised(" ".join(asked[2].split())) if asked else ""
        out.append(Notebook(stem=source.stem, title=title[1].strip() if title else source.stem,
                            paper=paper or "—", question=question, knob=knob, source=source))
    return out


def _cache_entries(profile: str) -> int:
    folder = paths.cache_dir() / profile
    return sum(1 for _ in folder.glob("*.pt")) if folder.is_dir() else 0


def execute(notebook: Notebook, profile: str, timeout: int = 1800):
    """Run one notebook in `profile`; returns (executed notebook, seconds, results computed, error line or None).

    On a failing cell the notebook keeps the outputs up to and including the error, so its page shows it."""
    import jupytext
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    nb = jupytext.read(notebook.source)
    kernel = nb.metadata.get("kernelspec", {}).get("name", "python3")
    env = {**os.environ, "LABKIT_PROFILE": profile, "TQDM_DISABLE": "1"}  # a static page shows no progress bar
    client = over_local_sockets(NotebookClient(nb, timeout=timeout, kernel_name=kernel, store_widget_state=False,
                                               resources={"metadata": {"path": str(notebook.source.parent)}}))
    before, error = _cache_entries(profile), None
    start = time.perf_counter()
    try:
        client.execute(env=env)
    except CellExecutionError as failure:
        lines = [line for line in str(failure).strip().splitlines() if line.strip()]
        error = lines[-1] if lines else type(failure).__name__
    except (CellTimeoutError, DeadKernelError) as failure:
        error = f"{type(failure).__name__}: {failure}".splitlines()[0]
    seconds = time.perf_counter() - start
    return nb, seconds, max(0, _cache_entries(profile) - before), error


PROGRESS = re.compile(r"\d+%\|")  # tqdm's text: "sweep badnets:  33%|███   | 1/3 [00:02<00:04, ...]"


PREDICTION_NOTE = ("<p class=\"site-widget\"><em>Answer this prediction in JupyterLab: the notebook checks it "
                   "and then reveals the reason.</em></p>")


def static_widgets(nb) -> int:
    """Widget views are dead without a kernel: a progress bar is dropped (its text is its first frame), a control
    becomes a note saying where to move it. Returns how many controls were replaced."""
    replaced = 0
    for cell in nb.cells:
        kept = []
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if WIDGET_VIEW in data:
                if PROGRESS.search(str(data.get("text/plain", ""))):
                    continue
                if output.get("metadata", {}).get("labkit") == "prediction":  # an exercise's answer box
                    output["data"] = {"text/html": PREDICTION_NOTE}
                    kept.append(output)
                    continue
                static = {k: v for k, v in data.items() if k.startswith("image/")}  # the widget's figure
                kept.append({"output_type": "display_data", "metadata": {}, "data": {"text/html": WIDGET_NOTE}})
                replaced += 1
                if static:
                    output["data"] = static
                    kept.append(output)
                continue
            kept.append(output)
        if "outputs" in cell:
            cell["outputs"] = kept
    return replaced


PAGE_TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block html_head_js_mathjax -%}
{%- if resources.site.math -%}{{ super() }}{%- endif -%}
{%- endblock html_head_js_mathjax -%}
{%- block extra_css -%}<style type="text/css">{{ resources.site.css }}</style>{%- endblock extra_css -%}
{%- block body_header -%}{{ super() }}{{ resources.site.nav }}{{ resources.site.banner }}{%- endblock body_header -%}
{%- block body_footer -%}{{ resources.site.nav }}{{ super() }}{%- endblock body_footer -%}
"""

CSS = """
nav.site-nav { display: flex; justify-content: space-between; gap: 1em; margin: 0.6em 0 1.2em;
  padding: 0.5em 0.8em; background: #f3f5f8; border-radius: 6px; font-family: system-ui, sans-serif; }
nav.site-nav a { text-decoration: none; color: #1f5f99; }
nav.site-nav span.none { color: #999; }
p.site-run, p.site-widget { font-family: system-ui, sans-serif; font-size: 0.9em; color: #555; }
p.site-widget { border-left: 3px solid #2c7fb8; padding-left: 0.6em; }
p.site-error { background: #fdecea; border-left: 4px solid #c0392b; padding: 0.5em 0.8em;
  font-family: system-ui, sans-serif; }
body.site-index { max-width: 1100px; margin: 2em auto; padding: 0 1em; font-family: system-ui, sans-serif;
  line-height: 1.45; color: #222; }
table.site-table { border-collapse: collapse; width: 100%; font-size: 0.92em; }
table.site-table th, table.site-table td { border-bottom: 1px solid #ddd; padding: 0.45em 0.5em;
  text-align: left; vertical-align: top; }
table.site-table th { background: #f3f5f8; }
"""


def _inline(markdown: str) -> str:
    """One paragraph of markdown as inline HTML (no surrounding <p>)."""
    from nbconvert.filters.markdown import markdown2html

    return re.sub(r"^\s*<p>(.*)</p>\s*$", r"\1", markdown2html(markdown), flags=re.S)


def plain(markdown: str) -> str:
    """A title without its markdown emphasis, for <title> and the navigation bar."""
    return re.sub(r"[*`]+(\S[^*`]*?)[*`]+", r"\1", markdown)


def nav(notebooks: list[Notebook], index: int | None) -> str:
    """Home / previous / next; `index` None is the front page."""
    def link(i: int, arrow: str) -> str:
        if 0 <= i < len(notebooks):
            n = notebooks[i]
            title = html.escape(plain(n.title))
            text = f"← {title}" if arrow == "prev" else f"{title} →"
            return f'<a rel="{arrow}" href="{n.page}">{text}</a>'
        return f'<span class="none">{"← previous" if arrow == "prev" else "next →"}</span>'

    here = -1 if index is None else index
    home = ('<span class="none">course map</span>' if index is None
            else '<a rel="home" href="index.html">⌂ course map</a>')
    return f'<nav class="site-nav">{link(here - 1, "prev")}{home}{link(here + 1, "next")}</nav>'


def render_page(nb, notebooks: list[Notebook], index: int, banner: str) -> str:
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab", template_file="course.html.j2",
                            extra_loaders=[DictLoader({"course.html.j2": PAGE_TEMPLATE})],
                            exclude_input_prompt=True, exclude_output_prompt=True)
    nb.metadata["title"] = plain(notebooks[index].title)
    math = any(c.cell_type == "markdown" and "$" in c.source for c in nb.cells)  # MathJax only where needed
    site = {"css": CSS, "nav": nav(notebooks, index), "banner": banner, "math": math}
    body, _ = exporter.from_notebook_node(nb, resources={"site": site})
    return body


def _shown(path: Path) -> str:
    """A path relative to the checkout when it lies inside it."""
    try:
        return str(path.resolve().relative_to(paths.PROJECT_ROOT))
    except ValueError:
        return str(path)


def claim_table(profile: str, reports: Path | None = None) -> str:
    """The reproduction report's claims (`<data>/reports/<dataset>-<profile>/claims.json`, rows of id, paper,
    notebook, claim, paper_value, lab_value, criterion, verdict) as HTML tables, or a line saying it is not built."""
    folder = reports or paths.data_dir() / "reports"
    found = sorted(folder.glob(f"*-{profile}/claims.json")) if folder.is_dir() else []
    if not found:
        return (f"<p>Not built yet: the claim table appears here once the reproduction report for the "
                f"<code>{profile}</code> profile exists (<code>{html.escape(_shown(folder))}/&lt;dataset&gt;-{profile}/"
                f"claims.json</code>).</p>")
    columns = ("claim", "paper", "notebook", "paper_value", "lab_value", "criterion", "verdict")
    parts = []
    for path in found:
        parts.append(f"<h3>{html.escape(path.parent.name)}</h3>")
        try:
            rows = json.loads(path.read_text(encoding="utf-8"))["claims"]
        except (OSError, ValueError, KeyError, TypeError) as error:
            parts.append(f"<p>{html.escape(str(path))} could not be read ({html.escape(type(error).__name__)}).</p>")
            continue
        head = "".join(f"<th>{c.replace('_', ' ')}</th>" for c in columns)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(str(row.get(c, '')))}</td>" for c in columns) + "</tr>"
                       for row in rows if isinstance(row, dict))
        parts.append(f'<table class="site-table"><tr>{head}</tr>{body}</table>')
    return "\n".join(parts)


def _seconds(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.0f} s" if value < 90 else f"{value / 60:.1f} min"


def _results(count: int) -> str:
    return f"{count} result{'' if count == 1 else 's'}"


def _computing(row: dict) -> str:
    if "computing_s" not in row:
        return "computing —"
    return f"computing {_results(row['computed'])}: {_seconds(row['computing_s'])}"


def render_index(notebooks: list[Notebook], profile: str, timings: dict, built: set[str], stamp: str) -> str:
    rows = []
    for n in notebooks:
        t = timings.get(n.stem, {})
        name = _inline(n.title)
        link = f'<a href="{n.page}">{name}</a>' if n.stem in built else f"{name} <em>(page not built)</em>"
        rows.append(f"<tr><td>{link}</td><td>{_inline(n.paper)}</td><td>{_inline(n.question)}</td>"
                    f"<td>{_inline(n.knob)}</td><td>warm {_seconds(t.get('warm_s'))}<br>{_computing(t)}</td></tr>")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>The poisoning &amp; backdoor lab</title><style type="text/css">{CSS}</style></head>
<body class="site-index">
{nav(notebooks, None)}
<h1>The poisoning &amp; backdoor lab</h1>
<p>An interactive course on data poisoning and backdoor attacks against machine learning, and the defenses
against them — one notebook per paper. These pages are the notebooks executed in the <code>{profile}</code>
profile ({stamp}); to move the knobs yourself, open them in JupyterLab (<code>make lab</code>).</p>
<h2>Course map</h2>
<table class="site-table">
<tr><th>notebook</th><th>paper</th><th>the question</th><th>the knob you turn</th>
<th>time to run here ({profile})</th></tr>
{''.join(rows)}
</table>
<p class="site-run"><em>warm</em>: the last run here that read every result from the cache
(<code>data/cache/{profile}/</code>); <em>computing</em>: the last that computed results, and how many (all of
them when the cache was empty).</p>
<h2>Paper vs. this lab: the claims</h2>
{claim_table(profile)}
{nav(notebooks, None)}
</body></html>
"""


def build(profile: str | None = None, out: Path | None = None, only: list[str] | None = None,
          log=None) -> dict:
    """Execute the notebooks (all, or the stems / numbers in `only`) in `profile`, write their pages and the
    course map into `out`; returns {"profile", "out", "seconds", "notebooks": {stem: {seconds, computed, error}}}."""
    log = log or (lambda line: print(line, flush=True))
    profile = profile or config.profile_name()
    if profile not in config.PROFILES:
        raise LabkitError(f"unknown profile {profile!r}; choose one of {', '.join(config.PROFILE_NAMES)}")
    out = Path(out) if out else default_out()
    notebooks = course()
    chosen = notebooks
    if only:
        chosen = [n for n in notebooks if n.stem in only or n.stem[:2] in only or n.stem.split("_", 1)[1] in only]
        unknown = [name for name in only if not any(name in (n.stem, n.stem[:2], n.stem.split("_", 1)[1])
                                                    for n in notebooks)]
        if unknown:
            raise LabkitError(f"unknown notebook {unknown[0]!r}; choose from {', '.join(n.stem for n in notebooks)}")
    out.mkdir(parents=True, exist_ok=True)
    timings_path = out / "timings.json"
    try:
        all_timings = json.loads(timings_path.read_text()) if timings_path.exists() else {}
    except ValueError:
        all_timings = {}
    timings = all_timings.setdefault(profile, {})
    report, start = {}, time.perf_counter()
    for n in chosen:
        index = notebooks.index(n)
        log(f"site: running {n.stem} ({profile}) ...")
        nb, seconds, computed, error = execute(n, profile)
        static_widgets(nb)
        when = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
        how = f"computed {_results(computed)}" if computed else "every result from the cache"
        banner = (f'<p class="site-run">Executed in the <code>{profile}</code> profile on {when} in '
                  f'{_seconds(seconds)} ({how}). Source: <code>notebooks/{n.stem}.py</code>.</p>')
        if error:
            banner += f'<p class="site-error">This notebook stopped with an error: {html.escape(error)}</p>'
        (out / n.page).write_text(render_page(nb, notebooks, index, banner), encoding="utf-8")
        if not error:
            row = timings.setdefault(n.stem, {})
            row.update({"computing_s": round(seconds, 1), "computed": computed} if computed
                       else {"warm_s": round(seconds, 1)})
        report[n.stem] = {"seconds": round(seconds, 1), "computed": computed, "error": error}
        log(f"site: {n.stem:34s} {seconds:6.1f} s  {'computed ' + _results(computed) if computed else 'warm'}"
            f"{'  ERROR ' + error if error else ''}")
    timings_path.write_text(json.dumps(all_timings, indent=2, sort_keys=True))
    built = {n.stem for n in notebooks if (out / n.page).exists()}
    stamp = datetime.datetime.now().strftime("built %Y-%m-%d %H:%M")
    (out / "index.html").write_text(render_index(notebooks, profile, timings, built, stamp), encoding="utf-8")
    total = time.perf_counter() - start
    log(f"site: {len(chosen)} notebooks in {total:.1f} s → {out / 'index.html'}")
    return {"profile": profile, "out": str(out), "seconds": round(total, 1), "notebooks": report}

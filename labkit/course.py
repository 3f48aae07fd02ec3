"""The course as a whole: its notebooks, executed headlessly — to warm the cache before a seminar
(`labkit warm`) and to measure what each notebook costs (`labkit bench course`).

A notebook runs in its own Jupyter kernel (nbclient), from `notebooks/`, with `LABKIT_PROFILE` set; its
experiments fill the cache as they finish, so an interrupted warm-up resumes where it stopped. After the
last cell one more cell reports what the kernel computed: how many models it trained
(`labkit.train.trainings_run()`) and which experiments it computed rather than read from the cache, with
their own seconds (`labkit.experiments.computed()`) — where a notebook's time goes. With `widgets=True`, a
cell before that one visits every position of every widget the notebook displayed
(`labkit.widgets.visit_every_position`), so that each move afterwards replots from the cache.
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tqdm.auto import tqdm

from labkit import cache, config, paths
from labkit.errors import LabkitError
from labkit.files import atomic_write_bytes

NOTEBOOK_DIR = paths.PROJECT_ROOT / "notebooks"
COST_MARK = "LABKIT_COST="
CELL_TIMEOUT = 3600  # seconds one cell may take (a paper-profile sweep cell is long)


def over_local_sockets(client):
    """`client` (an nbclient NotebookClient) with its kernel on Unix sockets where the OS has them: the kernel
    is local either way, and over TCP ipykernel prints "running over TCP without encryption" per notebook."""
    if os.name == "posix":
        import uuid

        client.km = client.create_kernel_manager()
        client.km.transport = "ipc"
        # The sockets' path prefix, absolute (the kernel starts in the notebook's folder) and short (a Unix
        # socket path has ~100 characters); the kernel removes its sockets when it stops.
        client.km.ip = str(Path(tempfile.gettempdir()) / f"labkit-kernel-{uuid.uuid4().hex[:12]}")
    return client


def notebooks() -> list[Path]:
    """The course's notebooks (`notebooks/NN_name.ipynb`), in order."""
    found = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
    if not found:
        raise LabkitError(f"no notebooks in {NOTEBOOK_DIR}: run `make notebooks` first")
    return found


def select(names: list[str] | None) -> list[Path]:
    """Notebooks by stem or number prefix (`01`, `01_badnets`); None or [] = all."""
    every = notebooks()
    if not names:
        return every
    chosen = []
    for name in names:
        match = [p for p in every if p.stem == name or p.stem.split("_")[0] == name]
        if not match:
            raise LabkitError(f"unknown notebook {name!r}; choose from {', '.join(p.stem for p in every)}")
        chosen += match
    return chosen


def execute(path: Path, profile: str, *, cache_dir: Path | None = None, progress: bool = True,
            position: int = 0, widgets: bool = False) -> dict:
    """Run every cell of notebook `path` in a fresh kernel in `profile` (and `cache_dir`, default the
    project's cache); with `widgets`, then every position of its widgets. Returns {"seconds": wall seconds,
    "trainings": models trained, "computed": {experiment: {"count", "seconds"}}}; a failing cell raises a
    one-line LabkitError naming the notebook and the error."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    notebook = nbformat.read(path, as_version=4)
    if widgets:
        notebook.cells.append(nbformat.v4.new_code_cell(
            "from labkit import widgets as _widgets; _widgets.visit_every_position()"))
    notebook.cells.append(nbformat.v4.new_code_cell(
        "import json as _json; from labkit import experiments as _experiments, train as _train; "
        f"print('{COST_MARK}' + _json.dumps({{'trainings': _train.trainings_run(), "
        "'computed': _experiments.computed()}))"))
    env = {"LABKIT_PROFILE": profile, "TQDM_DISABLE": "1", "MPLBACKEND": "Agg"}
    if cache_dir is not None:
        env["LABKIT_CACHE_DIR"] = str(cache_dir)
    client = over_local_sockets(NotebookClient(notebook, timeout=CELL_TIMEOUT, kernel_name="python3",
                                               resources={"metadata": {"path": str(path.parent)}}))
    bar = tqdm(total=len(notebook.cells), desc=path.stem, position=position, leave=True,
               **({} if progress else {"disable": True}))
    start = time.perf_counter()
    try:
        with client.setup_kernel(env={**os.environ, **env}):  # the kernel's own environment
            for index, cell in enumerate(notebook.cells):
                client.execute_cell(cell, index)
                bar.update()
    except CellExecutionError as error:
        last = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
        raise LabkitError(f"{path.name} failed in profile {profile}: {last}") from None
    finally:
        bar.close()
    seconds = time.perf_counter() - start
    return {"seconds": seconds, **_cost(notebook.cells[-1])}


def _cost(cell) -> dict:
    for output in cell.get("outputs", []):
        for line in output.get("text", "").splitlines():
            if line.startswith(COST_MARK):
                return json.loads(line[len(COST_MARK):])
    return {"trainings": None, "computed": {}}


def default_jobs() -> int:
    """Notebooks run at once: the cores divided by the torch threads each experiment uses (never more —
    oversubscribed intra-op threads spin and run several times slower)."""
    return max(1, (os.cpu_count() or 1) // config.threads())


def warm(profile: str | None = None, names: list[str] | None = None, jobs: int | None = None,
         progress: bool = True, client=None, widgets: bool = False) -> dict[str, dict]:
    """Execute the notebooks of `profile` (None: the active one) so that every experiment they show is
    cached (with `widgets`, every position their widgets offer too): {notebook: {"seconds", "trainings",
    "computed"}}. `jobs` notebooks run at once (default `default_jobs()`); with a Dask `client` each
    notebook runs on a worker instead (`warm_on_cluster`)."""
    profile = config.profile(profile).name
    chosen = select(names)
    if client is not None:
        return warm_on_cluster(client, profile, [p.stem for p in chosen], progress=progress, widgets=widgets)
    jobs = jobs or default_jobs()
    if jobs == 1:
        return {p.stem: execute(p, profile, progress=progress, widgets=widgets) for p in chosen}
    with ThreadPoolExecutor(max_workers=jobs) as pool:  # each thread drives its own kernel process
        futures = {p.stem: pool.submit(execute, p, profile, progress=progress, position=i, widgets=widgets)
                   for i, p in enumerate(chosen)}
        return {name: future.result() for name, future in futures.items()}


def warm_notebook(stem: str, profile: str, widgets: bool = False) -> dict:
    """On a Dask worker: run notebook `stem` into an empty temporary cache and return {"seconds",
    "trainings", "entries": {path relative to the cache: bytes}} — the entries it computed."""
    with tempfile.TemporaryDirectory(prefix="labkit-warm-") as folder:
        cost = execute(select([stem])[0], profile, cache_dir=Path(folder), progress=False,
                       widgets=widgets)
        entries = {str(p.relative_to(folder)): p.read_bytes() for p in Path(folder).rglob("*.pt")}
    return {**cost, "entries": entries}


def warm_on_cluster(client, profile: str, stems: list[str], progress: bool = True,
                    widgets: bool = False) -> dict[str, dict]:
    """Each notebook executed on a worker (which needs this checkout and the datasets); the entries it
    computed are written into this machine's cache as they arrive — valid entries only, existing ones kept."""
    from distributed import as_completed

    root = paths.cache_dir()
    futures = {client.submit(warm_notebook, stem, profile, widgets, pure=False): stem for stem in stems}
    done = {}
    bar = tqdm(total=len(stems), desc=f"warm {profile} (dask)", **({} if progress else {"disable": True}))
    for future in as_completed(list(futures)):
        result = future.result()
        written = 0
        for relative, blob in result.pop("entries").items():
            target = root / relative
            if not target.exists():
                atomic_write_bytes(blob, target)
                written += cache.read(target) is not None  # a damaged transfer is deleted, not kept
        done[futures[future]] = {**result, "entries_written": written}
        bar.update()
    bar.close()
    return {stem: done[stem] for stem in stems}

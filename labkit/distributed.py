"""Sweeps on a Dask cluster: each grid point is one task; a worker computes the result dict (weights
included) and returns it; the client writes it into its own cache, so no shared filesystem is needed.

`client_for("local:N")` starts a `LocalCluster` of N single-process, single-threaded workers (a laptop);
any other address (`tcp://host:8786`) connects to a running scheduler — `dask scheduler` plus `dask worker`s,
dask-jobqueue on Slurm, dask-kubernetes. Points already in the local cache are not sent. Every task runs
with the profile's fixed torch thread count, so an entry never depends on how it was scheduled: results
are identical to a sequential sweep's.
"""
from __future__ import annotations

import contextlib
import logging
import os

from tqdm.auto import tqdm

from labkit import experiments
from labkit.errors import LabkitError
from labkit.train import progress_kwargs

CONNECT_TIMEOUT = "10s"


def client_for(address: str | None = None):
    """A `distributed.Client` for `address` (None: `LABKIT_SCHEDULER`): `local:N` starts a LocalCluster of N
    workers; anything else is a scheduler address. An unreachable scheduler is one LabkitError line."""
    from distributed import Client, LocalCluster

    address = (address or os.environ.get("LABKIT_SCHEDULER", "")).strip()
    if not address:
        raise LabkitError("no Dask scheduler given: pass --scheduler ADDRESS (or local:N) or set LABKIT_SCHEDULER")
    if address.startswith("local:"):
        count = address.partition(":")[2]
        if not count.isdigit() or int(count) < 1:
            raise LabkitError(f"--scheduler local:N needs a worker count N >= 1, got {address!r}")
        cluster = LocalCluster(n_workers=int(count), threads_per_worker=1, processes=True,
                               dashboard_address=":0", silence_logs=logging.ERROR)
        return Client(cluster)
    try:
        return Client(address, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError) as error:
        raise LabkitError(f"cannot reach the Dask scheduler at {address} ({type(error).__name__}): start it with "
                          f"`dask scheduler`, or use --scheduler local:N for workers on this machine") from None


@contextlib.contextmanager
def connect(address: str | None = None):
    """`client_for(address)` as a context: the client, and a LocalCluster it started, are closed after."""
    client = client_for(address)
    try:
        yield client
    finally:
        cluster = client.cluster  # the LocalCluster of local:N; None for a remote scheduler
        client.close()
        if cluster is not None:
            cluster.close()


def compute_point(name: str, profile: str, cfg: dict) -> dict:
    """On a worker: one grid point computed (not cached there), with the profile's fixed thread count."""
    result = experiments.run(name, profile=profile, use_cache=False, **cfg)
    result.pop("config")
    return result


def sweep(client, name: str, grid: dict[str, list], *, profile: str | None = None, progress: bool = True,
          **fixed) -> list[dict]:
    """`experiments.sweep` on `client`'s cluster: results in grid order, each written into this machine's
    cache as it arrives (a sweep cut short keeps what finished). A task that raises (e.g. a LabkitError)
    fails the sweep with its one line after every other point has been collected."""
    from distributed import as_completed

    profile = experiments.resolve(name, profile, **fixed).profile.name
    configs = [{**fixed, **point} for point in experiments.grid_configs(grid)]
    for cfg in configs:
        experiments.resolve(name, profile, **cfg)  # every point is checked before any work is sent
    results: list[dict | None] = [None] * len(configs)
    pending = {}
    for index, cfg in enumerate(configs):
        local = experiments.cached(name, profile=profile, **cfg)
        if local is not None:
            results[index] = local
        else:
            future = client.submit(compute_point, name, profile, cfg, pure=False, key=f"{name}-{index}-{os.getpid()}")
            pending[future] = index
    failure = None
    bar = tqdm(total=len(configs), initial=len(configs) - len(pending), desc=f"sweep {name} (dask)", leave=False,
               **progress_kwargs(progress))
    try:
        for future in as_completed(list(pending)):
            index = pending[future]
            try:
                result = future.result()
            except LabkitError as error:
                failure = failure or error
                continue
            except OSError as error:  # the scheduler went away: what finished is cached already
                raise LabkitError(f"lost the Dask scheduler at {client.scheduler.address} "
                                  f"({type(error).__name__}); {sum(r is not None for r in results)} of "
                                  f"{len(configs)} points are cached") from None
            experiments.store(name, result, profile=profile, **configs[index])
            results[index] = {**result, "config": dict(experiments.resolve(name, profile, **configs[index]))}
            bar.update()
    finally:
        bar.close()
    if failure is not None:
        raise LabkitError(str(failure))
    return results


"""The Dask client, models loaded once per worker, and partitions gathered in input order.

`local:N` starts a LocalCluster of N single-threaded worker processes (closed afterwards);
`tcp://HOST:PORT` joins an existing scheduler, whose workers must see the model, the images and
the output folder at the same paths. When a worker dies, the scheduler runs its partitions again
elsewhere (Dask's own recovery; `distributed.scheduler.allowed-failures` bounds the retries).

The workers of `local:N` keep glibc's own memory settings: Dask's nanny otherwise starts them
with `MALLOC_TRIM_THRESHOLD_=65536` (`distributed.nanny.pre-spawn-environ`), which returns every
freed block above 64 KiB to the system at once and fixes the mmap threshold at 128 KiB, so each
of the backbone's activation arrays (megabytes) is mapped, zero-filled page by page and
unmapped again: about twice the CPU time per image.
"""
from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from tqdm.auto import tqdm

from oddity.core.errors import ConfigError

CONNECT_TIMEOUT = 10.0  # seconds to reach a tcp:// scheduler
_MODELS: dict[str, Any] = {}  # per worker process: model path -> loaded model


@contextmanager
def dask_client(address: str, *, timeout: float = CONNECT_TIMEOUT) -> Iterator[Any]:
    """A `distributed.Client` for `local:N` (a LocalCluster of N worker processes, one thread
    each, closed afterwards) or `tcp://HOST:PORT` (an existing scheduler).

    Parameters
    ----------
    address : str
        ``local:N`` or ``tcp://HOST:PORT``.
    timeout : float, default CONNECT_TIMEOUT
        Seconds to wait for a tcp:// scheduler to answer.

    Yields
    ------
    distributed.Client
        The client.

    Raises
    ------
    ConfigError
        If the address is neither form, or no scheduler answers at it.
    """
    import dask
    from distributed import Client, LocalCluster

    if address.startswith("local:"):
        count = address[len("local:"):]
        if not count.isdigit() or int(count) < 1:
            raise ConfigError(f"--dask {address!r}: expected local:N with N >= 1 workers, e.g. local:2")
        env = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
        glibc_defaults = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}
        with dask.config.set(glibc_defaults), \
                LocalCluster(n_workers=int(count), threads_per_worker=1, processes=True,
                             dashboard_address=None, env=env) as cluster, Client(cluster) as client:
            yield client
    elif address.startswith("tcp://"):
        try:
            client = Client(address, timeout=timeout)
        except OSError as exc:  # distributed raises OSError (TimeoutError included) when no one answers
            raise ConfigError(f"--dask {address}: no Dask scheduler answered within {timeout:g} s "
                              f"({type(exc).__name__}); start one there (`dask scheduler`) or check the "
                              "host and port") from None
        with client:
            yield client
    else:
        raise ConfigError(f"--dask {address!r}: expected local:N or tcp://HOST:PORT")


def worker_model(path: str) -> Any:
    """The model at `path` (a .oddity file or an export), loaded once per process.

    Parameters
    ----------
    path : str
        A .oddity file or an export.

    Returns
    -------
    Detector or ExportedModel
        The model.
    """
    if path not in _MODELS:
        from oddity.export.engine import ExportedModel, is_export

        if is_export(path):
            _MODELS[path] = ExportedModel(path)
        else:
            import oddity

            _MODELS[path] = oddity.load(path)
    return _MODELS[path]


def preload(path: str) -> None:
    """Load the model at `path` into this process's cache (runs on a worker).

    Parameters
    ----------
    path : str
        The model file, as the worker sees it.
    """
    worker_model(path)


def load_on_workers(client: Any, path: str) -> None:
    """Load the model at `path` on every worker of `client` now, in parallel, so that a run
    starts scoring at once on all of them (otherwise each loads it with its first partition).

    Parameters
    ----------
    client : distributed.Client
        The cluster.
    path : str
        A .oddity model file or an export folder / .onnx file, readable by every worker.
    """
    client.run(preload, os.path.abspath(path))


def partitions(items: Sequence, size: int) -> list[list]:
    """`items` cut into consecutive lists of `size` (the last one shorter).

    Parameters
    ----------
    items : sequence
        What to cut.
    size : int
        Items per partition.

    Returns
    -------
    list of list
        The partitions, in order.
    """
    return [list(items[i:i + size]) for i in range(0, len(items), size)]


def gather_in_order(futures: Sequence[Any], desc: str, verbose: bool) -> list[Any]:
    """The results of `futures` in their order, collected as they complete, with a progress
    bar over partitions.

    Parameters
    ----------
    futures : sequence of distributed.Future
        One per partition.
    desc : str
        Label of the progress bar.
    verbose : bool
        Show it.

    Returns
    -------
    list
        The results, in the order of `futures`.
    """
    from distributed import as_completed

    order = {future.key: index for index, future in enumerate(futures)}
    results: list[Any] = [None] * len(futures)
    with tqdm(total=len(futures), desc=desc, unit="part", disable=not verbose) as bar:
        for future in as_completed(futures):
            results[order[future.key]] = future.result()
            bar.update(1)
    return results

"""The folder that several worker processes share their Prometheus metrics through.

prometheus-client's multiprocess mode: each worker process writes its counters
to memory-mapped files in ``PROMETHEUS_MULTIPROC_DIR`` and a scrape, answered
by any one worker, sums every file.  The variable must be set before a worker
imports prometheus-client, and the folder must not hold files of an earlier
run (their counts would be added).  The serving command calls:

- :func:`metrics_directory` around the whole run, before any worker starts;
- :func:`worker_exited` with the id of each worker process that ended, if it
  can, so that its live gauges (database pool) stop being summed.  Not
  required: a worker that exits cleanly does it itself at the end of the
  app's lifespan, and each scrape forgets the gauges of worker processes that
  no longer exist (:func:`forget_dead_workers`: a worker killed by a signal).

Nothing here imports prometheus-client at import time: the supervising
process must not pick its value class before the variable is set.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

__all__ = ["MULTIPROC_ENV", "forget_dead_workers", "metrics_directory", "worker_exited"]

#: The variable prometheus-client reads (at import) to switch to multiprocess mode.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


@contextmanager
def metrics_directory(workers: int) -> Iterator[Path | None]:
    """Set up the shared metrics folder for a run of ``workers`` worker processes.

    With one worker nothing is needed (the process keeps its metrics in memory)
    and None is yielded, unless the operator set ``PROMETHEUS_MULTIPROC_DIR``.
    A folder the operator named is used as it is (emptying it before each run is
    the service manager's job: systemd's ``RuntimeDirectory=`` does it).
    Otherwise a fresh private folder is made, put in ``os.environ`` (the
    workers inherit it) and removed, with the variable, when the block ends.

    Args:
        workers: the number of worker processes about to start (>= 1).

    Yields:
        The folder in use, or None (single process, in-memory metrics).

    Raises:
        OSError: the temporary folder cannot be made.
    """
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        Path(given).mkdir(parents=True, exist_ok=True)
        yield Path(given)
        return
    if workers <= 1:
        yield None
        return
    folder = Path(tempfile.mkdtemp(prefix="software-dna-metrics-"))
    os.environ[MULTIPROC_ENV] = str(folder)
    try:
        yield folder
    finally:
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(folder, ignore_errors=True)


def worker_exited(pid: int) -> None:
    """Forget the live gauges of the worker process ``pid`` (it ended, or is ending).

    Counters and histograms it wrote stay counted (they are totals since the
    start).  Does nothing outside multiprocess mode; never raises.

    Args:
        pid: the operating system's id of the worker process.
    """
    folder = os.environ.get(MULTIPROC_ENV)
    if not folder:
        return
    from prometheus_client.multiprocess import mark_process_dead  # noqa: PLC0415  # see module doc

    with suppress(OSError):
        mark_process_dead(pid, folder)  # type: ignore[no-untyped-call]


def forget_dead_workers() -> list[int]:
    """Forget the live gauges of every worker process that no longer exists.

    The workers share this machine (and its process ids) with the folder; a
    process id that does not answer ``kill(pid, 0)`` is gone.

    Returns:
        The process ids forgotten (none outside multiprocess mode).
    """
    folder = os.environ.get(MULTIPROC_ENV)
    if not folder:
        return []
    pids: set[int] = set()
    for path in Path(folder).glob("gauge_live*_*.db"):
        tail = path.stem.rsplit("_", 1)[-1]
        if tail.isdigit():
            pids.add(int(tail))
    gone = []
    for pid in sorted(pids):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            gone.append(pid)
            worker_exited(pid)
        except PermissionError:  # alive, someone else's
            pass
    return gone

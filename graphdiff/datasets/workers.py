"""The one worker pool of dataset processing: forked processes that never outlive the process that started them.

:func:`run_in_workers` maps a function over tasks in ``fork`` worker processes (Linux; workers start at once and need
not re-import the caller's script) and returns the results in task order, identical to a serial run. No worker
outlives the run: on any exception (Ctrl-C, and SIGTERM, which is turned into one for the run) the pool is shut down
without waiting for queued tasks, and on Linux each worker is also sent SIGTERM by the kernel when its parent dies,
even by SIGKILL. ``$GRAPHDIFF_NUM_WORKERS`` sets the number of workers (``0`` = in the calling process).
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from typing import Any, TypeVar

from graphdiff.errors import ConfigError
from graphdiff.log import get_logger, progress

T = TypeVar("T")
R = TypeVar("R")

log = get_logger(__name__)

WORKERS_ENV = "GRAPHDIFF_NUM_WORKERS"
#: At most this many workers by default.
MAX_DEFAULT_WORKERS = 8
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def default_num_workers(size: int, min_size: int) -> int:
    """Workers for a job of ``size`` items: ``$GRAPHDIFF_NUM_WORKERS`` if set, else 0 (this process) for jobs under
    ``min_size`` items, one CPU or no ``fork``, else the number of CPUs (at most 8).

    Raises:
        ConfigError: ``$GRAPHDIFF_NUM_WORKERS`` is not a number.
    """
    env = os.environ.get(WORKERS_ENV)
    if env is not None:
        try:
            return max(0, int(env))
        except ValueError:
            raise ConfigError(f"${WORKERS_ENV}={env!r}: expected a number of processes") from None
    cpus = os.cpu_count() or 1
    if size < min_size or cpus < 2 or "fork" not in multiprocessing.get_all_start_methods():
        return 0
    return min(cpus, MAX_DEFAULT_WORKERS)


def run_in_workers(function: Callable[[T], R], tasks: Sequence[T], workers: int, desc: str) -> list[R]:
    """``[function(t) for t in tasks]``, in ``workers`` forked processes when there are several tasks.

    A progress bar (:func:`graphdiff.log.progress`) counts finished tasks. If the pool cannot be used (it breaks,
    or the system refuses processes) the tasks run in this process, with a warning.

    Args:
        function: a module-level function (workers inherit it through ``fork``).
        tasks: its arguments, one per call.
        workers: worker processes; ``0`` runs in this process.
        desc: what the tasks do, for the progress bar and messages (``"parsing mols.smi"``).

    Returns:
        The results in task order.
    """
    if workers <= 0 or len(tasks) <= 1:
        return _run_here(function, tasks, desc)
    try:
        context = multiprocessing.get_context("fork")
        with _sigterm_raises():
            pool = ProcessPoolExecutor(
                max_workers=min(workers, len(tasks)), mp_context=context, initializer=_init_worker,
                initargs=(os.getpid(),),
            )
            try:
                results = list(progress(pool.map(function, tasks), desc, total=len(tasks), unit="task"))
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)
                raise
            pool.shutdown()
            return results
    except (BrokenProcessPool, OSError, ValueError) as exc:
        log.warning("%s in worker processes failed (%s); running in this process", desc, exc)
        return _run_here(function, tasks, desc)


def _run_here(function: Callable[[T], R], tasks: Sequence[T], desc: str) -> list[R]:
    return [function(t) for t in progress(tasks, desc, total=len(tasks), unit="task")]


class _Terminated(BaseException):
    """SIGTERM arrived while :func:`_sigterm_raises` was in force."""


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    """Turn SIGTERM into :class:`_Terminated` for the block, so the code inside can stop its workers.

    Only where SIGTERM would otherwise kill the process outright (its default action) and only in the main
    thread (the one Python signal handlers run in). After the block the previous handler is back, and a
    SIGTERM that arrived is delivered again to this process, which then ends as it would have.
    """
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise _Terminated

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    except _Terminated:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
        raise
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _init_worker(parent: int) -> None:
    """Worker process set-up: die with the process ``parent`` that started the pool rather than be orphaned.

    SIGTERM gets its default action back (the fork copied the parent's handler). On Linux,
    ``prctl(PR_SET_PDEATHSIG, SIGTERM)`` has the kernel send SIGTERM to this worker when its parent dies;
    a parent that died before the call is caught by the ``getppid`` check after it.
    """
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)

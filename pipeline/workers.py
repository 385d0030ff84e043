"""Worker processes that never outlive the command that started them.

:func:`ordered_map` runs a function over argument tuples in ``n_jobs`` spawned processes and
yields the results in order, with a bounded number of tasks in flight. Each worker ignores
SIGINT (the parent handles Ctrl-C and stops it), asks Linux to kill it when its parent dies
(``prctl(PR_SET_PDEATHSIG, SIGKILL)``, so even ``kill -9`` of the parent leaves no worker),
and exits at once if the parent is already gone. When the consumer stops early (an error, an
interrupt, ``close()``), the workers are terminated, not left to finish their queue.
"""
from __future__ import annotations

import ctypes
import logging
import multiprocessing as mp
import os
import signal
import sys
import threading
from collections import deque
from contextlib import contextmanager
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Callable, Iterable, Iterator

from pipeline.errors import NarError

log = logging.getLogger(__name__)
PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int) -> None:
    """Worker initializer: SIGINT ignored, SIGKILL when the parent dies (Linux)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):  # pragma: no cover - no libc prctl
            pass
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


@contextmanager
def _sigint_ignored():
    """Ignore SIGINT in this block (main thread only); the disposition is inherited by the
    processes spawned in it, and a Ctrl-C pressed meanwhile reaches them all after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def _stop(executor: ProcessPoolExecutor) -> None:
    procs = list((getattr(executor, "_processes", None) or {}).values())
    calls = getattr(executor, "_call_queue", None)
    if calls is not None:  # its feeder thread may block on a pipe the killed workers no longer read:
        calls.cancel_join_thread()  # never wait for it (at exit, the executor's thread joins it)
    executor.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        if p.is_alive():
            p.terminate()
    for p in procs:
        p.join(timeout=5)
        if p.is_alive():
            p.kill()


def ordered_map(fn: Callable, tasks: Iterable[tuple], n_jobs: int, prefetch: int = 2) -> Iterator:
    """``fn(*task)`` for each task, computed by ``n_jobs`` worker processes, yielded in order
    (``n_jobs`` 1: in this process, no worker)."""
    if n_jobs <= 1:
        for task in tasks:
            yield fn(*task)
        return
    pending: deque = deque()
    finished = False
    it = iter(tasks)
    with _sigint_ignored():  # workers start with SIGINT ignored: no traceback from a starting worker
        executor = ProcessPoolExecutor(n_jobs, mp_context=mp.get_context("spawn"),
                                       initializer=die_with_parent, initargs=(os.getpid(),))
        try:
            for task in it:
                pending.append(executor.submit(fn, *task))
                if len(pending) >= prefetch * n_jobs:
                    break
        except BaseException:
            _stop(executor)
            raise
    try:
        while pending:
            try:
                result = pending.popleft().result()
            except BrokenProcessPool as e:
                raise NarError(f"a worker process died unexpectedly ({e}; killed, or out of memory?); "
                               "rerun, with fewer jobs if memory is short") from None
            task = next(it, None)
            if task is not None:
                pending.append(executor.submit(fn, *task))
            yield result
        finished = True
    finally:
        if finished:
            executor.shutdown(wait=True)
        else:
            _stop(executor)

"""Run the cells of a sweep: in this process (``jobs=1``), on local worker processes (joblib's
loky, one thread each) or as Ray tasks; a tqdm bar counts finished / total cells with an ETA.

The sweep holds an exclusive lock on ``OUT/.sweep.lock`` (released by the OS even on kill -9)
while it removes the ``.tmp-*`` folders a killed sweep left and runs the missing cells.
"""
from __future__ import annotations

import fcntl
import logging
import os
import shutil
import socket
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from nar.sweep.cell import TMP_PREFIX, cell_status, run_cell
from nar.sweep.grid import Cell
from pipeline.errors import NarError

log = logging.getLogger(__name__)
BACKENDS = ("local", "ray")


@dataclass
class SweepResult:
    total: int
    done: int = 0          # complete, run now or before
    ran: int = 0           # run now (done or failed)
    failed: list = field(default_factory=list)   # (name, error)
    seconds: float = 0.0


@contextmanager
def sweep_lock(out: Path):
    out.mkdir(parents=True, exist_ok=True)
    f = open(out / ".sweep.lock", "w")
    try:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            raise NarError(f"another sweep is running on {out}; wait for it or use another out:") from e
        f.write(f"{socket.gethostname()} {os.getpid()}\n")
        f.flush()
        yield
    finally:
        f.close()


def remove_stale(out: Path) -> int:
    """Remove the temporary folders of interrupted cells; returns how many."""
    stale = [p for p in out.glob(TMP_PREFIX + "*") if p.is_dir()]
    for p in stale:
        shutil.rmtree(p, ignore_errors=True)
    if stale:
        log.info("removed %d unfinished cell folder(s) of an interrupted sweep", len(stale))
    return len(stale)


def check_ray_address(address: str | None) -> None:
    """NarError unless ``address`` (host:port, ray://host:port or auto) answers on TCP."""
    if address in (None, "auto", "local"):
        return
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise NarError(f"--address {address!r}: expected HOST:PORT (the head's GCS address, printed by "
                       "`ray start --head`), ray://HOST:PORT or auto")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as e:
        raise NarError(f"Ray address {address} does not answer ({e.strerror or e}); start the head with "
                       "`ray start --head` and pass the address it prints, or drop --address for a local Ray") from e


def default_jobs() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def _in_process(cells, out):
    for c in cells:
        yield run_cell(c, out)


def _loky_config():
    """The one loky setting of every local worker call, so that joblib reuses one pool."""
    from joblib import parallel_config

    return parallel_config(backend="loky", inner_max_num_threads=1)


def _warm_worker() -> int:
    """Import what a cell runs: torch and the training code (about 3 s here) and torch._dynamo,
    which torch imports on the first use of an optimiser (about 2 s more)."""
    import torch._dynamo  # noqa: F401
    import nar.evaluate  # noqa: F401
    import nar.harness  # noqa: F401

    return os.getpid()


class WorkerStart:
    """The local worker pool, started in a background thread: each worker imports the cell
    code while the sweep checks its grid (which imports torch and opens the stores), so the
    two costs overlap instead of adding up. :func:`_loky` reuses the same pool."""

    def __init__(self, jobs: int):
        self.jobs, self.error, self.pids = jobs, None, []
        self._thread = threading.Thread(target=self._run, name="nar-sweep-workers")
        self._thread.start()

    def _run(self):
        from joblib import Parallel, delayed

        try:
            with _loky_config():
                self.pids = Parallel(n_jobs=self.jobs, batch_size=1)(delayed(_warm_worker)() for _ in range(self.jobs))
        except Exception as e:  # the sweep's own call reports a broken pool with its cells
            self.error = e
            log.debug("starting the worker pool failed: %s", e)

    def wait(self):
        self._thread.join()


def start_workers(backend: str = "local", jobs: int | None = None) -> WorkerStart | None:
    """Start the worker pool early when the sweep will use local workers (``jobs`` > 1)."""
    if backend != "local" or (jobs is not None and jobs < 2):
        return None
    jobs = jobs or default_jobs()
    return WorkerStart(jobs) if jobs > 1 else None


def _loky(cells, out, jobs):
    from joblib import Parallel, delayed

    with _loky_config():
        # one cell per task: cells last seconds to hours, so batching them only unbalances the end
        par = Parallel(n_jobs=jobs, batch_size=1, return_as="generator_unordered")
        yield from par(delayed(run_cell)(c, str(out)) for c in cells)


def _ray(cells, out, address, jobs, gpus_per_cell):
    try:
        import ray
    except ImportError as e:
        raise NarError("--backend ray needs Ray: pip install '.[ray]'") from e
    pkg_root = str(Path(__file__).resolve().parents[2])  # workers import this very code
    env = {"env_vars": {"PYTHONPATH": os.pathsep.join([pkg_root, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
                        **{k: "1" for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}}}
    started = False
    if not ray.is_initialized():
        try:
            if address:
                ray.init(address=address, runtime_env=env, log_to_driver=False)
            else:
                ray.init(num_cpus=jobs, runtime_env=env, include_dashboard=False, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise NarError(f"could not start or reach Ray ({' '.join(str(e).split())[:300]}); "
                           "check --address or run `ray start --head`") from e
        started = True
    try:
        have = ray.cluster_resources().get("GPU", 0)
        if gpus_per_cell and have < gpus_per_cell:
            raise NarError(f"--gpus-per-cell {gpus_per_cell} but the Ray cluster has {have:g} GPU(s); "
                           "lower it or add GPU nodes")
        task = ray.remote(num_cpus=1, num_gpus=gpus_per_cell or 0, max_retries=2)(run_cell)
        pending = [task.options(runtime_env=env).remote(c, str(out)) for c in cells]
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            yield ray.get(ready[0])
    finally:
        if started:
            ray.shutdown()


def run_cells(cells: list[Cell], out, backend="local", jobs: int | None = None, address=None,
              gpus_per_cell: float = 0.0, retry_failed=False, progress=True) -> SweepResult:
    """Run every cell of ``cells`` that is not complete (nor failed, unless ``retry_failed``)."""
    if backend not in BACKENDS:
        raise NarError(f"unknown --backend {backend!r}; use {' or '.join(BACKENDS)}")
    if jobs is not None and jobs < 1:
        raise NarError(f"--jobs {jobs}: give 1 or more")
    if gpus_per_cell and backend != "ray":
        raise NarError("--gpus-per-cell needs --backend ray")
    if gpus_per_cell < 0:
        raise NarError(f"--gpus-per-cell {gpus_per_cell}: give a fraction >= 0")
    if backend == "ray":
        check_ray_address(address)
    elif address:
        raise NarError("--address needs --backend ray")
    out = Path(out)
    t0 = time.perf_counter()
    with sweep_lock(out):
        remove_stale(out)
        status = {c.name: cell_status(out, c.name) for c in cells}
        todo = [c for c in cells if status[c.name] == "missing" or (retry_failed and status[c.name] == "failed")]
        res = SweepResult(total=len(cells), done=sum(s == "done" for s in status.values()))
        todo_names = {c.name for c in todo}
        old_failed = [c.name for c in cells if status[c.name] == "failed" and c.name not in todo_names]
        jobs = min(jobs or default_jobs(), max(1, len(todo)))
        log.info("sweep: %d cells, %d complete, %d to run (%s, %d jobs)", len(cells), res.done, len(todo),
                 backend, jobs)
        from tqdm import tqdm

        bar = tqdm(total=len(cells), initial=res.done, unit="cell", desc="sweep", disable=not progress,
                   file=sys.stderr, dynamic_ncols=True)
        try:
            if not todo:
                results = iter(())
            elif backend == "ray":
                results = _ray(todo, out, address, jobs, gpus_per_cell)
            elif jobs == 1:
                results = _in_process(todo, out)
            else:
                results = _loky(todo, out, jobs)
            for r in results:
                res.ran += r["status"] != "skipped"
                if r["status"] == "failed":
                    res.failed.append((r["name"], r["error"]))
                else:
                    res.done += 1
                bar.update(1)
                bar.set_postfix(failed=len(res.failed) + len(old_failed), refresh=False)
        except NarError:
            raise
        except Exception as e:  # a worker process died, Ray lost a node, ...: cells done are kept
            raise NarError(f"the {backend} backend stopped after {res.done} of {len(cells)} cells "
                           f"({type(e).__name__}: {' '.join(str(e).split())[:300]}); rerun the sweep to "
                           "resume") from e
        finally:
            bar.close()
        remove_stale(out)  # folders of workers that died and were retried
        res.failed += [(n, _failed_error(out, n)) for n in old_failed]
    res.seconds = time.perf_counter() - t0
    return res


def _failed_error(out: Path, name: str) -> str:
    import json

    try:
        return json.loads((out / name / "failed.json").read_text())["error"]
    except (OSError, ValueError, KeyError):
        return "failed (no readable failed.json)"

"""Run one cell into a temporary folder and publish it under its final name.

A cell is written in ``OUT/.tmp-<name>-<random>``; the last file written is ``done.json``
(or ``failed.json`` with the one-line error), then the folder is renamed to ``OUT/<name>``.
So a folder ``OUT/<name>`` with ``done.json`` is complete; a sweep killed at any moment leaves
at most a ``.tmp-*`` folder, which the next sweep removes and never counts. The files are the
ones ``nar-cli train`` / ``test`` / ``sample`` write, plus ``sweep_cell.json`` (settings,
labels, the equivalent commands, timings).
"""
from __future__ import annotations

import logging
import os
import shutil
import time
import traceback
import uuid
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

from nar.sweep.grid import Cell
from pipeline.atomic import write_json_atomic
from pipeline.errors import NarError

log = logging.getLogger(__name__)

DONE, FAILED, SETTINGS = "done.json", "failed.json", "sweep_cell.json"
TMP_PREFIX = ".tmp-"
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def cell_status(out: Path, name: str) -> str:
    """"done", "failed" or "missing" (no folder, or a folder without a marker)."""
    d = Path(out) / name
    if (d / DONE).is_file():
        return "done"
    if (d / FAILED).is_file():
        return "failed"
    return "missing"


@contextmanager
def one_thread():
    """One BLAS/OpenMP/torch thread inside the block (so N workers on N cores never run N x N
    threads against each other); the previous settings come back afterwards."""
    import torch

    old_env = {k: os.environ.get(k) for k in THREAD_VARS}
    old_threads = torch.get_num_threads()
    os.environ.update({k: "1" for k in THREAD_VARS})
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(old_threads)
        for k, v in old_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text if isinstance(e, NarError) else f"{type(e).__name__}: {text}"


def _run_jobs(cell: Cell, tmp: Path) -> dict:
    """The cell's nar-cli jobs into ``tmp``; returns seconds per job."""
    seconds = {}
    t = time.perf_counter()
    if cell.kind == "rank":
        from nar.evaluate import run_test
        from nar.harness import run_training

        run_training(cell.config_file, cell.store, tmp, seed=cell.seed, overrides=cell.overrides,
                     overwrite=True)  # the cell's own temporary folder (it holds sweep_cell.json)
        seconds["train"] = time.perf_counter() - t
        t = time.perf_counter()
        run_test(cell.config_file, cell.store, tmp, "ckp_best.pth", seed=cell.seed, overrides=cell.overrides)
        seconds["test"] = time.perf_counter() - t
        if cell.sample is not None:
            from nar.search_commands import run_sample

            t = time.perf_counter()
            run_sample(cell.store, tmp, checkpoint="ckp_best.pth", config_file=cell.config_file, seed=cell.seed,
                       iterations=cell.sample["iterations"], overrides=cell.overrides + cell.sample["overrides"])
            seconds["sample"] = time.perf_counter() - t
    else:
        from nar.search_commands import run_sample

        s = cell.search
        run_sample(cell.store, tmp, config_file=cell.config_file, seed=cell.seed, mode=s["mode"],
                   budget=s["budget"], dataset=cell.labels["dataset"], surrogate=s["surrogate"] or "nar",
                   overrides=cell.overrides)
        seconds["search"] = time.perf_counter() - t
    return seconds


def _publish(tmp: Path, final: Path) -> None:
    """Rename ``tmp`` to ``final``, replacing an unfinished or failed ``final``; when another
    worker already published a complete ``final``, keep it and drop ``tmp``."""
    if final.exists():
        if (final / DONE).is_file():
            shutil.rmtree(tmp, ignore_errors=True)
            return
        shutil.rmtree(final)
    os.rename(tmp, final)


def run_cell(cell: Cell, out, single_thread: bool = True) -> dict:
    """Run ``cell`` under ``out`` unless it is complete; returns {"name", "status", "error",
    "seconds"} with status "done", "failed" or "skipped". Errors of the cell's jobs are
    recorded in ``failed.json``, not raised; an interrupt removes the temporary folder."""
    out = Path(out)
    final = out / cell.name
    if cell_status(out, cell.name) == "done":
        return {"name": cell.name, "status": "skipped", "error": None, "seconds": 0.0}
    tmp = out / f"{TMP_PREFIX}{cell.name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    t0 = time.perf_counter()
    info = {"name": cell.name, "key": cell.key, "kind": cell.kind, "labels": cell.labels,
            "commands": cell.commands, "settings": cell.settings,
            "cell": {k: v for k, v in asdict(cell).items() if k not in ("settings", "commands", "labels")},
            "host": os.uname().nodename, "pid": os.getpid(), "code": str(Path(__file__).resolve().parents[2])}
    try:
        write_json_atomic(tmp / SETTINGS, info, indent=1, default=str)
        try:
            with (one_thread() if single_thread else _nothing()):
                seconds = _run_jobs(cell, tmp)
        except Exception as e:  # the cell failed: record it, the sweep goes on
            error = _one_line(e)
            log.warning("cell %s failed: %s", cell.name, error)
            write_json_atomic(tmp / FAILED, {"name": cell.name, "error": error, "finished": time.time(),
                                             "seconds": time.perf_counter() - t0,
                                             "traceback": traceback.format_exc(limit=8)})
            _publish(tmp, final)
            return {"name": cell.name, "status": "failed", "error": error, "seconds": time.perf_counter() - t0}
        total = time.perf_counter() - t0
        write_json_atomic(tmp / SETTINGS, {**info, "seconds": {**seconds, "total": total}}, indent=1, default=str)
        write_json_atomic(tmp / DONE, {"name": cell.name, "key": cell.key, "finished": time.time(), "seconds": total})
        _publish(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"name": cell.name, "status": "done", "error": None, "seconds": total}


@contextmanager
def _nothing():
    yield

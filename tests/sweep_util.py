"""Helpers of the sweep tests: tiny specs on fake stores, a sweep subprocess killed mid-way."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from tests.conftest import REPO

CFG201 = str(REPO / "config" / "config201.yml")
TINY_NAR = ["ranker.d_model=16", "ranker.d_patch_vec=16", "ranker.n_layers=1", "ranker.d_ffn_inner=32",
            "ranker.d_tier_prj_inner=32", "ranker.d_val_acc_prj_inner=32", "ranker.d_k=8", "ranker.d_v=8",
            "ranker.n_head=2", "train_batch_size=32", "ranker_epochs=2", "lr_scheduler.n_warmup_steps=5"]


def write_spec(path: Path, store, out, **keys) -> Path:
    """A spec on the fake store ``store`` writing to ``out``; ``keys`` replace the defaults."""
    spec = {"out": str(out), "data": {"fake": str(store)}, "datasets": ["cifar10"],
            "models": {"lgb_rank": "lightgbm_rank"}, "train_sizes": [[60, 20]], "seeds": [0, 1]}
    spec.update(keys)
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def cell_dirs(out: Path) -> dict:
    """{"done": [...], "failed": [...], "unmarked": [...], "tmp": [...]} folder names under ``out``."""
    res = {"done": [], "failed": [], "unmarked": [], "tmp": []}
    for p in sorted(Path(out).iterdir()) if Path(out).exists() else []:
        if not p.is_dir() or p.name == "report":
            continue
        if p.name.startswith(".tmp-"):
            res["tmp"].append(p.name)
        elif (p / "done.json").exists():
            res["done"].append(p.name)
        elif (p / "failed.json").exists():
            res["failed"].append(p.name)
        else:
            res["unmarked"].append(p.name)
    return res


def heldout(out: Path, name: str) -> dict:
    return json.loads((Path(out) / name / "results.json").read_text())["heldout"]


def kill_sweep_midway(spec: Path, out: Path, extra=(), timeout=240) -> dict:
    """Start ``nar-cli sweep SPEC`` in its own process group, SIGKILL the whole group as soon as
    the first cell is complete, and return :func:`cell_dirs` right after the kill."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, str(REPO / "cli.py"), "sweep", str(spec), *extra], cwd=str(REPO),
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    t0 = time.monotonic()
    try:
        while not cell_dirs(out)["done"]:
            if proc.poll() is not None:
                raise AssertionError(f"sweep exited ({proc.returncode}) before a cell finished: "
                                     f"{proc.stderr.read().decode()[-2000:]}")
            if time.monotonic() - t0 > timeout:
                raise AssertionError("no cell finished in time")
            time.sleep(0.05)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        proc.stderr.close()
    return cell_dirs(out)

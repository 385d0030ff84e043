"""Speed and memory of the default rankers (config/default201.yml, config/default101.yml).

Each part runs in its own process so its peak memory is its own:

- ``201``: ``nar-cli train`` + ``test`` of default201 on NB201 CIFAR-10 with 1000 training
  cells (target: under 60 s on 2 cores);
- ``101``: the same for default101 on the NB101 20k table with 4236 cells (target: 3 min);
- ``pretrain``: the one-off pre-training of default101's encoder on the cells of the NB101
  store (nar/pretrain.py), timed without its cache (target: under 10 minutes on 2 cores);
  part ``101`` then reads it from the cache beside the store (computing it when absent);
- ``space``: scoring every cell of a whole-space NB101 store (``nar-cli build --bench 101
  --source space`` + ``encode``; 423,624 cells) with the checkpoint of part ``101``
  (target: under 30 s, under 1 GB of memory beyond the mapped store).

    python bench/bench_default.py --store201 cache/201_*.h5 --store101 cache/101_*.h5 \
        [--space_store cache/101_<space>.h5] [--parts 201,pretrain,101,space] [--out runs/bench_default]

Prints wall time, peak RSS (file-backed pages of the mapped store included) and, for scoring,
the peak of anonymous (not file-backed) memory beyond the process's start, sampled every 20 ms.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.benchlib import peak_rss_mib  # noqa: E402


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return -1


def _train_test(config: str, store: str, run: Path, overrides: list[str]) -> dict:
    from nar.evaluate import run_test
    from nar.harness import run_training

    shutil.rmtree(run, ignore_errors=True)
    t0 = time.perf_counter()
    run_training(str(REPO / "config" / config), store, run, seed=0, overrides=overrides)
    t1 = time.perf_counter()
    res = run_test(str(REPO / "config" / config), store, run, "ckp_best.pth", seed=0, overrides=overrides)
    t2 = time.perf_counter()
    return {"train_s": t1 - t0, "test_s": t2 - t1, "total_s": t2 - t0, "heldout_tau": res["heldout"]["kendalltau"]}


def one(part: str, a) -> dict:
    out = Path(a.out)
    if part == "201":
        res = _train_test("default201.yml", a.store201, out / "run201", ["train_size=1000"])
    elif part == "pretrain":
        from nar.config import load_config
        from nar.data import open_store
        from nar.pretrain import pretrain_encoder

        cfg = load_config(REPO / "config" / "default101.yml")
        t0 = time.perf_counter()
        with open_store(a.store101) as store:
            state = pretrain_encoder(cfg, store, "cifar10")
        res = {"pretrain_s": time.perf_counter() - t0, "steps": cfg.pretrain.steps,
               "cells": min(cfg.pretrain.cells, store.n), "tensors": len(state)}
    elif part == "101":
        res = _train_test("default101.yml", a.store101, out / "run101", ["train_size=4236"])
    else:
        from cache.store import Store
        from nar.evaluate import score_store
        from nar.predictor import load_run_predictor

        predictor = load_run_predictor(out / "run101" / "ckp_best.pth")
        anon0 = _status_kb("RssAnon")
        peak, stop = [anon0], threading.Event()

        def poll():  # the kernel keeps no peak of anonymous memory alone: sample it
            while not stop.wait(0.02):
                peak[0] = max(peak[0], _status_kb("RssAnon"))

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        t0 = time.perf_counter()
        with Store(a.space_store) as store:
            tier, score = score_store(predictor, store, batch_size=a.batch)
            n = store.n
        res = {"score_s": time.perf_counter() - t0, "n": n}
        stop.set()
        poller.join()
        res.update({"anon_start_mb": anon0 / 1024, "anon_peak_beyond_start_mb": (peak[0] - anon0) / 1024,
                    "rss_anon_mb": _status_kb("RssAnon") / 1024, "rss_file_mb": _status_kb("RssFile") / 1024})
    res["peak_rss_mb"] = peak_rss_mib()
    res["threads"] = __import__("torch").get_num_threads()
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store201")
    ap.add_argument("--store101")
    ap.add_argument("--space_store")
    ap.add_argument("--parts", default="201,pretrain,101,space")
    ap.add_argument("--batch", type=int, default=1024, help="scoring batch size (nar-cli predict's: 1024)")
    ap.add_argument("--out", default="runs/bench_default")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.one:
        print(json.dumps(one(a.one, a)))
        return 0
    Path(a.out).mkdir(parents=True, exist_ok=True)
    for part in a.parts.split(","):
        need = {"201": a.store201, "pretrain": a.store101, "101": a.store101, "space": a.space_store}[part]
        if not need:
            print(f"{part}: skipped (no store given)")
            continue
        cmd = [sys.executable, __file__, "--one", part, "--out", a.out, "--batch", str(a.batch)]
        for k in ("store201", "store101", "space_store"):
            if getattr(a, k):
                cmd += [f"--{k}", getattr(a, k)]
        t0 = time.perf_counter()
        p = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ})
        if p.returncode != 0:
            print(f"{part}: FAILED\n{p.stderr[-2000:]}")
            return 1
        res = json.loads(p.stdout.strip().splitlines()[-1])
        res["process_s"] = time.perf_counter() - t0
        print(f"{part}: " + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in res.items()),
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

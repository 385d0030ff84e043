"""Ranker speed: training throughput (archs/s) of the paper NB101/NB201 configs and the CPU
presets over a few steps on random inputs, and the time to score 423,624 NB101-sized
(19x7x7) inputs with the CPU-sized NB101 model (target: under 2 minutes on 2 cores).

    python bench/bench_train.py [--steps 3] [--threads N] [--n-score 423624] [--skip-paper]
Prints one line per measurement, with peak RSS.
"""
from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import numpy as np
import torch

from nar.config import load_config
from nar.model import build_model, nar_loss
from nar.train import learning_rate, predict_batched

CONFIG = Path(__file__).resolve().parent.parent / "config"


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def bench_training(name: str, steps: int) -> None:
    cfg = load_config(CONFIG / name)
    rc, bs = cfg.ranker, cfg.train_bs
    torch.manual_seed(0)
    model = build_model(rc).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=cfg.optimizer.weight_decay)
    x = torch.rand(bs, rc.n_arch_patch, rc.d_patch, rc.d_patch)
    y = torch.rand(bs)
    t = torch.randint(1, rc.n_tier + 1, (bs,))
    times = []
    for step in range(steps + 1):  # the first step warms up and is not counted
        t0 = time.perf_counter()
        for g in opt.param_groups:
            g["lr"] = learning_rate(step + 1, cfg)
        logits, score, enc = model(x)
        loss = nar_loss(logits, score, t, y, cfg.aux_loss, cfg.loss_factor)[0]
        opt.zero_grad()
        loss.backward()
        opt.step()
        model.update_tier_emb(enc, t)
        times.append(time.perf_counter() - t0)
    per_step = float(np.mean(times[1:]))
    n_steps = (cfg.train_size // bs) * (cfg.ranker_epochs - cfg.start_epochs)
    print(f"train {name}: batch {bs}, {per_step:.2f} s/step, {bs / per_step:.0f} archs/s, "
          f"~{per_step * n_steps / 60:.1f} min for {cfg.ranker_epochs} epochs of {cfg.train_size} "
          f"(excl. validation), peak RSS {peak_rss_gb():.2f} GB", flush=True)


class _Cyclic:
    """n rows served from a fixed pool of random rows: the cost of scoring n inputs without
    holding n x 19 x 7 x 7 floats in memory."""

    def __init__(self, pool: np.ndarray, n: int):
        self.pool, self.n = pool, n

    def __len__(self):
        return self.n

    def __getitem__(self, sl: slice):
        start, stop, _ = sl.indices(self.n)
        idx = np.arange(start, stop) % len(self.pool)
        return self.pool[idx]


def bench_scoring(name: str, n: int, batch: int) -> None:
    cfg = load_config(CONFIG / name)
    rc = cfg.ranker
    torch.manual_seed(0)
    model = build_model(rc).eval()
    pool = np.random.default_rng(0).random((8192, rc.n_arch_patch, rc.d_patch, rc.d_patch), dtype=np.float32)
    t0 = time.perf_counter()
    tier, score = predict_batched([model], _Cyclic(pool, n), batch)
    dt = time.perf_counter() - t0
    assert len(score) == n
    print(f"score {n} inputs of {rc.n_arch_patch}x{rc.d_patch}x{rc.d_patch} with {name} "
          f"(d_model {rc.d_model}, {rc.n_layers} layers): {dt:.1f} s ({n / dt:.0f} archs/s, "
          f"batch {batch}), peak RSS {peak_rss_gb():.2f} GB", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--n-score", type=int, default=423624)
    ap.add_argument("--score-batch", type=int, default=4096)
    ap.add_argument("--skip-paper", action="store_true", help="only the CPU presets")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    names = ["cpu201.yml", "cpu101.yml"] + ([] if args.skip_paper else ["config201.yml", "config.yml"])
    for name in names:
        bench_training(name, args.steps)
    bench_scoring("cpu101.yml", args.n_score, args.score_batch)


if __name__ == "__main__":
    main()

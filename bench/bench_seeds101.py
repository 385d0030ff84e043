"""Held-out Kendall tau of default101 on the NB101 20k table for many seeds (the "More seeds" table
of docs/results.md): the same fit and split as bench/bench_curve.py (``nar.api.fit`` with
``train_size=N, val_size=0``; held-out = every other labelled cell), one line per seed.

    OMP_NUM_THREADS=1 python bench/bench_seeds101.py --store cache/101_*.h5 --n 100 --seeds 0-19 \
        [--set '{"ranker": {"structure_aux": 0}}']
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cache.store import Store  # noqa: E402
from nar import api  # noqa: E402
from nar.data import load_features, make_split  # noqa: E402
from nar.rankstats import kendalltau  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", required=True)
    ap.add_argument("--n", type=int, required=True, help="labelled training cells")
    ap.add_argument("--seeds", default="0-4", help="a range a-b or a comma list")
    ap.add_argument("--set", default="{}", help="JSON overrides of config/default101.yml")
    a = ap.parse_args()
    lo_hi = a.seeds.split("-")
    seeds = range(int(lo_hi[0]), int(lo_hi[1]) + 1) if len(lo_hi) == 2 else [int(s) for s in a.seeds.split(",")]
    store = Store(a.store)
    y = np.asarray(store.data("cifar10", "val_acc"), np.float64)
    taus = []
    for seed in seeds:
        t0 = time.perf_counter()
        ranker = api.fit(a.store, config=str(REPO / "config" / "default101.yml"), seed=seed, train_size=a.n,
                         val_size=0, **json.loads(a.set))
        split = make_split(y, a.n, 0, seed)
        _, score = ranker.predict(load_features(store, "cifar10", split.rest))
        taus.append(kendalltau(score, y[split.rest]))
        print(f"N={a.n} seed {seed}: tau {taus[-1]:.4f} ({time.perf_counter() - t0:.1f} s)", flush=True)
    print(f"N={a.n} seeds {a.seeds}: mean {np.mean(taus):.4f} ± {np.std(taus, ddof=1) if len(taus) > 1 else 0:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Time the FLOPs/params calculators over whole spaces and print the figures.

NB101: ``vertex_costs`` + ``network_totals`` over all 423,624 cells, taken from
``pipeline.nb101_space.load_space()`` (``--space full``, the default; building the space the
first time is timed separately) or from the 20k table tiled to 423,624 rows
(``--space tiled``; needs ``$NAR_DATA_DIR`` or ../shared/data). NB201: ``edge_costs`` +
``network_totals`` over all 15,625 cells for the 3 datasets. Prints wall time and peak RSS.
"""
from __future__ import annotations

import argparse
import csv
import gzip
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.benchlib import peak_rss_mib  # noqa: E402
from cache.store import OP_CODES_101  # noqa: E402
from pipeline import nb101_cost, nb201_cost  # noqa: E402
from pipeline.nb201_space import all_archs  # noqa: E402

N_SPACE_101 = 423624


def tiled_table(n: int):
    """The 20k table's cells repeated to ``n`` rows (store-convention arrays)."""
    data = Path(os.environ.get("NAR_DATA_DIR", REPO.parent / "shared" / "data"))
    with gzip.open(data / "nb101" / "nb101_20k.csv.gz", "rt") as f:
        rows = list(csv.DictReader(f))
    adj = np.zeros((len(rows), 7, 7), np.int8)
    ops = np.zeros((len(rows), 7), np.int8)
    nv = np.array([int(r["n_vertices"]) for r in rows], np.int8)
    for i, r in enumerate(rows):
        k = nv[i]
        adj[i, :k, :k] = (np.frombuffer(r["adjacency"].encode(), np.uint8) - ord("0")).reshape(k, k)
        ops[i, :k] = [OP_CODES_101[o] for o in r["ops"].split(",")]
    idx = np.arange(n) % len(rows)
    return adj[idx], ops[idx], nv[idx]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", choices=["full", "tiled"], default="full")
    args = ap.parse_args()

    t0 = time.perf_counter()
    if args.space == "full":
        from pipeline.nb101_space import load_space
        space = load_space()
        adj, ops, nv = space.adjacency, space.ops, space.n_vertices
    else:
        adj, ops, nv = tiled_table(N_SPACE_101)
    print(f"NB101 cells: {len(nv)} ({args.space}), prepared in {time.perf_counter() - t0:.1f} s")

    t0 = time.perf_counter()
    vf, vp = nb101_cost.vertex_costs(adj, ops, nv)
    t1 = time.perf_counter()
    tf, tp = nb101_cost.network_totals(adj, ops, nv)
    t2 = time.perf_counter()
    mib = (vf.nbytes + vp.nbytes) / 2**20
    print(f"NB101 vertex_costs {t1 - t0:.2f} s ((N, 9, 7) x 2 int64, {mib:.0f} MiB), "
          f"network_totals {t2 - t1:.2f} s, total {t2 - t0:.2f} s; "
          f"params {tp.min()}..{tp.max()}, FLOPs {tf.min()}..{tf.max()}")
    del vf, vp

    archs = all_archs()
    t0 = time.perf_counter()
    for ds in nb201_cost.DATASETS_201:
        nb201_cost.edge_costs(archs, ds)
        nb201_cost.network_totals(archs, ds)
    print(f"NB201 edge_costs + network_totals, {len(archs)} cells x 3 datasets: "
          f"{time.perf_counter() - t0:.3f} s")
    print(f"peak RSS {peak_rss_mib():.0f} MiB")


if __name__ == "__main__":
    main()

"""Time the distribution-guided sampler: 256 NB101 candidates (20k-table pool or a given store)
and 128 NB201 candidates; prints seconds per batch and peak RSS.

    python bench/bench_sampler.py [--store cache/nb101_xxx.h5] [--data_dir ../shared/data]
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.benchlib import peak_rss_mib  # noqa: E402
from cache.store import Store  # noqa: E402
from nar.sampler import SearchPool, Sampler  # noqa: E402
from nar.search_config import SamplerConfig  # noqa: E402


def time_batches(pool, size, bins, repeats=5):
    sp = Sampler(pool, SamplerConfig(flops_kl_thred=0.1, params_kl_thred=0.1, edges_kl_thred=0.1), 5, bins, 0)
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        rows, info = sp.sample(size)
        out.append((time.perf_counter() - t, info))
        tiers = 1 + np.argsort(np.argsort(pool.params[rows])) * 5 // len(rows)  # small = "good"
        sp.update(rows, tiers)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--store", help="an NB101 store (default: a store built from the 20k table)")
    ap.add_argument("--data_dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    args = ap.parse_args()
    tmp = tempfile.mkdtemp()
    if args.store:
        path = args.store
    else:
        from tests.test_sampler import table_store_101
        path = table_store_101(Path(args.data_dir) / "nb101/nb101_20k.csv.gz", Path(tmp) / "t101.h5")
    t = time.perf_counter()
    pool = SearchPool.from_store(Store(path), "cifar10")
    print(f"NB101 pool {pool.n} archs ({'whole space' if pool.is_whole_space else 'partial'}): "
          f"built in {time.perf_counter() - t:.2f} s")
    for i, (sec, info) in enumerate(time_batches(pool, 256, 8)):
        print(f"  batch {i}: 256 candidates in {sec:.3f} s  guided={info['guided']} tries={info['tries']} "
              f"fallbacks={info['fallbacks']}")
    from bench.bench_search import table_store_201
    pool = SearchPool.from_store(Store(table_store_201(Path(args.data_dir) / "nb201/nb201.csv.gz",
                                                       Path(tmp) / "t201.h5")), "cifar10")
    for i, (sec, info) in enumerate(time_batches(pool, 128, 5)):
        print(f"  NB201 batch {i}: 128 candidates in {sec:.3f} s  guided={info['guided']} "
              f"fallbacks={info['fallbacks']}")
    print(f"peak RSS {peak_rss_mib():.0f} MB")


if __name__ == "__main__":
    main()

"""Query-efficiency table: best accuracy of the strict pick (best validation accuracy so far)
at 50/100/200/500 queries for the iterative mode, random search and regularised evolution,
over seeds; mean, std and how many seeds picked the optimum. NB201 from the shared table
(or --store); CIFAR-100 has no validation accuracy there, so its picks use test accuracy.

    python bench/bench_search.py --seeds 10 [--dataset cifar10|cifar100] [--surrogate lightgbm|nar]
"""
import argparse
import csv
import gzip
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cache.store import OPS_201, Store, StoreWriter  # noqa: E402

MILESTONES = (50, 100, 200, 500)
_EDGE_SLOTS = [(1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2)]  # (node, input) of the 6 string slots


def _f(x):
    try:
        return float(x)
    except ValueError:
        return np.nan


def table_store_201(csv_path, out_path):
    """An NB201 store from the shared table: structure, CIFAR-10 (val = cifar10-valid) and
    CIFAR-100 (no validation accuracy) labels, params from the table, FLOPs unknown (0),
    features only channel 0 (cell_adjacency)."""
    rows = list(csv.DictReader(gzip.open(csv_path, "rt")))
    n, code = len(rows), {o: i for i, o in enumerate(OPS_201)}
    adj = np.zeros((n, 4, 4), np.int8)
    for k, r in enumerate(rows):
        ops = [tok.split("~")[0] for tok in r["arch_str"].replace("+", "").split("|") if tok]
        for (j, i), op in zip(_EDGE_SLOTS, ops):
            adj[k, i, j] = code[op]
    params = np.nan_to_num(np.array([_f(r["cifar10_params_M"]) for r in rows]) * 1e6).astype(np.int64)
    with StoreWriter(out_path, n, "201", {"source_path": str(csv_path)}) as w:
        w.put("key", np.array([r["arch_str"] for r in rows], "S96"))
        w.put("index", np.array([int(r["arch_index"]) for r in rows], np.int32))
        w.put("adjacency", adj)
        w.put("op_counts", np.stack([(adj[:, [0, 0, 1, 0, 1, 2], [1, 2, 2, 3, 3, 3]] == c).sum(1)
                                     for c in range(5)], 1).astype(np.int16))
        for ds, val, test in (("cifar10", "cifar10_valid_acc", "cifar10_test_acc"),
                              ("cifar100", None, "cifar100_test_acc")):
            w.put(f"data/{ds}/features", adj[:, None].astype(np.float32))
            w.put(f"data/{ds}/flops", np.zeros(n, np.int64))
            w.put(f"data/{ds}/params", params)
            w.put(f"data/{ds}/val_acc", np.array([_f(r[val]) if val else np.nan for r in rows], np.float32))
            w.put(f"data/{ds}/test_acc", np.array([_f(r[test]) for r in rows], np.float32))
        return w.commit()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--first_seed", type=int, default=0, help="seeds first_seed .. first_seed+seeds-1")
    ap.add_argument("--dataset", default="cifar10")
    ap.add_argument("--store", help="an NB201 store (default: built from the shared table)")
    ap.add_argument("--data_dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--surrogate", default="lightgbm", help="iterative model: lightgbm, mlp, ... or nar")
    ap.add_argument("--config_file", help="NAR config for --surrogate nar")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="override a key of --config_file (repeatable)")
    ap.add_argument("--finetune_epochs", type=int, default=0,
                    help="--surrogate nar: >0 fine-tunes the previous round's model this many epochs")
    ap.add_argument("--target", default="rank", help="baseline surrogate target: raw or rank")
    ap.add_argument("--methods", default="iterative,random,evolution")
    ap.add_argument("--init_size", type=int, default=24)
    ap.add_argument("--query_step", type=int, default=8)
    ap.add_argument("--budget", type=int, default=500)
    args = ap.parse_args()
    import logging
    logging.basicConfig(level=logging.WARNING)
    from nar.iterative import BaselineFitter, NarFitter, iterative_search
    from nar.search import open_context
    from nar.search_baselines import query_run_summary, random_search, regularized_evolution

    path = args.store or table_store_201(Path(args.data_dir) / "nb201/nb201.csv.gz",
                                         Path(tempfile.mkdtemp()) / "t201.h5")
    ctx = open_context(Store(path), args.dataset)
    opt = float(np.nanmax(ctx.target))
    print(f"NB201 {args.dataset}: {ctx.pool.n} archs, optimum {ctx.target_name} {opt:.2f}, "
          f"picks by {ctx.select_name}; budget {args.budget}, {args.seeds} seeds")

    def fitter(seed):
        if args.surrogate == "nar":
            from nar.config import load_config
            cfg = load_config(args.config_file, args.overrides + [f"seed={seed}"], bench="201")
            return NarFitter(ctx, cfg, args.finetune_epochs)
        return BaselineFitter(ctx, args.surrogate, seed, **({"target": args.target} if args.target else {}))

    methods = {
        f"iterative({args.surrogate})": lambda s: iterative_search(ctx, fitter(s), args.budget, args.init_size,
                                                                    args.query_step, s)[0],
        "random": lambda s: random_search(ctx, args.budget, s),
        "evolution": lambda s: regularized_evolution(ctx, args.budget, s, 64, 16),
    }
    milestones = [m for m in MILESTONES if m <= args.budget]
    head = "".join(f"{'@' + str(m):>26}" for m in milestones)
    print(f"{'method':<20}{head}   (mean +- std [#optimum picked / #queried])  time/seed")
    for name, run in methods.items():
        if name.split("(")[0] not in args.methods.split(","):
            continue
        t = time.perf_counter()
        seeds = range(args.first_seed, args.first_seed + args.seeds)
        res = [query_run_summary(ctx, run(s), milestones=milestones) for s in seeds]
        sec = (time.perf_counter() - t) / args.seeds
        cells = []
        for m in milestones:
            acc = np.array([r["at_queries"][str(m)][f"pick_{ctx.target_name}"] for r in res], float)
            best = np.array([r["at_queries"][str(m)][f"best_queried_{ctx.target_name}"] for r in res], float)
            picked = sum(r["at_queries"][str(m)]["pick_rank"] == 1 for r in res)
            cells.append(f"{acc.mean():6.2f}+-{acc.std():4.2f} [{picked:2d}/{(best >= opt - 1e-3).sum():2d}]")
        print(f"{name:<20}" + "".join(f"{c:>26}" for c in cells) + f"   {sec:.1f} s")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()

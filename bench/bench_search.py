"""Query-efficiency table and curves (strict protocol: the pick after N queries is the best
VALIDATION accuracy among the queried cells; its TEST accuracy is reported). Methods: the
query-efficient NAR search (``nar``: the default gated graph ranker refitted on the queried
cells), the same loop with a LightGBM(rank) surrogate (``lightgbm``), random search and
regularised evolution; per milestone the mean +- std of the pick's accuracy, [#seeds that picked
the optimum / #seeds that queried it], the mean rank of the pick, and the wall time per search.

    OMP_NUM_THREADS=1 python bench/bench_search.py --data_path cache/nb201_table.json \\
        --dataset cifar10 --seeds 10 --budget 500 --out out/c10.json

NB201 CIFAR-100 has no validation accuracy in the shared table: its picks select on test
accuracy (stated in the output). ``--out`` writes every seed's curve (JSON) for
``nar.plot.plot_query_curves``. Library defaults come from ``SamplerConfig``.
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.benchlib import peak_rss_mib  # noqa: E402

MILESTONES = (25, 50, 64, 100, 150, 200, 500)


def _methods(ctx, args):
    from nar.config import load_config
    from nar.iterative import baseline_surrogate, iterative_search, nar_surrogate
    from nar.presets import preset_config
    from nar.search_baselines import random_search, regularized_evolution
    from nar.search_config import SamplerConfig
    from nar.search_run import surrogate_config

    scfg = SamplerConfig(**{k: v for k, v in vars(args).items() if k in SamplerConfig.__dataclass_fields__
                            and v is not None})
    scfg.skip_equivalent = bool(scfg.skip_equivalent)

    def nar(seed):
        cfg = load_config(preset_config("nar_default", ctx.store.bench)[0], args.overrides + [f"seed={seed}"],
                          bench=ctx.store.bench)
        model = nar_surrogate(ctx, surrogate_config(cfg, scfg), scfg.finetune_epochs)
        return iterative_search(ctx, model, args.budget, scfg.init_size, scfg.query_step, seed,
                                kappa=scfg.acquisition_kappa, growth=scfg.query_step_growth,
                                skip_equivalent=scfg.skip_equivalent)[0]

    def lgbm(seed):
        return iterative_search(ctx, baseline_surrogate("lightgbm", ctx.pool.bench, seed), args.budget, args.lgbm_init,
                                args.lgbm_step, seed, skip_equivalent=scfg.skip_equivalent)[0]

    return {"nar": nar, "lightgbm": lgbm, "random": lambda s: random_search(ctx, args.budget, s),
            "evolution": lambda s: regularized_evolution(ctx, args.budget, s, scfg.population, scfg.tournament)}, scfg


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data_path", default="cache/nb201_table.json", help="store (.h5) or NAR JSON")
    ap.add_argument("--dataset", default="cifar10")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--first_seed", type=int, default=0, help="seeds first_seed .. first_seed+seeds-1")
    ap.add_argument("--budget", type=int, default=500)
    ap.add_argument("--methods", default="nar,lightgbm,random,evolution")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="override a key of the NAR ranker config (repeatable)")
    for k in ("init_size", "query_step", "surrogate_epochs", "surrogate_swa_epochs", "surrogate_batch_size",
              "surrogate_ensemble", "surrogate_batches_per_epoch", "finetune_epochs"):
        ap.add_argument("--" + k, type=int, default=None, help="sampler." + k + " (default: SamplerConfig)")
    ap.add_argument("--acquisition_kappa", type=float, default=None)
    ap.add_argument("--query_step_growth", type=float, default=None)
    ap.add_argument("--skip_equivalent", type=int, choices=(0, 1), default=None,
                    help="1: never query a cell that is the same network as a queried one (nar, lightgbm); "
                         "default: SamplerConfig")
    ap.add_argument("--lgbm_init", type=int, default=24)
    ap.add_argument("--lgbm_step", type=int, default=8)
    ap.add_argument("--label", help="store the nar method's runs under this name (e.g. nar_noskip), so "
                    "--merge can put two settings on one axis")
    ap.add_argument("--out", help="write every run's curve and summary here (JSON)")
    ap.add_argument("--plot", help="PNG of the mean strict pick against queries (from --out or --merge)")
    ap.add_argument("--merge", nargs="+", help="only plot: the methods of these --out files on one axis")
    args = ap.parse_args()
    if args.merge:
        return plot(args.merge, args.plot)
    import logging
    logging.basicConfig(level=logging.WARNING)
    from nar.data import open_store
    from nar.search import open_context
    from nar.search_baselines import query_run_summary

    ctx = open_context(open_store(args.data_path), args.dataset)
    opt = float(np.nanmax(ctx.target))
    methods, scfg = _methods(ctx, args)
    milestones = [m for m in MILESTONES if m <= args.budget]
    print(f"{ctx.store.bench} {args.dataset}: {ctx.pool.n} archs, optimum {ctx.target_name} {opt:.2f}, picks by "
          f"{ctx.select_name}; budget {args.budget}, seeds {args.first_seed}..{args.first_seed + args.seeds - 1}; "
          f"nar: init {scfg.init_size} step {scfg.query_step} epochs {scfg.surrogate_epochs} ensemble "
          f"{scfg.surrogate_ensemble} kappa {scfg.acquisition_kappa} skip_equivalent {scfg.skip_equivalent}", flush=True)
    cls = ctx.pool.space.equivalence_codes(ctx.pool)
    print(f"{'method':<11}" + "".join(f"{'@' + str(m):>27}" for m in milestones) + "   s/search  dup", flush=True)
    dump = {"data_path": args.data_path, "dataset": args.dataset, "target": ctx.target_name,
            "selection": ctx.select_name, "optimum": opt, "n_ranked": ctx.n_ranked, "budget": args.budget,
            "settings": vars(args), "methods": {}}
    for name in args.methods.split(","):
        runs, secs, dups = [], [], []
        for s in range(args.first_seed, args.first_seed + args.seeds):
            t = time.perf_counter()
            rows = methods[name](s)
            secs.append(time.perf_counter() - t)
            runs.append(query_run_summary(ctx, rows, milestones=milestones))
            # queries of a cell that is the same network as an earlier query, after m queries
            dups.append({str(m): m - len(np.unique(cls[rows[:m]])) for m in milestones})
        cells = []
        for m in milestones:
            at = [r.at_queries[str(m)] for r in runs]
            acc = np.array([a[f"pick_{ctx.target_name}"] for a in at], float)
            rank = np.array([a["pick_rank"] for a in at], float)
            best = np.array([a[f"best_queried_{ctx.target_name}"] for a in at], float)
            cells.append(f"{acc.mean():6.2f}+-{acc.std():4.2f} [{(rank == 1).sum():2d}/{(best >= opt - 1e-3).sum():2d}]"
                         f" r{rank.mean():<5.0f}")
        key = args.label if args.label and name == "nar" else name
        print(f"{key:<11}" + "".join(f"{c:>27}" for c in cells) + f"   {np.mean(secs):7.1f}  {np.mean([d[str(milestones[-1])] for d in dups]):.1f}",
              flush=True)
        dump["methods"][key] = {"seconds": secs, "duplicates": dups, "runs": [r.to_dict() for r in runs]}
    print("cells: mean +- std of the pick's accuracy [#seeds picking the optimum / #seeds that queried it] "
          "r<mean rank of the pick>; dup: mean queries of a cell that is the same network as an earlier query "
          f"(SearchSpace.equivalence_codes); peak RSS {peak_rss_mib():.0f} MB")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(dump))
        if args.plot:
            plot([args.out], args.plot)


NAMES = {"nar": "NAR (query-efficient)", "nar_noskip": "NAR, same-network cells queried",
         "nar_ens3": "NAR, 3 members, acquisition z(score) + kappa z(disagreement)", "lightgbm": "LightGBM(rank) surrogate", "random": "random search",
         "evolution": "regularised evolution"}


def plot(files, png):
    from nar.plot import plot_query_curves

    methods, head = {}, None
    for f in files:
        d = json.loads(Path(f).read_text())
        head = head or d
        for name, m in d["methods"].items():
            methods[NAMES.get(name, name)] = [r["curve"] for r in m["runs"]]
    title = f"NB201 {head['dataset']}: strict pick ({head['selection']} of queried cells) vs queries"
    plot_query_curves(methods, head["optimum"], png, head["target"], title)
    print(f"wrote {png}")


if __name__ == "__main__":
    main()

"""Kendall tau against training size: the ranking curve of NAR and the baselines.

A training size N means N labelled cells in all. Models that select on validation cells take
them out of N (``nar_cpu``, ``nar_improved``: N // 5); the default ranker and the baselines train
on all N. For each (dataset, N, seed) every model sees the same seeded permutation of the
labelled cells (``nar.data.make_split``), so the held-out cells (every labelled cell past the
first N) are the same for all models. Seeds: ``--seeds_small`` up to ``--small_max`` training
cells, ``--seeds_large`` above (the issue asks 5 and 3).

Each finished (dataset, N, model, seed) is appended to ``OUT/rows.jsonl`` at once, so an
interrupted run resumes where it stopped; then the tables (``OUT/curve.md``), the tidy CSV
(``OUT/curve.csv``) and the plot (``OUT/curve.png``) are rebuilt from all rows.

    python bench/bench_curve.py --store201 cache/201_*.h5 --datasets c10,c100 --out runs/curve
    python bench/bench_curve.py --store101 cache/101_*.h5 --datasets nb101 --out runs/curve
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench.benchlib import peak_rss_mib, run_script  # noqa: E402
from bench_ranking import (BASELINE_MODELS, NAR_MODELS, Setting, fit_predict_baseline,  # noqa: E402
                           fit_predict_nar)
from cache.store import Store  # noqa: E402
from nar.data import make_split  # noqa: E402
from nar.metrics import assign_tiers, mean_std, ranking_metrics, tier_thresholds  # noqa: E402
from pipeline.atomic import atomic_path, write_text_atomic  # noqa: E402
from pipeline.errors import NarError  # noqa: E402

DATASETS = {  # name -> (bench, dataset, label, target, default sizes, note)
    "c10": ("201", "cifar10", "val_acc", "test_acc", "78,156,469,781,1000,1563",
            "NB201 CIFAR-10, label cifar10-valid validation acc (mean over seeds), target test acc"),
    "c100": ("201", "cifar100", "test_acc", "test_acc", "78,156,469,781,1000,1563",
             "NB201 CIFAR-100, label and target test acc (the table has no CIFAR-100 validation acc)"),
    "nb101": ("101", "cifar10", "val_acc", "val_acc", "100,172,424,1000,4236",
              "NB101 20k table, label and target single-run val acc at 108 epochs"),
}
VAL_SHARE = {"nar_cpu": 5, "nar_improved": 5, "nar_paper": 5}  # val = N // share, out of N
METRICS = ["kendalltau", "spearman", "precision_10", "precision_100", "n_at_10", "tier_accuracy"]


def run_one(model, store, ds, n, seed, y_label, y_target):
    bench, dataset, label, target = DATASETS[ds][:4]
    n_val = n // VAL_SHARE[model] if model in VAL_SHARE else 0
    split = make_split(y_label, n - n_val, n_val, seed)
    t0 = time.perf_counter()
    if model in NAR_MODELS:
        setting = Setting(f"{ds}-{n}", bench, dataset, label, target, n - n_val, n_val, "")
        score, tier = fit_predict_nar(model, store, setting, split, seed, quick=False)
    else:
        score, tier = fit_predict_baseline(model, store, split, y_label, seed, quick=False)
    seconds = time.perf_counter() - t0
    thr = tier_thresholds(y_label[np.concatenate([split.train, split.val])], 5)
    true_tier = assign_tiers(y_label[split.rest], thr)
    res = ranking_metrics(score, y_target[split.rest], tier, None if tier is None else true_tier)
    return {"dataset": ds, "n": n, "model": model, "seed": seed, "n_val": n_val,
            "seconds": seconds, **{k: res[k] for k in METRICS}, "heldout": res["n"]}


def tables(rows: list[dict]) -> str:
    out = ["# Ranking curve: held-out Kendall tau against training size", "",
           "N = labelled cells used in all (validation cells, where a model has them, come out of N); "
           "held-out = every other labelled cell; mean ± std over seeds (n = number of seeds).", ""]
    for ds in DATASETS:
        sub = [r for r in rows if r["dataset"] == ds]
        if not sub:
            continue
        sizes = sorted({r["n"] for r in sub})
        models = list(dict.fromkeys(r["model"] for r in sub))
        out += [f"## {ds}: {DATASETS[ds][5]}", ""]
        for metric, title, digits in (("kendalltau", "Kendall tau", 3), ("precision_10", "precision@10", 2),
                                      ("precision_100", "precision@100", 2), ("n_at_10", "N@10", 1),
                                      ("seconds", "fit + predict seconds", 1)):
            out += [f"{title}:", "", "| model | " + " | ".join(f"N={n}" for n in sizes) + " |",
                    "|---|" + "---|" * len(sizes)]
            for m in models:
                cells = []
                for n in sizes:
                    v = [r[metric] for r in sub if r["model"] == m and r["n"] == n]
                    cells.append(f"{mean_std(v, '{:.%df}' % digits)} (n={len(v)})" if v else "–")
                out.append(f"| {m} | " + " | ".join(cells) + " |")
            out.append("")
    return "\n".join(out)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [ds for ds in DATASETS if any(r["dataset"] == ds for r in rows)]
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 4), squeeze=False)
    for ax, ds in zip(axes[0], names):
        sub = [r for r in rows if r["dataset"] == ds]
        for m in dict.fromkeys(r["model"] for r in sub):
            sizes = sorted({r["n"] for r in sub if r["model"] == m})
            taus = [[r["kendalltau"] for r in sub if r["model"] == m and r["n"] == n] for n in sizes]
            ax.errorbar(sizes, [np.mean(t) for t in taus], yerr=[np.std(t) for t in taus],
                        marker="o", capsize=3, label=m)
        ax.set_xscale("log")
        ax.set_xlabel("training cells N (log)")
        ax.set_ylabel("held-out Kendall tau")
        ax.set_title(ds)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def write_csv(rows: list[dict], path: Path) -> None:
    lines = ["dataset,n,model,seed,metric,value"]
    for r in rows:
        for k in METRICS + ["seconds"]:
            lines.append(f"{r['dataset']},{r['n']},{r['model']},{r['seed']},{k},{r[k]}")
    write_text_atomic(path, "\n".join(lines) + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store201")
    ap.add_argument("--store101")
    ap.add_argument("--datasets", default="c10,c100,nb101")
    ap.add_argument("--models", default="nar_default,lightgbm_rank,mlp")
    ap.add_argument("--sizes", help="comma list (default: the issue's sizes of each dataset)")
    ap.add_argument("--seeds_small", type=int, default=5)
    ap.add_argument("--seeds_large", type=int, default=3)
    ap.add_argument("--small_max", type=int, default=500)
    ap.add_argument("--out", default="runs/curve")
    a = ap.parse_args(argv)
    models = [m for m in a.models.split(",") if m]
    bad = [m for m in models if m not in NAR_MODELS and m not in BASELINE_MODELS]
    if bad:
        raise NarError(f"unknown models {bad}; known: {sorted([*NAR_MODELS, *BASELINE_MODELS])}")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    rows_path = out / "rows.jsonl"
    rows = [json.loads(x) for x in rows_path.read_text().splitlines() if x.strip()] if rows_path.exists() else []
    done = {(r["dataset"], r["n"], r["model"], r["seed"]) for r in rows}
    for ds in [d for d in a.datasets.split(",") if d]:
        if ds not in DATASETS:
            raise NarError(f"unknown dataset {ds!r}; use {', '.join(DATASETS)}")
        bench, dataset, label, target, sizes = DATASETS[ds][:5]
        path = {"201": a.store201, "101": a.store101}[bench]
        if not path:
            raise NarError(f"dataset {ds} needs --store{bench}")
        with Store(path) as store:
            y_label = np.asarray(store.data(dataset, label), np.float64)
            y_target = np.asarray(store.data(dataset, target), np.float64)
            for n in [int(s) for s in (a.sizes or sizes).split(",")]:
                for seed in range(a.seeds_small if n <= a.small_max else a.seeds_large):
                    for m in models:
                        if (ds, n, m, seed) in done:
                            continue
                        r = run_one(m, store, ds, n, seed, y_label, y_target)
                        print(f"{ds} N={n} {m} seed {seed}: tau {r['kendalltau']:.4f} "
                              f"p@10 {r['precision_10']:.2f} N@10 {r['n_at_10']} ({r['seconds']:.1f}s)", flush=True)
                        with open(rows_path, "a") as f:
                            f.write(json.dumps(r) + "\n")
                        rows.append(r)
    text = tables(rows)
    write_text_atomic(out / "curve.md", text + "\n")
    write_csv(rows, out / "curve.csv")
    plot(rows, out / "curve.png")
    print(text)
    rss = peak_rss_mib()
    print(f"wrote {out}/curve.md, curve.csv, curve.png; peak RSS {rss:.0f} MiB")
    return 0


if __name__ == "__main__":
    run_script(main)

"""Side-by-side ranking quality of NAR and the baselines on held-out architectures.

For each setting (NB201 CIFAR-10 / CIFAR-100 with 1000 training cells, NB101 20k with 424 and
4236) and each model, for each seed: split the labelled rows with ``nar.data.make_split``
(train = the first train_size of a seeded permutation, val the next val_size, held-out the
rest), fit on train (NAR also uses val for model selection; the baselines ignore it), and
score the held-out rows. Prints and writes a markdown table of mean ± std over seeds.

    python bench/bench_ranking.py --store201 cache/nb201_table.h5 --store101 cache/nb101_20k.h5 \
        --models lightgbm,lightgbm_rank,mlp --seeds 0,1,2 --out runs/bench_ranking.md
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.benchlib import peak_rss_mib, run_script  # noqa: E402
from cache.store import Store  # noqa: E402
from nar.baselines import create_baseline  # noqa: E402
from nar.data import make_split  # noqa: E402
from nar.metrics import assign_tiers, mean_std, ranking_metrics, tier_thresholds  # noqa: E402
from nar.presets import BASELINE_PRESETS, NAR_PRESETS, preset_config  # noqa: E402
from pipeline.atomic import write_text_atomic  # noqa: E402
from pipeline.errors import NarError  # noqa: E402


@dataclass(frozen=True)
class Setting:
    name: str
    bench: str
    dataset: str
    label: str      # training label in the store
    target: str     # evaluation target in the store
    train_size: int
    val_size: int
    note: str


SETTINGS = [
    Setting("nb201-c10-1000", "201", "cifar10", "val_acc", "test_acc", 1000, 256,
            "NB201 CIFAR-10, label cifar10-valid val acc, target test acc"),
    Setting("nb201-c100-1000", "201", "cifar100", "test_acc", "test_acc", 1000, 256,
            "NB201 CIFAR-100, label and target test acc (no val acc in the table)"),
    Setting("nb101-424", "101", "cifar10", "val_acc", "val_acc", 424, 106,
            "NB101 20k, label and target single-run val acc (108 ep)"),
    Setting("nb101-4236", "101", "cifar10", "val_acc", "val_acc", 4236, 1024,
            "NB101 20k, label and target single-run val acc (108 ep)"),
]

# model name -> (baseline name, options) and model name -> config file per bench: shared
# with `nar-cli sweep` (nar/presets.py)
BASELINE_MODELS = BASELINE_PRESETS
NAR_MODELS = NAR_PRESETS
METRICS = ["kendalltau", "spearman", "precision_10", "precision_100", "n_at_10", "tier_accuracy"]
N_TIER = 5


def fit_predict_baseline(model: str, store: Store, split, y_label, seed: int, quick: bool):
    name, kw = BASELINE_MODELS[model]
    kw = dict(kw)
    if quick and name == "mlp":
        kw["max_epochs"] = 40
    m = create_baseline(name, store.bench, seed=seed, **kw).fit(store, split.train, y_label[split.train])
    return m.predict(store, split.rest), None


def fit_predict_nar(model: str, store: Store, setting: Setting, split, seed: int, quick: bool):
    try:
        from nar import api
    except ImportError as e:
        raise NarError(f"nar.api is not available ({e})") from e
    from nar.data import load_features, store_keys

    cfg = preset_config(model, setting.bench)[0]
    if not cfg.exists():
        raise NarError(f"config {cfg} not found")
    over = dict(seed=seed, train_size=setting.train_size, val_size=setting.val_size,
                strategy=setting.label, target=setting.target)
    if setting.bench == "201":
        over["network_type"] = setting.dataset
    if quick:
        over["ranker_epochs"] = 2
    ranker = api.fit(str(store.path), config=str(cfg), **over)
    used = getattr(ranker, "train_keys", None)
    if used is not None and list(used) != [str(k) for k in store_keys(store)[split.train]]:
        raise NarError(f"{model}: nar.api.fit trained on another split than make_split (seed {seed})")
    tier, score = ranker.predict(load_features(store, setting.dataset, split.rest))
    return np.asarray(score, np.float64), np.asarray(tier)


def run_setting(setting: Setting, store: Store, models, seeds, quick: bool) -> dict:
    """{model: {"metrics": [dict per seed], "seconds": [...], "error": str | None}}."""
    y_label = np.asarray(store.data(setting.dataset, setting.label), np.float64)
    y_target = np.asarray(store.data(setting.dataset, setting.target), np.float64)
    out = {m: {"metrics": [], "seconds": [], "error": None} for m in models}
    for seed in seeds:
        split = make_split(y_label, setting.train_size, setting.val_size, seed)
        thr = tier_thresholds(y_label[split.train], N_TIER)
        true_tier = assign_tiers(y_label[split.rest], thr)  # tiers of the training label
        for m in models:
            if out[m]["error"]:
                continue
            t0 = time.perf_counter()
            try:
                if m in NAR_MODELS:
                    score, tier = fit_predict_nar(m, store, setting, split, seed, quick)
                else:
                    score, tier = fit_predict_baseline(m, store, split, y_label, seed, quick)
            except NarError as e:
                out[m]["error"] = str(e)
                print(f"  {setting.name} {m}: skipped ({e})", flush=True)
                continue
            dt = time.perf_counter() - t0
            res = ranking_metrics(score, y_target[split.rest], tier, None if tier is None else true_tier)
            out[m]["metrics"].append(res)
            out[m]["seconds"].append(dt)
            print(f"  {setting.name} {m} seed {seed}: tau {res['kendalltau']:.3f} "
                  f"rho {res['spearman']:.3f} p@10 {res['precision_10']:.2f} N@10 {res['n_at_10']} "
                  f"n {res['n']} ({dt:.1f}s)", flush=True)
    return out


def markdown(results: dict, seeds, quick: bool) -> str:
    lines = [f"# Ranking on held-out architectures (seeds {','.join(map(str, seeds))}"
             f"{', QUICK: few epochs' if quick else ''})", "",
             "Kendall tau-b, Spearman, precision@K (share of the predicted top K in the true top K), "
             "N@10 (best true rank among the predicted top 10), tier accuracy (5 tiers cut on the "
             "training labels); mean ± std over seeds.", ""]
    for setting, per_model in results.items():
        lines += [f"## {setting.name}: {setting.note}; train {setting.train_size}, "
                  f"val {setting.val_size}", "",
                  "| model | Kendall tau | Spearman | P@10 | P@100 | N@10 | tier acc | fit+predict s | held-out n |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for m, r in per_model.items():
            if r["error"] and not r["metrics"]:
                lines.append(f"| {m} | n/a: {r['error']} |  |  |  |  |  |  |  |")
                continue
            ms = r["metrics"]
            row = [mean_std([x[k] for x in ms], "{:.1f}" if k == "n_at_10" else "{:.3f}") for k in METRICS]
            lines.append(f"| {m} | " + " | ".join(row) + f" | {mean_std(r['seconds'], '{:.1f}')} | "
                         f"{ms[0]['n']} |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store201", help="NB201 store (.h5) with cifar10 and cifar100 data")
    ap.add_argument("--store101", help="NB101 20k store (.h5)")
    ap.add_argument("--models", default="nar_paper,nar_cpu,lightgbm,lightgbm_rank,mlp")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--settings", default=",".join(s.name for s in SETTINGS))
    ap.add_argument("--quick", action="store_true", help="few epochs for NAR and the MLP")
    ap.add_argument("--out", default="runs/bench_ranking.md", help="markdown table path")
    a = ap.parse_args(argv)

    models = [m for m in a.models.split(",") if m]
    unknown = [m for m in models if m not in BASELINE_MODELS and m not in NAR_MODELS]
    if unknown:
        raise SystemExit(f"error: unknown models {unknown}; known: "
                         f"{sorted([*BASELINE_MODELS, *NAR_MODELS])}")
    seeds = [int(s) for s in a.seeds.split(",") if s]
    wanted = set(a.settings.split(","))
    stores = {"201": a.store201, "101": a.store101}
    results = {}
    t0 = time.perf_counter()
    for setting in SETTINGS:
        if setting.name not in wanted:
            continue
        if not stores[setting.bench]:
            print(f"{setting.name}: no --store{setting.bench} given, skipped", flush=True)
            continue
        with Store(stores[setting.bench]) as store:
            print(f"{setting.name}: {setting.note}", flush=True)
            results[setting] = run_setting(setting, store, models, seeds, a.quick)
    text = markdown(results, seeds, a.quick)
    print(text)
    out = write_text_atomic(a.out, text + "\n", mkdir=True)
    rss = peak_rss_mib()
    print(f"wrote {out}; total {time.perf_counter() - t0:.1f}s, peak RSS {rss:.0f} MiB")
    return 0


if __name__ == "__main__":
    run_script(main)

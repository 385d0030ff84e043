"""Tables of experiments/graph_results.sh: held-out Kendall tau per model and the strict-protocol
search against random search with the same queries, mean ± std over seeds.

    python experiments/graph_summary.py runs/graph > graph_table.md
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np

MODELS = (("nar", "NAR (config/graph.yml)"), ("lightgbm", "LightGBM (rank)"), ("mlp", "MLP"))
RUN = re.compile(r"(?P<ds>[a-z]+)-n(?P<n>\d+)-s(?P<seed>\d+)$")


def _fmt(values, digits=3):
    v = [x for x in values if x is not None and np.isfinite(x)]
    if not v:
        return "–"
    return f"{np.mean(v):.{digits}f} ± {np.std(v):.{digits}f} (n={len(v)})"


def _load(path: Path):
    return json.loads(path.read_text()) if path.is_file() else None


def collect(out: Path) -> list[dict]:
    rows = []
    for run in sorted(out.iterdir()):
        m = RUN.match(run.name)
        if not m or not run.is_dir():
            continue
        row = {"ds": m["ds"], "n": int(m["n"]), "seed": int(m["seed"])}
        for name, _ in MODELS:
            res = _load(run / name / "results.json")
            row[name] = res["heldout"]["kendalltau"] if res else None
            row[name + "_n"] = res["heldout"]["n"] if res else None
        secs = run / "nar" / "train_seconds"
        row["nar_seconds"] = float(secs.read_text()) if secs.is_file() else None
        search, rand = _load(run / "nar" / "search.json"), _load(run / "random" / "search.json")
        if search:
            sp = search["strict_protocol"]
            ref = search["random_search_reference"]
            row.update(queries=sp["queries"], nar_pick=sp["pick"]["test_acc"], nar_rank=sp["pick"]["rank"],
                       ref_pick=ref["mean_pick_test_acc"], ref_rank=ref["median_pick_rank"])
        if rand:
            sp = rand["strict_protocol"]
            row.update(rand_pick=sp["pick"]["test_acc"], rand_rank=sp["pick"]["rank"], rand_queries=sp["queries"])
        rows.append(row)
    return rows


def tables(rows: list[dict]) -> str:
    out = ["Held-out Kendall tau (target test performance, label validation performance):", "",
           "| dataset | N | " + " | ".join(t for _, t in MODELS) + " | NAR train s |",
           "|---|---|" + "---|" * (len(MODELS) + 1)]
    keys = sorted({(r["ds"], r["n"]) for r in rows}, key=lambda k: (["cora", "pubmed", "arxiv"].index(k[0])
                                                                   if k[0] in ("cora", "pubmed", "arxiv") else 9, k))
    for ds, n in keys:
        sub = [r for r in rows if r["ds"] == ds and r["n"] == n]
        out.append(f"| {ds} | {n} | " + " | ".join(_fmt([r[m] for r in sub]) for m, _ in MODELS)
                   + f" | {_fmt([r['nar_seconds'] for r in sub], 0)} |")
    out += ["", "Search (strict protocol, nar-cli sample) against random search with the same queries: test "
            "performance (%) of the pick and its rank among the 26,206 (1 = best):", "",
            "| dataset | N | queries | NAR pick | NAR rank | random pick (same seeds) | random rank | "
            "random, mean of 100 seeds | median rank (100 seeds) |", "|---|---|---|---|---|---|---|---|---|"]
    for ds, n in keys:
        sub = [r for r in rows if r["ds"] == ds and r["n"] == n and "nar_pick" in r]
        if not sub:
            continue
        q = sorted({r["queries"] for r in sub})
        out.append(f"| {ds} | {n} | {'/'.join(map(str, q))} | {_fmt([r['nar_pick'] for r in sub], 2)} | "
                   f"{_fmt([r['nar_rank'] for r in sub], 0)} | {_fmt([r.get('rand_pick') for r in sub], 2)} | "
                   f"{_fmt([r.get('rand_rank') for r in sub], 0)} | {_fmt([r['ref_pick'] for r in sub], 2)} | "
                   f"{_fmt([r['ref_rank'] for r in sub], 0)} |")
    return "\n".join(out)


if __name__ == "__main__":
    print(tables(collect(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/graph"))))

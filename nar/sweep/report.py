"""Aggregate the complete cells of a sweep from their run directories (nothing is run):

- ``results.csv``: tidy, one row per cell and metric (columns :data:`COLUMNS`; ``model`` is the
  model of a rank cell or the search of a search cell; ``queries`` is set for search metrics);
- ``summary.md``: mean +- std over seeds per group (ranking tables per data / dataset /
  training size; NAR-search table; per data and dataset, the search table: the strict pick at
  each query milestone, [#seeds picking / #seeds querying an optimum], mean rank, s/search);
- ``tau_vs_train_size.png`` (Kendall tau against training size per model, log x) and
  ``search_vs_queries.png`` (the mean strict pick's accuracy against queries per search method,
  one axis per data and dataset, the optimum drawn; each panel also as
  ``search_<data>_<dataset>.png``).
"""
from __future__ import annotations

import csv
import io
import json
import logging
from collections import defaultdict
from pathlib import Path

import numpy as np

from nar.metrics import mean_std
from nar.sweep.cell import SETTINGS, cell_status
from nar.sweep.report_search import DEFAULT_MILESTONES, milestone_rows, rank_books, search_tables
from pipeline.atomic import atomic_path, write_text_atomic

log = logging.getLogger(__name__)

COLUMNS = ["cell", "kind", "data", "bench", "dataset", "model", "train_size", "val_size", "seed", "queries",
           "metric", "value"]
RANK_METRICS = ["kendalltau", "spearman", "precision_10", "precision_100", "n_at_10", "tier_accuracy"]
RANK_HEAD = ["Kendall tau", "Spearman", "P@10", "P@100", "N@10", "tier acc"]


def _read(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _search_rows(rep: dict) -> list[tuple]:
    """(queries, metric, value) rows of a search.json."""
    t = rep.get("target", "test_acc")
    rows = []
    if "paper_protocol" in rep and "best" in rep["paper_protocol"]:
        p = rep["paper_protocol"]
        rows += [(None, f"paper_best_{t}", p["best"].get(t)), (None, "paper_best_rank", p["best"].get("rank")),
                 (None, "paper_queries", p.get("queries"))]
    s = rep.get("strict_protocol", {})
    if "pick" in s and "at_queries" not in s:  # NAR search: one final pick
        rows += [(None, f"strict_pick_{t}", s["pick"].get(t)), (None, "strict_pick_rank", s["pick"].get("rank")),
                 (None, "strict_queries", s.get("queries"))]
        ref = rep.get("random_search_reference") or {}  # random search, same queries, many seeds
        rows += [(None, f"random_ref_pick_{t}", ref.get(f"mean_pick_{t}")),
                 (None, "random_ref_median_rank", ref.get("median_pick_rank"))]
    for q, v in s.get("at_queries", {}).items():
        rows += [(int(q), f"pick_{t}", v.get(f"pick_{t}")), (int(q), "pick_rank", v.get("pick_rank")),
                 (int(q), f"best_queried_{t}", v.get(f"best_queried_{t}"))]
    if "at_queries" in s and "pick" in s and str(s.get("queries")) not in s["at_queries"]:
        q = int(s["queries"])
        rows += [(q, f"pick_{t}", s["pick"].get(t)), (q, "pick_rank", s["pick"].get("rank"))]
    return rows


def _search_reports(cells, out) -> dict:
    """{cell name: search.json} of the complete search cells."""
    reps = {}
    for c in cells:
        if c.kind == "search" and cell_status(out, c.name) == "done":
            rep = _read(out / c.name / "search.json")
            if rep is not None:
                reps[c.name] = rep
    return reps


def collect(cells, out, milestones=DEFAULT_MILESTONES, searched=None) -> tuple[list[dict], dict]:
    """Tidy rows of the complete cells, and counts {"done", "failed", "missing"}; search cells
    give their figures at ``milestones`` (:mod:`nar.sweep.report_search`). ``searched``: the
    search reports already read (:func:`_search_reports`; None = read them here)."""
    out = Path(out)
    rows, counts = [], {"done": 0, "failed": 0, "missing": 0}
    searched = _search_reports(cells, out) if searched is None else searched
    labels = {c.name: c.labels for c in cells}
    books = rank_books([(labels[n], rep) for n, rep in searched.items()])
    for c in cells:
        st = cell_status(out, c.name)
        counts[st] += 1
        if st != "done":
            continue
        d = out / c.name
        base = {"cell": c.name, "kind": c.kind, **{k: c.labels.get(k) for k in
                ("data", "bench", "dataset", "model", "train_size", "val_size", "seed")}}
        found = []
        info = _read(d / SETTINGS) or {}
        for job, sec in (info.get("seconds") or {}).items():
            found.append((None, f"seconds_{job}", sec))
        res = _read(d / "results.json")
        if res is not None:
            h = res.get("heldout", {})
            found += [(None, k, h.get(k)) for k in RANK_METRICS if k in h] + [(None, "n_heldout", h.get("n"))]
        if c.name in searched:
            rep = searched[c.name]
            found += milestone_rows(rep, milestones, books[(c.labels.get("data"), c.labels.get("dataset"))])
        elif (rep := _read(d / "search.json")) is not None:
            found += _search_rows(rep)
        rows += [{**base, "queries": q, "metric": m, "value": v} for q, m, v in found if v is not None]
    return rows, counts


def _group(rows, keys):
    g = defaultdict(lambda: defaultdict(list))
    for r in rows:
        g[tuple(r[k] for k in keys)][(r["metric"], r["queries"])].append(r["value"])
    return g


def _rank_tables(rank) -> list[str]:
    lines, tables = [], defaultdict(list)
    for r in rank:
        tables[(r["data"], r["dataset"], r["train_size"], r["val_size"])].append(r)
    for (data, ds, n, v), rs in sorted(tables.items(), key=lambda kv: (str(kv[0][0]), str(kv[0][1]), kv[0][2] or 0)):
        lines += [f"## {data} {ds}: train {n}, val {v}", "",
                  "| model | seeds | " + " | ".join(RANK_HEAD) + " | train s | held-out n |",
                  "|---|---|" + "---|" * (len(RANK_HEAD) + 2)]
        for (model,), ms in _group(rs, ["model"]).items():
            seeds = len({r["seed"] for r in rs if r["model"] == model})
            cells = [mean_std(ms.get((k, None), []), "{:.1f}" if k == "n_at_10" else "{:.3f}") for k in RANK_METRICS]
            lines.append(f"| {model} | {seeds} | " + " | ".join(cells) +
                         f" | {mean_std(ms.get(('seconds_train', None), []), '{:.1f}')} | "
                         f"{mean_std(ms.get(('n_heldout', None), []), '{:.0f}')} |")
        lines.append("")
    return lines


CURVE_METRICS = (("kendalltau", "Kendall tau", "{:.3f}"), ("precision_10", "precision@10", "{:.2f}"),
                 ("precision_100", "precision@100", "{:.2f}"), ("n_at_10", "N@10", "{:.1f}"),
                 ("seconds_train", "train seconds", "{:.1f}"))


def _curve_tables(rank) -> list[str]:
    """Per data and dataset with several training sizes: one table per metric, models x sizes
    (the layout of docs/results.md's ranking curve; ``(n=...)`` = seeds)."""
    lines = []
    for (data, ds), rs in sorted(_split(rank, ["data", "dataset"]).items()):
        sizes = sorted({(r["train_size"], r["val_size"]) for r in rs}, key=lambda s: (s[0] or 0, s[1] or 0))
        if len(sizes) < 2:
            continue
        head = [f"N={n}" if not v else f"N={n}+{v}" for n, v in sizes]
        lines += [f"## Curve, {data} {ds}: metric by training size, mean ± std (n = seeds)", ""]
        by = _group(rs, ["model", "train_size", "val_size"])
        models = list(dict.fromkeys(r["model"] for r in rs))
        for metric, title, fmt in CURVE_METRICS:
            lines += [f"{title}:", "", "| model | " + " | ".join(head) + " |", "|---|" + "---|" * len(sizes)]
            for m in models:
                cells = []
                for n, v in sizes:
                    vals = by.get((m, n, v), {}).get((metric, None), [])
                    cells.append(f"{mean_std(vals, fmt)} (n={len(vals)})" if vals else "–")
                lines.append(f"| {m} | " + " | ".join(cells) + " |")
            lines.append("")
    return lines


def _first(ms, prefix, exclude, queries=None):
    return next((v for (m, q), v in ms.items() if q == queries and m.startswith(prefix) and m != exclude), [])


def _sample_table(sampled) -> list[str]:
    lines = ["## NAR search (`sample`) of the trained rankers", "",
             "| data | dataset | model | train | paper: best (rank) | strict: pick (rank) | strict queries | "
             "random search, same queries, 100 runs a seed: mean pick (median rank) |",
             "|---|---|---|---|---|---|---|---|"]
    for (data, ds, model, n), ms in _group(sampled, ["data", "dataset", "model", "train_size"]).items():
        def get(name, fmt, ms=ms):
            return mean_std(ms.get((name, None), []), fmt)

        pb = mean_std(_first(ms, "paper_best_", "paper_best_rank"), "{:.2f}")
        sp = mean_std(_first(ms, "strict_pick_", "strict_pick_rank"), "{:.2f}")
        rr = mean_std(_first(ms, "random_ref_pick_", None), "{:.2f}")
        lines.append(f"| {data} | {ds} | {model} | {n} | {pb} ({get('paper_best_rank', '{:.1f}')}) | "
                     f"{sp} ({get('strict_pick_rank', '{:.1f}')}) | {get('strict_queries', '{:.0f}')} | "
                     f"{rr} ({get('random_ref_median_rank', '{:.1f}')}) |")
    return lines + [""]


def markdown(rows, counts, title: str, milestones=DEFAULT_MILESTONES) -> str:
    lines = [f"# Sweep {title}", "",
             f"{counts['done']} complete cells, {counts['failed']} failed, {counts['missing']} not run; "
             "mean ± std over seeds (population std).", ""]
    rank = [r for r in rows if r["kind"] == "rank"]
    lines += _curve_tables(rank) + _rank_tables(rank)
    sampled = [r for r in rank if r["metric"].startswith(("paper_", "strict_", "random_ref_"))]
    if sampled:
        lines += _sample_table(sampled)
    lines += search_tables([r for r in rows if r["kind"] == "search"], milestones)
    return "\n".join(lines)


def _split(rows, keys):
    out = defaultdict(list)
    for r in rows:
        out[tuple(str(r[k]) for k in keys)].append(r)
    return out


def _plot_tau(rows, path) -> Path | None:
    rank = [r for r in rows if r["kind"] == "rank" and r["metric"] == "kendalltau"]
    if not rank:
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = _split(rank, ["data", "dataset"])
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for ax, ((data, ds), rs) in zip(axes[0], sorted(panels.items())):
        for model, mr in sorted(_split(rs, ["model"]).items()):
            by_n = defaultdict(list)
            for r in mr:
                by_n[int(r["train_size"])].append(float(r["value"]))
            ns = sorted(by_n)
            ax.errorbar(ns, [np.mean(by_n[n]) for n in ns], yerr=[np.std(by_n[n]) for n in ns], marker="o",
                        capsize=3, label=model[0])
        ax.set_xscale("log")
        ticks = sorted({int(r["train_size"]) for r in rs})
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.minorticks_off()
        ax.set_xlabel("training architectures")
        ax.set_ylabel("Kendall tau (held-out)")
        ax.set_title(f"{data} {ds}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, path)


def _plot_search(cells, searched: dict, path) -> list[Path]:
    """``path``: one axis per data and dataset, the mean strict pick against queries per search
    method with the optimum drawn (the figure of ``bench/bench_search.py``); and the same panel
    alone as ``search_<data>_<dataset>.png`` beside it. ``searched``: {cell name: search.json}
    of the complete search cells. Returns the files written."""
    from nar.plot import draw_query_curves

    curves, info, reps = defaultdict(dict), {}, []
    for c in cells:
        if c.name not in searched:
            continue
        rep = searched[c.name]
        reps.append((c.labels, rep))
        cur = rep.get("strict_protocol", {}).get("curve")
        if cur:
            panel = (c.labels["data"], c.labels["dataset"])
            curves[panel].setdefault(c.labels["model"], []).append(cur)
            info[panel] = (rep.get("target", "accuracy"), rep["strict_protocol"].get("selection_label", "?"))
    if not curves:
        return []
    books = rank_books(reps)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def draw(ax, panel):
        opt = next((a for a, r in books[panel].items() if r == 1), None)
        target, sel = info[panel]
        draw_query_curves(ax, curves[panel], opt, target,
                          f"{panel[0]} {panel[1]}: strict pick ({sel} of queried cells) vs queries")

    panels = sorted(curves, key=str)
    fig, axes = plt.subplots(1, len(panels), figsize=(7 * len(panels), 4.5), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        draw(ax, panel)
    written = [_save(fig, path)]
    for panel in panels:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        draw(ax, panel)
        written.append(_save(fig, Path(path).parent / f"search_{panel[0]}_{panel[1]}.png"))
    return written


def _save(fig, path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    with atomic_path(path, mkdir=True) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return Path(path)


def write_report(cells, out, title: str, milestones=DEFAULT_MILESTONES) -> dict:
    """Write results.csv, summary.md and the plots into ``OUT/report``; returns their paths
    and the counts. ``milestones``: the query counts of the search tables."""
    out = Path(out)
    searched = _search_reports(cells, out)  # read once: the tables and the plots use them
    rows, counts = collect(cells, out, milestones, searched)
    rep = out / "report"
    buf = io.StringIO()
    w = csv.DictWriter(buf, COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else r[k]) for k in COLUMNS})
    paths = {"csv": write_text_atomic(rep / "results.csv", buf.getvalue(), mkdir=True),
             "markdown": write_text_atomic(rep / "summary.md", markdown(rows, counts, title, milestones) + "\n")}
    tau = _plot_tau(rows, rep / "tau_vs_train_size.png")
    if tau is not None:
        paths["tau_plot"] = tau
    for i, p in enumerate(_plot_search(cells, searched, rep / "search_vs_queries.png")):
        paths["search_plot" if i == 0 else f"search_plot_{p.stem}"] = p
    log.info("report of %d complete cells written to %s", counts["done"], rep)
    return {"paths": paths, "counts": counts, "rows": len(rows)}

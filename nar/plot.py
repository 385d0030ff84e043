"""PNG plots of a search report (matplotlib, Agg backend): best accuracy against iteration and
against the number of queries; the query-efficiency figure of several methods on one axis."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.atomic import atomic_path


def _pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path, dpi: int) -> Path:
    """Write ``fig`` to ``path`` as PNG atomically and close it; returns the path."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=dpi)
    finally:
        plt.close(fig)
    return path


def plot_search(report: dict, path) -> Path:
    """Write ``path`` (PNG) from a ``search.json`` report; returns the path."""
    plt = _pyplot()
    target = report.get("target", "accuracy")
    fig, (ax_it, ax_q) = plt.subplots(1, 2, figsize=(11, 4))
    iters = report.get("per_iteration") or []
    if iters:
        x = [r["iteration"] for r in iters]
        best = [r["best_topk_target_so_far"] for r in iters]
        top1 = [r["top_k"][0].get(target) if r["top_k"] else None for r in iters]
        ax_it.plot(x, best, label="paper: best of predicted top-k so far (oracle)")
        ax_it.plot(x, top1, ".", alpha=0.6, label="predicted top-1 of the iteration")
        ax_it.set_xlabel("iteration")
    else:
        ax_it.text(0.5, 0.5, f"mode {report.get('mode')}: no iterations", ha="center", transform=ax_it.transAxes)
    ax_it.set_ylabel(target)
    ax_it.set_title("best accuracy against iteration")
    starts = []
    for name, curve in _curves(report):
        pts = [(q, a) for q, a in curve if a is not None]
        if pts:
            line = ax_q.step([p[0] for p in pts], [p[1] for p in pts], where="post", label=name)[0]
            ax_q.plot([pts[0][0]], [pts[0][1]], "o", color=line.get_color(), ms=4)
            starts.append(pts[0][0])
    if starts and max(starts) > 20 * max(1, min(starts)):  # a ranker's training set paid first: log x
        ax_q.set_xscale("log")
    best = (report.get("best_feasible") or {}).get("best", {}).get(target)
    if best is not None:
        ax_q.axhline(best, color="k", ls="--", lw=1, label=f"best feasible {best:.2f}")
    ax_q.set_xlabel("queries (architectures whose accuracy was looked up)")
    ax_q.set_ylabel(target)
    ax_q.set_title("strict pick (best validation) against queries")
    for ax in (ax_it, ax_q):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    return _save(fig, path, dpi=100)


def _curves(report: dict):
    strict = report.get("strict_protocol") or {}
    if strict.get("curve"):
        yield f"{report.get('mode', 'search')} (strict)", strict["curve"]
    ref = report.get("random_search_reference") or {}
    if ref.get("curve"):
        yield "random search (same queries, one seed)", ref["curve"]


def mean_curve(curves, queries) -> np.ndarray:
    """Mean over runs of the strict pick's accuracy after each of ``queries`` (each curve is
    [[queries, accuracy], ...] sorted by queries; a step function between its points)."""
    out = []
    for c in curves:
        q = np.array([p[0] for p in c], float)
        a = np.array([np.nan if p[1] is None else p[1] for p in c], float)
        i = np.searchsorted(q, queries, side="right") - 1
        out.append(np.where(i >= 0, a[np.maximum(i, 0)], np.nan))
    return np.nanmean(np.array(out), 0)


def plot_query_curves(methods: dict, optimum: float, path, target: str = "test accuracy",
                      title: str = "") -> Path:
    """One axis: the mean (over seeds) strict pick's accuracy against queries for each method
    (``{name: [curve, ...]}``), with the optimum drawn; x on a log scale. Writes ``path``."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    draw_query_curves(ax, methods, optimum, target, title)
    return _save(fig, path, dpi=110)


def draw_query_curves(ax, methods: dict, optimum: float | None, target: str = "test accuracy", title: str = ""):
    """Draw :func:`plot_query_curves`'s figure on ``ax`` (``optimum`` None: not drawn)."""
    top = max(max(p[0] for p in c) for cs in methods.values() for c in cs)
    queries = np.unique(np.geomspace(1, top, 300).round())
    for name, cs in methods.items():
        ax.step(queries, mean_curve(cs, queries), where="post", label=f"{name} ({len(cs)} seeds)")
    lo = min(np.nanmin(mean_curve(cs, queries[queries >= min(20, top)])) for cs in methods.values())
    hi = max(np.nanmax(mean_curve(cs, queries)) for cs in methods.values())
    if optimum is not None:
        ax.axhline(optimum, color="k", ls="--", lw=1, label=f"optimum {optimum:.2f}")
        hi = optimum
    ax.set_xscale("log")
    ax.set_xlabel("queries (architectures whose accuracy was looked up)")
    ax.set_ylabel(f"{target} of the strict pick (mean over seeds)")
    ax.set_ylim(lo - 0.1, hi + 0.1 * max(0.1, hi - lo))
    ax.set_xlim(min(10, top / 2), top)
    ax.set_title(title or "best-so-far of the strict pick against queries")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="lower right")

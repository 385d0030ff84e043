"""Ranking metrics between predicted scores and true accuracy, and accuracy tiers.

Conventions: a higher score and a higher accuracy are better; true rank 1 is the best
architecture; tier 1 is the best tier.

Tiers (the one implementation; nar.data, nar.harness, nar.evaluate use it): training
architectures get :func:`tier_labels` (sorted best first, equal groups, ties split by input
order); any other accuracy gets :func:`assign_tiers` under the training cut points of
:func:`tier_thresholds`, where an accuracy equal to a cut goes to the better tier. The two
agree on the training set except for tied accuracies that straddle a cut.
"""
from __future__ import annotations

import logging

import numpy as np

from nar.rankstats import kendalltau, rankdata, spearmanr
from pipeline.errors import NarError

log = logging.getLogger(__name__)

TOP_K = (10, 100)


def _vector(x, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 1:
        raise NarError(f"{name} must be one-dimensional, got shape {a.shape}; pass one value per architecture")
    return a


def ranking_metrics(score, target, pred_tier=None, true_tier=None) -> dict:
    """Compare predicted ``score`` with true ``target`` accuracy over the same architectures.

    Architectures whose target is NaN are dropped first (together with their tiers); a NaN
    score is an error. Returns a dict:
    ``kendalltau`` (tau-b), ``spearman``, ``precision_10`` / ``precision_100`` (share of
    the K best-scored architectures that are among the K truly best; K is capped at n),
    ``n_at_10`` (best true rank, 1 = best, among the 10 best-scored; an int),
    ``tier_accuracy`` (share of ``pred_tier == true_tier``; None when tiers are not given)
    and ``n`` (architectures kept; an int). Ties in the score are broken by position.
    """
    score = _vector(score, "score")
    target = _vector(target, "target")
    if len(score) != len(target):
        raise NarError(f"score has {len(score)} values but target has {len(target)}; pass one of each per architecture")
    if (pred_tier is None) != (true_tier is None):
        raise NarError("give both pred_tier and true_tier, or neither")
    keep = ~np.isnan(target)
    if (~keep).any():
        log.debug("ranking_metrics: dropping %d architectures with NaN target", int((~keep).sum()))
    score, target = score[keep], target[keep]
    n = len(target)
    if n < 2:
        raise NarError(f"ranking metrics need at least 2 architectures with a target, got {n}")
    bad = np.flatnonzero(~np.isfinite(score))
    if len(bad):
        raise NarError(f"score is not finite at kept position {bad[0]} ({len(bad)} in all); check the model output")

    out = {
        "kendalltau": kendalltau(score, target),
        "spearman": spearmanr(score, target),
    }
    by_score = np.argsort(-score, kind="stable")
    by_target = np.argsort(-target, kind="stable")
    for k in TOP_K:
        kk = min(k, n)
        hits = np.intersect1d(by_score[:kk], by_target[:kk], assume_unique=True)
        out[f"precision_{k}"] = len(hits) / kk
    true_rank = rankdata(-target, method="min")  # 1 = best; ties share the better rank
    out["n_at_10"] = int(true_rank[by_score[:min(10, n)]].min())
    if pred_tier is not None:
        pt, tt = np.asarray(pred_tier), np.asarray(true_tier)
        if pt.shape != keep.shape or tt.shape != keep.shape:
            raise NarError(f"pred_tier {pt.shape} and true_tier {tt.shape} must match target ({keep.shape})")
        out["tier_accuracy"] = float(np.mean(pt[keep] == tt[keep]))
    else:
        out["tier_accuracy"] = None
    out["n"] = n
    return out


def mean_std(values, fmt: str = "{:.3f}") -> str:
    """How a metric over seeds is written in every table: "mean ± std" (population std), the
    value alone for one seed, "–" for none; None and non-finite values are left out."""
    vals = [float(v) for v in values if v is not None and np.isfinite(float(v))]
    if not vals:
        return "–"
    if len(vals) == 1:
        return fmt.format(vals[0])
    return f"{fmt.format(np.mean(vals))} ± {fmt.format(np.std(vals))}"


def _check_acc(acc, n_tier: int) -> np.ndarray:
    acc = _vector(acc, "acc")
    if int(n_tier) < 1:
        raise NarError(f"n_tier must be at least 1, got {n_tier}")
    if len(acc) < n_tier:
        raise NarError(f"cannot cut {len(acc)} architectures into {n_tier} tiers; use more training architectures")
    bad = np.flatnonzero(np.isnan(acc))
    if len(bad):
        raise NarError(f"accuracy is NaN at index {bad[0]} ({len(bad)} in all); drop unlabelled architectures first")
    return acc


def _tier_order(acc: np.ndarray, n_tier: int):
    """Indices sorted best first and the tier (1..n_tier) of each sorted position."""
    order = np.argsort(-acc, kind="stable")
    size = len(acc) // n_tier
    sorted_tier = np.minimum(np.arange(len(acc)) // size, n_tier - 1) + 1
    return order, sorted_tier


def tier_labels(acc, n_tier: int) -> np.ndarray:
    """Tiers 1..n_tier: sort best first, cut into n_tier groups of ``len(acc) // n_tier``,
    the last group also takes the remainder. Equal accuracies keep their input order."""
    acc = _check_acc(acc, n_tier)
    order, sorted_tier = _tier_order(acc, n_tier)
    tiers = np.empty(len(acc), np.int64)
    tiers[order] = sorted_tier
    return tiers


def tier_thresholds(acc, n_tier: int) -> np.ndarray:
    """The n_tier - 1 cut points (descending) of :func:`tier_labels` on ``acc``: cut t lies
    midway between the worst accuracy of tier t and the best of tier t + 1."""
    acc = _check_acc(acc, n_tier)
    order, sorted_tier = _tier_order(acc, n_tier)
    s = acc[order]
    last = np.flatnonzero(np.diff(sorted_tier))  # sorted position of the last member of tiers 1..n-1
    return (s[last] + s[last + 1]) / 2.0


def assign_tiers(acc, thresholds) -> np.ndarray:
    """Tier of each accuracy under the cut points of :func:`tier_thresholds`: 1 + the number
    of cut points strictly above it (an accuracy equal to a cut goes to the better tier);
    0 where the accuracy is NaN."""
    acc = _vector(acc, "acc")
    thr = np.sort(_vector(thresholds, "thresholds"))
    if np.isnan(thr).any():
        raise NarError("tier thresholds contain NaN; recompute them with tier_thresholds")
    tiers = 1 + len(thr) - np.searchsorted(thr, acc, side="right")  # right: cuts <= acc
    tiers[np.isnan(acc)] = 0
    return tiers.astype(np.int64)

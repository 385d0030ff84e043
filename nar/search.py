"""The search-by-sampling loop and its two evaluation protocols (METHOD.md sections 5 and 6).

``paper``  : the release's report, the best TEST accuracy among the predicted top-k over all
             iterations (an oracle pick); queries = the training architectures only.
``strict`` : one final pick from predictions and validation data alone: the ``strict_lookups``
             best-predicted distinct candidates (predicted top tier first, then by score) of the
             last ``strict_iterations`` iterations (0 = all) are looked up, each a query counted by
             the search's :class:`~nar.search_oracle.QueryOracle`; among everything queried
             (training and validation sets included) the cells within ``strict_val_margin`` of the
             best validation accuracy are tied; the ranker's score picks one among the tied
             SEARCHED cells (it never trained on them), and among tied training cells only when no
             searched cell is tied (:func:`search_first_pick`, rule ``search_first``); its test
             accuracy, rank and percentile are reported, every query counted.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from nar.console import DETAIL, progress_bar
from nar.sampler import Sampler, SearchPool
from nar.search_config import SamplerConfig
from nar.search_oracle import QueryOracle
from nar.search_records import SearchIteration, StrictResult
from pipeline.errors import NarError

log = logging.getLogger(__name__)

PICK_RULES = ("search_margin", "heldout_margin", "search_first", "val", "margin_score")

PAPER_TEXT = ("release's report: best TEST accuracy among the predicted top-k over all iterations "
              "(an oracle pick); queries = training architectures only")
STRICT_TEXT = ("final pick from predictions and validation data alone: the best-predicted distinct "
               "candidates of the search are looked up; among all queried architectures, those within "
               "val_margin of the best validation accuracy are tied; the best predicted score among the tied "
               "searched architectures wins (training architectures only when none is tied; pick_rule "
               "search_first); "
               "queries = training + validation architectures + every looked-up architecture")


@dataclass
class SearchContext:
    """A store opened for search: the pool, the labels and the ranks of the target."""
    store: object
    dataset: str
    pool: SearchPool
    target: np.ndarray       # reported accuracy (test_acc, or val_acc where the data has no test)
    target_name: str
    select: np.ndarray       # accuracy a strict pick may use (val_acc, or the target if no val)
    select_name: str
    rank: np.ndarray         # rank of the target among labelled rows, 1 = best, ties share (0 = unlabelled)
    n_ranked: int

    def features(self, rows) -> np.ndarray:
        rows = np.asarray(rows)
        order = np.argsort(rows)
        out = np.empty((len(rows),) + self.store.data(self.dataset, "features").shape[1:], np.float32)
        out[order] = self.store.data(self.dataset, "features")[rows[order]]
        return out


def open_context(store, dataset: str | None = None, max_flops=None, max_params=None,
                 max_latency=None) -> SearchContext:
    """Prepare ``store`` (a ``cache.store.Store``) for a search on ``dataset``."""
    if dataset is None:
        dataset = store.datasets[0]
    pool = SearchPool.from_store(store, dataset, max_flops, max_params, max_latency)
    test = np.asarray(store.data(dataset, "test_acc"), np.float64)
    val = np.asarray(store.data(dataset, "val_acc"), np.float64)
    if np.isfinite(test).any():
        target, target_name = test, "test_acc"
    elif np.isfinite(val).any():
        target, target_name = val, "val_acc"
        log.warning("%s has no test accuracy for %s: reporting validation accuracy", store.path, dataset)
    else:
        target, target_name = test, "none"
    if np.isfinite(val).any():
        select, select_name = val, "val_acc"
    else:
        select, select_name = target, target_name
        if target_name != "none":
            log.warning("%s has no validation accuracy for %s: strict picks use %s", store.path, dataset,
                        target_name)
    labelled = np.isfinite(target)
    rank = np.zeros(len(target), np.int64)  # 1 + the number of strictly better cells (ties share)
    desc = np.sort(-target[labelled])
    rank[labelled] = np.searchsorted(desc, -target[labelled], side="left") + 1
    return SearchContext(store, dataset, pool, target, target_name, select, select_name, rank, int(labelled.sum()))


def arch_record(ctx: SearchContext, row: int, tier=None, score=None, known=None) -> dict:
    """JSON-ready description of one architecture of the store."""
    row = int(row)
    rec = {"key": str(ctx.pool.keys[row]), "row": row}
    rec.update(ctx.pool.space.describe(ctx.pool, row))
    if tier is not None:
        rec["tier"], rec["score"] = int(tier), float(score)
    rec["flops"], rec["params"] = int(ctx.pool.flops[row]), int(ctx.pool.params[row])
    if ctx.target_name != "none":
        rec[ctx.target_name] = _num(ctx.target[row])
        if ctx.select_name != ctx.target_name:
            rec[ctx.select_name] = _num(ctx.select[row])
        if ctx.rank[row] > 0:
            rec["rank"] = int(ctx.rank[row])
            rec["percentile"] = round(100.0 * float(ctx.rank[row]) / ctx.n_ranked, 5)
    if known is not None:
        rec["in_training_set"] = bool(row in known)
    return rec


def _num(x):
    return None if not np.isfinite(x) else round(float(x), 4)


def running_pick(select: np.ndarray, rows) -> np.ndarray:
    """After each query of ``rows`` (in order), the row with the best ``select`` so far."""
    rows = np.asarray(rows, np.int64)
    v = np.where(np.isfinite(select[rows]), select[rows], -np.inf)
    prev = np.concatenate([[-np.inf], np.maximum.accumulate(v)[:-1]])
    first = np.zeros(len(v), bool)
    first[0] = True
    idx = np.maximum.accumulate(np.where((v > prev) | first, np.arange(len(v)), 0))
    return rows[idx]


def search_nar(ranker, ctx: SearchContext, cfg: SamplerConfig, iterations: int, size: int,
               n_tier: int, bins: int, seed: int = 0, top_k: int | None = None) -> list[SearchIteration]:
    """Run ``iterations`` rounds of sample -> rank; one :class:`SearchIteration` per round with
    rows, tiers, scores, the top-k (predicted top tier, by score) and the sampler's info."""
    sampler = Sampler(ctx.pool, cfg, n_tier, bins, seed)
    top_k = top_k or cfg.top_k
    out = []
    t0 = time.perf_counter()
    bar = progress_bar(iterations, "search", "iteration", enabled=None)
    try:
        for it in range(iterations):
            rows, info = sampler.sample(size)
            tiers, scores = ranker.predict(ctx.features(rows))
            tiers, scores = np.asarray(tiers).astype(np.int64), np.asarray(scores, np.float64)
            best_tier = cfg.top_tier if (tiers == cfg.top_tier).any() else int(tiers.min())
            cand = np.flatnonzero(tiers == best_tier)
            cand = cand[np.argsort(-scores[cand], kind="stable")][:top_k]
            sampler.update(rows, tiers)
            out.append(SearchIteration(rows, tiers, scores, cand, info, int((tiers == cfg.top_tier).sum())))
            log.log(DETAIL, "iteration %d/%d: %d candidates, %d in tier %d, guided %s", it + 1, iterations,
                    len(rows), out[-1].n_top_tier, cfg.top_tier, info["guided"])
            bar.update(1)
    finally:
        bar.close()
    log.info("search: %d iterations x %d candidates in %.1f s, %d predicted tier %d", iterations, size,
             time.perf_counter() - t0, sum(it.n_top_tier for it in out), cfg.top_tier)
    return out


def paper_protocol(ctx: SearchContext, iters: list[SearchIteration], n_train: int) -> dict:
    best_row, best_it, best_acc = None, None, -np.inf
    for i, it in enumerate(iters):
        for j in it.top:
            r = it.rows[j]
            if np.isfinite(ctx.target[r]) and ctx.target[r] > best_acc:
                best_row, best_it, best_acc = r, i + 1, ctx.target[r]
    res = {"description": PAPER_TEXT, "queries": int(n_train)}
    if best_row is not None:
        res["best"] = arch_record(ctx, best_row)
        res["found_at_iteration"] = best_it
    return res


def lookup_order(iters: list[SearchIteration], strict_iterations: int = 0) -> np.ndarray:
    """Distinct candidate rows of the last ``strict_iterations`` iterations (0 = all), best
    prediction first: lower predicted tier first, then higher score (each row's best)."""
    window = iters[-strict_iterations:] if strict_iterations > 0 else iters
    if not window:
        return np.zeros(0, np.int64)
    rows = np.concatenate([it.rows for it in window]).astype(np.int64)
    tiers = np.concatenate([it.tiers for it in window]).astype(np.int64)
    scores = np.concatenate([it.scores for it in window]).astype(np.float64)
    order = np.lexsort((-scores, tiers))  # primary key tier, then score descending
    rows = rows[order]
    _, first = np.unique(rows, return_index=True)
    return rows[np.sort(first)]


def margin_pick(select: np.ndarray, score: np.ndarray | None, margin: float) -> int:
    """Index of the pick among queried rows: the rows whose ``select`` accuracy is within
    ``margin`` of the best are tied (the difference is within label noise) and the highest
    predicted ``score`` among them wins; ``margin`` 0 (or no scores) = the best ``select``."""
    v = np.where(np.isfinite(select), select, -np.inf)
    if margin <= 0 or score is None:
        return int(np.argmax(v))
    tied = np.flatnonzero(v >= v.max() - margin)
    return int(tied[np.argmax(score[tied])])


def robust_pick(select: np.ndarray, score: np.ndarray | None, trained: np.ndarray, margin: float) -> int:
    """Index of the strict pick (rule ``search_margin``): a ranker scores its own training cells
    optimistically, so they compete by ``select`` (validation accuracy) alone, and the score
    breaks near-ties (within ``margin``) only among cells the ranker never trained on. A
    training cell wins only with a strictly higher ``select`` than every other cell."""
    v = np.where(np.isfinite(select), select, -np.inf)
    fresh = np.flatnonzero(~trained)
    if not len(fresh):
        return int(np.argmax(v))
    old = np.flatnonzero(trained)
    if len(old) and v[old].max() > v[fresh].max():
        return int(old[np.argmax(v[old])])
    return int(fresh[margin_pick(v[fresh], None if score is None else score[fresh], margin)])


def search_first_pick(select: np.ndarray, score: np.ndarray | None, trained: np.ndarray, margin: float) -> int:
    """Index of the strict pick (rule ``search_first``): the cells within ``margin`` of the best
    ``select`` are tied; when searched cells (never trained on, so their scores are unbiased)
    are among them, the best-scored of those wins; a tie of training cells only is broken by
    the score as in :func:`margin_pick`."""
    v = np.where(np.isfinite(select), select, -np.inf)
    if margin <= 0 or score is None:
        return int(np.argmax(v))
    tied = np.flatnonzero(v >= v.max() - margin)
    fresh = tied[~trained[tied]]
    pool = fresh if len(fresh) else tied
    return int(pool[np.argmax(score[pool])])


def heldout_pick(select: np.ndarray, score: np.ndarray | None, trained: np.ndarray, margin: float, rows,
                 heldout_scores) -> int:
    """Index of the strict pick (rule ``heldout_margin``): the cells within ``margin`` of the best
    ``select`` are tied; when a training cell is among them, every tied cell is scored by a ranker
    refitted WITHOUT the tied training cells (``heldout_scores(excluded_rows, tied_rows)``: out-of-
    fold scores, so no cell is scored by a model that saw its label) and the best score wins;
    otherwise the search ranker's score decides, as in :func:`margin_pick`."""
    v = np.where(np.isfinite(select), select, -np.inf)
    if margin <= 0 or score is None:
        return int(np.argmax(v))
    tied = np.flatnonzero(v >= v.max() - margin)
    out = [int(rows[i]) for i in tied if trained[i]]
    if not out or len(tied) == 1:
        return int(tied[np.argmax(score[tied])])
    s = np.asarray(heldout_scores(tuple(sorted(out)), tuple(int(rows[i]) for i in tied)), np.float64)
    return int(tied[np.argmax(s)])


def strict_protocol(ctx: SearchContext, iters: list[SearchIteration], oracle: QueryOracle,
                    strict_iterations: int = 0, lookups: int = 50, margin: float = 0.0,
                    known_scores=None, rule: str = "search_first", heldout_scores=None) -> StrictResult:
    """Look up (through ``oracle``, within its budget) the ``lookups`` best-predicted distinct
    candidates not queried yet, then pick among everything queried: rule ``search_first``
    (:func:`search_first_pick`, the default), ``heldout_margin`` (:func:`heldout_pick`),
    ``search_margin`` (:func:`robust_pick`), ``val`` (best validation accuracy) or ``margin_score``
    (version 1: :func:`margin_pick` over every queried cell, training cells included) or
    ``heldout_margin`` (:func:`heldout_pick`; needs ``heldout_scores``). ``rule_picks`` holds
    the final pick of every rule that can be computed, for comparison. ``oracle`` already holds the ranker's training and validation sets (``pay_known``);
    ``known_scores``: the ranker's scores of ``oracle.known_rows`` (for ``margin`` > 0)."""
    if rule not in PICK_RULES:
        raise NarError(f"unknown strict pick rule {rule!r}; choose one of {', '.join(PICK_RULES)}")
    known_rows = oracle.known_rows
    known = [int(r) for r in known_rows if ctx.pool.allowed[r]]  # hard limits apply to picks too
    room = lookups if oracle.remaining is None else min(lookups, oracle.remaining)
    looked: list[int] = []
    for r in lookup_order(iters, strict_iterations):
        if len(looked) >= room:
            break
        if not oracle.is_queried(int(r)):
            looked.append(int(r))
    oracle.query(looked)
    seq = known + looked
    res = StrictResult(STRICT_TEXT, ctx.select_name, oracle.n_queries, pick_rule=rule, val_margin=float(margin),
                       n_lookups=len(looked), n_known_labelled_in_store=len(known))
    if not seq:
        return res
    scores = None
    if margin > 0:
        if known_scores is None:
            raise ValueError("strict_protocol: margin > 0 needs known_scores")
        score_of = {int(r): float(x) for r, x in zip(known_rows, known_scores)}
        for it in iters:
            score_of.update(zip(np.asarray(it.rows).tolist(), np.asarray(it.scores, float).tolist()))
        scores = np.array([score_of[r] for r in seq])
    sel = oracle.value(np.asarray(seq))
    trained = np.arange(len(seq)) < len(known)

    if rule == "heldout_margin" and heldout_scores is None and margin > 0:
        raise ValueError("strict_protocol: rule heldout_margin needs heldout_scores")

    def pick(n, rule):
        s = None if scores is None else scores[:n]
        if rule == "search_margin":
            return seq[robust_pick(sel[:n], s, trained[:n], margin)]
        if rule == "heldout_margin":
            return seq[heldout_pick(sel[:n], s, trained[:n], margin, seq, heldout_scores)]
        if rule == "search_first":
            return seq[search_first_pick(sel[:n], s, trained[:n], margin)]
        return seq[margin_pick(sel[:n], s, margin if rule == "margin_score" else 0.0)]

    ends = range(max(1, len(known)), len(seq) + 1)  # after the known rows, then after each look-up
    picks = [pick(n, rule) for n in ends]
    final = int(picks[-1])
    res.pick = arch_record(ctx, final)
    res.picked_from = "training set" if final in set(known) else "search"
    if rule != "margin_score" and margin > 0:
        res.margin_score_pick = arch_record(ctx, pick(len(seq), "margin_score"))
    res.rule_picks = {r: arch_record(ctx, final if r == rule else pick(len(seq), r)) for r in PICK_RULES
                      if r == rule or r != "heldout_margin" or heldout_scores is not None}
    if looked:
        k = len(known)
        res.search_only_pick = arch_record(ctx, looked[margin_pick(
            sel[k:], None if scores is None else scores[k:], margin)])
    start = oracle.n_known_queries - len(known)
    res.curve = [[int(start + n), _num(ctx.target[p])] for n, p in zip(ends, picks)]
    return res


def final_top_k(ctx: SearchContext, iters: list[dict], top_tier: int, k: int, known) -> list[dict]:
    """The k best-scored distinct candidates predicted ``top_tier`` over all iterations."""
    best: dict[int, tuple[float, int]] = {}
    for it in iters:
        for r, t, s in zip(it.rows, it.tiers, it.scores):
            if t == top_tier and (r not in best or s > best[r][0]):
                best[int(r)] = (float(s), int(t))
    order = sorted(best.items(), key=lambda kv: -kv[1][0])[:k]
    return [arch_record(ctx, r, t, s, known) for r, (s, t) in order]


def iteration_records(ctx: SearchContext, iters: list[dict], known) -> list[dict]:
    out, best = [], -np.inf
    for i, it in enumerate(iters):
        top = [arch_record(ctx, it.rows[j], it.tiers[j], it.scores[j], known) for j in it.top]
        accs = [ctx.target[it.rows[j]] for j in it.top]
        accs = [a for a in accs if np.isfinite(a)]
        if accs:
            best = max(best, max(accs))
        out.append({"iteration": i + 1, "n_candidates": int(len(it.rows)), "n_top_tier": it.n_top_tier,
                    "guided": it.info["guided"], "kl": it.info.get("kl"), "fallbacks": it.info["fallbacks"],
                    "top_k": top,
                    "best_topk_target_so_far": _num(best) if np.isfinite(best) else None})
    return out


def pool_note(ctx: SearchContext) -> dict:
    whole = ctx.pool.is_whole_space
    return {"n_store": int(ctx.pool.n), "n_allowed": int(ctx.pool.allowed.sum()), "whole_space": whole,
            "note": ("candidates are drawn from the whole space" if whole else
                     f"the store holds only {ctx.pool.n} architectures: candidates come from this pool, "
                     "ranks and percentiles are within the store")}



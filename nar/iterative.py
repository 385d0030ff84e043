"""Query-efficient search: fit on a few queried architectures, query the model's best
predictions among the unqueried ones, refit (or fine-tune), repeat until the budget is spent.
Every look-up goes through the search's :class:`~nar.search_oracle.QueryOracle`; the final
pick is the best VALIDATION accuracy among the queried cells (strict protocol).

The surrogate is any predictor of :mod:`nar.predictor` (``fit(store, rows, labels)``,
``predict(store, rows)``, higher = better), or a factory of them: :func:`nar_surrogate` is an
ensemble of NAR rankers (the default config's gated graph ranker) refitted on all queried
cells; :func:`baseline_surrogate` makes a ``nar.baselines`` model per round (e.g. LightGBM on
one-hot cells). The acquisition is ``z(score) + kappa * z(disagreement)`` over the candidates
(``kappa`` 0 = the best predicted; the disagreement of an ensemble's members).
"""
from __future__ import annotations

import logging
import time

import numpy as np

from nar.console import DETAIL, progress_bar
from nar.search import SearchContext
from nar.search_baselines import check_budget, new_oracle
from nar.search_oracle import QueryOracle
from nar.search_records import QueryRound

log = logging.getLogger(__name__)


def baseline_surrogate(name: str, bench: str, seed: int = 0, **kw):
    """A factory of ``nar.baselines`` predictors (lightgbm, xgboost, mlp) for
    :func:`iterative_search`: each round fits a fresh one, on rank shares (``target`` rank: robust
    to the failed cells' accuracy tail); LightGBM on fewer than 200 rows lets leaves stay small."""
    from nar.predictor import create_predictor

    def make(n_rows: int):
        opts = dict(kw)
        opts.setdefault("target", "rank")
        if name == "lightgbm" and n_rows < 200:
            opts.setdefault("min_child_samples", 2)
        return create_predictor(name, bench=bench, seed=seed, **opts)
    return make


def nar_surrogate(ctx: SearchContext, cfg, finetune_epochs: int = 0):
    """An unfitted NAR :class:`~nar.nar_predictor.Ranker` for :func:`iterative_search`: an
    ensemble of ``cfg.n_ensemble`` rankers (seeds cfg.seed, cfg.seed+1, ...) refitted on ALL
    queried cells each round (no validation split: the config's weight averaging,
    ``swa_epochs``, replaces the choice of a best epoch; no pre-trained encoder; never distilled:
    its members' disagreement is the acquisition's uncertainty). With ``finetune_epochs`` > 0,
    later rounds start from the previous members and run that many epochs."""
    import dataclasses

    from nar.nar_predictor import Ranker
    cfg = dataclasses.replace(cfg, distill=dataclasses.replace(cfg.distill, cells=0))
    return Ranker(cfg, dataset=ctx.dataset, finetune_epochs=finetune_epochs, use_pretrained=False)


def fit_surrogate(surrogate, store, rows, labels):
    """The surrogate fitted on ``rows``: a predictor is refitted (in place), a factory
    (``factory(n_rows) -> predictor``) gives a fresh one."""
    model = surrogate if hasattr(surrogate, "fit") else surrogate(len(rows))
    return model.fit(store, np.asarray(rows), np.asarray(labels, np.float64))


def surrogate_scores(model, store, rows):
    """What :func:`acquire` ranks candidates ``rows`` by: an ensemble's mean standardised member
    score and the members' spread (``(score, disagreement)``; predictors with
    ``member_scores``), else the predictor's scores."""
    rows = np.asarray(rows)
    if hasattr(model, "member_scores"):
        z = np.stack([_z(s) for s in model.member_scores(store, rows)])
        return z.mean(0), (z.std(0) if len(z) > 1 else np.zeros(len(rows)))
    return np.asarray(model.predict(store, rows), np.float64)


def _z(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, np.float64)
    sd = a.std()
    return (a - a.mean()) / sd if sd > 0 else a - a.mean()


def acquire(pred, kappa: float = 0.0) -> np.ndarray:
    """Acquisition value of candidates from ``predict``'s output: the score alone, or
    ``z(score) + kappa * z(disagreement)`` for an ensemble."""
    if isinstance(pred, tuple):
        score, spread = pred
        return _z(score) + kappa * _z(spread) if kappa else np.asarray(score, np.float64)
    return np.asarray(pred, np.float64)


def iterative_search(ctx: SearchContext, surrogate, budget: int, init_size: int = 32, query_step: int = 16,
                     seed: int = 0, max_candidates: int = 20000, kappa: float = 0.0, growth: float = 0.0,
                     oracle: QueryOracle | None = None, skip_equivalent: bool = True
                     ) -> tuple[np.ndarray, list[QueryRound]]:
    """Rows in query order and one :class:`QueryRound` per fit.

    ``init_size`` random allowed rows are queried first; each round scores the unqueried
    allowed rows (a random ``max_candidates`` of them when there are more) and queries the
    ``max(query_step, growth * queries so far)`` best by :func:`acquire` (larger steps later
    keep the number of fits small on large budgets). Labels are the oracle's selection accuracy (failed
    cells, NaN, count as the worst seen). With ``skip_equivalent`` (the space's
    ``equivalence_codes``: the same network), the initial sample and every round query at most
    one cell per class and none of a class already queried, as long as unqueried classes remain."""
    budget = check_budget(ctx, budget, minimum=init_size, what=f"the initial sample (init_size {init_size})")
    oracle = oracle or new_oracle(ctx, budget)
    rng = np.random.default_rng(seed)
    allowed = np.flatnonzero(ctx.pool.allowed)
    cls = None
    if skip_equivalent:  # dense class ids; None where every row is its own class (e.g. NB101)
        cls = np.unique(ctx.pool.space.equivalence_codes(ctx.pool), return_inverse=True)[1].ravel()
        cls = cls if cls.max() + 1 < len(cls) else None
    if cls is not None:
        oracle.query(_new_classes_first(rng.permutation(allowed), cls, oracle)[:init_size])
    else:
        oracle.query(rng.choice(allowed, size=init_size, replace=False))
    model, rounds = None, []
    bar = progress_bar(budget, "iterative search", "query", enabled=None)  # shown by `nar-cli sample`
    bar.update(oracle.n_queries)
    while oracle.n_queries < budget:
        rows = oracle.rows
        sel = oracle.value(rows)
        sel = np.where(np.isfinite(sel), sel, np.nanmin(sel) if np.isfinite(sel).any() else 0.0)
        t0 = time.perf_counter()
        model = fit_surrogate(surrogate, ctx.store, rows, sel)
        cand = allowed[~oracle.is_queried(allowed)]
        if len(cand) > max_candidates:
            cand = rng.choice(cand, size=max_candidates, replace=False)
        value = acquire(surrogate_scores(model, ctx.store, cand), kappa)
        step = max(query_step, int(growth * oracle.n_queries))
        order = cand[np.argsort(-value, kind="stable")]
        if cls is not None:
            order = _new_classes_first(order, cls, oracle)
        take = order[:min(step, budget - oracle.n_queries)]
        got = oracle.query(take)
        bar.update(len(take))
        best = np.nanmax(np.concatenate([sel, got]))
        rounds.append(QueryRound(oracle.n_queries, float(best), len(take), round(time.perf_counter() - t0, 3)))
        log.log(DETAIL, "iterative round %d: %d queries, best %s %.3f", len(rounds), oracle.n_queries,
                ctx.select_name, best)
    bar.close()
    log.info("iterative search: %d rounds, %d queries, best %s %s", len(rounds), oracle.n_queries,
             ctx.select_name, f"{rounds[-1].best_select:.3f}" if rounds else "n/a (no round)")
    return oracle.rows, rounds


def _new_classes_first(order: np.ndarray, cls: np.ndarray, oracle: QueryOracle) -> np.ndarray:
    """``order`` (unqueried rows, best first) rearranged: first, in order, the first row of each
    class that no queried row belongs to; then the others in order (queried only once every
    class has been queried)."""
    seen = np.zeros(int(cls.max()) + 1, bool)
    seen[cls[oracle.is_queried(np.arange(len(cls)))]] = True  # the search's and any known rows
    c = cls[order]
    first = np.zeros(len(order), bool)
    first[np.unique(c, return_index=True)[1]] = True
    new = first & ~seen[c]
    return np.concatenate([order[new], order[~new]])

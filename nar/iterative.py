"""Query-efficient search: fit on a few queried architectures, query the model's best
predictions among the unqueried ones, refit (or fine-tune), repeat until the budget is spent.
Every look-up goes through the search's :class:`~nar.search_oracle.QueryOracle`; the final
pick is the best VALIDATION accuracy among the queried cells (strict protocol).

The model is pluggable (a "fitter" with ``fit(rows, labels, previous) -> model`` and
``predict(model, rows) -> scores`` or ``(scores, disagreement)``, higher = better):
:class:`NarFitter` trains an ensemble of NAR rankers (the default config's gated graph
ranker) on all queried cells; :class:`BaselineFitter` wraps a ``nar.baselines`` model
(e.g. LightGBM on one-hot cells). The acquisition is ``z(score) + kappa * z(disagreement)``
over the candidates (``kappa`` 0 = the best predicted).
"""
from __future__ import annotations

import copy
import dataclasses
import logging
import time

import numpy as np

from nar.search import SearchContext
from nar.search_baselines import check_budget, new_oracle
from nar.search_oracle import QueryOracle
from nar.search_records import QueryRound

log = logging.getLogger(__name__)


class BaselineFitter:
    """A ``nar.baselines`` predictor (lightgbm, xgboost, mlp) refitted from scratch each round."""

    def __init__(self, ctx: SearchContext, name: str = "lightgbm", seed: int = 0, **kw):
        self.ctx, self.name, self.seed, self.kw = ctx, name, seed, kw

    def fit(self, rows, labels, previous=None):
        from nar.baselines import create_baseline

        kw = dict(self.kw)
        kw.setdefault("target", "rank")  # rank shares: robust to the failed cells' accuracy tail
        if self.name == "lightgbm" and len(rows) < 200:  # tiny samples: let leaves stay small
            kw.setdefault("min_child_samples", 2)
        model = create_baseline(self.name, self.ctx.pool.bench, self.seed, **kw)
        model.fit(self.ctx.store, np.asarray(rows), np.asarray(labels, np.float64))
        return model

    def predict(self, model, rows) -> np.ndarray:
        return np.asarray(model.predict(self.ctx.store, np.asarray(rows)), np.float64)


class NarFitter:
    """An ensemble of ``cfg.n_ensemble`` NAR rankers (seeds cfg.seed, cfg.seed+1, ...) trained
    by ``nar.train.train_ranker`` on ALL queried cells (no validation split: the config's
    weight averaging, ``swa_epochs``, replaces the choice of a best epoch). With
    ``finetune_epochs`` > 0, later rounds start from the previous members and run that many
    epochs. ``predict`` returns the members' mean standardised score and their spread."""

    def __init__(self, ctx: SearchContext, cfg, finetune_epochs: int = 0):
        self.ctx, self.cfg, self.finetune_epochs = ctx, cfg, finetune_epochs
        self._feats = None

    def features(self, rows) -> np.ndarray:
        if self._feats is None:  # the whole pool once: rounds index it (15,625 NB201 cells: 8 MB)
            self._feats = self.ctx.features(np.arange(self.ctx.pool.n))
        return self._feats[np.asarray(rows, np.int64)]

    def fit(self, rows, labels, previous=None):
        from nar.train import train_ranker

        rows, labels = np.asarray(rows), np.asarray(labels, np.float64)
        x, empty = self.features(rows), self.features(rows[:0])
        members = []
        for k in range(max(1, self.cfg.n_ensemble)):
            cfg = dataclasses.replace(copy.deepcopy(self.cfg), seed=self.cfg.seed + k, train_size=len(rows),
                                      val_size=0)
            init = None
            if previous is not None and self.finetune_epochs > 0:
                init = previous[k]
                cfg.ranker_epochs, cfg.swa_epochs = self.finetune_epochs, min(cfg.swa_epochs, self.finetune_epochs)
                cfg.lr_scheduler = dataclasses.replace(cfg.lr_scheduler, n_warmup_steps=1)
            model, _ = train_ranker(cfg, x, labels, empty, labels[:0], init=init)
            members.append(model)
        return members

    def predict(self, members, rows) -> tuple[np.ndarray, np.ndarray]:
        from nar.train import predict_batched

        x = self.features(rows)
        z = np.stack([_z(predict_batched([m], x)[1]) for m in members])
        return z.mean(0), (z.std(0) if len(members) > 1 else np.zeros(len(rows)))


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


def iterative_search(ctx: SearchContext, fitter, budget: int, init_size: int = 32, query_step: int = 16,
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
    while oracle.n_queries < budget:
        rows = oracle.rows
        sel = oracle.value(rows)
        sel = np.where(np.isfinite(sel), sel, np.nanmin(sel) if np.isfinite(sel).any() else 0.0)
        t0 = time.perf_counter()
        model = fitter.fit(rows, sel, model)
        cand = allowed[~oracle.is_queried(allowed)]
        if len(cand) > max_candidates:
            cand = rng.choice(cand, size=max_candidates, replace=False)
        value = acquire(fitter.predict(model, cand), kappa)
        step = max(query_step, int(growth * oracle.n_queries))
        order = cand[np.argsort(-value, kind="stable")]
        if cls is not None:
            order = _new_classes_first(order, cls, oracle)
        take = order[:min(step, budget - oracle.n_queries)]
        got = oracle.query(take)
        best = np.nanmax(np.concatenate([sel, got]))
        rounds.append(QueryRound(oracle.n_queries, float(best), len(take), round(time.perf_counter() - t0, 3)))
        log.info("iterative round %d: %d queries, best %s %.3f", len(rounds), oracle.n_queries, ctx.select_name, best)
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

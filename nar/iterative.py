"""Query-efficient mode: fit on a few queried architectures, query the model's top predictions
among the unqueried ones, refit (or fine-tune), repeat until the query budget is spent. The
final pick is the best VALIDATION accuracy seen (strict protocol).

The model is pluggable (a "fitter" with ``fit(rows, labels, previous) -> model`` and
``predict(model, rows) -> scores``, higher = better): :class:`NarFitter` trains the NAR ranker
through ``nar.train.train_ranker``; :class:`BaselineFitter` wraps a ``nar.baselines`` model
(e.g. LightGBM on one-hot cells), cheap enough for many seeds on a CPU.
"""
from __future__ import annotations

import copy
import logging

import numpy as np

from nar.search import SearchContext
from nar.search_baselines import check_budget

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
    """The NAR ranker, trained by ``nar.train.train_ranker`` on the queried architectures
    (a fifth held out for validation); with ``finetune_epochs`` > 0, later rounds start from
    the previous model and run that many epochs."""

    def __init__(self, ctx: SearchContext, cfg, finetune_epochs: int = 0):
        self.ctx, self.cfg, self.finetune_epochs = ctx, cfg, finetune_epochs

    def fit(self, rows, labels, previous=None):
        from nar.train import train_ranker

        rows, labels = np.asarray(rows), np.asarray(labels, np.float64)
        cfg = copy.deepcopy(self.cfg)
        n_val = max(2, len(rows) // 5)
        order = np.random.default_rng(len(rows)).permutation(len(rows))
        tr, va = order[n_val:], order[:n_val]
        init = None
        if previous is not None and self.finetune_epochs > 0:
            init, cfg.ranker_epochs = previous, self.finetune_epochs
        cfg.train_size, cfg.val_size = len(tr), len(va)
        model, _ = train_ranker(cfg, self.ctx.features(rows[tr]), labels[tr], self.ctx.features(rows[va]),
                                labels[va], init=init)
        return model

    def predict(self, model, rows) -> np.ndarray:
        from nar.train import predict_batched

        _, score = predict_batched([model], self.ctx.features(rows))
        return np.asarray(score, np.float64)


def iterative_search(ctx: SearchContext, fitter, budget: int, init_size: int = 32, query_step: int = 16,
                     seed: int = 0, max_candidates: int = 20000) -> tuple[np.ndarray, list[dict]]:
    """Rows in query order and one record per round (queries so far, best validation so far).

    Each round scores the unqueried allowed rows (a random ``max_candidates`` of them when
    there are more) and queries the ``query_step`` best predictions."""
    budget = check_budget(ctx, budget, minimum=init_size, what=f"the initial sample (init_size {init_size})")
    rng = np.random.default_rng(seed)
    allowed = np.flatnonzero(ctx.pool.allowed)
    queried = np.zeros(ctx.pool.n, bool)
    rows = list(rng.choice(allowed, size=init_size, replace=False))
    queried[rows] = True
    sel = np.where(np.isfinite(ctx.select), ctx.select, np.nanmin(ctx.select))
    model, rounds = None, []
    while len(rows) < budget:
        model = fitter.fit(np.array(rows), sel[rows], model)
        cand = allowed[~queried[allowed]]
        if len(cand) > max_candidates:
            cand = rng.choice(cand, size=max_candidates, replace=False)
        scores = fitter.predict(model, cand)
        take = cand[np.argsort(-scores, kind="stable")[:min(query_step, budget - len(rows))]]
        rows.extend(int(r) for r in take)
        queried[take] = True
        rounds.append({"queries": len(rows), "best_select": float(np.max(sel[rows]))})
        log.info("iterative round %d: %d queries, best %s %.3f", len(rounds), len(rows), ctx.select_name,
                 rounds[-1]["best_select"])
    return np.array(rows, np.int64), rounds

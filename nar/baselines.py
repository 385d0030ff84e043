"""Baseline accuracy predictors on one-hot cells: LightGBM, XGBoost and a small MLP.

A tiny registry: ``create_baseline(name, bench, seed=0, **kw)`` builds one (or
:func:`nar.predictor.create_predictor` from a config); every baseline follows the predictor
protocol of :mod:`nar.predictor`: ``.fit(store, rows, labels) -> self``, ``.predict(store, rows)
-> scores`` (higher = better), ``.predict_tiers``, where ``store`` is a
:class:`cache.store.Store` and ``rows`` are its row indices, and ``.save(path)`` /
:func:`load_baseline` for checkpoints (joblib; load only files you trust).
"""
from __future__ import annotations

import logging
from pathlib import Path

import joblib
import numpy as np

from nar.predictor import Predictor, check_fit_input, open_data
from nar.rankstats import kendalltau, rankdata
from pipeline.atomic import atomic_path
from pipeline.errors import NarError
from pipeline.spaces import bench_of, space_of
# the NB101 one-hot helpers moved to the space module (re-exported for old imports)
from pipeline.spaces.nb101 import INTERIOR_OP_CODES_101, padded_cells_101 as _padded_cells_101  # noqa: F401

log = logging.getLogger(__name__)

_REGISTRY: dict[str, type] = {}
CHECKPOINT_VERSION = 1


def register_baseline(name: str):
    """Class decorator: make the class available to :func:`create_baseline` as ``name``."""
    def deco(cls):
        cls.name = name
        _REGISTRY[name] = cls
        return cls
    return deco


def list_baselines() -> list[str]:
    return sorted(_REGISTRY)


def baseline_class(name: str) -> type:
    if name not in _REGISTRY:
        raise NarError(f"unknown baseline {name!r}; choose one of {', '.join(list_baselines())}")
    return _REGISTRY[name]


def create_baseline(name: str, bench: str, seed: int = 0, **kw):
    """A new, unfitted baseline ``name`` for the space ``bench`` (a store id such as "101",
    or any registered space name); ``kw`` go to the model."""
    return baseline_class(name)(bench_of(bench), int(seed), **kw)


def onehot_features(store, idx) -> np.ndarray:
    """Structure-only features of rows ``idx`` of ``store`` (float32, (len(idx), F)), as the
    store's space defines them (``SearchSpace.flat_features``).

    NB101 (F = 36): the 21 upper-triangular adjacency entries of the cell padded so that the
    output is vertex 6, then a one-hot (conv1x1, conv3x3, maxpool) for interior vertices 1..5
    (all zero for padding). NB201 (F = 30): one-hot of the op (none, skip, conv1x1, conv3x3,
    avg pool) on each of the 6 edges in architecture-string order.
    """
    idx = np.asarray(idx, dtype=np.int64)
    if idx.ndim != 1:
        raise NarError(f"idx must be a 1-D array of row indices, got shape {idx.shape}")
    if len(idx) and (idx.min() < 0 or idx.max() >= store.n):
        raise NarError(f"row index {idx.max() if idx.max() >= store.n else idx.min()} is outside "
                       f"store {store.path} ({store.n} rows)")
    return space_of(store).flat_features(store, idx)


class Baseline(Predictor):
    """Common fit/predict/save logic of the baselines (the :mod:`nar.predictor` protocol);
    subclasses implement ``_fit``, ``_predict``, ``_get_state`` and ``_set_state`` on feature
    matrices.

    ``target="raw"`` regresses the accuracy itself; ``target="rank"`` regresses its rank
    share within the training sample (ties averaged), which ignores how far the failed cells
    (10% accuracy) lie below the rest and ranks clearly better. ``n_tier``: tiers of
    :meth:`predict_tiers` (the score cut at the quantiles of the training rows' scores)."""

    name = "base"

    TARGETS = ("raw", "rank")
    # defaults for objects unpickled from run checkpoints written before these attributes existed
    n_tier = 5
    score_thresholds = None
    meta = None

    def __init__(self, bench: str, seed: int = 0, target: str = "raw", n_tier: int = 5, **kw):
        if target not in self.TARGETS:
            raise NarError(f"unknown target {target!r} for baseline {self.name}; use one of {self.TARGETS}")
        self.bench = bench
        self.seed = seed
        self.target = target
        self.n_tier = int(n_tier)
        self.kw = dict(kw)
        self.fitted = False
        self.score_thresholds = None
        self.meta = None

    def _features(self, store, idx) -> np.ndarray:
        if store.bench != self.bench:
            raise NarError(f"baseline {self.name} was made for NB{self.bench} but store {store.path} "
                           f"is NB{store.bench}; create it with bench={store.bench!r}")
        return onehot_features(store, idx)

    def fit(self, store, rows, labels, *, val_rows=None, val_labels=None, monitor=None, progress=False):
        """Fit on rows ``rows`` of ``store`` with accuracies ``labels`` (no NaN); returns self.
        With ``val_rows`` the validation Kendall tau and tier accuracy are logged and given to
        ``monitor`` (one row, epoch 1)."""
        from nar.metrics import tier_thresholds

        store, rows, y, vr, vy = check_fit_input(store, rows, labels, val_rows, val_labels)
        x = self._features(store, rows)
        if len(x) < 10:
            raise NarError(f"baseline {self.name} needs at least 10 training rows, got {len(x)}")
        fit_y = rankdata(y) / len(y) if self.target == "rank" else y  # rank share: robust to the failed-cell tail
        self._fit(x, fit_y)
        self.fitted = True
        self.score_thresholds = tier_thresholds(self.predict(store, rows), self.n_tier)
        if val_rows is not None:
            self._validate(store, y, vr, vy, monitor)
        return self

    def _validate(self, store, y, vr, vy, monitor) -> None:
        from nar.metrics import assign_tiers, tier_thresholds

        tau = val_acc = float("nan")
        if len(vr) > 1:
            score_va = self.predict(store, vr)
            tau = kendalltau(score_va, vy)
            truth = assign_tiers(vy, tier_thresholds(y, self.n_tier))
            val_acc = float((assign_tiers(score_va, self.score_thresholds) == truth).mean())
        if monitor is not None:
            monitor.on_epoch({"epoch": 1, "val_tier_acc": val_acc, "val_kendalltau": tau, "best": True})
        log.info("%s: val tier acc %.3f val tau %.4f", self.name, val_acc, tau)

    def _need_fitted(self):
        if not self.fitted:
            raise NarError(f"baseline {self.name} is not fitted; call fit() or load a checkpoint")

    def predict(self, store, rows=None) -> np.ndarray:
        """Scores (float64, higher = better) for rows ``rows`` (None = all) of ``store``."""
        self._need_fitted()
        store = open_data(store)
        idx = np.arange(store.n) if rows is None else rows
        return np.asarray(self._predict(self._features(store, idx)), dtype=np.float64)

    def predict_tiers(self, store, rows=None, batch_size: int = 1024, tta_orders: int | None = None):
        """(tier 1..n_tier, score): the score cut at the quantiles of the training scores (one
        pass over the one-hot cells: ``batch_size`` and ``tta_orders`` do not apply)."""
        from nar.metrics import assign_tiers

        score = self.predict(store, rows)
        return assign_tiers(score, self.score_thresholds), score

    def save(self, path) -> Path:
        """Write a joblib checkpoint atomically; returns the path."""
        self._need_fitted()
        path = Path(path)
        blob = {"version": CHECKPOINT_VERSION, "name": self.name, "bench": self.bench,
                "seed": self.seed, "target": self.target, "kw": self.kw, "state": self._get_state(),
                "n_tier": self.n_tier, "score_thresholds": [float(v) for v in self.score_thresholds]}
        if self.meta:
            blob["meta"] = self.meta
        with atomic_path(path, mkdir=True) as tmp:
            joblib.dump(blob, tmp)
        return path

    # ---- the training harness and its run checkpoints (nar.checkpoint: the shared metadata)
    def save_run(self, out: Path, meta: dict, run) -> None:
        """``ckp_last.joblib`` and ``ckp_best.joblib`` (the same model: one fit)."""
        from nar.checkpoint import run_blob

        row = run.rows[-1]
        extra = {"score_thresholds": [float(v) for v in self.score_thresholds], "epoch": 1,
                 "val_kendalltau": row["val_kendalltau"]}
        for name in ("ckp_last.joblib", "ckp_best.joblib"):
            with atomic_path(out / name, mkdir=True) as tmp:
                joblib.dump(run_blob(meta["config"]["arch"], {**meta, **extra}, model=self), tmp)
        self.meta = {**meta, **extra}

    @classmethod
    def check_checkpoint(cls, blob: dict, bad) -> None:
        if not isinstance(blob.get("model"), Baseline) or not isinstance(blob.get("score_thresholds"), list):
            raise bad("a baseline checkpoint needs 'model' (a fitted baseline) and 'score_thresholds'")

    @classmethod
    def from_checkpoint_blob(cls, blob: dict) -> "Baseline":
        model = blob["model"]
        model.meta = {k: v for k, v in blob.items() if k not in ("model", "format", "version", "path")}
        if model.score_thresholds is None:
            model.score_thresholds = np.asarray(blob["score_thresholds"], np.float64)
        return model

    def run_summary(self, run) -> str:
        from nar.nar_predictor import mean_tau
        return f"val Kendall tau {mean_tau(run.rows)}"


def load_baseline(path):
    """Rebuild a fitted baseline from :meth:`Baseline.save` output, or the model of a run's
    ``ckp_*.joblib`` (written by ``nar-cli train``; its metadata in ``.meta``)."""
    path = Path(path)
    if not path.exists():
        raise NarError(f"baseline checkpoint not found: {path}")
    try:
        blob = joblib.load(path)
    except Exception as e:  # joblib raises many types for a damaged file
        raise NarError(f"cannot read baseline checkpoint {path}: {e}; re-save it") from e
    from nar.checkpoint import FORMAT
    from nar.predictor import load_run_predictor

    if isinstance(blob, dict) and blob.get("format") == FORMAT:  # a run's checkpoint: checked, then used
        return load_run_predictor(path)
    if not isinstance(blob, dict) or blob.get("version") != CHECKPOINT_VERSION:
        raise NarError(f"{path} is not a version-{CHECKPOINT_VERSION} baseline checkpoint; re-save it")
    model = create_baseline(blob["name"], blob["bench"], blob["seed"], target=blob["target"],
                            n_tier=blob.get("n_tier", 5), **blob["kw"])
    model._set_state(blob["state"])
    model.fitted = True
    if blob.get("score_thresholds") is not None:
        model.score_thresholds = np.asarray(blob["score_thresholds"], np.float64)
    model.meta = blob.get("meta")
    return model


def _require(module: str, extra: str):
    import importlib
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise NarError(f"baseline needs the optional package {module!r}, which is not installed; "
                       f"run `pip install {extra}`") from e


@register_baseline("lightgbm")
class LightGBMBaseline(Baseline):
    """LightGBM regression; defaults suit a few hundred to a few thousand samples. Options are
    LightGBM's native parameters plus ``num_boost_round``; scikit-learn names are translated."""

    SKLEARN_NAMES = dict(n_estimators="num_boost_round", min_child_samples="min_data_in_leaf",
                         subsample="bagging_fraction", subsample_freq="bagging_freq",
                         colsample_bytree="feature_fraction", reg_lambda="lambda_l2",
                         reg_alpha="lambda_l1", random_state="seed", n_jobs="num_threads")

    DEFAULTS = dict(num_boost_round=600, learning_rate=0.03, num_leaves=31, min_data_in_leaf=3,
                    bagging_fraction=0.8, bagging_freq=1, feature_fraction=0.8, lambda_l2=1.0)

    def __init__(self, bench, seed=0, target="raw", n_tier=5, **kw):
        super().__init__(bench, seed, target, n_tier, **kw)
        _require("lightgbm", "lightgbm  (or: pip install nar-ranker[gbt])")
        self.booster = None

    def _fit(self, x, y):
        import lightgbm as lgb
        params = dict(self.DEFAULTS)
        params.update({self.SKLEARN_NAMES.get(k, k): v for k, v in self.kw.items()})
        rounds = int(params.pop("num_boost_round"))
        params.update(objective="regression", seed=self.seed, num_threads=1, verbose=-1,
                      deterministic=True)
        self.booster = lgb.train(params, lgb.Dataset(x, y), num_boost_round=rounds)

    def _predict(self, x):
        return self.booster.predict(x)

    def _get_state(self):
        return self.booster.model_to_string()

    def _set_state(self, state):
        import lightgbm as lgb
        self.booster = lgb.Booster(model_str=state)


@register_baseline("xgboost")
class XGBoostBaseline(Baseline):
    """XGBoost regression (optional: ``pip install xgboost``)."""

    DEFAULTS = dict(num_boost_round=400, eta=0.03, max_depth=4, min_child_weight=2,
                    subsample=0.8, colsample_bytree=0.8, reg_lambda=1.0)

    def __init__(self, bench, seed=0, target="raw", n_tier=5, **kw):
        super().__init__(bench, seed, target, n_tier, **kw)
        _require("xgboost", "xgboost")
        self.booster = None

    def _fit(self, x, y):
        import xgboost as xgb
        params = {**self.DEFAULTS, **self.kw}
        params["num_boost_round"] = params.pop("n_estimators", params["num_boost_round"])
        rounds = int(params.pop("num_boost_round"))
        params.update(objective="reg:squarederror", seed=self.seed, nthread=1)
        self.booster = xgb.train(params, xgb.DMatrix(x, label=y), num_boost_round=rounds)

    def _predict(self, x):
        import xgboost as xgb
        return self.booster.predict(xgb.DMatrix(x))

    def _get_state(self):
        return bytes(self.booster.save_raw(raw_format="ubj"))

    def _set_state(self, state):
        import xgboost as xgb
        self.booster = xgb.Booster()
        self.booster.load_model(bytearray(state))


@register_baseline("mlp")
class MLPBaseline(Baseline):
    """A small torch MLP on CPU, trained on standardised accuracy with MSE and early-stopped
    on a held-back share (``holdout``, default 10%) of the training rows."""

    DEFAULTS = dict(hidden=128, layers=2, dropout=0.1, lr=1e-3, weight_decay=1e-4, batch_size=64,
                    max_epochs=300, patience=25, holdout=0.1)

    def __init__(self, bench, seed=0, target="raw", n_tier=5, **kw):
        super().__init__(bench, seed, target, n_tier, **kw)
        unknown = set(kw) - set(self.DEFAULTS)
        if unknown:
            raise NarError(f"unknown mlp options {sorted(unknown)}; known: {sorted(self.DEFAULTS)}")
        self.p = {**self.DEFAULTS, **kw}
        self.net = None
        self.n_features = None

    def _build(self, n_features: int):
        import torch
        from torch import nn
        torch.manual_seed(self.seed)
        layers, width = [], n_features
        for _ in range(int(self.p["layers"])):
            layers += [nn.Linear(width, int(self.p["hidden"])), nn.ReLU(), nn.Dropout(self.p["dropout"])]
            width = int(self.p["hidden"])
        layers.append(nn.Linear(width, 1))
        self.n_features = n_features
        return nn.Sequential(*layers)

    def _fit(self, x, y):
        import torch
        rng = np.random.default_rng(self.seed)
        perm = rng.permutation(len(x))
        n_hold = max(1, int(round(self.p["holdout"] * len(x))))
        hold, train = perm[:n_hold], perm[n_hold:]
        mu, sd = y[train].mean(), y[train].std() or 1.0
        xt = torch.from_numpy(x)
        yt = torch.from_numpy(((y - mu) / sd).astype(np.float32))
        self.net = self._build(x.shape[1])
        opt = torch.optim.AdamW(self.net.parameters(), lr=self.p["lr"], weight_decay=self.p["weight_decay"])
        gen = torch.Generator().manual_seed(self.seed)
        train_t, hold_t = torch.from_numpy(train), torch.from_numpy(hold)
        best, best_state, since = np.inf, None, 0
        for epoch in range(int(self.p["max_epochs"])):
            self.net.train()
            order = train_t[torch.randperm(len(train_t), generator=gen)]
            for b in range(0, len(order), int(self.p["batch_size"])):
                rows = order[b:b + int(self.p["batch_size"])]
                loss = torch.mean((self.net(xt[rows]).squeeze(1) - yt[rows]) ** 2)
                opt.zero_grad()
                loss.backward()
                opt.step()
            self.net.eval()
            with torch.no_grad():
                val = float(torch.mean((self.net(xt[hold_t]).squeeze(1) - yt[hold_t]) ** 2))
            if val < best - 1e-6:
                best, since = val, 0
                best_state = {k: v.clone() for k, v in self.net.state_dict().items()}
            else:
                since += 1
                if since >= int(self.p["patience"]):
                    break
        if best_state is None:
            raise NarError("mlp: the held-back loss was never finite; check the labels or lower lr")
        self.net.load_state_dict(best_state)
        self.net.eval()
        log.debug("mlp: stopped after %d epochs, held-back MSE %.4f", epoch + 1, best)

    def _predict(self, x):
        import torch
        with torch.no_grad():
            return self.net(torch.from_numpy(x)).squeeze(1).numpy().astype(np.float64)

    def _get_state(self):
        return {"n_features": self.n_features,
                "weights": {k: v.numpy().copy() for k, v in self.net.state_dict().items()}}

    def _set_state(self, state):
        import torch
        self.net = self._build(int(state["n_features"]))
        self.net.load_state_dict({k: torch.from_numpy(v) for k, v in state["weights"].items()})
        self.net.eval()

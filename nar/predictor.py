"""One protocol for every accuracy predictor: NAR (paper and improved configs), the baselines
(LightGBM, XGBoost, MLP) and the surrogates of the query-efficient search.

A predictor works on rows of a store (:class:`cache.store.Store`, or a store / NAR JSON path),
in the manner of scikit-learn estimators:

``fit(store, rows, labels, *, val_rows=None, val_labels=None, monitor=None, progress=False) -> self``
    Learn from the accuracies ``labels`` of rows ``rows`` (no NaN, at least one row). ``val_rows``
    / ``val_labels`` (optional) are validation cells: NAR selects its epoch on them, baselines
    report their Kendall tau; ``monitor`` (a :class:`nar.harness.RunDir`) receives one row per
    epoch. Fitting again starts afresh unless the predictor was made to warm-start
    (NAR ``finetune_epochs``).
``predict(store, rows=None) -> scores``
    float64 scores, higher = better, one per row (None = every row of the store).
``predict_tiers(store, rows=None) -> (tier, score)``
    predicted quality tier (1 = best) and score; NAR predicts tiers itself, a baseline cuts its
    score at the quantiles of its training scores.
``save(path)`` / ``load(path)`` (a classmethod) / :func:`load_predictor`
    checkpoint files; :func:`load_predictor` reads every kind this project writes (``ckp_*.pth``,
    ``ckp_*.joblib`` of a run, a baseline's own ``.joblib``).

:func:`create_predictor` builds one by name from a config; :func:`list_predictors` names them.
Bad input (no rows, NaN labels, rows outside the store) raises :class:`NarError`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.errors import NarError

NAR_NAMES = ("nar", "NAR")


class Predictor:
    """Base of every predictor (see the module docstring for the protocol)."""

    name = "predictor"

    def fit(self, store, rows, labels, *, val_rows=None, val_labels=None, monitor=None, progress=False):
        raise NotImplementedError

    def predict(self, store, rows=None) -> np.ndarray:
        raise NotImplementedError

    def predict_tiers(self, store, rows=None) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def save(self, path) -> Path:
        raise NotImplementedError

    @classmethod
    def load(cls, path) -> "Predictor":
        """The predictor saved in ``path``; NarError when it is not of this class."""
        model = load_predictor(path)
        if not isinstance(model, cls):
            raise NarError(f"{path} holds a {model.name!r} predictor, not a {cls.name!r} one; "
                           "load it with nar.predictor.load_predictor")
        return model

    # the training harness (nar-cli train) calls these
    def check_data(self, store, dataset: str) -> None:
        """NarError when ``store`` cannot be fitted or scored by this predictor."""

    def save_run(self, out: Path, meta: dict, run) -> None:
        """Write the run's ``ckp_last`` / ``ckp_best`` checkpoints into ``out``."""
        raise NotImplementedError

    def run_summary(self, run) -> str:
        """One line on what the fit ended with."""
        raise NotImplementedError


def open_data(store):
    """``store`` as a :class:`cache.store.Store` (a path is opened)."""
    if hasattr(store, "data") and hasattr(store, "n"):
        return store
    from nar.data import open_store
    return open_store(store)


def check_rows(store, rows, what: str = "rows", allow_empty: bool = False) -> np.ndarray:
    """``rows`` as int64 row indices of ``store`` (all rows when None); NarError when they are not
    a 1-D list of indices inside the store."""
    if rows is None:
        return np.arange(store.n, dtype=np.int64)
    arr = np.asarray(rows)
    if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
        raise NarError(f"{what} must be a 1-D array of row indices of the store, got shape {arr.shape} "
                       f"of {arr.dtype}")
    arr = arr.astype(np.int64)
    if not len(arr) and not allow_empty:
        raise NarError(f"{what} is empty; give at least one row of the store")
    if len(arr) and (arr.min() < 0 or arr.max() >= store.n):
        bad = arr.max() if arr.max() >= store.n else arr.min()
        raise NarError(f"row index {bad} in {what} is outside store {store.path} ({store.n} rows)")
    return arr


def check_labels(rows: np.ndarray, labels, what: str = "labels") -> np.ndarray:
    """``labels`` as float64, one finite accuracy per row; NarError otherwise."""
    y = np.asarray(labels, dtype=np.float64)
    if y.shape != (len(rows),):
        raise NarError(f"{what} has shape {y.shape} but {len(rows)} rows were given; pass one accuracy per row")
    bad = np.flatnonzero(~np.isfinite(y))
    if len(bad):
        raise NarError(f"{what} is not finite at position {bad[0]} (row {rows[bad[0]]}); "
                       "drop unlabelled rows before fitting")
    return y


def check_fit_input(store, rows, labels, val_rows=None, val_labels=None):
    """(store, rows, labels, val_rows, val_labels) checked and converted: the one validation of
    ``fit``'s arguments shared by every predictor."""
    store = open_data(store)
    rows = check_rows(store, rows)
    y = check_labels(rows, labels)
    if val_rows is None:
        vr, vy = np.zeros(0, np.int64), np.zeros(0, np.float64)
    else:
        vr = check_rows(store, val_rows, "val_rows", allow_empty=True)
        vy = check_labels(vr, val_labels, "val_labels")
    return store, rows, y, vr, vy


def list_predictors() -> list[str]:
    """Names :func:`create_predictor` accepts ("NAR" is an alias of "nar")."""
    from nar.baselines import list_baselines
    return sorted(["nar", *list_baselines()])


def create_predictor(name: str, config=None, *, bench: str | None = None, seed: int | None = None, **kw):
    """A new, unfitted predictor.

    ``name``: "nar" (or "NAR") or a baseline (:func:`nar.baselines.list_baselines`).
    ``config``: a :class:`nar.config.Config` (or a YAML path; None = the paper config of
    ``bench``). NAR trains with it; a baseline takes its space, seed, ``baseline_target`` and
    tier count from it. ``bench`` / ``seed`` override the config's; ``kw`` go to the predictor
    (NAR: ``dataset``, ``finetune_epochs``, ``use_pretrained``; a baseline: ``target`` and the
    model's options)."""
    from nar.config import Config, load_config

    if name in NAR_NAMES:
        from nar.nar_predictor import Ranker

        cfg = config if isinstance(config, Config) else load_config(config, [], bench=bench)
        if seed is not None:
            import dataclasses
            cfg = dataclasses.replace(cfg, seed=int(seed))
        return Ranker(cfg, **kw)
    from nar.baselines import create_baseline, list_baselines

    if name not in list_baselines():
        raise NarError(f"unknown predictor {name!r}; choose one of {', '.join(list_predictors())}")
    if config is not None and not isinstance(config, Config):
        config = load_config(config, [], bench=bench)
    if config is not None:
        kw.setdefault("target", config.baseline_target)
        kw.setdefault("n_tier", config.ranker.n_tier)
    if bench is None and config is None:
        raise NarError(f"create_predictor({name!r}) needs bench= or a config (the search space)")
    return create_baseline(name, bench or config.bench,
                           seed if seed is not None else (config.seed if config is not None else 0), **kw)


def load_predictor(path):
    """The predictor in ``path``: a NAR checkpoint (``.pth``, :class:`nar.nar_predictor.Ranker`),
    a run's baseline checkpoint (``ckp_*.joblib``; its metadata in ``.meta``) or a baseline's
    own file (:meth:`nar.baselines.Baseline.save`). Load only files you trust (joblib)."""
    p = Path(path)
    if p.suffix != ".joblib":
        from nar.nar_predictor import Ranker
        return Ranker.from_checkpoint(p)
    from nar.baselines import load_baseline
    return load_baseline(p)

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
    ``ckp_*.joblib`` of a run, a baseline's own ``.joblib``); :func:`load_run_predictor` reads a
    run's checkpoint only (``nar-cli test`` / ``predict``: its metadata in ``.meta``).

A class also says what is its own in a run checkpoint (:mod:`nar.checkpoint`):
``check_checkpoint(blob, bad)`` (a classmethod) validates the entries only it writes,
``from_checkpoint_blob(blob)`` rebuilds the fitted predictor, and ``check_config(cfg)`` refuses a
config that describes another model than the loaded one.

:func:`create_predictor` builds one by name from a config; :func:`list_predictors` names them;
:func:`predictor_class` is the registry (the one place that maps a config's or a checkpoint's
``arch`` to its class). Bad input (no rows, NaN labels, rows outside the store) raises
:class:`NarError`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.errors import NarError

NAR_NAMES = ("nar", "NAR")
NAR_ARCH = "NAR"  # NAR's name in a config's and a checkpoint's ``arch``


class Predictor:
    """Base of every predictor (see the module docstring for the protocol)."""

    name = "predictor"
    samples = False  # True: it has tiers and tier embeddings, so the sampling search can use it
    source: str | None = None  # the checkpoint file a loaded predictor was read from

    @property
    def arch(self) -> str:
        """The predictor's name in a config's and a checkpoint's ``arch``."""
        return self.name

    def fit(self, store, rows, labels, *, val_rows=None, val_labels=None, monitor=None, progress=False):
        raise NotImplementedError

    def predict(self, store, rows=None) -> np.ndarray:
        raise NotImplementedError

    def predict_tiers(self, store, rows=None, *, batch_size: int = 1024,
                      tta_orders: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``batch_size``: rows per forward pass of a predictor that batches; ``tta_orders``:
        test-time vertex orders of a predictor that averages over them (NAR; None = its config's).
        A predictor without batches or vertex orders (the baselines) takes and ignores both."""
        raise NotImplementedError

    def save(self, path) -> Path:
        raise NotImplementedError

    @classmethod
    def load(cls, path) -> "Predictor":
        """The predictor saved in ``path``; NarError when it is not of this class."""
        return cls.expect(load_predictor(path), path)

    @classmethod
    def expect(cls, model, path) -> "Predictor":
        """``model`` (loaded from ``path``) when it is of this class; NarError otherwise."""
        if not isinstance(model, cls):
            raise NarError(f"{path} holds a {model.name!r} predictor, not a {cls.name!r} one; "
                           "load it with nar.predictor.load_predictor")
        return model

    # a run checkpoint (nar.checkpoint: the entries every predictor writes are checked there)
    @classmethod
    def check_checkpoint(cls, blob: dict, bad) -> None:
        """Raise ``bad(what)`` (a NarError) unless ``blob`` holds this class's own entries."""
        raise NotImplementedError

    @classmethod
    def from_checkpoint_blob(cls, blob: dict) -> "Predictor":
        """The fitted predictor of a checked run checkpoint (:func:`nar.checkpoint.load_checkpoint`)."""
        raise NotImplementedError

    def check_config(self, cfg) -> None:
        """NarError when ``cfg`` (a ``--config_file``) describes another model than this loaded
        one; the bench and ``arch`` are compared by :func:`nar.checkpoint.check_compatible`."""

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


def config_archs() -> list[str]:
    """The values a config's ``arch`` takes: NAR, then the baselines."""
    from nar.baselines import list_baselines
    return [NAR_ARCH, *list_baselines()]


def predictor_class(arch: str) -> type:
    """The class of predictor ``arch`` (a config's or a checkpoint's ``arch``, or a name of
    :func:`list_predictors`); NarError for an unknown name."""
    if arch in NAR_NAMES:
        from nar.nar_predictor import Ranker
        return Ranker
    from nar.baselines import baseline_class, list_baselines

    if arch not in list_baselines():
        raise NarError(f"unknown predictor {arch!r}; choose one of {', '.join(list_predictors())}")
    return baseline_class(arch)


def create_predictor(name: str, config=None, *, bench: str | None = None, seed: int | None = None, **kw):
    """A new, unfitted predictor.

    ``name``: "nar" (or "NAR") or a baseline (:func:`nar.baselines.list_baselines`).
    ``config``: a :class:`nar.config.Config` (or a YAML path; None = the paper config of
    ``bench``). NAR trains with it; a baseline takes its space, seed, ``baseline_target`` and
    tier count from it. ``bench`` / ``seed`` override the config's; ``kw`` go to the predictor
    (NAR: ``dataset``, ``finetune_epochs``, ``use_pretrained``; a baseline: ``target`` and the
    model's options)."""
    from nar.config import Config, load_config

    cls = predictor_class(name)
    if name in NAR_NAMES:
        cfg = config if isinstance(config, Config) else load_config(config, [], bench=bench)
        if seed is not None:
            import dataclasses
            cfg = dataclasses.replace(cfg, seed=int(seed))
        return cls(cfg, **kw)
    from nar.baselines import create_baseline

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


def load_run_predictor(path) -> Predictor:
    """The fitted predictor of a run checkpoint (``ckp_*.pth`` or ``ckp_*.joblib`` written by
    ``nar-cli train``), of the class its ``arch`` names; its metadata (bench, dataset, label,
    tier thresholds, training keys, config, ...) in ``.meta``, the file in ``.source``. NarError
    for a missing, unreadable or damaged file (:func:`nar.checkpoint.load_checkpoint`)."""
    from nar.checkpoint import checkpoint_arch, load_checkpoint

    blob = load_checkpoint(path)
    model = predictor_class(checkpoint_arch(blob)).from_checkpoint_blob(blob)
    model.source = blob["path"]
    return model

"""Python API: train a predictor (NAR or a baseline), load one from a checkpoint, score and rank
architectures. Every predictor follows one protocol (:mod:`nar.predictor`).

    from nar.api import fit, load_predictor
    ranker = fit("cache/nb201.h5", ranker_epochs=20)        # paper config of the store's bench
    scores = ranker.predict("cache/nb201.h5", rows)          # float64, higher = better
    tier, score = ranker.predict_tiers(store, rows)
    best_first = ranker.rank("cache/nb201.h5")
    ranker.save("nar201.pth"); same = load_predictor("nar201.pth")
    gbt = fit("cache/nb201.h5", config="config/default201.yml", arch="lightgbm")   # same split, same protocol

``ranker.predict(features)`` with an (n, C, P, P) array still returns ``(tier, score)``
(:meth:`Ranker.predict_features`).
"""
from __future__ import annotations

from nar.config import Config, config_from_dict, load_config
from nar.data import open_store
from nar.harness import RunDir, base_meta, fit_predictor, prepare
from nar.nar_predictor import Ranker
from nar.predictor import create_predictor, list_predictors, load_predictor  # noqa: F401 - the API

__all__ = ["Ranker", "fit", "load_ranker", "load_predictor", "create_predictor", "list_predictors"]


def load_ranker(path) -> Ranker:
    """A NAR Ranker from a ``ckp_*.pth`` checkpoint (loads with ``torch.load(weights_only=True)``)."""
    return Ranker.from_checkpoint(path)


def _kwargs_to_overrides(overrides: dict) -> list[dict]:
    """``ranker__d_model=64`` or ``ranker={"d_model": 64}`` -> nested mappings."""
    out = []
    for key, value in overrides.items():
        node: dict = {}
        root = node
        parts = key.split("__")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
        out.append(root)
    return out


def fit(data, config=None, **overrides):
    """Fit the config's predictor on ``data`` (a store path, a :class:`cache.store.Store` or a NAR
    JSON path) with ``config`` (None: the paper config of the data's bench; a YAML path; or a
    Config) plus keyword overrides (``arch="lightgbm"`` fits that baseline on the same split).
    Returns the fitted predictor: for NAR the ranker of the best validation Kendall tau (or the
    weight average), with its training metadata in ``.meta``."""
    if isinstance(config, Config):
        cfg = config_from_dict(config.to_dict(), "the given Config")
        for ov in _kwargs_to_overrides(overrides):
            cfg = config_from_dict(_merge(cfg.to_dict(), ov), "fit() overrides")
    else:
        bench = None
        if config is None:
            if str(data).lower().endswith(".json"):
                from pipeline.ingest import guess_bench
                bench = guess_bench(data)
            else:
                bench = open_store(data).bench
        cfg = load_config(config, _kwargs_to_overrides(overrides), bench=bench)
    prep = prepare(cfg, data)
    predictor = fit_predictor(prep, RunDir(None))
    predictor.meta = base_meta(prep)
    return predictor


def _merge(base: dict, upd: dict) -> dict:
    for k, v in upd.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _merge(base[k], v)
        else:
            base[k] = v
    return base

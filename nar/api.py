"""Python API: train a ranker, load one from a checkpoint, score and rank architectures.

    from nar.api import fit, load_ranker
    ranker = fit("cache/nb201.h5", ranker_epochs=20)        # paper config of the store's bench
    tier, score = ranker.predict(features)                   # (n, C, P, P), any n, memmap ok
    best_first = ranker.rank("cache/nb201.h5")
    ranker.save("nar201.pth"); same = load_ranker("nar201.pth")
"""
from __future__ import annotations

import numpy as np

from nar.checkpoint import build_members, load_checkpoint, save_checkpoint
from nar.config import Config, config_from_dict, load_config
from nar.data import check_features, open_store
from nar.harness import RunDir, base_meta, prepare, train_models
from nar.model import NARanker
from nar.train import predict_batched
from pipeline.errors import NarError


class Ranker:
    """A trained NAR (one model or an ensemble) with the metadata of its training."""

    def __init__(self, members: list[NARanker], meta: dict):
        self.members = [m.eval() for m in members]
        self.meta = {k: v for k, v in meta.items() if k not in ("members", "format", "version", "arch", "path")}
        self.config: Config = config_from_dict(meta["config"])
        self.bench: str = meta["bench"]
        self.dataset: str = meta["dataset"]
        self.label: str = meta["label"]
        self.train_keys: list[str] = list(meta["train_keys"])
        self.tier_thresholds = np.asarray(meta["tier_thresholds"], dtype=np.float64)

    @property
    def n_tier(self) -> int:
        return self.config.ranker.n_tier

    def predict(self, features, batch_size: int = 2048):
        """(tier int64 in 1..n_tier, score float64) for every row of ``features`` (n, C, P, P)."""
        shape = tuple(np.shape(features)[1:])
        want = (self.config.ranker.n_arch_patch, self.config.ranker.d_patch, self.config.ranker.d_patch)
        if len(np.shape(features)) != 4 or shape != want:
            raise NarError(f"features of shape {np.shape(features)} do not fit this NB{self.bench} ranker; "
                           f"expected (n, {want[0]}, {want[1]}, {want[2]})")
        return predict_batched(self.members, features, batch_size, tta_orders=self.config.tta_orders)

    def rank(self, store) -> np.ndarray:
        """Store indices of all architectures, best predicted score first."""
        store = open_store(store)
        if store.bench != self.bench:
            raise NarError(f"store {store.path} is NB{store.bench}; this ranker is for NB{self.bench}")
        check_features(store, self.dataset, self.config.ranker.n_arch_patch, self.config.ranker.d_patch,
                       "this ranker")
        _, score = self.predict(store.data(self.dataset, "features"))
        return np.argsort(-score, kind="stable")

    def save(self, path):
        """Write a checkpoint that :func:`load_ranker` reads back."""
        return save_checkpoint(path, self.members, self.meta)


def load_ranker(path) -> Ranker:
    """A Ranker from a ``ckp_*.pth`` checkpoint (loads with ``torch.load(weights_only=True)``)."""
    blob = load_checkpoint(path)
    if blob.get("arch", "NAR") != "NAR":
        raise NarError(f"{path} holds a {blob['arch']!r} baseline, not a NAR model")
    return Ranker(build_members(blob), blob)


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


def fit(data, config=None, **overrides) -> Ranker:
    """Train NAR on ``data`` (a store path, a :class:`cache.store.Store` or a NAR JSON path) with
    ``config`` (None: the paper config of the data's bench; a YAML path; or a Config) plus
    keyword overrides. Returns the ranker of the best validation Kendall tau."""
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
    if cfg.arch != "NAR":
        raise NarError(f"fit() trains NAR; arch {cfg.arch!r} is trained through `nar-cli train`")
    prep = prepare(cfg, data)
    run = RunDir(None)
    train_models(prep, run)
    return Ranker(run.best, base_meta(prep))


def _merge(base: dict, upd: dict) -> dict:
    for k, v in upd.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _merge(base[k], v)
        else:
            base[k] = v
    return base

"""From a store (or a NAR JSON) to training arrays: labels, seeded splits, tier cuts."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cache.store import Store
from pipeline.errors import NarError

log = logging.getLogger(__name__)


def open_store(data, bench: str | None = None, sha256: str | None = None, skip_sha256: bool = False) -> Store:
    """A :class:`Store` from a Store, a store path (.h5) or a NAR JSON path (encoded first)."""
    if isinstance(data, Store):
        return data
    p = Path(data)
    if p.suffix.lower() == ".json":
        if not p.exists():
            raise NarError(f"data file not found: {p}; pass a store (.h5) or a NAR JSON file")
        try:
            from pipeline.ingest import ingest
        except ImportError as e:
            raise NarError(f"cannot encode {p}: JSON ingestion is not available ({e}); "
                           "run `nar-cli encode` and pass the store") from e
        p = Path(ingest(p, bench, sha256=sha256, skip_sha256=skip_sha256))
    return Store(p)


def store_fingerprint(store: Store) -> str:
    """Identifies one written store (bench, size, source checksum, creation time)."""
    a = store.attrs
    return f"{store.bench}:{store.n}:{a.get('source_sha256', '')}:{a.get('created', '')}"


def store_keys(store: Store, rows=None) -> np.ndarray:
    """Architecture keys as Python str (NB101 hash or NB201 string), of ``rows`` only when given."""
    raw = np.asarray(store.array("key"))
    return np.char.decode(raw if rows is None else raw[np.asarray(rows, np.int64)], "ascii").astype(object)


def training_meta(cfg, store: Store, dataset: str, y_train, train_rows, val_rows, label: str) -> dict:
    """What a NAR checkpoint records of its training (besides the weights): the resolved
    config, the data (bench, dataset, label, the store's checksum and fingerprint), the tier
    cut points of the training labels and the keys of the training and validation cells."""
    from nar.metrics import tier_thresholds

    def keys(rows):
        return [str(k) for k in store_keys(store, rows)]

    return {"config": cfg.to_dict(), "bench": store.bench, "dataset": dataset,
            "n_arch_patch": cfg.ranker.n_arch_patch, "d_patch": cfg.ranker.d_patch,
            "tier_thresholds": [float(v) for v in tier_thresholds(y_train, cfg.ranker.n_tier)], "label": label,
            "train_keys": keys(train_rows), "val_keys": keys(val_rows),
            "store_sha256": str(store.attrs.get("source_sha256", "")),
            "store_fingerprint": store_fingerprint(store), "seed": int(cfg.seed)}


def _finite_any(a: np.ndarray) -> bool:
    return bool(np.isfinite(a).any())


def label_array(store: Store, dataset: str, strategy: str) -> tuple[np.ndarray, str]:
    """Training labels (percent) and their name; val_acc falls back to test_acc when the
    dataset has no validation accuracy at all."""
    names = [strategy] + (["test_acc"] if strategy == "val_acc" else [])
    for name in names:
        if store.has(f"data/{dataset}/{name}"):
            y = np.asarray(store.data(dataset, name), dtype=np.float64)
            if _finite_any(y):
                if name != strategy:
                    log.warning("store %s has no %s for %s: training on test_acc instead",
                                store.path, strategy, dataset)
                return y, name
    raise NarError(f"store {store.path} has no {strategy} labels for dataset {dataset!r}; "
                   "use a store with accuracies (re-run `nar-cli encode` with the benchmark results)")


def target_array(store: Store, dataset: str, preferred: str = "test_acc") -> tuple[np.ndarray, str]:
    """Evaluation target: ``preferred`` if the store has it, else the other accuracy."""
    for name in (preferred, "val_acc" if preferred == "test_acc" else "test_acc"):
        if store.has(f"data/{dataset}/{name}"):
            y = np.asarray(store.data(dataset, name), dtype=np.float64)
            if _finite_any(y):
                return y, name
    raise NarError(f"store {store.path} has no accuracies for dataset {dataset!r}; "
                   "evaluation needs val_acc or test_acc")


@dataclass
class Split:
    train: np.ndarray  # store indices, in seeded random order
    val: np.ndarray
    rest: np.ndarray   # labelled but unused (held out)


def make_split(y: np.ndarray, train_size: int, val_size: int, seed: int) -> Split:
    """Seeded permutation of the finite-label architectures: train, val, the rest."""
    labelled = np.flatnonzero(np.isfinite(y))
    if train_size + val_size > len(labelled):
        raise NarError(f"train_size {train_size} + val_size {val_size} > {len(labelled)} labelled "
                       "architectures; lower them with --set train_size=... --set val_size=...")
    perm = np.random.default_rng(seed).permutation(labelled)
    return Split(perm[:train_size], perm[train_size:train_size + val_size], perm[train_size + val_size:])


def load_features(store: Store, dataset: str, idx: np.ndarray) -> np.ndarray:
    """Rows ``idx`` of the memory-mapped features as one float32 array (in the order of idx)."""
    feats = store.data(dataset, "features")
    idx = np.asarray(idx, dtype=np.int64)
    order = np.argsort(idx, kind="stable")
    out = np.empty((len(idx), *feats.shape[1:]), np.float32)
    out[order] = feats[idx[order]]
    return out


def check_features(store: Store, dataset: str, n_arch_patch: int, d_patch: int, what: str) -> None:
    """NarError unless the store's features are (N, n_arch_patch, d_patch, d_patch)."""
    shape = tuple(store.data(dataset, "features").shape[1:])
    if shape != (n_arch_patch, d_patch, d_patch):
        raise NarError(f"store {store.path} has NB{store.bench} features of shape {shape} but {what} "
                       f"expects ({n_arch_patch}, {d_patch}, {d_patch}); use a matching config/checkpoint")

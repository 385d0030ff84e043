"""``nar-cli test`` (ranking metrics on held-out and whole-space architectures -> results.json)
and ``nar-cli predict`` (key, tier, score, rank of every architecture -> CSV)."""
from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np

from nar.checkpoint import check_compatible, resolve_checkpoint
from nar.config import config_from_dict, load_config
from nar.data import label_array, open_store, store_fingerprint, store_keys, target_array
from nar.harness import _attach_log, _detach_log
from nar.metrics import assign_tiers
from nar.predictor import load_run_predictor
from pipeline.atomic import atomic_path, check_output_file, write_json_atomic
from pipeline.errors import NarError

log = logging.getLogger(__name__)


def score_store(predictor, store, batch_size: int = 1024,
                tta_orders: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(predicted tier, score) of every architecture of ``store`` with a loaded run checkpoint
    (:func:`nar.predictor.load_run_predictor`); ``tta_orders`` None = the checkpoint config's
    (averaging over vertex orders, where the predictor has them)."""
    if store.bench != predictor.meta["bench"]:
        raise NarError(f"store {store.path} is NB{store.bench} but checkpoint {predictor.source} "
                       f"is for NB{predictor.meta['bench']}; use a store of the same bench")
    return predictor.predict_tiers(store, batch_size=batch_size, tta_orders=tta_orders)


def _metrics(score, target, pred_tier, true_tier) -> dict:
    from nar.metrics import ranking_metrics

    out = ranking_metrics(score, target, pred_tier=pred_tier, true_tier=true_tier)
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in out.items()}


def run_test(config_file, data_path, run_dir, checkpoint="ckp_best.pth", seed=None,
             save_file_name="test.log", overrides=(), sha256=None, skip_sha256=False) -> dict:
    """Evaluate a checkpoint of ``run_dir`` on ``data_path``; writes results.json and the log.
    Without ``config_file`` the checkpoint's own config is used (``overrides`` apply to it)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise NarError(f"run directory not found: {run_dir}; pass the --save_dir of `nar-cli train`")
    for name, option in ((save_file_name, "--save_file_name"), ("results.json", "--save_dir")):
        check_output_file(run_dir / name, option)
    predictor = load_run_predictor(resolve_checkpoint(run_dir, checkpoint))
    meta = predictor.meta
    if config_file is None:
        cfg = load_config(None, [meta["config"], *overrides])
    else:
        cfg = load_config(config_file, overrides)
    if seed is not None:
        cfg.seed = int(seed)
    check_compatible(predictor, cfg)
    store = open_store(data_path, cfg.bench, sha256=sha256, skip_sha256=skip_sha256)
    dataset = meta["dataset"]
    target, target_name = target_array(store, dataset, cfg.target)
    try:
        label_y, _ = label_array(store, dataset, meta["label"])
    except NarError:
        label_y = target
    tier_truth = assign_tiers(label_y, meta["tier_thresholds"])
    tta = cfg.tta_orders or int(meta.get("config", {}).get("tta_orders", 0))
    pred_tier, score = score_store(predictor, store, tta_orders=tta)

    keys = store_keys(store)
    same_data = store_fingerprint(store) == meta["store_fingerprint"]
    used = set(meta["train_keys"]) | (set(meta["val_keys"]) if same_data else set())
    known = np.isfinite(target)
    heldout = known & ~np.isin(keys.astype(str), np.array(sorted(used), dtype=str))
    results = {"checkpoint": predictor.source, "bench": meta["bench"], "dataset": dataset,
               "seed": cfg.seed, "label": meta["label"], "target": target_name,
               "n_train": len(meta["train_keys"]), "n_test": int(heldout.sum()),
               "same_data_as_training": same_data, "tta_orders": tta}
    for name, m in (("heldout", heldout), ("whole_space", known)):
        tt = np.where(np.isfinite(label_y[m]), tier_truth[m], assign_tiers(target[m], meta["tier_thresholds"]))
        results[name] = _metrics(score[m], target[m], pred_tier[m], tt)
    handler = _attach_log(run_dir / save_file_name)
    try:
        log.info("test %s on %s (%s): heldout %s", predictor.source, store.path, target_name, results["heldout"])
        log.info("whole space: %s", results["whole_space"])
    finally:
        _detach_log(handler)
    write_json_atomic(run_dir / "results.json", results, indent=2, default=float)
    return results


def run_predict(checkpoint, data_path, out, sha256=None, skip_sha256=False, run_dir=None) -> Path:
    """Write key, tier, score, rank (1 = best score) of every architecture to ``out`` (CSV).
    ``checkpoint``: a file name in ``run_dir`` or a path (:func:`resolve_checkpoint`)."""
    check_output_file(out, "--out")
    checkpoint = resolve_checkpoint(run_dir, checkpoint)
    predictor = load_run_predictor(checkpoint)
    cfg = config_from_dict(predictor.meta["config"], f"checkpoint {checkpoint}")
    store = open_store(data_path, cfg.bench, sha256=sha256, skip_sha256=skip_sha256)
    tier, score = score_store(predictor, store)
    rank = np.empty(len(score), np.int64)
    rank[np.argsort(-score, kind="stable")] = np.arange(1, len(score) + 1)
    keys = store_keys(store)
    if not len(keys) == len(tier) == len(score):  # the store's length checks make this unreachable
        raise NarError(f"store {store.path}: {len(keys)} keys for {len(score)} scores; re-run `nar-cli encode`")
    out = Path(out)
    with atomic_path(out, mkdir=True) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["key", "tier", "score", "rank"])
        w.writerows(zip(keys, tier.tolist(), (f"{s:.6g}" for s in score), rank.tolist()))
    log.info("wrote %d predictions to %s", len(score), out)
    return out

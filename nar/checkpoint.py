"""Run checkpoints (``ckp_*`` of ``nar-cli train``): the metadata every predictor writes (config,
bench, dataset, label, tier thresholds, training keys, ...) plus the predictor's own entries,
checked on load by the class its ``arch`` names (:func:`nar.predictor.predictor_class`).

NAR's own part lives here too: the weights of each ensemble member (+ tier embeddings, feature
transform) as tensors and plain Python types only, so that ``ckp_*.pth`` loads with
``torch.load(weights_only=True)``. Baselines write small joblib files with the same metadata
(:mod:`nar.baselines`)."""
from __future__ import annotations

import dataclasses
import math

from pathlib import Path

import torch

from nar.config import config_from_dict
from nar.model import NARanker, build_model
from nar.predictor import NAR_ARCH, predictor_class
from pipeline.atomic import atomic_path
from pipeline.errors import NarError

FORMAT = "nar-ranker"
VERSION = 1
META_KEYS = ("config", "bench", "dataset", "n_arch_patch", "d_patch", "tier_thresholds", "label",
             "train_keys", "val_keys", "store_sha256", "store_fingerprint", "seed", "epoch",
             "val_kendalltau", "score_thresholds")


def save_checkpoint(path, members: list[NARanker], meta: dict) -> Path:
    """Write the weights of each ensemble member (one for the paper model) and ``meta``."""
    states = [{k: v.detach().cpu().clone() for k, v in m.state_dict().items()} for m in members]
    blob = run_blob(NAR_ARCH, meta, members=states)
    with atomic_path(path, mkdir=True) as tmp:
        torch.save(blob, tmp)
    return Path(path)


def run_blob(arch: str, meta: dict, **own) -> dict:
    """The dictionary a run checkpoint holds: format, version, ``arch``, the predictor's ``own``
    entries and the metadata keys of ``meta``."""
    blob = {"format": FORMAT, "version": VERSION, "arch": arch, **own}
    blob.update({k: meta[k] for k in META_KEYS if k in meta})
    return blob


def checkpoint_arch(blob: dict) -> str:
    """The predictor a run checkpoint holds (checkpoints without ``arch`` are NAR's)."""
    return blob.get("arch", NAR_ARCH)


def load_checkpoint(path) -> dict:
    """Read a NAR checkpoint (weights-only) or a baseline checkpoint (.joblib)."""
    p = Path(path)
    if not p.exists():
        raise NarError(f"checkpoint not found: {p}; pass a ckp_*.pth file written by `nar-cli train`")
    if p.suffix == ".joblib":
        import joblib

        try:
            blob = joblib.load(p)
        except Exception as e:  # noqa: BLE001 - any unreadable file is the user's bad input
            raise NarError(f"cannot read baseline checkpoint {p}: {e}") from e
    else:
        try:
            blob = torch.load(p, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001
            raise NarError(f"cannot read checkpoint {p}: {e.__class__.__name__}; "
                           "is it a checkpoint written by `nar-cli train`?") from e
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise NarError(f"{p} is not a NAR checkpoint; pass a ckp_*.pth file written by `nar-cli train`")
    if blob.get("version") != VERSION:
        raise NarError(f"checkpoint {p} has version {blob.get('version')}, this version reads {VERSION}")
    _check_blob(blob, p)
    blob["path"] = str(p)
    return blob


_META_TYPES = {"config": dict, "bench": str, "dataset": str, "label": str, "tier_thresholds": list,
               "train_keys": list, "val_keys": list, "store_fingerprint": str}


def _check_blob(blob: dict, p: Path) -> None:
    """NarError unless the checkpoint's entries have the structure this version writes."""
    def bad(what):
        return NarError(f"checkpoint {p} is damaged or not written by `nar-cli train`: {what}; "
                        "retrain it with `nar-cli train`")
    for key, typ in _META_TYPES.items():
        if not isinstance(blob.get(key), typ):
            raise bad(f"entry {key!r} is {type(blob.get(key)).__name__}, expected {typ.__name__}")
    from pipeline.spaces import bench_of
    try:
        known = bench_of(blob["bench"]) == blob["bench"]
    except NarError:
        known = False
    if not known:
        raise bad(f"bench {blob['bench']!r} is not a registered space")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
               for v in blob["tier_thresholds"]):
        raise bad("tier_thresholds are not finite numbers")
    if not all(isinstance(k, str) for k in (*blob["train_keys"], *blob["val_keys"])):
        raise bad("train_keys / val_keys must be architecture keys (text)")
    try:
        cls = predictor_class(checkpoint_arch(blob))
    except NarError:
        raise bad(f"arch {checkpoint_arch(blob)!r} is not a known predictor") from None
    cls.check_checkpoint(blob, bad)


def check_members(blob: dict, bad) -> None:
    """NAR's own entries of a run checkpoint: patch sizes and finite member weights."""
    for key in ("n_arch_patch", "d_patch"):
        if not isinstance(blob.get(key), int) or isinstance(blob.get(key), bool) or blob[key] < 1:
            raise bad(f"entry {key!r} is {blob.get(key)!r}")
    members = blob.get("members")
    if not isinstance(members, list) or not members or not all(
            isinstance(m, dict) and all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                        for k, v in m.items()) for m in members):
        raise bad("'members' must be a non-empty list of weight dictionaries")
    if any(not torch.isfinite(v).all() for m in members for v in m.values() if v.is_floating_point()):
        raise bad("weights hold NaN or infinite values")


def resolve_checkpoint(run_dir, name) -> Path:
    """The one meaning of ``--checkpoint``: ``name`` inside ``run_dir`` (the release passes
    ``--checkpoint ckp_best.pth`` beside ``--save_dir``), else ``name`` as a path (absolute, or
    relative to the working directory). A baseline's ``.joblib`` twin stands in for a missing
    ``.pth``. ``run_dir`` may be None (a path only)."""
    p = Path(name)
    tried = [run_dir / p for run_dir in ([Path(run_dir)] if run_dir is not None and not p.is_absolute() else [])]
    tried.append(p)
    for c in tried:
        for cand in (c, c.with_suffix(".joblib")) if c.suffix == ".pth" else (c,):
            if cand.is_file():
                return cand
    where = " or ".join(str(c) for c in dict.fromkeys(tried))
    raise NarError(f"checkpoint not found: {where}; pass --checkpoint ckp_best.pth (or ckp_last.pth) with the "
                   "--save_dir of a finished `nar-cli train` run, or a path to the checkpoint file")


def build_members(blob: dict) -> list[NARanker]:
    """The ensemble members of a NAR checkpoint, in eval mode."""
    cfg = config_from_dict(blob["config"], f"checkpoint {blob.get('path', '')}")
    members = []
    for state in blob["members"]:
        model = build_model(cfg.ranker)
        try:
            model.load_state_dict(state)
        except RuntimeError as e:
            first = str(e).strip().splitlines()[-1].strip()
            raise NarError(f"checkpoint {blob.get('path', '')} does not match its config: {first}") from e
        members.append(model.eval())
    return members


def check_compatible(predictor, cfg) -> None:
    """NarError when ``cfg`` (from --config_file) describes another bench, predictor or model
    shape than the loaded run checkpoint ``predictor`` (:func:`nar.predictor.load_run_predictor`)."""
    meta = predictor.meta
    if meta["bench"] != cfg.bench:
        raise NarError(f"checkpoint {predictor.source} is for NB{meta['bench']} but the config is for "
                       f"NB{cfg.bench}; use the config the model was trained with")
    if predictor.arch != cfg.arch:
        raise NarError(f"checkpoint {predictor.source} holds a {predictor.arch!r} model but the config "
                       f"says arch {cfg.arch!r}")
    predictor.check_config(cfg)


def check_ranker_shape(saved_config: dict, cfg, path) -> None:
    """NarError when ``cfg``'s ranker has another shape than the NAR checkpoint ``path`` (its
    config ``saved_config``); dropout may differ."""
    # keys added after a checkpoint was written take their (neutral) defaults
    from nar.config import RankerConfig
    saved = {**dataclasses.asdict(RankerConfig()), **saved_config["ranker"]}
    now = cfg.to_dict()["ranker"]
    diff = [k for k in now if k != "dropout" and saved.get(k) != now[k]]
    if diff:
        k = diff[0]
        raise NarError(f"checkpoint {path} has ranker.{k}={saved.get(k)!r} but the config says "
                       f"{now[k]!r} (shape mismatch); use the config the model was trained with")

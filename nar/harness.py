"""The one training harness behind ``nar-cli train`` and :func:`nar.api.fit`: validate the
input, split by seed, train NAR (or a baseline, same splits and evaluation), write the run
directory (config.yaml, train.log, metrics.csv, ckp_best / ckp_last)."""
from __future__ import annotations

import csv
import dataclasses
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau

from cache.store import Store
from nar.checkpoint import save_baseline, save_checkpoint
from nar.config import Config, load_config, validate_config
from nar.console import DETAIL, progress_bar
from nar.data import (Split, check_features, label_array, load_features, make_split, open_store,
                      store_fingerprint, store_keys)
from nar.metrics import assign_tiers, tier_thresholds
from nar.pretrain import pretrained_encoder
from nar.train import train_ranker
from pipeline.atomic import check_output_dir, make_dirs, output_error, remove_stale_temps, temp_path
from pipeline.errors import NarError
from pipeline.spaces import space_class

log = logging.getLogger(__name__)
BASELINES = ("lightgbm", "xgboost", "mlp")


@dataclass
class Prepared:
    cfg: Config
    store: Store
    dataset: str
    y: np.ndarray      # training label of every architecture (NaN where unknown)
    label: str         # "val_acc" or "test_acc"
    split: Split
    keys: np.ndarray   # architecture keys (str)


def prepare(cfg: Config, data, sha256=None, skip_sha256=False) -> Prepared:
    """Open and check the data against ``cfg``; every input error is raised here, before any
    output is written."""
    if cfg.arch != "NAR" and cfg.arch not in BASELINES:
        raise NarError(f"config key 'arch': {cfg.arch!r}; use NAR or one of {', '.join(BASELINES)}")
    if cfg.start_epochs >= cfg.ranker_epochs:
        raise NarError(f"start_epochs {cfg.start_epochs} >= ranker_epochs {cfg.ranker_epochs}; nothing to train")
    store = open_store(data, cfg.bench, sha256=sha256, skip_sha256=skip_sha256)
    if store.bench != cfg.bench:
        raise NarError(f"store {store.path} is NB{store.bench} but the config is for NB{cfg.bench} "
                       f"(space {cfg.space!r}); use {space_class(store.bench).paper_config_file}")
    dataset = cfg.dataset
    if cfg.arch == "NAR":
        check_features(store, dataset, cfg.ranker.n_arch_patch, cfg.ranker.d_patch, "the config")
    y, label = label_array(store, dataset, cfg.strategy)
    split = make_split(y, cfg.train_size, cfg.val_size, cfg.seed)
    if cfg.train_size < cfg.ranker.n_tier:
        raise NarError(f"train_size {cfg.train_size} < n_tier {cfg.ranker.n_tier}; raise train_size")
    return Prepared(cfg, store, dataset, y, label, split, store_keys(store))


def base_meta(prep: Prepared) -> dict:
    cfg = prep.cfg
    thresholds = tier_thresholds(prep.y[prep.split.train], cfg.ranker.n_tier)
    return {"config": cfg.to_dict(), "bench": cfg.bench, "dataset": prep.dataset,
            "n_arch_patch": cfg.ranker.n_arch_patch, "d_patch": cfg.ranker.d_patch,
            "tier_thresholds": [float(v) for v in thresholds], "label": prep.label,
            "train_keys": [str(k) for k in prep.keys[prep.split.train]],
            "val_keys": [str(k) for k in prep.keys[prep.split.val]],
            "store_sha256": str(prep.store.attrs.get("source_sha256", "")),
            "store_fingerprint": store_fingerprint(prep.store), "seed": int(cfg.seed)}


class RunDir:
    """Writes metrics.csv rows as epochs end and keeps the finished models."""

    COLUMNS = ["member", "epoch", "loss", "tier_loss", "rank_loss", "lr", "train_tier_acc",
               "val_tier_acc", "val_kendalltau", "time"]

    def __init__(self, path: Path | None):
        self.path = path
        self.member = 0
        self.last, self.best, self.best_rows = [], [], []
        self._rows: list[dict] = []
        if path is not None:
            with open(path / "metrics.csv", "w", newline="") as f:
                csv.writer(f).writerow(self.COLUMNS)

    def on_epoch(self, row: dict) -> None:
        row = {"member": self.member, **row}
        self._rows.append(row)
        if self.path is not None:
            with open(self.path / "metrics.csv", "a", newline="") as f:
                csv.writer(f).writerow([_fmt(row.get(c, "")) for c in self.COLUMNS])

    def on_finish(self, last, best) -> None:
        self.last.append(last)
        self.best.append(best)
        mine = [r for r in self._rows if r["member"] == self.member]
        self.best_rows.append(max((r for r in mine if r.get("best")), key=lambda r: r["epoch"], default=mine[-1]))
        self.member += 1


def _fmt(v):
    return f"{v:.6g}" if isinstance(v, float) else v


def train_models(prep: Prepared, run: RunDir, progress: bool = False) -> list[dict]:
    """Train ``n_ensemble`` NAR members (seeds seed, seed+1, ...) under one progress bar;
    returns the history."""
    cfg, s = prep.cfg, prep.split
    x_tr = load_features(prep.store, prep.dataset, s.train)
    x_va = load_features(prep.store, prep.dataset, s.val)
    for name, x in (("training", x_tr), ("validation", x_va)):
        if not np.isfinite(x).all():
            raise NarError(f"store {prep.store.path}: features of {name} architectures hold NaN or "
                           f"infinite values (the store is damaged); check it with `nar-cli verify` "
                           f"and re-run `nar-cli encode`")
    encoder = pretrained_encoder(cfg, prep.store, prep.dataset, progress=bool(progress))
    history = []
    n_epochs = cfg.ranker_epochs - cfg.start_epochs
    desc = "train" if cfg.n_ensemble == 1 else f"train {cfg.n_ensemble} members"
    bar = progress_bar(cfg.n_ensemble * n_epochs, desc, "epoch", enabled=progress)
    try:
        for k in range(cfg.n_ensemble):
            member_cfg = dataclasses.replace(cfg, seed=cfg.seed + k)
            if cfg.n_ensemble > 1:
                log.log(DETAIL, "ensemble member %d/%d (seed %d)", k + 1, cfg.n_ensemble, member_cfg.seed)
            _, hist = train_ranker(member_cfg, x_tr, prep.y[s.train], x_va, prep.y[s.val], run=run,
                                   progress=bar, encoder_state=encoder)
            history.extend(hist)
    finally:
        bar.close()
    return history


def train_baseline(prep: Prepared, run: RunDir):
    """Fit a baseline on the same split; returns (model, meta extras)."""
    from nar.baselines import create_baseline

    cfg, s = prep.cfg, prep.split
    model = create_baseline(cfg.arch, cfg.bench, cfg.seed, target=cfg.baseline_target)
    model.fit(prep.store, s.train, prep.y[s.train])
    score_tr = np.asarray(model.predict(prep.store, s.train), dtype=np.float64)
    thr = tier_thresholds(prep.y[s.train], cfg.ranker.n_tier)
    score_thr = tier_thresholds(score_tr, cfg.ranker.n_tier)
    tau = val_acc = float("nan")
    if len(s.val) > 1:
        score_va = np.asarray(model.predict(prep.store, s.val), dtype=np.float64)
        tau = float(kendalltau(score_va, prep.y[s.val]).statistic)
        val_acc = float((assign_tiers(score_va, score_thr) == assign_tiers(prep.y[s.val], thr)).mean())
    run.on_epoch({"epoch": 1, "val_tier_acc": val_acc, "val_kendalltau": tau, "best": True})
    log.info("%s: val tier acc %.3f val tau %.4f", cfg.arch, val_acc, tau)
    return model, {"score_thresholds": [float(v) for v in score_thr], "epoch": 1, "val_kendalltau": tau}


_LOGGERS = ("nar", "pipeline", "cache")


def _attach_log(path: Path) -> tuple[logging.Handler, dict]:
    """The run's ``train.log``: every record of the project's loggers down to the DETAIL level
    (one line per epoch), whatever the terminal shows. Returns the handler and the loggers'
    levels to restore."""
    try:
        handler = logging.FileHandler(path)
    except OSError as e:
        raise output_error(path, e, "log file") from e
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(DETAIL)
    levels = {}
    for name in _LOGGERS:
        lg = logging.getLogger(name)
        lg.addHandler(handler)
        levels[name] = lg.level
        if lg.getEffectiveLevel() > DETAIL:
            lg.setLevel(DETAIL)
    return handler, levels


def _detach_log(attached: tuple[logging.Handler, dict]) -> None:
    handler, levels = attached
    for name in _LOGGERS:
        lg = logging.getLogger(name)
        lg.removeHandler(handler)
        lg.setLevel(levels[name])
    handler.close()


def _old_path(out: Path) -> Path:
    """Where an overwritten run waits while the new one is moved in (a stale-temp name)."""
    return temp_path(out.with_name(out.name + ".old"))


def _install(tmp: Path, out: Path, overwrite: bool) -> None:
    """Move the finished run ``tmp`` onto ``out``; an existing ``out`` is removed after."""
    old = None
    if not overwrite and out.is_dir() and any(out.iterdir()):
        raise NarError(f"--save_dir {out} was filled by another run while this one trained; pass "
                       "--overwrite to replace it, or choose a new folder")
    try:
        if out.is_dir():
            if any(out.iterdir()):
                old = _old_path(out)
                os.replace(out, old)
            else:
                out.rmdir()
        os.replace(tmp, out)
    except OSError as e:
        if old is not None and old.exists() and not out.exists():
            os.replace(old, out)
        raise output_error(out, e, "run directory") from e
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def check_run_target(out: Path, overwrite: bool) -> None:
    """NarError unless ``out`` can receive a new run: a writable folder that is missing, empty,
    or (with ``overwrite``) holds an earlier run."""
    check_output_dir(out, "--save_dir")
    here = Path.cwd().resolve()
    if out.resolve() == here or out.resolve() in here.parents:
        raise NarError(f"--save_dir {out} is the current folder or one above it; give a folder of its own "
                       "for the run (e.g. runs/NAME)")
    if out.is_dir() and not overwrite:
        names = sorted(p.name for p in out.iterdir())
        if names:
            shown = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
            raise NarError(f"--save_dir {out} already holds files ({shown}); pass --overwrite to replace "
                           "that run, or choose a new folder")


def run_training(config_file, data_path, save_dir, seed=None, overrides=(), sha256=None,
                 skip_sha256=False, progress=False, overwrite=False) -> Path:
    """``nar-cli train``: everything is checked before anything is written. The run is written
    into a temporary folder beside ``save_dir`` (``NAME.tmpPID``) and moved onto ``save_dir``
    only when complete, so ``save_dir`` holds a whole run or none (an interrupted or failed run
    leaves earlier outputs untouched, and the next run removes its temporary folder)."""
    cfg = load_config(config_file, overrides)
    if seed is not None:
        cfg.seed = int(seed)
        validate_config(cfg, "--seed")
    out = Path(os.path.abspath(save_dir))
    check_run_target(out, overwrite)
    prep = prepare(cfg, data_path, sha256=sha256, skip_sha256=skip_sha256)
    prep.store.verify(require=False)
    for stale in (out, out.with_name(out.name + ".old")):
        remove_stale_temps(stale)
    tmp = make_dirs(temp_path(out), "run directory")
    try:
        _write_run(prep, tmp, progress)
        _install(tmp, out, overwrite)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    log.info("run written to %s", out)
    return out


def _write_run(prep: Prepared, out: Path, progress: bool) -> None:
    cfg = prep.cfg
    try:
        cfg.save(out / "config.yaml")
    except OSError as e:
        raise output_error(out / "config.yaml", e) from e
    attached = _attach_log(out / "train.log")
    t0 = time.perf_counter()
    try:
        log.info("train %s on NB%s %s: %d train / %d val / %d held out, label %s, seed %d",
                 cfg.arch, cfg.bench, prep.dataset, len(prep.split.train), len(prep.split.val),
                 len(prep.split.rest), prep.label, cfg.seed)
        run = RunDir(out)
        meta = base_meta(prep)
        if cfg.arch == "NAR":
            train_models(prep, run, progress=progress)
            for name, models in (("ckp_last.pth", run.last), ("ckp_best.pth", run.best)):
                rows = run.best_rows if name == "ckp_best.pth" else [
                    [r for r in run._rows if r["member"] == k][-1] for k in range(len(models))]
                extra = {"epoch": int(rows[0]["epoch"]),
                         "val_kendalltau": float(np.mean([r.get("val_kendalltau", np.nan) for r in rows]))}
                save_checkpoint(out / name, models, {**meta, **extra})
        else:
            model, extra = train_baseline(prep, run)
            for name in ("ckp_last.joblib", "ckp_best.joblib"):
                save_baseline(out / name, model, {**meta, **extra})
        log.info("trained %s in %.1f s: %s", cfg.arch, time.perf_counter() - t0, _summary(cfg, run))
    finally:
        _detach_log(attached)


def _summary(cfg: Config, run: RunDir) -> str:
    """One line on what the run ended with (the per-epoch lines are in train.log)."""
    if cfg.arch != "NAR":
        return f"val Kendall tau {_tau(run._rows)}"
    n = len(run.best_rows)
    last_loss = np.mean([[r for r in run._rows if r["member"] == k][-1]["loss"] for k in range(n)])
    best = (f"the weight average of the last {cfg.swa_epochs} epochs" if cfg.swa_epochs > 0
            else "the epoch of the best val Kendall tau")
    return (f"{f'{n} members x ' if n > 1 else ''}{cfg.ranker_epochs - cfg.start_epochs} epochs, final "
            f"training loss {last_loss:.4f}, best epoch's val Kendall tau {_tau(run.best_rows)}; "
            f"ckp_best.pth holds {best}; one line per epoch in train.log")


def _tau(rows) -> str:
    taus = np.array([r.get("val_kendalltau", np.nan) for r in rows], float)
    return "n/a (no validation cells)" if not np.isfinite(taus).any() else f"{np.nanmean(taus):.4f}"

"""The one training harness behind ``nar-cli train`` and :func:`nar.api.fit`: validate the
input, split by seed, fit the config's predictor (NAR or a baseline, :mod:`nar.predictor`: same
splits and evaluation), write the run directory (config.yaml, train.log, metrics.csv, ckp_best / ckp_last)."""
from __future__ import annotations

import csv
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cache.store import Store
from nar.config import Config, load_config, validate_config
from nar.console import DETAIL
from nar.data import Split, label_array, make_split, open_store, store_keys, training_meta
from nar.predictor import Predictor, config_archs, create_predictor
from pipeline.atomic import check_output_dir, make_dirs, output_error, remove_stale_temps, temp_path
from pipeline.errors import NarError
from pipeline.spaces import space_class

log = logging.getLogger(__name__)


@dataclass
class Prepared:
    cfg: Config
    store: Store
    dataset: str
    y: np.ndarray      # training label of every architecture (NaN where unknown)
    label: str         # "val_acc" or "test_acc"
    split: Split
    keys: np.ndarray   # architecture keys (str)
    predictor: Predictor  # unfitted, made from cfg (NAR or a baseline: the predictor protocol)


def prepare(cfg: Config, data, sha256=None, skip_sha256=False) -> Prepared:
    """Open and check the data against ``cfg``; every input error is raised here, before any
    output is written."""
    if cfg.arch not in config_archs():
        raise NarError(f"config key 'arch': {cfg.arch!r}; use one of {', '.join(config_archs())}")
    if cfg.start_epochs >= cfg.ranker_epochs:
        raise NarError(f"start_epochs {cfg.start_epochs} >= ranker_epochs {cfg.ranker_epochs}; nothing to train")
    store = open_store(data, cfg.bench, sha256=sha256, skip_sha256=skip_sha256)
    if store.bench != cfg.bench:
        raise NarError(f"store {store.path} is NB{store.bench} but the config is for NB{cfg.bench} "
                       f"(space {cfg.space!r}); use {space_class(store.bench).paper_config_file}")
    dataset = cfg.dataset
    predictor = create_predictor(cfg.arch, cfg)
    predictor.check_data(store, dataset)
    y, label = label_array(store, dataset, cfg.strategy)
    split = make_split(y, cfg.train_size, cfg.val_size, cfg.seed)
    if cfg.train_size < cfg.ranker.n_tier:
        raise NarError(f"train_size {cfg.train_size} < n_tier {cfg.ranker.n_tier}; raise train_size")
    return Prepared(cfg, store, dataset, y, label, split, store_keys(store), predictor)


def base_meta(prep: Prepared) -> dict:
    """The run's checkpoint metadata: :func:`nar.data.training_meta` of its split and label."""
    s = prep.split
    return training_meta(prep.cfg, prep.store, prep.dataset, prep.y[s.train], s.train, s.val, prep.label)


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

    @property
    def rows(self) -> list[dict]:
        """Every epoch row so far (all members)."""
        return self._rows

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


def fit_predictor(prep: Prepared, run: RunDir, progress: bool = False):
    """Fit ``prep.predictor`` on the split's training cells (validation cells for its epoch
    choice / report; ``run`` records the epochs); returns the fitted predictor."""
    s = prep.split
    return prep.predictor.fit(prep.store, s.train, prep.y[s.train], val_rows=s.val, val_labels=prep.y[s.val],
                              monitor=run, progress=progress)


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
        predictor = fit_predictor(prep, run, progress=progress)
        predictor.save_run(out, base_meta(prep), run)
        log.info("trained %s in %.1f s: %s", cfg.arch, time.perf_counter() - t0, predictor.run_summary(run))
    finally:
        _detach_log(attached)

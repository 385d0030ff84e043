"""NAR as a predictor (:mod:`nar.predictor`): an ensemble of ``n_ensemble`` rankers (seeds
seed, seed+1, ...) trained by :func:`nar.train.train_ranker` on the store's feature tensors.

Fitted by ``nar-cli train`` / :func:`nar.api.fit` (with validation cells: each member keeps its
best epoch, or the weight average of its last ``swa_epochs``) and by the query-efficient search
(all queried cells, no validation; with ``finetune_epochs`` > 0 a refit starts from the previous
members and runs that many epochs). Checkpoints are ``ckp_*.pth`` files (:mod:`nar.checkpoint`).
"""
from __future__ import annotations

import copy
import dataclasses
import logging
from pathlib import Path

import numpy as np

from nar.checkpoint import build_members, check_members, check_ranker_shape, save_checkpoint
from nar.config import Config, config_from_dict
from nar.console import DETAIL, progress_bar
from nar.predictor import NAR_ARCH, Predictor, check_fit_input, check_rows, load_run_predictor, open_data
from pipeline.errors import NarError

log = logging.getLogger(__name__)


class Ranker(Predictor):
    """A NAR ranker (one model or an ensemble). ``Ranker(config)`` is unfitted; ``fit`` trains it,
    :meth:`from_checkpoint` / :func:`nar.api.load_ranker` read a trained one. ``meta`` holds the
    training metadata written into its checkpoint (bench, dataset, label, tier thresholds,
    training keys, ...).

    ``dataset``: the store's image dataset whose features are used (default: the config's);
    ``finetune_epochs`` > 0: a refit fine-tunes the previous members that many epochs;
    ``use_pretrained``: start fresh members from the pre-trained encoder when the config asks for
    one (``pretrain.steps`` > 0; the search surrogates train without it)."""

    name = "nar"
    arch = NAR_ARCH
    samples = True

    def __init__(self, config: Config, dataset: str | None = None, finetune_epochs: int = 0,
                 use_pretrained: bool = True):
        if not isinstance(config, Config):
            raise NarError(f"Ranker needs a nar.config.Config, got {type(config).__name__}")
        self.config = config
        self._dataset = dataset
        self.finetune_epochs = int(finetune_epochs)
        self.use_pretrained = bool(use_pretrained)
        self.members: list = []
        self.meta: dict = {}

    @classmethod
    def from_members(cls, members: list, meta: dict) -> "Ranker":
        """A fitted Ranker from trained models and their checkpoint metadata."""
        self = cls(config_from_dict(meta["config"]), dataset=meta["dataset"])
        self.members = [m.eval() for m in members]
        self.meta = {k: v for k, v in meta.items() if k not in ("members", "format", "version", "arch", "path")}
        return self

    @classmethod
    def from_checkpoint(cls, path) -> "Ranker":
        return cls.expect(load_run_predictor(path), path)

    # its part of a run checkpoint (nar.checkpoint)
    @classmethod
    def check_checkpoint(cls, blob: dict, bad) -> None:
        check_members(blob, bad)

    @classmethod
    def from_checkpoint_blob(cls, blob: dict) -> "Ranker":
        return cls.from_members(build_members(blob), blob)

    def check_config(self, cfg) -> None:
        check_ranker_shape(self.meta["config"], cfg, self.source)

    @classmethod
    def load(cls, path) -> "Ranker":
        return cls.from_checkpoint(path)

    # what the checkpoint says (properties: a fitted ranker's metadata)
    bench = property(lambda self: self.meta.get("bench", self.config.bench))
    dataset = property(lambda self: self._dataset or self.meta.get("dataset") or self.config.dataset)
    label = property(lambda self: self.meta.get("label"))
    train_keys = property(lambda self: list(self.meta.get("train_keys", [])))
    tier_thresholds = property(lambda self: np.asarray(self.meta.get("tier_thresholds", []), np.float64))

    @property
    def n_tier(self) -> int:
        return self.config.ranker.n_tier

    @property
    def fitted(self) -> bool:
        return bool(self.members)

    def _need_fitted(self):
        if not self.members:
            raise NarError("this NAR ranker is not fitted; call fit() or load a checkpoint")

    # ---- the protocol
    def check_data(self, store, dataset: str | None = None) -> None:
        from nar.data import check_features

        rc = self.config.ranker
        what = f"checkpoint {self.source}" if self.source else "this ranker" if self.members else "the config"
        check_features(store, dataset or self.dataset, rc.n_arch_patch, rc.d_patch, what)

    def _features(self, store, rows) -> np.ndarray:
        from nar.data import load_features

        if store.bench != self.bench:
            raise NarError(f"store {store.path} is NB{store.bench}; this ranker is for NB{self.bench}")
        if self.dataset not in store.datasets:
            raise NarError(f"store {store.path} has no dataset {self.dataset!r} (it has "
                           f"{', '.join(store.datasets)}); give Ranker(dataset=...) one of them")
        self.check_data(store)
        return load_features(store, self.dataset, rows)

    def fit(self, store, rows, labels, *, val_rows=None, val_labels=None, monitor=None, progress=False):
        """Train the ensemble on rows ``rows`` of ``store`` (accuracies ``labels``); returns self."""
        from nar.train import train_ranker

        store, rows, y, vr, vy = check_fit_input(store, rows, labels, val_rows, val_labels)
        cfg = self.config
        if len(rows) < cfg.ranker.n_tier:
            raise NarError(f"{len(rows)} training rows < n_tier {cfg.ranker.n_tier}; give more rows")
        x, x_va = self._features(store, rows), self._features(store, vr)
        distill_cells = self._distill_cells(store, rows)
        for name, arr in (("training architectures", x), ("validation architectures", x_va),
                          ("cells drawn for distillation", distill_cells)):
            if arr is not None and not np.isfinite(arr).all():
                raise NarError(f"store {store.path}: features of {name} hold NaN or infinite values (the "
                               "store is damaged); check it with `nar-cli verify` and re-run `nar-cli encode`")
        previous = self.members if self.finetune_epochs > 0 and self.members else None
        encoder = None
        if previous is None and self.use_pretrained:
            from nar.pretrain import pretrained_encoder
            encoder = pretrained_encoder(cfg, store, self.dataset, progress=bool(progress))
        n_epochs = cfg.ranker_epochs - cfg.start_epochs
        desc = "train" if cfg.n_ensemble == 1 else f"train {cfg.n_ensemble} members"
        bar = progress_bar(cfg.n_ensemble * n_epochs, desc, "epoch", enabled=bool(progress))
        members = []
        try:
            for k in range(max(1, cfg.n_ensemble)):
                member_cfg = dataclasses.replace(copy.deepcopy(cfg), seed=cfg.seed + k)
                init = None
                if previous is not None:
                    init = previous[k]
                    member_cfg.ranker_epochs = self.finetune_epochs
                    member_cfg.swa_epochs = min(member_cfg.swa_epochs, self.finetune_epochs)
                    member_cfg.lr_scheduler = dataclasses.replace(member_cfg.lr_scheduler, n_warmup_steps=1)
                if cfg.n_ensemble > 1:
                    log.log(DETAIL, "ensemble member %d/%d (seed %d)", k + 1, cfg.n_ensemble, member_cfg.seed)
                model, _ = train_ranker(member_cfg, x, y, x_va, vy, init=init, run=monitor, progress=bar,
                                        encoder_state=encoder)
                members.append(model)
        finally:
            bar.close()
        if distill_cells is not None:
            members = [self._distill(members, distill_cells, x, y, progress)]
        self.members = members
        from nar.data import training_meta

        self.meta = training_meta(cfg, store, self.dataset, y, rows, vr, "given")
        return self

    def _distill_cells(self, store, rows) -> np.ndarray | None:
        """Features of the cells the ensemble will be distilled on (nar/distill.py), read before
        any training (and checked with the training cells); None when this fit is not distilled."""
        from nar.distill import distill_rows

        d = self.config.distill
        if d.cells <= 0 or self.config.n_ensemble <= 1 or self.finetune_epochs > 0:
            return None
        return self._features(store, distill_rows(store.n, rows, d.cells, d.seed))

    def _distill(self, members, cells, x, y, progress):
        """The ensemble ``members`` distilled into one network on the feature rows ``cells``."""
        import torch

        from nar.distill import distill
        from nar.metrics import tier_labels

        d = self.config.distill
        device = next(members[0].parameters()).device
        feats = torch.from_numpy(np.ascontiguousarray(cells, np.float32)).to(device)
        train_x = torch.from_numpy(np.ascontiguousarray(x, np.float32)).to(device)
        tiers = torch.from_numpy(tier_labels(y, self.config.ranker.n_tier)).to(device)
        log.log(DETAIL, "distilling %d members into one network on %d cells, %d epochs", len(members),
                len(cells), d.epochs)
        bar = progress_bar(d.epochs, "distill", "epoch", enabled=bool(progress))
        try:
            return distill(members, d, feats, train_x, tiers, progress=bar)
        finally:
            bar.close()

    def predict(self, store, rows=None, batch_size: int = 1024):
        """Scores (float64, higher = better) of rows ``rows`` (None = all) of ``store``.

        Kept for earlier callers: ``predict(features)`` with an (n, C, P, P) feature array (memory
        maps welcome) returns ``(tier, score)`` as :meth:`predict_features` does."""
        if rows is None and not _is_store(store):
            return self.predict_features(store, batch_size)
        return self.predict_tiers(store, rows, batch_size)[1]

    def predict_tiers(self, store, rows=None, batch_size: int = 1024, tta_orders: int | None = None):
        """(tier int64 in 1..n_tier, score float64) of rows ``rows`` (None = all) of ``store``."""
        self._need_fitted()
        store = open_data(store)
        rows = check_rows(store, rows, allow_empty=True)
        if len(rows) == store.n and np.array_equal(rows, np.arange(store.n)):
            self._features(store, rows[:0])  # checks only: score the memory map batch by batch
            return self.predict_features(store.data(self.dataset, "features"), batch_size, tta_orders)
        return self.predict_features(self._features(store, rows), batch_size, tta_orders)

    def predict_features(self, features, batch_size: int = 1024, tta_orders: int | None = None):
        """(tier int64 in 1..n_tier, score float64) for every row of ``features`` (n, C, P, P);
        ``tta_orders`` None = the config's."""
        from nar.predict import predict_batched

        self._need_fitted()
        shape = tuple(np.shape(features)[1:])
        want = (self.config.ranker.n_arch_patch, self.config.ranker.d_patch, self.config.ranker.d_patch)
        if len(np.shape(features)) != 4 or shape != want:
            raise NarError(f"features of shape {np.shape(features)} do not fit this NB{self.bench} ranker; "
                           f"expected (n, {want[0]}, {want[1]}, {want[2]})")
        tta = self.config.tta_orders if tta_orders is None else tta_orders
        return predict_batched(self.members, features, batch_size, tta_orders=tta)

    def member_scores(self, store, rows, tta_orders: int = 0) -> np.ndarray:
        """(n_members, len(rows)) scores of each ensemble member (``tta_orders`` test-time vertex
        orders; 0 = the cell as numbered): the search surrogates' disagreement."""
        from nar.predict import predict_batched

        self._need_fitted()
        store = open_data(store)
        x = self._features(store, check_rows(store, rows, allow_empty=True))
        return np.stack([predict_batched([m], x, tta_orders=tta_orders)[1] for m in self.members])

    def rank(self, store) -> np.ndarray:
        """Store indices of all architectures, best predicted score first."""
        return np.argsort(-self.predict(open_data(store)), kind="stable")

    def save(self, path) -> Path:
        """Write a checkpoint that :meth:`load` / :func:`nar.api.load_ranker` read back."""
        self._need_fitted()
        return save_checkpoint(path, self.members, self.meta)

    # ---- the training harness
    def save_run(self, out: Path, meta: dict, run) -> None:
        """``ckp_last.pth`` (each member's last epoch) and ``ckp_best.pth`` (this ranker)."""
        self.meta = dict(meta)
        best = self.members or run.best  # a distilled ranker keeps its student, not the members
        for name, models in (("ckp_last.pth", run.last), ("ckp_best.pth", best)):
            rows = run.best_rows if name == "ckp_best.pth" else [
                [r for r in run.rows if r["member"] == k][-1] for k in range(len(models))]
            extra = {"epoch": int(rows[0]["epoch"]),
                     "val_kendalltau": float(np.mean([r.get("val_kendalltau", np.nan) for r in rows]))}
            save_checkpoint(out / name, models, {**meta, **extra})

    def run_summary(self, run) -> str:
        cfg = self.config
        n = len(run.best_rows)
        last_loss = np.mean([[r for r in run.rows if r["member"] == k][-1]["loss"] for k in range(n)])
        best = (f"the weight average of the last {cfg.swa_epochs} epochs" if cfg.swa_epochs > 0
                else "the epoch of the best val Kendall tau")
        if n > 1 and len(self.members) == 1:
            best = f"one network distilled from the {n} members ({best} each)"
        return (f"{f'{n} members x ' if n > 1 else ''}{cfg.ranker_epochs - cfg.start_epochs} epochs, final "
                f"training loss {last_loss:.4f}, best epoch's val Kendall tau {mean_tau(run.best_rows)}; "
                f"ckp_best.pth holds {best}; one line per epoch in train.log")


def mean_tau(rows) -> str:
    """The mean validation Kendall tau of monitor rows, as the run summaries print it."""
    taus = np.array([r.get("val_kendalltau", np.nan) for r in rows], float)
    return "n/a (no validation cells)" if not np.isfinite(taus).any() else f"{np.nanmean(taus):.4f}"


def _is_store(x) -> bool:
    return isinstance(x, (str, Path)) or (hasattr(x, "data") and hasattr(x, "n"))

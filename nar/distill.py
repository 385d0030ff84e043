"""Distillation of a ranker ensemble into one network (the ``distill`` config section).

An ensemble of k members costs k forward passes per cell, which is what scoring a whole space
(423,624 NB101 cells) spends its time on. After the members are trained, one student network
learns to reproduce the ensemble's two outputs, its mean score and its mean tier
probabilities, on up to ``distill.cells`` cells of the training store drawn with
``distill.seed``. The training cells are always among them. Only the ensemble's predictions
are read for those cells, never an accuracy, so the held-out cells remain held out: their
features are seen, as in the pre-training, but their labels are not.

The student starts as a copy of the first member, so it starts close to the ensemble (a start
from the average of the members' weights did worse: docs/results.md). It is
trained with Adam and a cosine learning rate on the score's mean squared error, divided by
the variance of the ensemble's scores, plus the KL divergence of its tier probabilities from
the ensemble's. Its tier embeddings are then recomputed on the training cells with their true
tiers, as every member's are. The ranker keeps the student alone, so a checkpoint holds one
network.
"""
from __future__ import annotations

import copy
import logging
import math

import numpy as np
import torch
import torch.nn.functional as F

from nar.console import DETAIL
from nar.predict import summed_outputs
from pipeline.errors import NarError

log = logging.getLogger(__name__)


def distill_rows(n_store: int, train_rows, cells: int, seed: int) -> np.ndarray:
    """Sorted store rows to distil on: every training row, plus rows drawn with ``seed``
    without replacement, up to ``cells`` in all (all rows when the store has fewer)."""
    train_rows = np.unique(np.asarray(train_rows, np.int64))
    if cells >= n_store:
        return np.arange(n_store, dtype=np.int64)
    rest = np.setdiff1d(np.arange(n_store, dtype=np.int64), train_rows, assume_unique=True)
    extra = max(0, cells - len(train_rows))
    drawn = np.random.default_rng(seed).choice(rest, size=min(extra, len(rest)), replace=False)
    return np.sort(np.concatenate([train_rows, drawn]))


@torch.no_grad()
def ensemble_targets(members, x: torch.Tensor, batch_size: int = 1024):
    """(mean tier probabilities (n, n_tier), mean score (n,)) of ``members`` on ``x``."""
    for m in members:
        m.eval()
    outs = [summed_outputs(members, [x[i:i + batch_size]]) for i in range(0, len(x), batch_size)]
    return torch.cat([p for p, _ in outs]) / len(members), torch.cat([s for _, s in outs]) / len(members)


def distill(members, dcfg, x: torch.Tensor, train_x: torch.Tensor, train_tiers: torch.Tensor,
            progress=None):
    """One student network trained to reproduce the ensemble ``members`` on the cells ``x``
    (features, float32, on the members' device); ``train_x`` / ``train_tiers`` (1..n_tier) give
    its tier embeddings. ``dcfg`` is the config's DistillConfig. ``progress``: a bar
    (``update(n)``) that advances one step per epoch."""
    target_p, target_s = ensemble_targets(members, x)
    var = float(target_s.var()) if len(target_s) > 1 else 1.0
    var = var if var > 1e-12 else 1.0
    student = copy.deepcopy(members[0])
    student.train()
    opt = torch.optim.Adam(student.parameters(), lr=dcfg.lr)
    gen = torch.Generator().manual_seed(dcfg.seed)
    n, bs = len(x), max(1, min(dcfg.batch_size, len(x)))
    per_epoch = math.ceil(n / bs)
    total, step = dcfg.epochs * per_epoch, 0
    for epoch in range(dcfg.epochs):
        perm = torch.randperm(n, generator=gen).to(x.device)
        tot = 0.0
        for i in range(0, n, bs):
            idx = perm[i:i + bs]
            for g in opt.param_groups:
                g["lr"] = dcfg.lr * 0.5 * (1 + math.cos(math.pi * step / total))
            step += 1
            logits, score, _ = student(x[idx])
            loss = F.mse_loss(score.float(), target_s[idx]) / var + F.kl_div(
                F.log_softmax(logits.float(), -1), target_p[idx], reduction="batchmean")
            if not torch.isfinite(loss):
                raise NarError(f"distillation stopped: the loss is {loss.item()} at epoch {epoch + 1}; no "
                               "checkpoint was written. Lower distill.lr or set distill.cells 0")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            tot += loss.item() * len(idx)
        log.log(DETAIL, "distillation epoch %d/%d: loss %.4f", epoch + 1, dcfg.epochs, tot / n)
        if progress is not None:
            progress.update(1)
    student.eval()
    student.recompute_tier_emb(train_x, train_tiers)
    return student

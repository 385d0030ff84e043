"""Config sections of the stages before and after training the ranker: pre-training the
encoder on unlabelled cells (``pretrain:``, :mod:`nar.pretrain`) and distilling the trained
ensemble into one network (``distill:``, :mod:`nar.distill`). Part of :class:`nar.config.Config`."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class PretrainConfig:
    """Self-supervised pre-training of the gated graph encoder on unlabelled cells (ours,
    nar/pretrain.py); cached beside the store."""
    steps: int = 0                # 0 = no pre-training
    cells: int = 100000           # at most this many cells, drawn with ``seed`` from the store
    batch_size: int = 256
    lr: float = 1.0e-3
    seed: int = 0
    store: str = ""               # store or NAR JSON of the same space whose cells are used; "" = the training store


@dataclass
class DistillConfig:
    """Distillation of the ensemble into one network after training (ours, nar/distill.py): the
    student reproduces the ensemble's scores and tier probabilities on store cells (no accuracy
    read), and the ranker keeps the student alone, so scoring costs one network."""
    cells: int = 0                # 0 = off; else at most this many cells of the training store
                                  # (the training cells included)
    epochs: int = 5
    batch_size: int = 64
    lr: float = 1.0e-3
    seed: int = 0

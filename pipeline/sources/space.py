"""The whole NAS-Bench-101 space as a source: structure, FLOPs and params, no metrics (null).

Cells come from ``nb101_space.load_space()`` (423,624, sorted by hash; built once and cached
by that module). This is the scale test of the ingest stage.
"""
from __future__ import annotations

import logging

import numpy as np

from pipeline.sources import METRICS_101, Nb101Rows, empty_metrics

log = logging.getLogger(__name__)


def read(limit: int | None = None) -> Nb101Rows:
    from pipeline.nb101_space import load_space

    space = load_space()
    n = len(space.hashes) if limit is None else min(limit, len(space.hashes))
    log.info("NAS-Bench-101 space: %d cells", n)
    return Nb101Rows(np.asarray(space.hashes[:n]), np.asarray(space.adjacency[:n]),
                     np.asarray(space.ops[:n]), np.asarray(space.n_vertices[:n]),
                     empty_metrics(METRICS_101, n), None)

"""The ReNAS feature tensors (docs/method.md, section 3), vectorised over a chunk of cells.

NB101 -> (N, 19, 7, 7): channel 0 = A[i, j] x type code of vertex j; then per module a FLOPs
channel (A[i, j] x FLOPs_j / 1e7) and a params channel (A[i, j] x params_j / 1e5). Cells with
fewer than 7 vertices get zero rows/columns inserted before the output vertex (index 6).
NB201 -> (N, 31, 4, 4): channel 0 = ``cell_adjacency``, then per cell a FLOPs patch and a
params patch with edge (i, j)'s value at (i, j), unscaled.
"""
from __future__ import annotations

import numpy as np

from pipeline.nb201_space import EDGES_201
from pipeline.records import DATASETS_201, arrays_101, arrays_201

ENCODER_VERSION = 1
FLOPS_SCALE_101, PARAMS_SCALE_101 = 1e7, 1e5


def tensor_order_101(n_vertices: np.ndarray) -> np.ndarray:
    """(N, 7) source vertex for each tensor position: 0..n-2 in place, then the padding
    vertices n..6 (all zero), and the output vertex n-1 at position 6."""
    n = np.asarray(n_vertices, np.int64)[:, None]
    t = np.arange(7)[None, :]
    return np.where(t < n - 1, t, np.where(t < 6, t + 1, n - 1))


def features_101(adjacency, ops, n_vertices, vertex_flops, vertex_params) -> np.ndarray:
    """ReNAS tensors (N, 19, 7, 7) float32 from cells in their own vertex order: adjacency
    (N,7,7), ops (N,7) type codes, n_vertices (N,), vertex_flops / vertex_params (N,9,7)."""
    src = tensor_order_101(n_vertices)
    rows = np.arange(len(src))[:, None, None]
    a = np.asarray(adjacency, np.float64)[rows, src[:, :, None], src[:, None, :]]  # (N,7,7)
    codes = np.take_along_axis(np.asarray(ops, np.float64), src, axis=1)          # (N,7)
    flops = np.take_along_axis(np.asarray(vertex_flops, np.float64), src[:, None, :], axis=2)
    params = np.take_along_axis(np.asarray(vertex_params, np.float64), src[:, None, :], axis=2)
    out = np.empty((len(src), 19, 7, 7), np.float32)
    out[:, 0] = a * codes[:, None, :]
    out[:, 1::2] = a[:, None] * (flops / FLOPS_SCALE_101)[:, :, None, :]
    out[:, 2::2] = a[:, None] * (params / PARAMS_SCALE_101)[:, :, None, :]
    return out


def features_201(adjacency, flops_patches, params_patches) -> np.ndarray:
    """ReNAS tensors (N, 31, 4, 4) float32 from cell_adjacency (N,4,4) and per-cell edge
    values (N,15,6) in edge order 0->1, 0->2, 1->2, 0->3, 1->3, 2->3."""
    n = len(adjacency)
    rows, cols = np.array(EDGES_201).T
    out = np.zeros((n, 31, 4, 4), np.float32)
    out[:, 0] = adjacency
    fl, pa = out[:, 1::2], out[:, 2::2]
    fl[:, :, rows, cols] = flops_patches
    pa[:, :, rows, cols] = params_patches
    return out


def encode_chunk_101(records: list, start: int) -> dict:
    """Validate and encode NB101 records; returns arrays keyed by their store names."""
    a = arrays_101(records, start)
    feats = features_101(a["adjacency"], a["ops"], a["n_vertices"], a["vertex_flops"], a["vertex_params"])
    out = {k: a[k] for k in ("key", "index", "adjacency", "ops", "n_vertices")}
    d = "data/cifar10/"
    out[d + "features"] = feats
    out[d + "flops"], out[d + "params"] = a["flops"], a["params"]
    out[d + "val_acc"] = (a["val_acc"] * 100).astype(np.float32)  # fractions -> percent
    out[d + "test_acc"] = (a["test_acc"] * 100).astype(np.float32)
    out[d + "training_time"] = a["training_time"].astype(np.float32)
    return out


def encode_chunk_201(items: list, start: int = 0) -> dict:
    """Validate and encode NB201 ``(key, record)`` pairs; arrays keyed by their store names."""
    a = arrays_201(items)
    out = {k: a[k] for k in ("key", "index", "adjacency", "op_counts")}
    for ds in DATASETS_201:
        d = f"data/{ds}/"
        out[d + "features"] = features_201(a["adjacency"], a[f"{ds}/flops_patches"], a[f"{ds}/params_patches"])
        out[d + "flops"], out[d + "params"] = a[f"{ds}/flops"], a[f"{ds}/params"]
        for name in ("val_acc", "test_acc", "latency"):
            out[d + name] = a[f"{ds}/{name}"].astype(np.float32)
    return out


"""The NAS-Bench-201 cell space: architecture strings, op tuples, adjacency and indices.

A cell is 6 op indices (``OPS_201``: none 0, skip_connect 1, nor_conv_1x1 2, nor_conv_3x3 3,
avg_pool_3x3 4) on the edges ``EDGES_201`` = (0->1, 0->2, 1->2, 0->3, 1->3, 2->3), the order
of the string ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``.

Two orders of the 15,625 cells exist:
- the *canonical code* (``arch_code``/``all_archs``): the base-5 number of the 6 ops in string
  order with the FIRST edge as the least significant digit; computable from the ops alone;
- NAS-Bench-201's official ``arch_index``: a fixed permutation that only the benchmark's
  files carry (checked on ``nb201.csv.gz``: it matches no base-5 digit/op ordering).
  ``official_index_table`` builds the code -> official index map from (index, string) pairs
  of such a file, and ``arch_index`` applies it.
"""
from __future__ import annotations

import numpy as np

from cache.store import OPS_201
from pipeline.errors import NarError

EDGES_201 = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))
N_OPS_201 = len(OPS_201)
N_ARCHS_201 = N_OPS_201 ** len(EDGES_201)
OP_INDEX_201 = {name: i for i, name in enumerate(OPS_201)}
_DIGITS = N_OPS_201 ** np.arange(len(EDGES_201), dtype=np.int64)
_EXAMPLE = "|op~0|+|op~0|op~1|+|op~0|op~1|op~2|"


def parse_arch(s: str) -> tuple[int, ...]:
    """``|a~0|+|b~0|c~1|+|d~0|e~1|f~2|`` -> the 6 op indices in string edge order."""
    if not isinstance(s, str):
        raise NarError(f"architecture string {s!r} is not a string; use the form {_EXAMPLE}")
    nodes = s.split("+")
    if len(nodes) != 3:
        raise NarError(f"architecture string {s!r} has {len(nodes)} node groups, expected 3; "
                       f"use the form {_EXAMPLE}")
    ops = []
    for node, group in enumerate(nodes, start=1):
        if len(group) < 2 or group[0] != "|" or group[-1] != "|":
            raise NarError(f"architecture string {s!r}: node {node} group {group!r} must start "
                           f"and end with '|'; use the form {_EXAMPLE}")
        tokens = group[1:-1].split("|")
        if len(tokens) != node:
            raise NarError(f"architecture string {s!r}: node {node} has {len(tokens)} inputs, "
                           f"expected {node}; use the form {_EXAMPLE}")
        for src, token in enumerate(tokens):
            name, sep, idx = token.partition("~")
            if not sep or idx != str(src):
                raise NarError(f"architecture string {s!r}: token {token!r} of node {node} must "
                               f"name input node {src} as '<op>~{src}'")
            if name not in OP_INDEX_201:
                raise NarError(f"architecture string {s!r}: unknown op {name!r}; "
                               f"known ops are {', '.join(OPS_201)}")
            ops.append(OP_INDEX_201[name])
    return tuple(ops)


def check_ops6(ops6) -> np.ndarray:
    """Validate integer (..., 6) op indices in 0..4; returns them as an array."""
    a = np.asarray(ops6)
    if a.shape[-1:] != (len(EDGES_201),) or not np.issubdtype(a.dtype, np.integer):
        raise NarError(f"NB201 ops array of shape {a.shape} and dtype {a.dtype}: expected integer "
                       f"(..., 6) op indices in string edge order")
    if a.size and (a.min() < 0 or a.max() >= N_OPS_201):
        raise NarError(f"NB201 ops array holds op index {int(a.min()) if a.min() < 0 else int(a.max())}: "
                       f"valid indices are 0..{N_OPS_201 - 1} ({', '.join(OPS_201)})")
    return a


def format_arch(ops6) -> str:
    """6 op indices in string edge order -> the official architecture string."""
    a = check_ops6(ops6)
    if a.shape != (len(EDGES_201),):
        raise NarError(f"format_arch takes one cell of 6 op indices, got shape {a.shape}")
    names = [OPS_201[int(o)] for o in a]
    groups, k = [], 0
    for node in (1, 2, 3):
        groups.append("|" + "|".join(f"{names[k + src]}~{src}" for src in range(node)) + "|")
        k += node
    return "+".join(groups)


def cell_adjacency(ops6) -> np.ndarray:
    """NAR's ``cell_adjacency``: 4x4 int8 (or (N, 4, 4)) with the op index of edge i->j."""
    a = check_ops6(ops6)
    adj = np.zeros(a.shape[:-1] + (4, 4), dtype=np.int8)
    for e, (i, j) in enumerate(EDGES_201):
        adj[..., i, j] = a[..., e]
    return adj


def ops_from_adjacency(adj) -> np.ndarray:
    """Inverse of :func:`cell_adjacency`: (..., 4, 4) -> (..., 6) int8 op indices."""
    adj = np.asarray(adj)
    if adj.shape[-2:] != (4, 4):
        raise NarError(f"NB201 cell_adjacency of shape {adj.shape}: expected (..., 4, 4)")
    return np.stack([adj[..., i, j] for i, j in EDGES_201], axis=-1).astype(np.int8)


def all_archs() -> np.ndarray:
    """All 15,625 cells as (15625, 6) int8, row i holding the cell whose canonical code is i."""
    codes = np.arange(N_ARCHS_201, dtype=np.int64)
    return ((codes[:, None] // _DIGITS[None, :]) % N_OPS_201).astype(np.int8)


def arch_code(ops6_array) -> np.ndarray:
    """Canonical code (base 5, first edge least significant) of (..., 6) op indices."""
    a = check_ops6(ops6_array).astype(np.int64)
    return a @ _DIGITS


def official_index_table(indices, arch_strings) -> np.ndarray:
    """(15625,) int32 map canonical code -> official NAS-Bench-201 index, from the
    (arch_index, arch_str) pairs of a benchmark file; every cell must appear exactly once."""
    indices = np.asarray(indices, dtype=np.int64)
    if len(indices) != len(arch_strings) or len(indices) != N_ARCHS_201:
        raise NarError(f"official index table needs {N_ARCHS_201} (index, string) pairs, got "
                       f"{len(indices)} indices and {len(arch_strings)} strings")
    codes = arch_code(np.array([parse_arch(s) for s in arch_strings], dtype=np.int8))
    table = np.full(N_ARCHS_201, -1, dtype=np.int32)
    table[codes] = indices
    if (table < 0).any() or len(np.unique(table)) != N_ARCHS_201 or table.max() >= N_ARCHS_201:
        missing = np.flatnonzero(table < 0)[:3].tolist()
        raise NarError(f"official index table is not a permutation of 0..{N_ARCHS_201 - 1} "
                       f"(e.g. codes {missing} missing or indices repeated); check the source file")
    return table


def arch_index(ops6_array, official: np.ndarray | None = None) -> np.ndarray:
    """Index of each (..., 6) cell: the canonical code, or, given ``official`` from
    :func:`official_index_table`, NAS-Bench-201's official index."""
    codes = arch_code(ops6_array)
    return codes if official is None else np.asarray(official)[codes]


def op_counts(ops6_array) -> np.ndarray:
    """(N, 5) int16: how many of the 6 edges carry each op."""
    a = check_ops6(ops6_array)
    a = a.reshape(-1, len(EDGES_201))
    counts = np.zeros((len(a), N_OPS_201), dtype=np.int16)
    for op in range(N_OPS_201):
        counts[:, op] = (a == op).sum(axis=1)
    return counts

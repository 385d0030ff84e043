"""NAS-Bench-101 as a :class:`SearchSpace`: 423,624 cells of up to 7 vertices and 9 edges.

Cell validation, pruning, the module hash, the 64-bit fingerprint and the enumeration live in
:mod:`pipeline.nb101_space`, the costs in :mod:`pipeline.nb101_cost`; this module binds them
and the search-side operations (draw, mutate, look up, one-hot) to the space interface.
A batch of cells in search is (adjacency (B,7,7) bool, hash labels (B,7), present (B,7),
output vertex (B,)): unpruned draws, pruned and fingerprinted on look-up, so isomorphic cells
meet the same store row.
"""
from __future__ import annotations

import numpy as np

from cache.store import OP_NAMES_101
from pipeline.errors import NarError
from pipeline.nb101_space import (INPUT, MAX_EDGES, MAX_VERTICES, N_CELLS, OPS, OUTPUT,
                                  _int_fingerprints, module_hash, prune_batch, row_to_cell)
from pipeline.spaces.base import SearchSpace
from pipeline.spaces.registry import register_space

# store op codes (input 1, conv1x1 2, conv3x3 3, maxpool 4, output 5) -> NAS-Bench-101 hash labels
_LABEL_OF_CODE = np.array([0, -1, 1, 0, 2, -2], np.int64)
INTERIOR_OP_CODES_101 = (2, 3, 4)  # conv1x1, conv3x3, maxpool (see cache.store.OP_CODES_101)


def store_labels_101(ops: np.ndarray, label_of_code: np.ndarray = _LABEL_OF_CODE):
    """(labels, present, out_vertex) of NB101 store rows (``ops`` codes, 0 = no vertex)."""
    ops = np.asarray(ops, np.int64)
    present = ops > 0
    return label_of_code[ops], present, present.sum(1) - 1


def fingerprint_101(adj: np.ndarray, labels: np.ndarray, present: np.ndarray, radix: int = 8) -> np.ndarray:
    """64-bit isomorphism-invariant fingerprint of pruned NB101 cells, vectorised: adj (B,7,7)
    0/1, labels (B,7) hash labels (-1 input, -2 output, 0/1/2 op), present (B,7) bool. The
    refinement of :func:`pipeline.nb101_space._int_fingerprints` (the module hash's, with
    splitmix64), over the present vertices only."""
    labels = np.asarray(labels, np.int64)
    return _int_fingerprints(np.asarray(adj), labels[:, None, :], np.asarray(present, bool), radix)[:, 0]


def draw_cells_101(rng, n: int, p_vertices=None, v_max: int = MAX_VERTICES, max_edges: int = MAX_EDGES,
                   n_ops: int = len(OPS)):
    """``n`` random NB101 cells: vertex count (2..7, from ``p_vertices`` or uniform), a random
    predecessor and op for each vertex, a random successor for each vertex left without one,
    then random extra edges up to 9 in all (more than 9 -> not in the space). Unpruned;
    returns (adj (n,7,7) bool, labels (n,7), present (n,7), out_vertex (n,)). The limits and the
    number of interior ops are parameters (a user's cell space draws the same way)."""
    nv = rng.choice(np.arange(2, v_max + 1), size=n, p=p_vertices)
    present = np.arange(v_max)[None, :] < nv[:, None]
    adj = np.zeros((n, v_max, v_max), bool)
    for v in range(1, v_max):  # a random predecessor for each vertex
        pred = (rng.random(n) * v).astype(np.int64)
        sel = v < nv
        adj[np.flatnonzero(sel), pred[sel], v] = True
    for v in range(v_max - 2, -1, -1):  # a random successor for each vertex without one (no dead ends)
        sel = (v < nv - 1) & ~adj[:, v].any(1)
        succ = v + 1 + (rng.random(n) * (nv - 1 - v)).astype(np.int64)
        adj[np.flatnonzero(sel), v, succ[sel]] = True
    iu, ju = np.triu_indices(v_max, 1)
    free = (~adj[:, iu, ju]) & (ju[None, :] < nv[:, None])
    n_edges = adj.sum((1, 2))
    n_extra = np.minimum((rng.random(n) * np.maximum(max_edges - n_edges + 1, 0)).astype(np.int64),
                         free.sum(1))
    keyed = np.where(free, rng.random((n, len(iu))), 2.0)
    rank = np.argsort(np.argsort(keyed, 1), 1)
    adj[:, iu, ju] |= rank < n_extra[:, None]
    labels = rng.integers(0, n_ops, (n, v_max))
    labels[:, 0] = -1
    labels[np.arange(n), nv - 1] = -2
    return adj, labels, present, nv - 1


def padded_cells_101(adj: np.ndarray, ops: np.ndarray, n_vertices: np.ndarray):
    """Move each cell's output vertex to index 6 (V - 1 for V-vertex cells; zero rows/columns
    inserted before it), as in the ReNAS tensor. Returns the (N, V, V) adjacency and (N, V)
    op codes."""
    n, v = len(adj), adj.shape[-1]
    nv = n_vertices.astype(np.int64)
    if n and (nv.min() < 2 or nv.max() > v):
        bad = int(np.flatnonzero((nv < 2) | (nv > v))[0])
        raise NarError(f"row {bad} has {nv[bad]} vertices; a cell has 2..{v} (rebuild the store)")
    pos = np.arange(v)[None, :]
    src = np.where(pos < (nv - 1)[:, None], pos, v)  # v = an all-zero padding vertex
    src[:, v - 1] = nv - 1
    adj8 = np.zeros((n, v + 1, v + 1), np.int8)
    adj8[:, :v, :v] = adj
    ops8 = np.zeros((n, v + 1), np.int8)
    ops8[:, :v] = ops
    rows = np.arange(n)[:, None]
    return adj8[rows[:, :, None], src[:, :, None], src[:, None, :]], ops8[rows, src]


@register_space
class NB101Space(SearchSpace):
    name = "nasbench101"
    aliases = ("101", "nb101")
    bench = "101"
    title = "NAS-Bench-101"
    config_names = ("nasbench",)
    paper_config_file = "config/config.yml"
    paper_overrides = {}
    max_vertices = MAX_VERTICES
    max_edges = MAX_EDGES
    ops = (INPUT, *OPS, OUTPUT)
    size = N_CELLS
    datasets = ("cifar10",)
    feature_shape = (19, MAX_VERTICES, MAX_VERTICES)
    key_bytes = 32
    key_field = "unique_hash"
    augments = ("none", "topo")
    json_keyed = False
    json_marker = b'"unique_hash"'
    published_sha256 = "ff051bbe69e50490f8092dfc5d020675ed44e932d13619da0b6cc941f77b9c32"
    published_names = ("nasbench_only108_with_vertex_flops_and_params.json",)
    source_keywords = ("space",)

    # ------------------------------------------------------------------ data preparation
    def readers(self) -> dict:
        from pipeline.sources import csv_table, space, tfrecord
        return {"csv": lambda s, limit, epochs: csv_table.read_101(s, limit=limit),
                "tfrecord": lambda s, limit, epochs: tfrecord.read(s, epochs=epochs, limit=limit),
                "space": lambda s, limit, epochs: space.read(limit=limit)}

    def json_records(self, rows):
        from pipeline.nar_json import iter_records_101
        return iter_records_101(rows), False

    def encode_chunk(self, records, start=0):
        from pipeline.encode import encode_chunk_101
        return encode_chunk_101(records, start)

    # cell DAG data used by the search methods below (a user's cell space sets its own)
    label_of_code = _LABEL_OF_CODE          # store op code -> hash label (-1 input, -2 output)
    interior_codes = INTERIOR_OP_CODES_101  # store codes of the interior ops, in one-hot order
    op_names = OP_NAMES_101                 # store op code -> op name
    radix = 8                               # fingerprint seed radix (> max degree, labels + 2)

    # ------------------------------------------------------------------ cells
    def key(self, cell) -> str:
        matrix, ops = cell
        return module_hash(matrix, ops)

    def cell(self, pool, row):
        row = int(row)
        return row_to_cell(pool.adjacency[row], pool.ops[row], pool.structure[row])

    # ------------------------------------------------------------------ search
    def pool_arrays(self, store) -> dict:
        return {"structure": np.asarray(store.array("n_vertices"), np.int64),
                "adjacency": np.asarray(store.array("adjacency")), "ops": np.asarray(store.array("ops"))}

    def pool_cells(self, pool):
        labels, present, out = store_labels_101(pool.ops, self.label_of_code)
        return pool.adjacency.astype(bool), labels, present, out

    def row_codes(self, pool):
        labels, present, _ = store_labels_101(pool.ops, self.label_of_code)  # store rows are pruned
        return fingerprint_101(pool.adjacency, labels, present, self.radix)

    def codes(self, pool, cells):
        """Prune the (unpruned) cells, then fingerprint; invalid where the input cannot reach
        the output or more than 9 edges remain."""
        adj, labels, present, out_vertex = cells
        adj, keep, ok = prune_batch(np.asarray(adj, bool), present, out_vertex)
        ok &= adj.sum((1, 2)) <= self.max_edges
        return fingerprint_101(adj, labels, keep, self.radix), ok

    def structure_counts(self, structure, tiers, n_tier):
        """Per tier, the count of each vertex count 2..7: (n_tier, 6)."""
        k = self.max_vertices - 1
        return np.stack([np.bincount(structure[tiers == t] - 2, minlength=k)[:k] for t in range(1, n_tier + 1)])

    def sampler_prior(self, pool):
        """Unguided vertex counts follow the pool (mostly 7 vertices)."""
        c = self.structure_counts(pool.structure[np.flatnonzero(pool.allowed)],
                                  np.ones(int(pool.allowed.sum()), np.int64), 1)[0].astype(float)
        return c / c.sum()

    def draw(self, rng, n, guide, prior, kl_eps):
        p = prior
        if guide is not None:
            p = guide.astype(float)
            p /= p.sum()
        return draw_cells_101(rng, n, p, self.max_vertices, self.max_edges, len(self.interior_codes))

    def mutants(self, pool, row):
        """Cells that differ from ``row`` by one edge of the adjacency matrix or one interior
        op (cells not in the pool are dropped)."""
        nv = int(pool.structure[row])
        adj = pool.adjacency[row].astype(bool)
        labels, present, out = store_labels_101(pool.ops[row][None], self.label_of_code)
        n_ops = len(self.interior_codes)
        iu, ju = np.triu_indices(nv, 1)
        n_e = len(iu)
        interior = np.arange(1, nv - 1)
        n_c = (n_ops - 1) * len(interior)
        a = np.repeat(adj[None], n_e + n_c, 0)
        a[np.arange(n_e), iu, ju] ^= True
        lab = np.repeat(labels, n_e + n_c, 0)
        v = np.repeat(interior, n_ops - 1)
        lab[n_e + np.arange(n_c), v] = (lab[0, v] + np.tile(np.arange(1, n_ops), len(interior))) % n_ops
        ok_edges = a.sum((1, 2)) <= self.max_edges
        rows = self.lookup(pool, (a, lab, np.repeat(present, len(a), 0), np.repeat(out, len(a))))
        rows = np.where(ok_edges, rows, -1)
        rows = rows[rows >= 0]
        return np.unique(rows[pool.allowed[rows] & (rows != row)])

    def describe(self, pool, row):
        row = int(row)
        nv = int(pool.structure[row])
        return {"matrix": pool.adjacency[row, :nv, :nv].astype(int).tolist(),
                "ops": [self.op_names[int(o)] for o in pool.ops[row, :nv]]}

    def flat_features(self, store, idx):
        """The 21 upper-triangular adjacency entries of the cell padded so that the output is
        vertex 6, then a one-hot (conv1x1, conv3x3, maxpool) for interior vertices 1..5 (all
        zero for padding): F = 36."""
        adj, ops = padded_cells_101(store.array("adjacency")[idx], store.array("ops")[idx],
                                    store.array("n_vertices")[idx])
        iu, ju = np.triu_indices(self.max_vertices, 1)
        edge = adj[:, iu, ju].astype(np.float32)
        inner = ops[:, 1:self.max_vertices - 1]
        onehot = (inner[:, :, None] == np.array(self.interior_codes)[None, None, :])
        return np.concatenate([edge, onehot.reshape(len(idx), -1).astype(np.float32)], axis=1)


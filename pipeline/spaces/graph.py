"""NAS-Bench-Graph as a :class:`SearchSpace`: 26,206 GNN cells of 4 computing nodes.

Each computing node reads one earlier vertex and applies one of 9 GNN ops (gat, gcn, gin, cheb,
sage, arma, graph, fc, skip; proteins uses gcn, sage, arma, fc, skip); leaves feed the output.
A NAR JSON file and its store hold one dataset of the benchmark (``nar-cli build --bench graph
--source nasbenchgraph --dataset cora``), in the store's ``data/default`` group.

The cell functions (canonical key, raw form, store arrays) live in
:mod:`pipeline.spaces.graph_cells`, the reader in :mod:`pipeline.sources.nasbenchgraph`.
A cell in search is its raw form, 8 integers: the parent of nodes 1..4 (0 = input), then their
op indices; draws of any of the 24 parent lists are mapped to the canonical key, so cells
the benchmark counts once meet one store row. Feature tensor: (3, 6, 6), ops on nodes (see
:func:`pipeline.spaces.graph_cells.features` and docs/method.md, section "NAS-Bench-Graph").
"""
from __future__ import annotations

import numpy as np

from pipeline.errors import NarError
from pipeline.spaces import graph_cells as gc
from pipeline.spaces.base import SearchSpace
from pipeline.spaces.registry import register_space

N = gc.N_NODES
# parent choices: node k (1..4) reads one of 0..k-1
_PARENT_SUPPORT = np.arange(N)[None, :] < np.arange(1, N + 1)[:, None]   # (4, 4) bool


@register_space
class GraphSpace(SearchSpace):
    name = "graph"
    aliases = ("nasbenchgraph", "nbg")
    bench = "graph"
    title = "NAS-Bench-Graph"
    config_names = ("graph",)
    paper_config_file = "config/graph.yml"
    paper_overrides = {"exp_name": "nar_graph", "space": "graph",
                       "ranker": {"n_arch_patch": 3, "d_patch": gc.N_VERTICES}}
    max_vertices = gc.N_VERTICES
    max_edges = 2 * N            # 4 node in-edges and at most 4 leaf -> output edges
    ops = gc.OPS_NBG
    size = gc.N_CELLS
    datasets = ("default",)
    feature_shape = (3, gc.N_VERTICES, gc.N_VERTICES)
    key_bytes = 48
    key_field = "key"
    augments = ("none",)
    json_keyed = False
    json_marker = b'"nbg_hash"'
    unique_index = True
    source_keywords = ("nasbenchgraph",)

    # ------------------------------------------------------------------ data preparation
    def readers(self) -> dict:
        from pipeline.sources import nasbenchgraph
        return {"nasbenchgraph": lambda s, limit, epochs, dataset=None: nasbenchgraph.read(s, dataset, limit),
                "bench": lambda s, limit, epochs, dataset=None: nasbenchgraph.read(s, dataset, limit)}

    def read_source(self, source, kind, limit=None, epochs=108, dataset=None):
        return self.readers()[kind](source, limit, epochs, dataset=dataset)

    def json_records(self, rows):
        return rows.records(), False

    def encode_chunk(self, records, start=0):
        return gc.encode_records(records, start, self.datasets[0])

    # ------------------------------------------------------------------ cells
    def key(self, cell) -> str:
        c = gc.check_raw(cell)[0]
        return gc.canonical_key(c[:N], c[N:])

    def cell(self, pool, row):
        return pool.structure[int(row)]

    # ------------------------------------------------------------------ search
    def pool_arrays(self, store) -> dict:
        return {"structure": gc.structure_of(store.array("adjacency"), store.array("ops")),
                "adjacency": None, "ops": None}

    def pool_cells(self, pool):
        return pool.structure

    def codes(self, pool, cells):
        return gc.codes_of(cells)

    def structure_counts(self, structure, tiers, n_tier):
        """Per tier, the count of each parent (columns 0..3, values 0..3) and op (columns
        4..7, values 0..8) of the ranked rows: (n_tier, 8, 9)."""
        s = np.asarray(structure, np.int64)
        return np.stack([np.stack([np.bincount(s[tiers == t, j], minlength=gc.N_OPS)[:gc.N_OPS]
                                   for j in range(2 * N)]) for t in range(1, n_tier + 1)])

    def sampler_prior(self, pool):
        """The ops the pool uses (proteins has 5): draws take only those."""
        used = np.zeros(gc.N_OPS, bool)
        used[np.unique(pool.structure[np.flatnonzero(pool.allowed), N:])] = True
        return used

    def draw(self, rng, n, guide, prior, kl_eps):
        """Each node's parent and op: uniform over the allowed values, or from the top tier's
        counts (``guide``) plus ``kl_eps``."""
        used = np.ones(gc.N_OPS, bool) if prior is None else np.asarray(prior, bool)
        support = np.concatenate([np.pad(_PARENT_SUPPORT, ((0, 0), (0, gc.N_OPS - N))),
                                  np.repeat(used[None], N, 0)])                      # (8, 9)
        p = support.astype(float)
        if guide is not None:
            p = p * (np.asarray(guide, float) + kl_eps)
        p /= p.sum(1, keepdims=True)
        u = rng.random((n, 2 * N, 1))
        return (u > np.cumsum(p, 1)[None]).sum(2).clip(0, gc.N_OPS - 1)

    def mutants(self, pool, row):
        """Cells that differ from ``row`` in one node's parent or one node's op."""
        cell = pool.structure[int(row)]
        cand = []
        for k in range(N):
            for p in range(k + 1):
                if p != cell[k]:
                    c = cell.copy()
                    c[k] = p
                    cand.append(c)
            for o in range(gc.N_OPS):
                if o != cell[N + k]:
                    c = cell.copy()
                    c[N + k] = o
                    cand.append(c)
        rows = self.lookup(pool, np.array(cand))
        rows = rows[rows >= 0]
        return np.unique(rows[pool.allowed[rows] & (rows != row)])

    def describe(self, pool, row):
        c = pool.structure[int(row)]
        return {"link": c[:N].tolist(), "ops": [gc.OPS_NBG[int(o)] for o in c[N:]]}

    def flat_features(self, store, idx):
        """The 15 upper-triangular adjacency entries over input, nodes 1..4 and output, then a
        one-hot of the op of nodes 1..4: F = 15 + 36 = 51."""
        adj = np.asarray(store.array("adjacency")[idx])
        codes = np.asarray(store.array("ops")[idx], np.int64)
        if codes.size and (codes[:, 1:-1].min() < 2 or codes[:, 1:-1].max() > gc.N_OPS + 1):
            raise NarError(f"store {store.path}: NAS-Bench-Graph op code outside 2..{gc.N_OPS + 1} (rebuild the store)")
        iu, ju = np.triu_indices(gc.N_VERTICES, 1)
        onehot = codes[:, 1:-1, None] - 2 == np.arange(gc.N_OPS)[None, None, :]
        return np.concatenate([adj[:, iu, ju].astype(np.float32),
                               onehot.reshape(len(idx), -1).astype(np.float32)], 1)

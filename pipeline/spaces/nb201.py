"""NAS-Bench-201 as a :class:`SearchSpace`: 15,625 cells of 6 edge ops on a fixed 4-node DAG.

The cell functions (parse/format of architecture strings, ``cell_adjacency``, codes) live in
:mod:`pipeline.nb201_space`, the costs in :mod:`pipeline.nb201_cost`; this module binds them
and the search-side operations (draw, mutate, look up, one-hot) to the space interface.
A cell in search is its (6,) op indices in string edge order (``EDGES_201``).
"""
from __future__ import annotations

import numpy as np

from cache.store import OPS_201
from pipeline.errors import NarError
from pipeline.nb201_space import EDGES_201, N_ARCHS_201, N_OPS_201, arch_code, format_arch
from pipeline.spaces.base import SearchSpace
from pipeline.spaces.registry import register_space

N_EDGES_201 = len(EDGES_201)

# Keys of the paper's NB201 config that differ from the NB101 defaults of ``nar.config.Config``.
PAPER_201 = {
    "exp_name": "nar_nasbench201", "space": "nasbench201", "network_type": "cifar10",
    "train_size": 1000, "val_size": 256, "train_batch_size": 128, "val_batch_size": 128,
    "ranker_epochs": 55, "sampler_epochs": 105, "bins": 5, "loss_factor": 1.0,
    "ranker": {"n_arch_patch": 31, "d_patch": 4, "d_patch_vec": 128, "d_model": 128,
               "d_ffn_inner": 512, "d_tier_prj_inner": 256, "d_k": 32, "d_v": 32,
               "d_val_acc_prj_inner": 1024},
    "optimizer": {"beta2": 0.99, "weight_decay": 1.0e-2},
    "lr_scheduler": {"lr_mul": 0.07, "n_warmup_steps": 30},
    "sampler": {"flops_kl_thred": 0.35, "params_kl_thred": 0.3, "edges_kl_thred": 1.5,
                "sample_size": 128, "search_size": 128, "force_uniform": True},
}


def edge_ops(adjacency) -> np.ndarray:
    """(N, 6) int64 op indices of (N, 4, 4) ``cell_adjacency`` rows, in string edge order."""
    adj = np.asarray(adjacency)
    return np.stack([adj[:, i, j] for i, j in EDGES_201], 1).astype(np.int64)


@register_space
class NB201Space(SearchSpace):
    name = "nasbench201"
    aliases = ("201", "nb201")
    bench = "201"
    title = "NAS-Bench-201"
    config_names = ("nasbench201",)
    paper_config_file = "config/config201.yml"
    paper_overrides = PAPER_201
    max_vertices = 4
    max_edges = N_EDGES_201
    ops = tuple(OPS_201)
    size = N_ARCHS_201
    datasets = ("cifar10", "cifar100", "imagenet16")
    feature_shape = (31, 4, 4)
    key_bytes = 96  # longest NB201 arch_str is 95 characters
    key_field = "arch_str"
    json_keyed = True
    json_marker = b'"cell_adjacency"'
    unique_index = True
    published_sha256 = "e462fa2dbff708a0d8e3f8c2bdcd5d843355d9db01cb62c5532331ad0b8ca7af"
    source_keywords = ("analognas",)

    # ------------------------------------------------------------------ data preparation
    def readers(self) -> dict:
        from pipeline.sources import analognas, csv_table, nb201_pth
        return {"csv": lambda s, limit, epochs: csv_table.read_201(s, limit=limit),
                "pth": lambda s, limit, epochs: nb201_pth.read(s, limit=limit),
                "analognas": lambda s, limit, epochs: analognas.read(limit=limit)}

    def json_records(self, rows):
        from pipeline.nar_json import iter_records_201
        return iter_records_201(rows), True

    def encode_chunk(self, records, start=0):
        from pipeline.encode import encode_chunk_201
        return encode_chunk_201(records, start)

    # ------------------------------------------------------------------ cells
    def key(self, cell) -> str:
        return format_arch(np.asarray(cell))

    def cell(self, pool, row):
        return pool.structure[int(row)]

    # ------------------------------------------------------------------ search
    def pool_arrays(self, store) -> dict:
        return {"structure": edge_ops(store.array("adjacency")), "adjacency": None, "ops": None}

    def pool_cells(self, pool):
        return pool.structure

    def codes(self, pool, ops6):
        code = arch_code(np.asarray(ops6, np.int64)).astype(np.uint64)
        return code, np.ones(len(code), bool)

    def equivalence_codes(self, pool):
        """Classes of the same network: dead edges removed, skips and sums as wiring, op-instance
        graphs compared up to isomorphism (:mod:`pipeline.nb201_equivalence`)."""
        from pipeline.nb201_equivalence import network_class
        return network_class(np.asarray(pool.structure, np.int64)).astype(np.int64)

    def structure_counts(self, structure, tiers, n_tier):
        """Per tier, the count of each op on each edge: (n_tier, 6, 5)."""
        return np.stack([np.stack([np.bincount(structure[tiers == t, e], minlength=N_OPS_201)
                                   for e in range(N_EDGES_201)]) for t in range(1, n_tier + 1)])

    def draw(self, rng, n, guide, prior, kl_eps):
        """Each edge's op uniformly, or from the top tier's per-edge op counts (``guide``)."""
        if guide is not None:
            p = guide.astype(float) + kl_eps
            p /= p.sum(1, keepdims=True)
            u = rng.random((n, N_EDGES_201, 1))
            return (u > np.cumsum(p, 1)[None]).sum(2).clip(0, N_OPS_201 - 1)
        return rng.integers(0, N_OPS_201, (n, N_EDGES_201))

    def mutants(self, pool, row):
        """Cells that differ from ``row`` in the op of one edge (6 x 4 of them)."""
        ops = pool.structure[row]
        n_alt = N_OPS_201 - 1
        cand = np.repeat(ops[None], N_EDGES_201 * n_alt, 0)
        e = np.repeat(np.arange(N_EDGES_201), n_alt)
        cand[np.arange(len(cand)), e] = (ops[e] + np.tile(np.arange(1, N_OPS_201), N_EDGES_201)) % N_OPS_201
        rows = self.lookup(pool, cand)
        rows = rows[rows >= 0]
        return np.unique(rows[pool.allowed[rows] & (rows != row)])

    def describe(self, pool, row):
        # rebuilt from the ops: a store key may be cut to its dtype's width
        return {"arch": format_arch(pool.structure[int(row)])}

    def flat_features(self, store, idx):
        """One-hot of the op (none, skip, conv1x1, conv3x3, avg pool) on each of the 6 edges
        in architecture-string order: F = 30."""
        ops6 = edge_ops(store.array("adjacency")[idx])
        if ops6.size and (ops6.min() < 0 or ops6.max() >= N_OPS_201):
            raise NarError(f"store {store.path}: NB201 op index outside 0..4 (rebuild the store)")
        onehot = ops6[:, :, None] == np.arange(N_OPS_201)[None, None, :]
        return onehot.reshape(len(idx), -1).astype(np.float32)

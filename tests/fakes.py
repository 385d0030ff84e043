"""Tiny fake benchmarks written straight into the store format, for fast unit tests.

The features follow the ReNAS layout (channel 0 structure, then FLOPs/params patches) but the
FLOPs/params values are simple proxies, not NAR's exact conventions, and NB101 hashes are not
NAS-Bench-101 hashes. Accuracy is a known, noisy function of the structure, so a ranker that
learns anything gets a clearly positive Kendall tau. Use the real tables for exactness tests.
"""
from __future__ import annotations

import hashlib

import numpy as np

from cache.store import StoreWriter
from pipeline.nb201_space import EDGES_201 as _EDGES_201, format_arch

# conv3x3 > conv1x1 > pool > skip > none, roughly as in NAS-Bench-201
_OP_VALUE_201 = np.array([-1.5, 0.4, 1.0, 1.8, 0.1])


def fake_store_201(path, n=400, seed=0, datasets=("cifar10", "cifar100")):
    """Write a fake NB201 store of ``n`` distinct cells; returns the path."""
    rng = np.random.default_rng(seed)
    index = np.sort(rng.choice(5 ** 6, size=n, replace=False)).astype(np.int32)
    ops = np.stack([(index // 5 ** k) % 5 for k in range(6)], axis=1).astype(np.int8)
    adj = np.zeros((n, 4, 4), np.int8)
    for e, (i, j) in enumerate(_EDGES_201):
        adj[:, i, j] = ops[:, e]
    keys = np.array([format_arch(row) for row in ops], dtype="S96")
    counts = np.stack([(ops == k).sum(1) for k in range(5)], axis=1).astype(np.int16)
    w = np.where(ops == 3, 9, np.where(ops == 2, 1, 0))  # conv kernel area as a params proxy
    quality = _OP_VALUE_201[ops].sum(1) + 0.8 * (ops[:, 5] != 0) + 0.6 * (ops[:, 3] != 0)
    with StoreWriter(path, n, "201", {"source_path": "fake", "source_sha256": "0" * 64,
                                      "sha256_verified": False}) as wr:
        wr.put("key", keys)
        wr.put("index", index)
        wr.put("adjacency", adj)
        wr.put("op_counts", counts)
        for d, ds in enumerate(datasets):
            c = 16 * np.array([1] * 5 + [2] * 5 + [4] * 5)
            feats = np.zeros((n, 31, 4, 4), np.float32)
            feats[:, 0] = adj
            for cell in range(15):
                for e, (i, j) in enumerate(_EDGES_201):
                    p = w[:, e] * c[cell] ** 2 + 2 * c[cell] * (w[:, e] > 0)
                    feats[:, 1 + 2 * cell, i, j] = p * (1024 // (c[cell] // 16) ** 2)
                    feats[:, 2 + 2 * cell, i, j] = p
            acc = 60 + 5 * quality + rng.normal(0, 1.0, n) - 10 * d
            wr.put(f"data/{ds}/features", feats)
            wr.put(f"data/{ds}/flops", feats[:, 1::2].sum((1, 2, 3)).astype(np.int64))
            wr.put(f"data/{ds}/params", feats[:, 2::2].sum((1, 2, 3)).astype(np.int64))
            wr.put(f"data/{ds}/val_acc", (acc + rng.normal(0, 0.5, n)).astype(np.float32))
            wr.put(f"data/{ds}/test_acc", acc.astype(np.float32))
        return wr.commit()


def fake_store_101(path, n=400, seed=0):
    """Write a fake NB101 store of ``n`` random 7-vertex cells (fake hashes); returns the path."""
    rng = np.random.default_rng(seed)
    adj = np.zeros((n, 7, 7), np.int8)
    iu = np.triu_indices(7, 1)
    for a in range(n):  # test fixture only: a chain plus random extra edges, <= 9 edges
        m = np.zeros((7, 7), np.int8)
        m[np.arange(6), np.arange(1, 7)] = 1
        extra = rng.choice(len(iu[0]), size=rng.integers(0, 4), replace=False)
        m[iu[0][extra], iu[1][extra]] = 1
        adj[a] = m
    ops = np.zeros((n, 7), np.int8)
    ops[:, 0], ops[:, 6] = 1, 5
    ops[:, 1:6] = rng.integers(2, 5, size=(n, 5))
    keys = np.array([hashlib.md5(adj[a].tobytes() + ops[a].tobytes()).hexdigest() for a in range(n)],
                    dtype="S32")
    feats = np.zeros((n, 19, 7, 7), np.float32)
    feats[:, 0] = adj * ops[:, None, :]
    vflops = np.where(ops == 3, 9.0, np.where(ops == 2, 1.0, np.where(ops == 4, 0.1, 0.0)))
    for m in range(9):
        scale = 1 + m // 3
        feats[:, 1 + 2 * m] = adj * vflops[:, None, :] * scale
        feats[:, 2 + 2 * m] = adj * vflops[:, None, :] * scale ** 2
    quality = (ops == 3).sum(1) * 1.0 + 0.5 * adj.sum((1, 2)) - 0.7 * (ops == 4).sum(1)
    acc = 85 + 1.5 * quality + rng.normal(0, 0.8, n)
    with StoreWriter(path, n, "101", {"source_path": "fake", "source_sha256": "0" * 64,
                                      "sha256_verified": False}) as wr:
        wr.put("key", keys)
        wr.put("index", np.arange(n, dtype=np.int32))
        wr.put("adjacency", adj)
        wr.put("ops", ops)
        wr.put("n_vertices", np.full(n, 7, np.int8))
        wr.put("data/cifar10/features", feats)
        wr.put("data/cifar10/flops", (feats[:, 1::2].sum((1, 2, 3)) * 1e7).astype(np.int64))
        wr.put("data/cifar10/params", (feats[:, 2::2].sum((1, 2, 3)) * 1e5).astype(np.int64))
        wr.put("data/cifar10/val_acc", acc.astype(np.float32))
        wr.put("data/cifar10/test_acc", (acc + rng.normal(0, 0.3, n)).astype(np.float32))
        wr.put("data/cifar10/training_time", rng.uniform(500, 3000, n).astype(np.float32))
        return wr.commit()


# --------------------------------------------------------------------------- fake sources
# Tiny benchmark tables in the CSV layouts `nar-cli build` reads, so a test can run every
# registered space through build -> encode -> train -> test -> sample. A space registered in
# ``pipeline.spaces`` needs an entry in FAKE_SOURCES (tests/test_spaces.py checks it).

def fake_table_201(path, n=150, seed=0):
    """A NAS-Bench-201 CSV (arch_index, arch_str, CIFAR-10/100 accuracies) of ``n`` cells."""
    import csv

    from pipeline.nb201_space import all_archs
    rng = np.random.default_rng(seed)
    codes = np.sort(rng.choice(5 ** 6, size=n, replace=False))
    ops = all_archs()[codes]
    quality = _OP_VALUE_201[ops].sum(1) + 0.8 * (ops[:, 5] != 0)
    acc = np.clip(50 + 3 * quality + rng.normal(0, 1.0, n), 21, 99)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["arch_index", "arch_str", "cifar10_valid_acc", "cifar10_test_acc", "cifar100_test_acc"])
        for i in range(n):
            w.writerow([int(codes[i]), format_arch(ops[i]), round(acc[i] + rng.normal(0, 0.5), 4),
                        round(acc[i], 4), round(acc[i] - 20, 4)])
    return path


def fake_table_101(path, n=150, seed=0):
    """A NAS-Bench-101 CSV (the layout of nb101_20k.csv.gz) of ``n`` distinct valid cells with
    real module hashes and a validation accuracy that follows the structure."""
    import csv

    from pipeline import nb101_space
    from pipeline.spaces.nb101 import draw_cells_101
    rng = np.random.default_rng(seed)
    names = {-1: "input", -2: "output", **dict(enumerate(nb101_space.OPS))}
    rows, seen = [], set()
    while len(rows) < n:
        adj, labels, present, _ = draw_cells_101(rng, 64)
        for a, lab, pr in zip(adj, labels, present):
            k = int(pr.sum())
            try:
                m, ops = nb101_space.prune(a[:k, :k].astype(np.int8), [names[int(x)] for x in lab[:k]])
                nb101_space.validate_cell(m, ops)
            except Exception:
                continue
            h = nb101_space.module_hash(m, ops)
            if h in seen or len(rows) >= n:
                continue
            seen.add(h)
            q = sum(o == "conv3x3-bn-relu" for o in ops) + 0.3 * int(m.sum()) - 0.5 * sum(o == "maxpool3x3" for o in ops)
            acc = min(0.95, 0.80 + 0.02 * q + rng.normal(0, 0.005))
            rows.append([h, len(ops), int(m.sum()), "".join(map(str, m.ravel().tolist())), ",".join(ops),
                         round(acc, 6), round(float(rng.uniform(500, 3000)), 3), ""])
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["hash", "n_vertices", "n_edges", "adjacency", "ops", "val_acc_108", "training_time_108",
                    "trainable_parameters"])
        w.writerows(rows)
    return path




USER_SPACE = {"name": "toy-cells", "max_vertices": 6, "ops": ["conv3", "conv1", "pool"], "max_edges": 8}
_USER_COST = {"input": (0, 0), "output": (0, 0), "conv3": (9.0, 90.0), "conv1": (1.0, 10.0), "pool": (0.5, 0.0)}


def fake_user_table(folder, n=200, seed=0, unknown=0.1):
    """A user's own cell space: ``space.yaml`` (:data:`USER_SPACE`) and ``table.csv`` of ``n``
    distinct cells (every fifth with its vertices listed out of topological order), per-vertex
    FLOPs/params, and validation/test accuracy (percent) that follow the structure, unknown
    for a share ``unknown`` of the rows. Returns (space file, table file)."""
    import csv
    from pathlib import Path

    import yaml

    from pipeline.nb101_space import prune
    from pipeline.spaces import create_space
    from pipeline.spaces.nb101 import draw_cells_101
    from pipeline.spaces.user_cells import canonical_cell

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    space = create_space("user", USER_SPACE)
    rng = np.random.default_rng(seed)
    names = {-1: "input", -2: "output", **dict(enumerate(USER_SPACE["ops"]))}
    rows, seen = [], set()
    while len(rows) < n:
        adj, labels, present, _ = draw_cells_101(rng, 64, None, 6, 8, 3)
        for a, lab, pr in zip(adj, labels, present):
            k = int(pr.sum())
            try:
                m, ops = prune(a[:k, :k].astype(np.int8), [names[int(x)] for x in lab[:k]])
                m, ops, key, _ = canonical_cell(space, m, ops, "fake")
            except Exception:
                continue
            if key in seen or len(rows) >= n:
                continue
            seen.add(key)
            cost = np.array([_USER_COST[o] for o in ops])
            q = 2.0 * ops.count("conv3") + 0.8 * ops.count("conv1") + 0.6 * int(m.sum()) - ops.count("pool")
            val = min(98.0, 60 + 2.5 * q + rng.normal(0, 0.8))
            test = min(99.0, val + rng.normal(0, 0.4))
            order = np.arange(len(ops))
            if len(rows) % 5 == 0:
                order = rng.permutation(len(ops))  # listed out of order: the reader re-orders it
            m = m[np.ix_(order, order)]
            known = rng.random() >= unknown
            rows.append(["".join(map(str, m.ravel().tolist())), ",".join(ops[i] for i in order),
                         ",".join(f"{cost[i, 0]:g}" for i in order), ",".join(f"{cost[i, 1]:g}" for i in order),
                         f"{val:.3f}" if known else "", f"{test:.3f}" if known else ""])
    (folder / "space.yaml").write_text(yaml.safe_dump(USER_SPACE, sort_keys=False))
    with open(folder / "table.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["adjacency", "ops", "node_flops", "node_params", "val_acc", "test_acc"])
        w.writerows(rows)
    return folder / "space.yaml", folder / "table.csv"


# gcn, gin, sage, arma good; gat, cheb middling; fc and skip poor (a made-up order)
_OP_VALUE_GRAPH = np.array([0.6, 1.2, 1.0, 0.5, 1.1, 0.9, 0.7, -1.0, -0.3])


def fake_graph_bench(path, n=150, seed=0, ops_used=None):
    """A NAS-Bench-Graph light table (a pickled dict: the benchmark's hash -> valid_perf, perf,
    latency, para) of ``n`` distinct architectures written with the benchmark's 9 link patterns;
    performance follows the ops and the depth. ``ops_used``: op indices allowed (proteins: 5)."""
    import pickle

    from pipeline.spaces.graph_cells import LINK_PATTERNS, N_OPS, canonical_key, nbg_hash
    rng = np.random.default_rng(seed)
    allowed = np.arange(N_OPS) if ops_used is None else np.asarray(ops_used)
    table, seen = {}, set()
    while len(table) < n:
        link = LINK_PATTERNS[int(rng.integers(len(LINK_PATTERNS)))]
        ops = rng.choice(allowed, 4)
        key = canonical_key(link, ops)
        if not key or key in seen:
            continue
        seen.add(key)
        q = _OP_VALUE_GRAPH[ops].sum() + 0.3 * len(set(link))
        val = float(np.clip(0.6 + 0.04 * q + rng.normal(0, 0.01), 0.05, 0.99))
        table[nbg_hash(link, ops)] = {"valid_perf": val, "perf": float(np.clip(val + rng.normal(0, 0.01), 0, 1)),
                                      "latency": float(0.004 + 0.001 * rng.random()),
                                      "para": np.float64(0.5 + 0.1 * (ops != 8).sum())}
    with open(path, "wb") as fh:
        pickle.dump(table, fh)
    return path


# registered space -> fake(folder, n, seed) -> (source, space description file or None)
FAKE_SOURCES = {
    "nasbench101": lambda folder, n, seed: (fake_table_101(folder / "table.csv", n, seed), None),
    "nasbench201": lambda folder, n, seed: (fake_table_201(folder / "table.csv", n, seed), None),
    "user": lambda folder, n, seed: fake_user_table(folder, n, seed, unknown=0.0)[::-1],
    "graph": lambda folder, n, seed: (fake_graph_bench(folder / "cora.bench", n, seed), None),
}

"""Cells of NAS-Bench-Graph (:mod:`pipeline.spaces.graph`): raw form, canonical key, store arrays.

A cell has 4 computing nodes (1..4) after the input (0); node ``k`` reads the output of one
earlier vertex, its parent ``p_k`` in 0..k-1, and applies one op of :data:`OPS_NBG`; every node
that feeds no other node (a leaf) feeds the cell output. A *raw cell* is the 8 integers
``(p_1..p_4, o_1..o_4)``; there are 24 parent lists and 9**4 op lists, 157,464 raw cells.

Canonical key. ``skip`` is the identity, so a skip node is not a vertex of the network: the
nodes under it read its parent, and a skip leaf makes its parent's output reach the cell output
once more. The key is the rooted tree that remains after removing the skip nodes, each non-skip
node written ``op`` + the number of times its output reaches the cell output (a leaf: 1; an
inner node: its skip leaves, usually 0) + its children in parentheses, siblings sorted; the
input's own skip leaves are dropped (the raw input never reaches the output), and the key is
the input's children joined by ",". Example: parents (0, 1, 1, 0), ops (gcn, gat, skip, gin) ->
``gcn1(gat1),gin1``. This reproduces the benchmark's duplicate removal: over all 157,464 raw
cells its classes are exactly the 26,206 architectures of the tables (checked by
``tests/test_graph_space.py`` against the package when it is installed). The all-skip cell
(key "") is not in the space.

The store holds a representative of each class (the table's own ``link`` and ops): adjacency
(6, 6) 0/1 over input, nodes 1..4, output (vertex 5; every leaf -> output), and the vertex type
codes (input 1, the ops 2..10 in :data:`OPS_NBG` order, output 11).
"""
from __future__ import annotations

import hashlib
import math
from functools import lru_cache

import numpy as np

from pipeline.errors import NarError

# the benchmark's op vocabulary, in the order of the digits of its hash (proteins uses 5 of them)
OPS_NBG = ("gat", "gcn", "gin", "cheb", "sage", "arma", "graph", "fc", "skip")
SKIP = OPS_NBG.index("skip")
N_OPS = len(OPS_NBG)
N_NODES = 4
N_VERTICES = N_NODES + 2          # input, 4 computing nodes, output
OUTPUT = N_VERTICES - 1
CODE_INPUT, CODE_OUTPUT = 1, N_OPS + 2   # vertex type codes of channel 0 (ops: 2..10)
N_CODES = N_OPS + 3               # codes 0..11 (0 = no edge)
# the 9 parent lists of the tables; the leading digit of the benchmark's hash indexes them
LINK_PATTERNS = ((0, 0, 0, 0), (0, 0, 0, 1), (0, 0, 1, 1), (0, 0, 1, 2), (0, 0, 1, 3),
                 (0, 1, 1, 1), (0, 1, 1, 2), (0, 1, 2, 2), (0, 1, 2, 3))
N_PARENT_LISTS = 24               # p_k in 0..k-1: 1 * 2 * 3 * 4
N_RAW = N_PARENT_LISTS * N_OPS ** N_NODES
N_CELLS = 26_206                  # architectures of each (non-proteins) table
FIELDS = ("key", "nbg_hash", "dataset", "link", "ops", "params", "latency", "val_acc", "test_acc")


def canonical_key(parents, ops) -> str:
    """The canonical key of a raw cell (see the module docstring); "" for the all-skip cell."""
    parents = [int(p) for p in parents]
    ops = [int(o) for o in ops]
    children = [[] for _ in range(N_VERTICES)]
    for k, p in enumerate(parents, start=1):
        children[p].append(k)

    def reach(v):
        """(non-skip nodes that read v through skips, times v reaches the output through skips)."""
        kids, outs = [], 0
        for c in children[v]:
            if ops[c - 1] != SKIP:
                kids.append(write(c))
            elif children[c]:
                sub, n = reach(c)
                kids += sub
                outs += n
            else:
                outs += 1
        return kids, outs

    def write(v):
        kids, outs = reach(v)
        if not children[v]:
            outs = 1
        name = OPS_NBG[ops[v - 1]] + str(outs)
        return name + "(" + ",".join(sorted(kids)) + ")" if kids else name

    return ",".join(sorted(reach(0)[0]))


def check_raw(cells, where: str = "cell") -> np.ndarray:
    """(B, 8) int64 raw cells; NarError when a parent or op is out of range."""
    c = np.asarray(cells, np.int64).reshape(-1, 2 * N_NODES)
    bad = ~valid_raw(c)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise NarError(f"{where}: parents {c[i, :4].tolist()} / ops {c[i, 4:].tolist()} are not a NAS-Bench-Graph "
                       f"cell (node k reads one of 0..k-1; ops are 0..{N_OPS - 1})")
    return c


def valid_raw(cells: np.ndarray) -> np.ndarray:
    c = np.asarray(cells, np.int64)
    par, ops = c[:, :N_NODES], c[:, N_NODES:]
    return ((par >= 0) & (par < np.arange(1, N_NODES + 1))).all(1) & ((ops >= 0) & (ops < N_OPS)).all(1)


def raw_index(cells: np.ndarray) -> np.ndarray:
    """Index 0..157,463 of valid raw cells (B, 8): parent list in mixed radix, then ops base 9."""
    c = np.asarray(cells, np.int64)
    link = c[:, 1] * 12 + c[:, 2] * 4 + c[:, 3]
    return link * N_OPS ** N_NODES + c[:, 4:] @ (N_OPS ** np.arange(N_NODES - 1, -1, -1))


def all_raw() -> np.ndarray:
    """(157464, 8) every raw cell, in :func:`raw_index` order."""
    par = np.array([(0, a, b, c) for a in range(2) for b in range(3) for c in range(4)], np.int64)
    ops = np.stack(np.unravel_index(np.arange(N_OPS ** N_NODES), (N_OPS,) * N_NODES), 1)
    return np.concatenate([np.repeat(par, len(ops), 0), np.tile(ops, (len(par), 1))], 1)


def key_code(key: str) -> int:
    """64-bit code of a canonical key (0 = not a cell)."""
    if not key:
        return 0
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little") | 1


@lru_cache(maxsize=1)
def code_table() -> np.ndarray:
    """(157464,) uint64 code of every raw cell's canonical key (0: the all-skip cell); built
    once per process (about a second)."""
    memo: dict[str, int] = {}
    out = np.empty(N_RAW, np.uint64)
    for i, cell in enumerate(all_raw().tolist()):
        key = canonical_key(cell[:N_NODES], cell[N_NODES:])
        code = memo.get(key)
        if code is None:
            code = memo[key] = key_code(key)
        out[i] = code
    return out


def codes_of(cells) -> tuple[np.ndarray, np.ndarray]:
    """(uint64 codes, valid mask) of a batch of raw cells."""
    c = np.asarray(cells, np.int64).reshape(-1, 2 * N_NODES)
    ok = valid_raw(c)
    code = np.zeros(len(c), np.uint64)
    code[ok] = code_table()[raw_index(c[ok])]
    return code, ok & (code != 0)


# --------------------------------------------------------------------------- the benchmark's hash
def decode_nbg_hash(h: int, where: str):
    """(parents, ops) of a benchmark hash: link pattern index, then 4 op digits (base 10)."""
    h = int(h)
    digits = [(h // 10 ** k) % 10 for k in range(N_NODES - 1, -1, -1)]
    link = h // 10 ** N_NODES
    if h < 0 or link >= len(LINK_PATTERNS) or max(digits) >= N_OPS:
        raise NarError(f"{where}: {h} is not a NAS-Bench-Graph architecture hash (link pattern 0..8, then "
                       f"4 op digits 0..8); the file is not a NAS-Bench-Graph table")
    return LINK_PATTERNS[link], tuple(digits)


def nbg_hash(parents, ops) -> int:
    """The benchmark's hash of a cell written with one of its 9 link patterns."""
    link = LINK_PATTERNS.index(tuple(int(p) for p in parents))
    return link * 10 ** N_NODES + int("".join(str(int(o)) for o in ops))


# --------------------------------------------------------------------------- store arrays
def structure_of(adjacency: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """(N, 8) raw cells of store rows: each node's parent (its in-edge) and op."""
    adj = np.asarray(adjacency)
    parents = adj[:, :N_VERTICES - 1, 1:N_VERTICES - 1].argmax(1)
    ops = np.asarray(codes, np.int64)[:, 1:N_VERTICES - 1] - 2
    return np.concatenate([parents, ops], 1).astype(np.int64)


def cell_arrays(cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(adjacency (B, 6, 6) int8, vertex codes (B, 6) int8) of raw cells: parent -> node
    edges and leaf -> output edges; codes input 1, ops 2..10, output 11."""
    c = np.asarray(cells, np.int64)
    b = len(c)
    adj = np.zeros((b, N_VERTICES, N_VERTICES), np.int8)
    rows = np.arange(b)
    for k in range(1, N_NODES + 1):
        adj[rows, c[:, k - 1], k] = 1
    leaf = adj[:, 1:N_NODES + 1, :].sum(2) == 0
    adj[:, 1:N_NODES + 1, OUTPUT] = leaf
    codes = np.zeros((b, N_VERTICES), np.int8)
    codes[:, 0], codes[:, OUTPUT] = CODE_INPUT, CODE_OUTPUT
    codes[:, 1:OUTPUT] = c[:, N_NODES:] + 2
    return adj, codes


def features(adj: np.ndarray, codes: np.ndarray, params: np.ndarray) -> np.ndarray:
    """(B, 3, 6, 6) ReNAS tensor: channel 0 the adjacency times the type code of the target
    vertex; channel 1 (FLOPs) zero, the benchmark publishes none; channel 2 the adjacency
    times the cell's parameter count in millions on the edges into the output vertex (so the
    output column's maximum is the cell's parameter count, as for NB101's per-vertex costs)."""
    a = np.asarray(adj, np.float32)
    out = np.zeros((len(a), 3, N_VERTICES, N_VERTICES), np.float32)
    out[:, 0] = a * np.asarray(codes, np.float32)[:, None, :]
    out[:, 2, :, OUTPUT] = a[:, :, OUTPUT] * (np.asarray(params, np.float32)[:, None] / 1e6)
    return out


def _number(rec, name, where, lo=0.0, hi=math.inf, nullable=False):
    v = rec[name]
    if v is None and nullable:
        return math.nan
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not lo <= v <= hi:
        raise NarError(f"{where}: {name} {v!r} must be a number in [{lo}, {hi}]{' or null' if nullable else ''}; "
                       "rebuild the file with `nar-cli build --bench graph`")
    return float(v)


def encode_records(records: list, start: int, dataset: str = "default") -> dict:
    """Validate a chunk of NAS-Bench-Graph JSON records and return store arrays."""
    k = len(records)
    cells = np.zeros((k, 2 * N_NODES), np.int64)
    keys, index = [], np.zeros(k, np.int32)
    params, latency = np.zeros(k, np.int64), np.zeros(k, np.float32)
    val, test = np.full(k, np.nan, np.float32), np.full(k, np.nan, np.float32)
    op_code = {name: i for i, name in enumerate(OPS_NBG)}
    for r, rec in enumerate(records):
        where = f"NAS-Bench-Graph record {start + r}"
        if not isinstance(rec, dict) or set(rec) != set(FIELDS):
            raise NarError(f"{where}: expected an object with fields {', '.join(FIELDS)}; rebuild the file "
                           "with `nar-cli build --bench graph`")
        link, ops = rec["link"], rec["ops"]
        if (not isinstance(link, list) or len(link) != N_NODES or not isinstance(ops, list) or len(ops) != N_NODES
                or any(o not in op_code for o in ops) or any(not isinstance(p, int) for p in link)):
            raise NarError(f"{where}: link {link!r} / ops {ops!r} must be 4 parent indices and 4 op names of "
                           f"{', '.join(OPS_NBG)}")
        cells[r] = check_raw([*link, *(op_code[o] for o in ops)], where)[0]
        key = canonical_key(cells[r, :N_NODES], cells[r, N_NODES:])
        if not key or key != rec["key"]:
            raise NarError(f"{where}: key {rec['key']!r} does not match its cell ({key!r}); rebuild the file")
        h = rec["nbg_hash"]
        if (not isinstance(h, int) or isinstance(h, bool) or tuple(link) not in LINK_PATTERNS
                or h != nbg_hash(link, cells[r, N_NODES:])):
            raise NarError(f"{where}: nbg_hash {h!r} does not match link {link} and ops {ops}; rebuild the file")
        keys.append(key)
        index[r] = h
        params[r] = int(_number(rec, "params", where))
        latency[r] = _number(rec, "latency", where)
        val[r] = _number(rec, "val_acc", where, 0.0, 100.0, nullable=True)
        test[r] = _number(rec, "test_acc", where, 0.0, 100.0, nullable=True)
    adj, codes = cell_arrays(cells)
    d = f"data/{dataset}/"
    return {"key": np.array(keys, dtype="S48"), "index": index, "adjacency": adj, "ops": codes,
            d + "features": features(adj, codes, params), d + "flops": np.zeros(k, np.int64),
            d + "params": params, d + "val_acc": val, d + "test_acc": test, d + "latency": latency}

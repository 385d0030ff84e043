"""Cells of a user's own space (:mod:`pipeline.spaces.user`): table reader, canonical form,
JSON records and store arrays. Every bad row is one NarError naming the row and the fix."""
from __future__ import annotations

import csv
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.errors import NarError
from pipeline.nb101_space import _fingerprint

log = logging.getLogger(__name__)

FIELDS = ("key", "adjacency", "ops", "node_flops", "node_params", "flops", "params", "val_acc", "test_acc")
REQUIRED = ("adjacency", "ops")
OPTIONAL = ("node_flops", "node_params", "val_acc", "test_acc", "name")


def canonical_cell(space, matrix, ops: list, where: str):
    """(matrix, ops, key, order) of a cell in topological order (input first, output last).
    NarError when the cell is not a DAG of the space: unknown op, too many vertices or edges,
    a cycle, or a vertex off every input -> output path."""
    m = np.asarray(matrix)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.dtype.kind not in "iub" or ((m != 0) & (m != 1)).any():
        raise NarError(f"{where}: adjacency must be a square 0/1 matrix; fix the row")
    m = m.astype(np.int8)
    n = len(m)
    if n > space.max_vertices:
        raise NarError(f"{where}: {n} vertices, more than the space's max_vertices {space.max_vertices}; "
                       "drop vertices or raise max_vertices in the space description")
    if len(ops) != n:
        raise NarError(f"{where}: {len(ops)} ops for {n} vertices; give one op per vertex")
    for op in ops:
        if op not in space.code_of_op:
            raise NarError(f"{where}: unknown op {op!r}; the space's ops are input, output, "
                           f"{', '.join(space.spec['ops'])}")
    if ops.count("input") != 1 or ops.count("output") != 1:
        raise NarError(f"{where}: a cell needs exactly one input and one output vertex")
    order = _topological_order(m, where)
    m, ops = m[np.ix_(order, order)], [ops[i] for i in order]
    if ops[0] != "input" or ops[-1] != "output":
        raise NarError(f"{where}: the input must feed the cell and the output end it; fix the edges")
    fwd, bwd = np.zeros(n, bool), np.zeros(n, bool)
    fwd[0], bwd[n - 1] = True, True
    for v in range(1, n):
        fwd[v] = bool((m[:v, v].astype(bool) & fwd[:v]).any())
    for v in range(n - 2, -1, -1):
        bwd[v] = bool((m[v, v + 1:].astype(bool) & bwd[v + 1:]).any())
    off = np.flatnonzero(~(fwd & bwd))
    if len(off):
        raise NarError(f"{where}: vertex {int(order[off[0]])} ({ops[off[0]]}) is not on an input -> output "
                       "path; remove it or connect it")
    if int(m.sum()) > space.max_edges:
        raise NarError(f"{where}: {int(m.sum())} edges, more than the space's max_edges {space.max_edges}")
    labels = [-1 if o == "input" else -2 if o == "output" else space.code_of_op[o] - 2 for o in ops]
    return m, ops, _fingerprint(m.tolist(), labels), order


def _topological_order(m: np.ndarray, where: str) -> np.ndarray:
    """Kahn's algorithm, lowest index first among the ready vertices; NarError on a cycle."""
    indeg = m.sum(0).astype(int)
    ready, order = [v for v in range(len(m)) if indeg[v] == 0], []
    while ready:
        v = ready.pop(0)
        order.append(v)
        for w in np.flatnonzero(m[v]):
            indeg[w] -= 1
            if indeg[w] == 0:
                ready.append(int(w))
                ready.sort()
    if len(order) != len(m):
        raise NarError(f"{where}: the graph has a cycle; a cell must be a directed acyclic graph")
    return np.array(order)


@dataclass
class UserRows:
    """Canonical cells of a table and their metrics (NaN = unknown)."""
    keys: list
    matrices: list
    ops: list
    node_flops: list
    node_params: list
    val_acc: np.ndarray
    test_acc: np.ndarray

    def __len__(self):
        return len(self.keys)

    def records(self):
        for i, key in enumerate(self.keys):
            nf, npar = self.node_flops[i], self.node_params[i]
            yield {"key": key, "adjacency": self.matrices[i].tolist(), "ops": self.ops[i],
                   "node_flops": nf, "node_params": npar, "flops": sum(nf), "params": sum(npar),
                   "val_acc": _nullable(self.val_acc[i]), "test_acc": _nullable(self.test_acc[i])}


def _nullable(x):
    return None if not np.isfinite(x) else float(x)


def _list(value, where, what, cast):
    """A list from a JSON list or a comma-separated string."""
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",")] if value.strip() else []
    if not isinstance(value, list):
        raise NarError(f"{where}: {what} must be a list or a comma-separated string, got {value!r}")
    try:
        return [cast(v) for v in value]
    except (TypeError, ValueError):
        raise NarError(f"{where}: {what} {value!r} holds a bad value; fix the row") from None


def _adjacency(value, where):
    if isinstance(value, str):
        s = value.strip()
        n = int(round(len(s) ** 0.5))
        if n * n != len(s) or set(s) - {"0", "1"}:
            raise NarError(f"{where}: adjacency {s!r} is not a square 0/1 string; fix the row")
        return np.frombuffer(s.encode(), np.uint8).reshape(n, n).astype(np.int8) - ord("0")
    try:
        return np.array(value, dtype=np.int64)
    except (TypeError, ValueError):
        raise NarError(f"{where}: adjacency must be a 0/1 string or a nested list; fix the row") from None


def _acc(value, where, what):
    if value is None or (isinstance(value, str) and not value.strip()):
        return math.nan
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise NarError(f"{where}: {what} {value!r} is not a number; fix the row") from None
    if not 0 <= x <= 100:
        raise NarError(f"{where}: {what} {x} must be a percentage in [0, 100] (or empty)")
    return x


def _costs(row, key, n, order, where):
    if row.get(key) in (None, ""):
        return [0.0] * n
    vals = _list(row[key], where, key, float)
    if len(vals) != n or any(not math.isfinite(v) or v < 0 for v in vals):
        raise NarError(f"{where}: {key} must give {n} non-negative numbers, one per vertex")
    return [vals[i] for i in order]


def _table_rows(path):
    p = Path(path)
    if p.name.lower().endswith(".json"):
        try:
            data = json.loads(p.read_text())
        except (OSError, ValueError) as e:
            raise NarError(f"{p}: cannot read the JSON table ({e})") from None
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise NarError(f"{p}: a JSON table must be a list of objects, one per architecture")
        columns = set().union(*data) if data else set()
        return sorted(columns), [(i, r) for i, r in enumerate(data)]
    from pipeline.sources.csv_table import _open
    try:
        with _open(p) as fh:
            reader = csv.DictReader(fh)
            rows = [(reader.line_num - 1, r) for r in reader]
            return list(reader.fieldnames or []), rows
    except (OSError, EOFError, UnicodeDecodeError, csv.Error) as e:
        raise NarError(f"{p}: cannot read the table ({e})") from None


def read_table(space, path, limit=None) -> UserRows:
    """Read and check a user's table (CSV or JSON list); see :mod:`pipeline.spaces.user`."""
    columns, rows = _table_rows(path)
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        raise NarError(f"{path}: missing column(s) {', '.join(missing)}; a table needs "
                       f"{', '.join(REQUIRED)} (and optionally {', '.join(OPTIONAL)})")
    rows = rows[:limit] if limit is not None else rows
    if not rows:
        raise NarError(f"{path}: the table has no rows")
    out = UserRows([], [], [], [], [], np.full(len(rows), np.nan), np.full(len(rows), np.nan))
    seen = {}
    for i, (line, row) in enumerate(rows):
        where = f"{path}: row {line}"
        if None in row or any(v is None for k, v in row.items() if k in REQUIRED):
            raise NarError(f"{where}: wrong number of fields or a missing value; fix the row")
        m = _adjacency(row["adjacency"], where)
        ops = _list(row["ops"], where, "ops", str)
        m, ops, key, order = canonical_cell(space, m, ops, where)
        if key in seen:
            raise NarError(f"{where} is the same cell as row {seen[key]} (isomorphic); keep one")
        seen[key] = line
        out.keys.append(key)
        out.matrices.append(m)
        out.ops.append(ops)
        out.node_flops.append(_costs(row, "node_flops", len(m), order, where))
        out.node_params.append(_costs(row, "node_params", len(m), order, where))
        out.val_acc[i] = _acc(row.get("val_acc"), where, "val_acc")
        out.test_acc[i] = _acc(row.get("test_acc"), where, "test_acc")
    log.info("%s: %d architectures of %s", path, len(out), space.title)
    return out


def encode_records(space, records: list, start: int) -> dict:
    """Validate a chunk of the space's JSON records and return store arrays (``data/default``)."""
    k, v = len(records), space.max_vertices
    adj = np.zeros((k, v, v), np.int8)
    codes = np.zeros((k, v), np.int8)
    nv = np.zeros(k, np.int8)
    flops_v = np.zeros((k, v))
    params_v = np.zeros((k, v))
    keys = []
    val, test = np.full(k, np.nan), np.full(k, np.nan)
    for r, rec in enumerate(records):
        where = f"{space.title} record {start + r}"
        if not isinstance(rec, dict) or set(rec) != set(FIELDS):
            raise NarError(f"{where}: expected an object with fields {', '.join(FIELDS)}; rebuild the file "
                           "with `nar-cli build --bench user`")
        m, ops, key, order = canonical_cell(space, _adjacency(rec["adjacency"], where), list(rec["ops"]), where)
        if key != rec["key"] or (order != np.arange(len(order))).any():
            raise NarError(f"{where}: key {rec['key']!r} does not match its cell; rebuild the file")
        n = len(m)
        adj[r, :n, :n] = m
        codes[r, :n] = [space.code_of_op[o] for o in ops]
        nv[r] = n
        flops_v[r, :n] = _costs(rec, "node_flops", n, order, where)
        params_v[r, :n] = _costs(rec, "node_params", n, order, where)
        val[r] = _acc(rec["val_acc"], where, "val_acc")
        test[r] = _acc(rec["test_acc"], where, "test_acc")
        keys.append(key)
    feats = _features(adj, codes, nv, flops_v, params_v)
    d = f"data/{space.datasets[0]}/"
    return {"key": np.array(keys, dtype="S32"), "index": np.arange(start, start + k, dtype=np.int32),
            "adjacency": adj, "ops": codes, "n_vertices": nv, d + "features": feats,
            d + "flops": flops_v.sum(1), d + "params": params_v.sum(1),
            d + "val_acc": val.astype(np.float32), d + "test_acc": test.astype(np.float32)}


def _features(adj, codes, nv, flops_v, params_v) -> np.ndarray:
    """(k, 3, V, V): adjacency times the target vertex's type code, FLOPs and params, with the
    output vertex moved to position V - 1 (zero rows/columns before it), as NB101's tensor."""
    k, v = codes.shape
    pos = np.arange(v)[None, :]
    src = np.where(pos < (nv.astype(np.int64) - 1)[:, None], pos, v)
    src[:, v - 1] = nv.astype(np.int64) - 1
    rows = np.arange(k)[:, None]
    pad = lambda a: np.concatenate([a, np.zeros((k, 1))], 1)[rows, src]  # noqa: E731
    a = np.zeros((k, v + 1, v + 1))
    a[:, :v, :v] = adj
    a = a[rows[:, :, None], src[:, :, None], src[:, None, :]]
    out = np.empty((k, 3, v, v), np.float32)
    for c, values in enumerate((codes.astype(float), flops_v, params_v)):
        out[:, c] = a * pad(values)[:, None, :]
    return out

"""NAR cell-information records -> validated numpy arrays, one chunk of records at a time.

The schema is exactly that of the two example records in ``data/fixtures``. Python touches
each record once to pull its fields into lists; shapes, types and cell validity are then
checked with numpy over the whole chunk. A bad record raises NarError naming its position in
the list (NB101) or its key (NB201).
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np

from cache.store import OP_CODES_101
from pipeline.errors import NarError
from pipeline.nb101_space import MAX_EDGES, MAX_VERTICES
from pipeline.nb201_space import EDGES_201, format_arch
from pipeline.record_checks import as_int64, check_hashes_101, check_no_bool, check_no_duplicate

MODULES_101 = [f"stack{s}/module{m}" for s in range(3) for m in range(3)]
FIELDS_101 = frozenset([
    "module_adjacency", "module_operations", "trainable_parameters", "avg_training_time",
    "avg_train_accuracy", "avg_validation_accuracy", "avg_test_accuracy", "unique_hash",
    "vertex_flops", "vertex_params", "flops"])

CELLS_201 = [f"cells{c}" for c in (0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 12, 13, 14, 15, 16)]
# store dataset name -> (NAR prefix of FLOPs/params fields, NAR prefix of accuracy fields)
DATASETS_201 = {"cifar10": ("cifar10-valid", "cifar10_"),
                "cifar100": ("cifar100", "cifar100_"),
                "imagenet16": ("ImageNet16-120", "imagenet16_")}
FIELDS_201 = frozenset(
    ["cell_adjacency", "arch_str"]
    + [f"{a}{f}" for _, a in DATASETS_201.values() for f in ("val_acc", "test_acc", "latency")]
    + [f"{p}_{f}" for p, _ in DATASETS_201.values()
       for f in ("total_flops", "total_params", "opt_flops", "opt_params")])
KEY_BYTES_201 = 96  # longest NB201 arch_str is 95 characters

_FIX = "fix the record or rebuild the file with `nar-cli build`"


def _numeric(values: list, what: str, names: list, shape=None, nullable=False) -> np.ndarray:
    """``values`` as a float64 array of ``(len(values), *shape)``; NarError naming the first
    record whose value is missing, non-numeric or of the wrong length. ``nullable`` turns
    JSON null into NaN (scalars only)."""
    check_no_bool(values, what, names, _FIX, len(shape or ()))
    if nullable:
        values = [np.nan if v is None else v for v in values]
    try:
        arr = np.array(values)
        ok = arr.dtype.kind in "iuf" and arr.shape[1:] == tuple(shape or ())
    except (ValueError, TypeError):
        ok = False
    if ok:
        arr = arr.astype(np.float64, copy=False)
        if nullable or np.isfinite(arr).all():
            return arr
    for name, v in zip(names, values):  # slow path: find the culprit
        try:
            a = np.array(v)
            good = a.dtype.kind in "iuf" and a.shape == tuple(shape or ())
            good = good and (nullable or bool(np.isfinite(a).all()))
        except (ValueError, TypeError):
            good = False
        if not good:
            dims = "x".join(map(str, shape)) if shape else "a number"
            raise NarError(f"{name}: {what} must be {dims} of numbers, got {_short(v)}; {_FIX}")
    raise NarError(f"{names[0]}..{names[-1]}: {what} is malformed; {_FIX}")  # pragma: no cover


def _short(v) -> str:
    s = repr(v)
    return s if len(s) <= 80 else s[:77] + "..."


def _first_bad(mask: np.ndarray, names: list, message: str):
    """Raise NarError for the first record where ``mask`` is True."""
    bad = np.flatnonzero(mask)
    if len(bad):
        raise NarError(f"{names[bad[0]]}: {message}; {_FIX}")


def _check_fields(rec, fields: frozenset, name: str) -> None:
    if not isinstance(rec, dict):
        raise NarError(f"{name}: expected a JSON object, got {_short(rec)}; {_FIX}")
    check_no_duplicate(rec, name, _FIX)
    if rec.keys() != fields:
        missing = sorted(fields - rec.keys())
        extra = sorted(rec.keys() - fields)
        parts = ([f"missing field(s) {', '.join(missing)}"] if missing else []) + \
                ([f"unknown field(s) {', '.join(extra)}"] if extra else [])
        raise NarError(f"{name}: {'; '.join(parts)}; {_FIX}")


def _check_dict(d, keys: list, what: str, name: str) -> None:
    if not isinstance(d, dict) or d.keys() != set(keys):
        raise NarError(f"{name}: {what} must be an object with keys {keys[0]}..{keys[-1]} "
                       f"({len(keys)} entries), got {_short(d)}; {_FIX}")
    check_no_duplicate(d, f"{name}: {what}", _FIX)


def _check_cells_101(adj: np.ndarray, codes: np.ndarray, names: list) -> None:
    """Every cell of one vertex count: 0/1 strictly upper-triangular, at most 9 edges, every
    non-input vertex fed and every non-output vertex feeding (so all lie on an input->output
    path), ops input ... output with interior convs/pool."""
    n = adj.shape[1]
    _first_bad(((adj != 0) & (adj != 1)).any((1, 2)), names, "module_adjacency holds values other than 0/1")
    _first_bad((np.tril(adj) != 0).any((1, 2)), names,
               "module_adjacency is not strictly upper-triangular (not a DAG in topological order)")
    _first_bad(adj.sum((1, 2)) > MAX_EDGES, names, f"module_adjacency has more than {MAX_EDGES} edges")
    _first_bad((adj[:, :, 1:].sum(1) == 0).any(1), names,
               "module_adjacency has a vertex without an input (not a pruned cell)")
    _first_bad((adj[:, :n - 1, :].sum(2) == 0).any(1), names,
               "module_adjacency has a vertex without an output (not a pruned cell)")
    _first_bad((codes[:, 0] != OP_CODES_101["input"]) | (codes[:, -1] != OP_CODES_101["output"])
               | ((codes[:, 1:-1] < 2) | (codes[:, 1:-1] > 4)).any(1), names,
               "module_operations must be input, then conv3x3-bn-relu/conv1x1-bn-relu/maxpool3x3, then output")


def arrays_101(records: list, start: int) -> dict:
    """Validate a chunk of NB101 records (list positions ``start``...) and return padded arrays:
    key (k,) S32, index, adjacency (k,7,7) int8 in the cell's own order, ops (k,7) int8 codes,
    n_vertices, vertex_flops / vertex_params (k,9,7) float64, flops, params, val_acc, test_acc
    (fractions), training_time."""
    k = len(records)
    names = [f"NB101 record {start + r}" for r in range(k)]
    buckets = defaultdict(lambda: ([], [], [], [], []))  # n -> positions, adj, codes, flops, params
    keys, scalars = [], []
    for r, rec in enumerate(records):
        _check_fields(rec, FIELDS_101, names[r])
        ops = rec["module_operations"]
        if not isinstance(ops, list) or not 2 <= len(ops) <= MAX_VERTICES:
            raise NarError(f"{names[r]}: module_operations must list 2..7 op names, got {_short(ops)}; {_FIX}")
        try:
            codes = [OP_CODES_101[o] for o in ops]
        except (KeyError, TypeError):
            raise NarError(f"{names[r]}: unknown operation in {_short(ops)} (known: "
                           f"{', '.join(OP_CODES_101)}); {_FIX}") from None
        vf, vp = rec["vertex_flops"], rec["vertex_params"]
        _check_dict(vf, MODULES_101, "vertex_flops", names[r])
        _check_dict(vp, MODULES_101, "vertex_params", names[r])
        key = rec["unique_hash"]
        if not isinstance(key, str) or len(key) != 32:
            raise NarError(f"{names[r]}: unique_hash must be a 32-character hash, got {_short(key)}; {_FIX}")
        pos, adj, cod, fl, pa = buckets[len(ops)]
        pos.append(r)
        adj.append(rec["module_adjacency"])
        cod.append(codes)
        fl.append([vf[m] for m in MODULES_101])
        pa.append([vp[m] for m in MODULES_101])
        keys.append(key)
        scalars.append((rec["trainable_parameters"], rec["flops"], rec["avg_validation_accuracy"],
                        rec["avg_test_accuracy"], rec["avg_training_time"]))

    out = {"key": np.array(keys, dtype="S32"), "index": np.arange(start, start + k, dtype=np.int32),
           "adjacency": np.zeros((k, 7, 7), np.int8), "ops": np.zeros((k, 7), np.int8),
           "n_vertices": np.zeros(k, np.int8),
           "vertex_flops": np.zeros((k, 9, 7)), "vertex_params": np.zeros((k, 9, 7))}
    for n, (pos, adj, cod, fl, pa) in buckets.items():
        sub = [names[p] for p in pos]
        a = _numeric(adj, "module_adjacency", sub, (n, n))
        c = np.array(cod, dtype=np.int8)
        _check_cells_101(a, c, sub)
        f = _numeric(fl, "vertex_flops", sub, (9, n))
        p = _numeric(pa, "vertex_params", sub, (9, n))
        _first_bad((f < 0).any((1, 2)) | (p < 0).any((1, 2)), sub, "negative vertex FLOPs or params")
        pos = np.asarray(pos)
        out["adjacency"][pos, :n, :n] = a
        out["ops"][pos, :n] = c
        out["n_vertices"][pos] = n
        out["vertex_flops"][pos, :, :n] = f
        out["vertex_params"][pos, :, :n] = p

    check_hashes_101(keys, out["adjacency"], out["ops"], out["n_vertices"], names, _FIX)
    cols = list(zip(*scalars))
    out["params"] = as_int64(_numeric(list(cols[0]), "trainable_parameters", names), "trainable_parameters",
                             names, _FIX)
    out["flops"] = as_int64(_numeric(list(cols[1]), "flops", names), "flops", names, _FIX)
    for col, field, store in ((2, "avg_validation_accuracy", "val_acc"), (3, "avg_test_accuracy", "test_acc")):
        acc = _numeric(list(cols[col]), field, names, nullable=True)
        _first_bad((acc < 0) | (acc > 1), names, f"{field} must be a fraction in [0, 1] (or null)")
        out[store] = acc
    out["training_time"] = _numeric(list(cols[4]), "avg_training_time", names, nullable=True)
    _first_bad(np.isinf(out["training_time"]) | (out["training_time"] < 0), names,
               "avg_training_time must be a finite number of seconds >= 0 (or null)")
    return out


def arch_str_201(ops) -> str:
    """NAS-Bench-201 architecture string of six op indices in edge order."""
    return format_arch(np.asarray(ops))


def arrays_201(items: list) -> dict:
    """Validate a chunk of NB201 ``(key, record)`` pairs and return arrays: key (k,) arch_str,
    index (the official index, int of the JSON key), adjacency (k,4,4) int8, op_counts, and per
    dataset ``{ds}/flops_patches``, ``{ds}/params_patches`` (k,15,6) float64, ``{ds}/flops``,
    ``{ds}/params``, ``{ds}/val_acc``, ``{ds}/test_acc``, ``{ds}/latency``."""
    k = len(items)
    names = [f"NB201 record {key!r}" for key, _ in items]
    index, adj, keys = [], [], []
    per_ds = {ds: ([], [], []) for ds in DATASETS_201}  # opt_flops, opt_params, scalars
    for r, (key, rec) in enumerate(items):
        if not (isinstance(key, str) and key.isascii() and key.isdigit() and int(key) < 15625):
            raise NarError(f"{names[r]}: keys must be architecture indices \"0\"..\"15624\" (the "
                           f"NAS-Bench-201 space); {_FIX}")
        _check_fields(rec, FIELDS_201, names[r])
        index.append(int(key))
        adj.append(rec["cell_adjacency"])
        keys.append(rec["arch_str"])
        for ds, (pre, acc) in DATASETS_201.items():
            fl, pa, sc = per_ds[ds]
            of, op = rec[f"{pre}_opt_flops"], rec[f"{pre}_opt_params"]
            _check_dict(of, CELLS_201, f"{pre}_opt_flops", names[r])
            _check_dict(op, CELLS_201, f"{pre}_opt_params", names[r])
            fl.append([of[c] for c in CELLS_201])
            pa.append([op[c] for c in CELLS_201])
            sc.append((rec[f"{pre}_total_flops"], rec[f"{pre}_total_params"], rec[f"{acc}val_acc"],
                       rec[f"{acc}test_acc"], rec[f"{acc}latency"]))

    a = _numeric(adj, "cell_adjacency", names, (4, 4))
    upper = np.triu(np.ones((4, 4), bool), 1)
    _first_bad((a[:, ~upper] != 0).any(1), names, "cell_adjacency must be zero on and below the diagonal")
    _first_bad(((a < 0) | (a > 4) | (a != np.round(a))).any((1, 2)), names,
               "cell_adjacency entries must be op indices 0..4")
    a = a.astype(np.int8)
    rows, cols = np.array(EDGES_201).T
    edge_ops = a[:, rows, cols]
    for r in range(k):
        if keys[r] != arch_str_201(edge_ops[r]):
            raise NarError(f"{names[r]}: arch_str {_short(keys[r])} does not match cell_adjacency "
                           f"({arch_str_201(edge_ops[r])}); {_FIX}")
    out = {"key": np.array(keys, dtype=f"S{KEY_BYTES_201}"), "index": np.array(index, np.int32),
           "adjacency": a,
           "op_counts": np.stack([(edge_ops == i).sum(1) for i in range(5)], 1).astype(np.int16)}
    for ds, (pre, acc) in DATASETS_201.items():
        fl, pa, sc = per_ds[ds]
        f = _numeric(fl, f"{pre}_opt_flops", names, (15, 6))
        p = _numeric(pa, f"{pre}_opt_params", names, (15, 6))
        _first_bad((f < 0).any((1, 2)) | (p < 0).any((1, 2)), names, f"negative {pre} edge FLOPs or params")
        out[f"{ds}/flops_patches"], out[f"{ds}/params_patches"] = f, p
        c = list(zip(*sc))
        out[f"{ds}/flops"] = as_int64(_numeric(list(c[0]), f"{pre}_total_flops", names),
                                      f"{pre}_total_flops", names, _FIX)
        out[f"{ds}/params"] = as_int64(_numeric(list(c[1]), f"{pre}_total_params", names),
                                       f"{pre}_total_params", names, _FIX)
        for col, field in ((2, "val_acc"), (3, "test_acc")):
            v = _numeric(list(c[col]), f"{acc}{field}", names, nullable=True)
            _first_bad((v < 0) | (v > 100), names, f"{acc}{field} must be a percentage in [0, 100] (or null)")
            out[f"{ds}/{field}"] = v
        lat = out[f"{ds}/latency"] = _numeric(list(c[4]), f"{acc}latency", names, nullable=True)
        _first_bad(np.isinf(lat) | (lat < 0), names, f"{acc}latency must be a finite number >= 0 (or null)")
    return out

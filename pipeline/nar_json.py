"""NAR cell-information JSON: record building and an atomic, streaming writer.

The schema is that of NAR's released files (see ``data/fixtures/nar_nasbench*_vertice_example.json``):
NAS-Bench-101 is a JSON list of records with fields :data:`FIELDS_101`; NAS-Bench-201 is a
JSON object keyed by the architecture index ("0".."15624") whose values have fields
:data:`FIELDS_201`. Unknown metrics are null. Records are built chunk by chunk from the
column arrays of :mod:`pipeline.sources` (costs vectorised per chunk) and written one per line
to a temporary file in the output folder, renamed over the output at the end.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from cache.store import OP_NAMES_101
from pipeline.atomic import atomic_path
from pipeline.errors import NarError
from pipeline.sources import METRICS_101, METRICS_201, Nb101Rows, Nb201Rows

log = logging.getLogger(__name__)

FIELDS_101 = ("module_adjacency", "module_operations", "trainable_parameters",
              "avg_training_time", "avg_train_accuracy", "avg_validation_accuracy",
              "avg_test_accuracy", "unique_hash", "vertex_flops", "vertex_params", "flops")
_COST_FIELDS_201 = ("total_flops", "total_params", "opt_flops", "opt_params")
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


def fields_201() -> tuple:
    """NAR's NB201 record fields in order (the dataset prefixes come from ``nb201_cost``)."""
    from pipeline.nb201_cost import DATASETS_201

    costs = tuple(f"{prefix}_{f}" for prefix, _, _ in DATASETS_201.values()
                  for f in _COST_FIELDS_201)
    return ("cell_adjacency", *METRICS_201, *costs, "arch_str")


def _nullable(values: np.ndarray) -> list:
    """float array -> list with None where NaN."""
    return [None if v != v else v for v in np.asarray(values, dtype=np.float64).tolist()]


def _as_str(h) -> str:
    return h.decode() if isinstance(h, bytes) else str(h)


def iter_records_101(rows: Nb101Rows, chunk: int = 4096):
    """NAR NB101 records (dicts in schema order); NarError naming the hash when the computed
    ``trainable_parameters`` differs from the source's."""
    from pipeline.nb101_cost import MODULE_KEYS_101, network_totals, vertex_costs

    op_name = {int(k): v for k, v in OP_NAMES_101.items()}
    for start in range(0, len(rows), chunk):
        sl = slice(start, start + chunk)
        adj, ops, nv = rows.adjacency[sl], rows.ops[sl], rows.n_vertices[sl]
        vf, vp = vertex_costs(adj, ops, nv)
        total_f, total_p = network_totals(adj, ops, nv)
        if rows.expected_params is not None:
            exp = rows.expected_params[sl]
            bad = np.flatnonzero((exp >= 0) & (exp != total_p))
            if len(bad):
                i = int(bad[0])
                raise NarError(f"cell {_as_str(rows.hashes[start + i])}: computed "
                               f"trainable_parameters {int(total_p[i])} differs from the "
                               f"source's {int(exp[i])}; the source row is corrupt")
        metrics = [_nullable(rows.metrics[k][sl]) for k in METRICS_101]
        adj_l, ops_l, nv_l = adj.tolist(), ops.tolist(), nv.tolist()
        vf_l, vp_l = vf.tolist(), vp.tolist()
        tf_l, tp_l = total_f.tolist(), total_p.tolist()
        for i, n in enumerate(nv_l):
            fl, pa = vf_l[i], vp_l[i]
            yield {
                "module_adjacency": [r[:n] for r in adj_l[i][:n]],
                "module_operations": [op_name[c] for c in ops_l[i][:n]],
                "trainable_parameters": tp_l[i],
                "avg_training_time": metrics[0][i],
                "avg_train_accuracy": metrics[1][i],
                "avg_validation_accuracy": metrics[2][i],
                "avg_test_accuracy": metrics[3][i],
                "unique_hash": _as_str(rows.hashes[start + i]),
                "vertex_flops": {k: fl[m][:n] for m, k in enumerate(MODULE_KEYS_101)},
                "vertex_params": {k: pa[m][:n] for m, k in enumerate(MODULE_KEYS_101)},
                "flops": tf_l[i],
            }


def iter_records_201(rows: Nb201Rows, chunk: int = 4096):
    """(key, record) pairs of NAR NB201 records; key is the architecture index as a string."""
    from pipeline.nb201_cost import CELL_KEYS_201, DATASETS_201, edge_costs, network_totals
    from pipeline.nb201_space import cell_adjacency, format_arch

    for start in range(0, len(rows), chunk):
        sl = slice(start, start + chunk)
        ops6 = rows.ops6[sl]
        adj_l = cell_adjacency(ops6).tolist()
        metrics = {k: _nullable(rows.metrics[k][sl]) for k in METRICS_201}
        costs = []
        for name, (prefix, _, _) in DATASETS_201.items():
            ef, ep = edge_costs(ops6, name)
            tf, tp = network_totals(ops6, name)
            costs.append((prefix, tf.tolist(), tp.tolist(), ef.tolist(), ep.tolist()))
        keys = rows.arch_index[sl].tolist()
        for i, key in enumerate(keys):
            rec = {"cell_adjacency": adj_l[i]}
            for k in METRICS_201:
                rec[k] = metrics[k][i]
            for prefix, tf, tp, ef, ep in costs:
                rec[f"{prefix}_total_flops"] = tf[i]
                rec[f"{prefix}_total_params"] = tp[i]
                rec[f"{prefix}_opt_flops"] = dict(zip(CELL_KEYS_201, ef[i]))
                rec[f"{prefix}_opt_params"] = dict(zip(CELL_KEYS_201, ep[i]))
            rec["arch_str"] = format_arch(ops6[i])
            yield str(key), rec


def write_json(path, items, keyed: bool = False) -> int:
    """Stream ``items`` to ``path`` as a JSON list (records) or, when ``keyed``, a JSON object
    ((key, record) pairs), one record per line; atomic: a temporary file in the same folder
    is renamed over ``path`` only when every item was written. Returns the record count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8", buffering=1 << 22) as fh:
            fh.write("{" if keyed else "[")
            enc = _ENCODER.encode
            for item in items:
                sep = ",\n" if n else "\n"
                if keyed:
                    key, rec = item
                    fh.write(f"{sep}{enc(str(key))}:{enc(rec)}")
                else:
                    fh.write(sep + enc(item))
                n += 1
            fh.write("\n}\n" if keyed else "\n]\n")
    log.info("wrote %s (%d records)", path, n)
    return n


def records(rows):
    """Records of ``rows`` for the writer, and whether they are keyed (NB201)."""
    if isinstance(rows, Nb101Rows):
        return iter_records_101(rows), False
    if isinstance(rows, Nb201Rows):
        return iter_records_201(rows), True
    raise TypeError(f"not source rows: {type(rows).__name__}")

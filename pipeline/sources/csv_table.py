"""CSV tables (gzip or plain) in the layout of ``nb101/nb101_20k.csv.gz`` / ``nb201/nb201.csv.gz``.

NAS-Bench-101 rows: ``hash, n_vertices, n_edges, adjacency, ops, val_acc_108,
training_time_108, trainable_parameters``. ``val_acc_108`` is ONE run's validation accuracy
(fraction) and goes to ``avg_validation_accuracy``; ``training_time_108`` to
``avg_training_time``; train/test accuracy are unknown. ``trainable_parameters`` is checked
against the computed count. NAS-Bench-201 rows: ``arch_index, arch_str`` and any columns
``{cifar10,cifar100,imagenet16}_{valid,test}_acc`` (percent), written as NAR's
``{..}_val_acc`` / ``{..}_test_acc``; the rest of NAR's metrics are unknown.
"""
from __future__ import annotations

import csv
import gzip
import io
import logging
import math
import re

import numpy as np

from pipeline.errors import NarError
from pipeline.sources import (METRICS_101, METRICS_201, Nb101Rows, Nb201Rows, cells_101,
                              empty_metrics, parse_adjacency)

log = logging.getLogger(__name__)

REQUIRED_101 = ("hash", "n_vertices", "n_edges", "adjacency", "ops")
REQUIRED_201 = ("arch_index", "arch_str")
COLUMNS_101 = {"val_acc_108": "avg_validation_accuracy", "training_time_108": "avg_training_time"}
_ACC_201 = re.compile(r"(cifar10|cifar100|imagenet16)_(valid|test)_acc")


def _open(path):
    with open(path, "rb") as fh:
        gz = fh.read(2) == b"\x1f\x8b"
    raw = gzip.open(path, "rb") if gz else open(path, "rb")
    return io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")  # a byte-order mark is fine


def _rows(path, bench, required, limit):
    """(row number, dict) of the table, header checked; at most ``limit`` rows."""
    try:
        with _open(path) as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in required if c not in (reader.fieldnames or [])]
            if missing:
                raise NarError(f"{path}: missing column(s) {', '.join(missing)} for bench "
                               f"{bench}; is this a NAS-Bench-{bench} table?")
            out = []
            for row in reader:
                if limit is not None and len(out) >= limit:
                    break
                if None in row or any(v is None for v in row.values()):
                    raise NarError(f"{path}: row {reader.line_num - 1}: wrong number of "
                                   f"fields; fix the row")
                out.append((reader.line_num - 1, row))
            return reader.fieldnames, out
    except (OSError, EOFError, UnicodeDecodeError, csv.Error) as e:
        raise NarError(f"{path}: cannot read the table ({e})") from None


def _float(v, where):
    if v is None or v.strip() == "":
        return math.nan
    try:
        x = float(v)
    except ValueError:
        raise NarError(f"{where}: {v!r} is not a number; fix the row") from None
    if math.isinf(x):
        raise NarError(f"{where}: {v!r} is not a finite number; fix the row (leave it empty if unknown)")
    return x


def _table(path, bench, required, limit):
    fields, rows = _rows(path, bench, required, limit)
    if not rows:
        raise NarError(f"{path}: the table has no rows")
    return fields, rows


def read(bench, path, limit: int | None = None):
    """The table at ``path`` read by the CSV reader of the space ``bench``."""
    from pipeline.spaces import create_space
    return create_space(bench).read_source(str(path), "csv", limit=limit)


def read_101(path, limit: int | None = None) -> Nb101Rows:
    """A NAS-Bench-101 table (columns :data:`REQUIRED_101`, metrics of :data:`COLUMNS_101`)."""
    fields, rows = _table(path, "101", REQUIRED_101, limit)
    hashes, mats, op_lists = [], [], []
    n = len(rows)
    metrics = empty_metrics(METRICS_101, n)
    expected = np.full(n, -1, dtype=np.int64)
    for i, (line, row) in enumerate(rows):
        h = row["hash"].strip()
        where = f"{path}: row {line} (hash {h})"
        m = parse_adjacency(row["adjacency"].strip(), where)
        ops = [o.strip() for o in row["ops"].split(",")]
        try:
            nv, ne = int(row["n_vertices"]), int(row["n_edges"])
        except ValueError:
            raise NarError(f"{where}: n_vertices/n_edges are not integers; fix the row") from None
        if nv != len(m) or nv != len(ops) or ne != int(m.sum()):
            raise NarError(f"{where}: n_vertices {nv} / n_edges {ne} do not match the "
                           f"adjacency ({len(m)} vertices, {int(m.sum())} edges) and "
                           f"{len(ops)} ops; fix the row")
        for col, name in COLUMNS_101.items():
            if col in row:
                metrics[name][i] = _float(row[col], where)
        if row.get("trainable_parameters", "").strip():
            p = _float(row["trainable_parameters"], where)
            if not (0 <= p < 2 ** 63 and p == int(p)):
                raise NarError(f"{where}: trainable_parameters {row['trainable_parameters']!r} is not a "
                               f"whole number in 0..2^63-1; fix the row")
            expected[i] = int(p)
        hashes.append(h)
        mats.append(m)
        op_lists.append(ops)
    line_of = [line for line, _ in rows]
    adjacency, ops, nv = cells_101(
        hashes, mats, op_lists, lambda i: f"{path}: row {line_of[i]} (hash {hashes[i]})")
    log.info("%s: %d NAS-Bench-101 rows", path, n)
    return Nb101Rows(hashes, adjacency, ops, nv, metrics, expected)


def read_201(path, limit: int | None = None) -> Nb201Rows:
    """A NAS-Bench-201 table (columns :data:`REQUIRED_201` and accuracy columns)."""
    from pipeline import nb201_space

    fields, rows = _table(path, "201", REQUIRED_201, limit)
    columns = {}
    for col in fields:
        m = _ACC_201.fullmatch(col)
        if m:
            columns[col] = f"{m.group(1)}_{'val' if m.group(2) == 'valid' else 'test'}_acc"
    n = len(rows)
    metrics = empty_metrics(METRICS_201, n)
    index = np.zeros(n, dtype=np.int64)
    ops6 = np.zeros((n, 6), dtype=np.int8)
    seen = {}
    for i, (line, row) in enumerate(rows):
        where = f"{path}: row {line} (arch_index {row['arch_index']!r})"
        try:
            k = int(row["arch_index"])
            ops6[i] = nb201_space.parse_arch(row["arch_str"].strip())
        except NarError as e:
            raise NarError(f"{where}: {e}") from None
        except ValueError as e:
            raise NarError(f"{where}: bad arch_index or arch_str ({e}); fix the row") from None
        if not 0 <= k < nb201_space.N_ARCHS_201:
            raise NarError(f"{where}: arch_index {k} is outside 0..{nb201_space.N_ARCHS_201 - 1}; "
                           f"fix the row")
        if k in seen:
            raise NarError(f"{where}: arch_index {k} repeats row {seen[k]}; remove one")
        seen[k] = line
        index[i] = k
        for col, name in columns.items():
            metrics[name][i] = _float(row[col], where)
    log.info("%s: %d NAS-Bench-201 rows (metrics %s)", path, n, sorted(set(columns.values())))
    return Nb201Rows(index, ops6, metrics)

"""Readers that turn a benchmark source into column arrays for the NAR JSON writer.

A source is a path (CSV table, NAS-Bench-101 ``.tfrecord``, NAS-Bench-201 ``.pth``) or a
keyword (``analognas``, ``space``). Every reader returns :class:`Nb101Rows` or
:class:`Nb201Rows`: structure as arrays, metrics as float64 arrays with NaN for unknown (written
as JSON null). :func:`read_source` picks the reader.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cache.store import OP_CODES_101
from pipeline.errors import NarError

log = logging.getLogger(__name__)

# NAR's metric fields, in record order.
METRICS_101 = ("avg_training_time", "avg_train_accuracy", "avg_validation_accuracy",
               "avg_test_accuracy")
METRICS_201 = ("cifar10_val_acc", "cifar10_test_acc", "cifar100_val_acc", "cifar100_test_acc",
               "imagenet16_val_acc", "imagenet16_test_acc", "cifar10_latency",
               "cifar100_latency", "imagenet16_latency")


@dataclass
class Nb101Rows:
    """NAS-Bench-101 cells: ``adjacency`` (N,7,7) int8 top-left n x n, ``ops`` (N,7) int8 codes
    of ``cache.store.OP_CODES_101`` (0 past n), ``n_vertices`` (N,), ``hashes`` str list or S32;
    ``metrics`` maps each of ``METRICS_101`` to (N,) float64 (NaN = unknown);
    ``expected_params`` (N,) int64 (-1 = none) is checked against the computed count."""

    hashes: list
    adjacency: np.ndarray
    ops: np.ndarray
    n_vertices: np.ndarray
    metrics: dict = field(default_factory=dict)
    expected_params: np.ndarray | None = None

    def __len__(self):
        return len(self.hashes)


@dataclass
class Nb201Rows:
    """NAS-Bench-201 cells: ``arch_index`` (N,) record keys (official index; analognas: canonical
    code), ``ops6`` (N,6) op indices of
    ``cache.store.OPS_201`` in architecture-string edge order; ``metrics`` maps each of
    ``METRICS_201`` to (N,) float64 (NaN = unknown)."""

    arch_index: np.ndarray
    ops6: np.ndarray
    metrics: dict = field(default_factory=dict)

    def __len__(self):
        return len(self.arch_index)


def empty_metrics(names, n):
    """Every metric unknown (NaN)."""
    return {k: np.full(n, np.nan) for k in names}


SPACE_CHECK_MIN = 50_000  # from this many cells on, check against the enumerated space


def cells_101(hashes, matrices, op_lists, where, space_check_min: int = SPACE_CHECK_MIN):
    """Validate NAS-Bench-101 cells and pack them as arrays.

    ``matrices``: n x n 0/1 nested lists or arrays; ``op_lists``: lists of op names. Each cell
    must be valid, pruned, and its module hash must equal the given one; ``where(i)`` names
    cell i in errors. From ``space_check_min`` cells on, cells identical to the enumerated
    space's cell of the same hash (``nb101_space.load_space``) are accepted without hashing
    them one by one. Returns (adjacency (N,7,7) int8, ops (N,7) int8, n_vertices (N,) int8).
    """
    n = len(hashes)
    adjacency = np.zeros((n, 7, 7), dtype=np.int8)
    ops = np.zeros((n, 7), dtype=np.int8)
    n_vertices = np.zeros(n, dtype=np.int8)
    for i, (m, o) in enumerate(zip(matrices, op_lists)):
        m = np.asarray(m, dtype=np.int8)
        nv = len(o)
        if m.shape != (nv, nv) or not 2 <= nv <= 7:
            raise NarError(f"{where(i)}: adjacency of shape {m.shape} does not match "
                           f"{nv} ops; fix the cell")
        try:
            ops[i, :nv] = [OP_CODES_101[name] for name in o]
        except KeyError as e:
            raise NarError(f"{where(i)}: unknown op {e.args[0]!r}; use one of "
                           f"{sorted(OP_CODES_101)}") from None
        adjacency[i, :nv, :nv] = m
        n_vertices[i] = nv
    todo = range(n)
    if n >= space_check_min:
        todo = np.flatnonzero(~_in_space(hashes, adjacency, ops, n_vertices)).tolist()
        log.info("%d of %d cells equal the space's cell of their hash", n - len(todo), n)
    for i in todo:
        _check_cell(hashes[i], adjacency[i], ops[i], int(n_vertices[i]), where(i))
    return adjacency, ops, n_vertices


def _in_space(hashes, adjacency, ops, n_vertices) -> np.ndarray:
    """Per cell: whether the space holds exactly this cell under this hash."""
    from pipeline import nb101_space

    space = nb101_space.load_space()
    idx = space.find(np.asarray(hashes, dtype="S32"))
    safe = np.maximum(idx, 0)
    return ((idx >= 0) & (space.n_vertices[safe] == n_vertices)
            & (space.ops[safe] == ops).all(axis=1)
            & (space.adjacency[safe] == adjacency).all(axis=(1, 2)))


def _check_cell(h, adjacency, codes, nv, where):
    from cache.store import OP_NAMES_101
    from pipeline import nb101_space

    m = adjacency[:nv, :nv]
    o = [OP_NAMES_101[int(c)] for c in codes[:nv]]
    try:
        nb101_space.validate_cell(m, o)
        pruned, _ = nb101_space.prune(m, o)
    except NarError as e:
        raise NarError(f"{where}: invalid cell ({e})") from None
    if pruned.shape != m.shape:
        raise NarError(f"{where}: {nv - len(pruned)} vertices are off every "
                       f"input->output path, so the cell is not in the space; prune it")
    got = nb101_space.module_hash(m, o)
    if got != h:
        raise NarError(f"{where}: module hash {got} of the cell differs from the "
                       f"given hash {h}; the row is corrupt")


def parse_adjacency(s: str, where: str):
    """Row-major 0/1 string of an n x n matrix -> (n, n) int8 array."""
    n = int(round(len(s) ** 0.5))
    if n * n != len(s) or set(s) - {"0", "1"}:
        raise NarError(f"{where}: adjacency {s!r} is not a square 0/1 string; fix the row")
    return np.frombuffer(s.encode(), dtype=np.uint8).reshape(n, n).astype(np.int8) - ord("0")


def _keywords() -> list:
    from pipeline.spaces import all_spaces
    return sorted({k for sp in all_spaces() for k in sp.source_keywords})


def source_kind(source: str) -> str:
    """``csv``, ``tfrecord``, ``pth`` or a keyword; NarError for anything else."""
    if source in _keywords():
        return source
    name = Path(source).name.lower()
    if name.endswith((".csv", ".csv.gz")):
        return "csv"
    if name.endswith(".tfrecord"):
        return "tfrecord"
    if name.endswith(".pth"):
        return "pth"
    if name.endswith(".json"):
        return "json"
    if name.endswith(".bench"):
        return "bench"
    raise NarError(f"unknown source {source!r}: give a .csv/.csv.gz table, a .tfrecord, a .pth, a .json table, "
                   f"a NAS-Bench-Graph .bench, "
                   f"or one of {_keywords()}")


def read_source(bench, source: str, limit: int | None = None, epochs: int = 108, dataset=None):
    """Read ``source`` for the space ``bench`` (a registered name or alias such as "101",
    or a :class:`pipeline.spaces.SearchSpace`) with the space's reader of that kind of
    source; the first ``limit`` cells when given. ``epochs`` is the NAS-Bench-101 tfrecord
    budget to keep; ``dataset`` picks one table of a source that holds several (NAS-Bench-Graph).
    """
    from pipeline.spaces import all_spaces, create_space

    space = create_space(bench) if isinstance(bench, (str, int)) else bench
    kind = source_kind(source)
    if kind not in space.source_kinds():
        allowed = [sp.bench for sp in all_spaces() if kind in sp.source_kinds()]
        raise NarError(f"source {source!r} ({kind}) is for bench {'/'.join(allowed)}, "
                       f"not {space.bench}")
    if kind not in space.source_keywords and not Path(source).is_file():
        raise NarError(f"source not found: {source} (check the path)")
    try:
        rows = space.read_source(source, kind, limit=limit, epochs=epochs,
                                 **({"dataset": dataset} if dataset is not None else {}))
    except NarError:
        raise
    except Exception as e:  # noqa: BLE001 - a malformed file that no specific check caught
        what = {"csv": "table", "tfrecord": "NAS-Bench-101 tfrecord", "pth": "NAS-Bench-201 .pth",
                "bench": "NAS-Bench-Graph table"}.get(kind, kind)
        raise NarError(f"{source}: cannot read it as a {what} ({type(e).__name__}: "
                       f"{' '.join(str(e).split())[:160]}); check the file (re-download it)") from None
    if isinstance(rows, (Nb101Rows, Nb201Rows)):  # the built-in spaces; user spaces check their own
        check_metrics(rows, source)
        check_unique(rows, source)
    return rows


def check_unique(rows, source) -> None:
    """Each architecture once: NB101 hashes, NB201 indices and cells; NarError naming both."""
    if isinstance(rows, Nb101Rows):
        named = [("unique_hash", np.asarray(rows.hashes, dtype="S32"))]
    else:
        from pipeline.nb201_space import arch_code

        named = [("arch_index", np.asarray(rows.arch_index)), ("cell (arch_str)", arch_code(rows.ops6))]
    for what, values in named:
        order = np.argsort(values, kind="stable")
        same = np.flatnonzero(values[order][1:] == values[order][:-1])
        if len(same):
            i, j = sorted((int(order[same[0]]), int(order[same[0] + 1])))
            raise NarError(f"{source}: records {i} and {j} have the same {what}; each architecture must "
                           "appear once: remove one")


# metric -> (low, high) of a valid value; NaN means unknown and is always allowed
_RANGES = {"avg_training_time": (0, np.inf), "avg_train_accuracy": (0, 1), "avg_validation_accuracy": (0, 1),
           "avg_test_accuracy": (0, 1), **{m: (0, 100) for m in METRICS_201 if m.endswith("_acc")},
           **{m: (0, np.inf) for m in METRICS_201 if m.endswith("_latency")}}


def check_metrics(rows, source) -> None:
    """Every metric is NaN (unknown) or a finite value in its range; NarError naming the row
    (its key) and the field otherwise. Expected parameter counts must fit int64."""
    keys = rows.hashes if isinstance(rows, Nb101Rows) else rows.arch_index
    for name, values in rows.metrics.items():
        v = np.asarray(values, dtype=np.float64)
        lo, hi = _RANGES.get(name, (-np.inf, np.inf))
        bad = np.isinf(v) | (v < lo) | (v > hi)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            unit = "a fraction" if hi == 1 else "a percentage" if hi == 100 else "a number"
            raise NarError(f"{source}: record {i} ({keys[i]}): {name} is {v[i]!r}; it must be {unit} in "
                           f"[{lo}, {hi}] (or empty for unknown): fix the source")

"""NAS-Bench-Graph light tables (``pip install .[graph]``): one dataset's 26,206 architectures.

A table (``nas_bench_graph/light/<dataset>.bench`` inside the ``nas-bench-graph`` wheel, or any
file of that format) is a pickled dict: the benchmark's architecture hash -> ``{"valid_perf",
"perf", "latency", "para"}`` (validation and test performance as fractions, latency in seconds,
parameters in millions). The hash is the index of the link pattern (one of 9) followed by the
4 op digits (:func:`pipeline.spaces.graph_cells.decode_nbg_hash`).

The file is read with an unpickler that only builds dicts, numbers and numpy scalars, so a
crafted file cannot run code. Source ``nasbenchgraph`` with ``--dataset NAME`` reads the
installed package's table; a path to a ``.bench`` file reads that file (its dataset name is
``--dataset`` or the file's stem).
"""
from __future__ import annotations

import importlib.util
import logging
import math
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.errors import NarError
from pipeline.spaces.graph_cells import (N_NODES, OPS_NBG, canonical_key, decode_nbg_hash)

log = logging.getLogger(__name__)

DATASETS_NBG = ("cora", "citeseer", "pubmed", "cs", "physics", "photo", "computers", "arxiv", "proteins")
_FIELDS = ("valid_perf", "perf", "latency", "para")
_ALLOWED = {("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"), ("numpy", "dtype")}


@dataclass
class GraphRows:
    """Architectures of one dataset's table, sorted by the benchmark's hash."""
    dataset: str
    nbg_hash: np.ndarray      # (N,) int64
    cells: np.ndarray         # (N, 8) parents then op indices of OPS_NBG
    keys: list
    val_acc: np.ndarray       # (N,) percent
    test_acc: np.ndarray      # (N,) percent
    latency: np.ndarray       # (N,) seconds
    params: np.ndarray        # (N,) int64 parameter count

    def __len__(self):
        return len(self.keys)

    def records(self):
        for i, key in enumerate(self.keys):
            c = self.cells[i]
            yield {"key": key, "nbg_hash": int(self.nbg_hash[i]), "dataset": self.dataset,
                   "link": [int(p) for p in c[:N_NODES]], "ops": [OPS_NBG[int(o)] for o in c[N_NODES:]],
                   "params": int(self.params[i]), "latency": float(self.latency[i]),
                   "val_acc": float(self.val_acc[i]), "test_acc": float(self.test_acc[i])}


class _TableUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a NAS-Bench-Graph table")


def package_table(dataset) -> Path:
    """The installed package's light table of ``dataset``."""
    if dataset is None:
        raise NarError(f"source nasbenchgraph needs --dataset, one of {', '.join(DATASETS_NBG)}")
    if dataset not in DATASETS_NBG:
        raise NarError(f"unknown NAS-Bench-Graph dataset {dataset!r}; use one of {', '.join(DATASETS_NBG)}")
    spec = importlib.util.find_spec("nas_bench_graph")
    if spec is None or not spec.submodule_search_locations:
        raise NarError("source nasbenchgraph needs the nas-bench-graph package: pip install 'nar-ranker[graph]' "
                       "(or pip install nas-bench-graph), or pass a .bench file as --source")
    path = Path(list(spec.submodule_search_locations)[0]) / "light" / f"{dataset}.bench"
    if not path.is_file():
        raise NarError(f"the installed nas-bench-graph has no table {path}; reinstall it (pip install nas-bench-graph)")
    return path


def load_table(path) -> dict:
    try:
        with open(path, "rb") as fh:
            table = _TableUnpickler(fh).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError, IndexError) as e:
        raise NarError(f"{path}: not a NAS-Bench-Graph table ({type(e).__name__}: {str(e)[:120]}); "
                       "give a light .bench file of the nas-bench-graph package") from None
    if not isinstance(table, dict) or not table:
        raise NarError(f"{path}: a NAS-Bench-Graph table is a non-empty dict of architecture hash -> metrics")
    return table


def _value(entry, name, where, lo=0.0, hi=math.inf) -> float:
    v = entry.get(name)
    try:
        x = float(v)
    except (TypeError, ValueError):
        x = math.nan
    if not (math.isfinite(x) and lo <= x <= hi):
        raise NarError(f"{where}: {name} is {v!r}; it must be a number in [{lo}, {hi}]: the table is damaged "
                       "(reinstall nas-bench-graph)")
    return x


def read(source: str, dataset=None, limit: int | None = None) -> GraphRows:
    """Read one dataset's table (see the module docstring); NarError naming the bad entry."""
    if source == "nasbenchgraph":
        path = package_table(dataset)
    else:
        path = Path(source)
        dataset = dataset or path.name.split(".")[0]
    table = load_table(path)
    hashes = sorted(table)
    if not all(isinstance(h, (int, np.integer)) and not isinstance(h, bool) for h in hashes):
        raise NarError(f"{path}: the table's keys must be integer architecture hashes")
    if limit is not None:
        hashes = hashes[:limit]
    n = len(hashes)
    rows = GraphRows(dataset, np.array(hashes, np.int64), np.zeros((n, 2 * N_NODES), np.int64), [],
                     np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n, np.int64))
    seen = {}
    for i, h in enumerate(hashes):
        where = f"{path}: architecture {h}"
        entry = table[h]
        if not isinstance(entry, dict) or any(f not in entry for f in _FIELDS):
            raise NarError(f"{where}: expected the fields {', '.join(_FIELDS)}; the table is not NAS-Bench-Graph's")
        parents, ops = decode_nbg_hash(h, where)
        key = canonical_key(parents, ops)
        if not key:
            raise NarError(f"{where}: the all-skip cell is not in the space; the table is damaged")
        if key in seen:
            raise NarError(f"{where} is the same architecture as {seen[key]} (key {key}); keep one")
        seen[key] = h
        rows.cells[i] = [*parents, *ops]
        rows.keys.append(key)
        rows.val_acc[i] = 100 * _value(entry, "valid_perf", where, 0, 1)
        rows.test_acc[i] = 100 * _value(entry, "perf", where, 0, 1)
        rows.latency[i] = _value(entry, "latency", where)
        rows.params[i] = int(round(1e6 * _value(entry, "para", where)))
    log.info("%s: %d NAS-Bench-Graph architectures (%s)", path, n, dataset)
    return rows

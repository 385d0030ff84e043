"""The NAS-Bench-201 cells of the ``analog-nasbench`` package (``analognasbench/data.anb``).

CIFAR-10 only. ``baseline_accuracy`` (percent) is AnalogNAS-Bench's OWN training of each cell,
not NAS-Bench-201's runs (Pearson 0.9993 with NAS-Bench-201's mean test accuracy); it is
written as ``cifar10_test_acc``. Validation accuracy and everything else is unknown (null).

``data.anb`` is a pickle of {6-tuple: Architecture}. Tuple codes: skip_connect 0, none 1,
nor_conv_3x3 2, nor_conv_1x1 3, avg_pool_3x3 4, on edges (1,2),(1,3),(1,4),(2,3),(2,4),(3,4);
position i of the NAS-Bench-201 string is tuple position ``STRING_TO_TUPLE[i]``. It is read
with an unpickler that admits only the package's two record classes. The package's own
loader needs the removed ``pkg_resources``, so the file is located without importing it.

The file carries no official NAS-Bench-201 index, so records are keyed by the canonical code
of ``nb201_space.arch_code`` (base 5, first edge least significant); ``arch_str`` identifies
each cell.
"""
from __future__ import annotations

import importlib.util
import logging
import pickle
from pathlib import Path

import numpy as np

from pipeline.errors import NarError
from pipeline.sources import METRICS_201, Nb201Rows, empty_metrics

log = logging.getLogger(__name__)

PACKAGE, DATA_FILE = "analognasbench", "data.anb"
STRING_TO_TUPLE = (0, 1, 3, 2, 4, 5)
# analog-nasbench op code -> index in cache.store.OPS_201
CODE_TO_OP = np.array([1, 0, 3, 2, 4], dtype=np.int8)


class _Record:
    """Stand-in for the package's ``Architecture`` / ``DriftMeasurement`` (attributes only)."""


class _Unpickler(pickle.Unpickler):
    ALLOWED = {(f"{PACKAGE}.data", "Architecture"), (f"{PACKAGE}.data", "DriftMeasurement")}

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return _Record
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed")


def data_path() -> Path:
    """Path of ``data.anb`` inside the installed package, found without importing it."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise NarError(f"package analog-nasbench is not installed; pip install "
                       f"'analog-nasbench>=0.1.3' (or the project's [analognas] extra)")
    for folder in spec.submodule_search_locations:
        p = Path(folder) / DATA_FILE
        if p.is_file():
            return p
    raise NarError(f"{PACKAGE} is installed but has no {DATA_FILE}; reinstall analog-nasbench")


def load(path=None) -> dict:
    """{6-tuple: record} of the package's data file."""
    path = Path(path) if path is not None else data_path()
    try:
        with open(path, "rb") as fh:
            data = _Unpickler(fh).load()
    except (pickle.UnpicklingError, EOFError, AttributeError, ValueError) as e:
        raise NarError(f"{path}: cannot read AnalogNAS-Bench data ({e}); reinstall "
                       f"analog-nasbench") from None
    if not isinstance(data, dict):
        raise NarError(f"{path}: expected a dict of architectures, got {type(data).__name__}")
    return data


def tuple_to_ops6(key) -> np.ndarray:
    """AnalogNAS-Bench 6-tuple -> 6 op indices (``OPS_201``) in string edge order."""
    codes = np.asarray(key, dtype=np.int64)
    if codes.shape != (6,) or codes.min() < 0 or codes.max() > 4:
        raise NarError(f"AnalogNAS-Bench key {key!r} is not 6 op codes in 0..4")
    return CODE_TO_OP[codes[list(STRING_TO_TUPLE)]]


def read(limit: int | None = None, path=None) -> Nb201Rows:
    """All cells, ordered by canonical code, with ``cifar10_test_acc`` = baseline accuracy."""
    from pipeline.nb201_space import N_ARCHS_201, arch_code

    data = load(path)
    keys = list(data)
    ops6 = np.stack([tuple_to_ops6(k) for k in keys]).astype(np.int8)
    acc = np.array([float(getattr(data[k], "baseline_accuracy", np.nan)) for k in keys])
    codes = arch_code(ops6)
    if len(np.unique(codes)) != len(codes):
        raise NarError("AnalogNAS-Bench data holds a cell twice; reinstall analog-nasbench")
    if len(codes) != N_ARCHS_201:
        log.warning("AnalogNAS-Bench data has %d cells, not %d", len(codes), N_ARCHS_201)
    order = np.argsort(codes)[:limit]
    metrics = empty_metrics(METRICS_201, len(order))
    metrics["cifar10_test_acc"] = acc[order]
    log.info("analog-nasbench: %d cells (CIFAR-10 baseline accuracy)", len(order))
    return Nb201Rows(codes[order].astype(np.int64), ops6[order], metrics)

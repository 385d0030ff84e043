"""The HDF5 tensor store: one file per (bench, source), written atomically, read by memory map.

Layout (N architectures; every dataset is contiguous and uncompressed so it can be mapped):

root datasets (structure, shared by all image datasets)
    key          (N,)        S32 / S96  NB101 module hash, or NB201 architecture string
    index        (N,)        int32      position in the source (NB201: official arch index)
    adjacency    (N, V, V)   int8       NB101: 0/1 matrix of the pruned cell in the top-left
                                        n x n block (V = 7); NB201: ``cell_adjacency``, the op
                                        index of edge i->j (V = 4)
    ops          (N, 7)      int8       NB101 only: vertex type codes (see ``OP_CODES_101``),
                                        0 where the cell has fewer vertices
    n_vertices   (N,)        int8       NB101 only
    op_counts    (N, 5)      int16      NB201 only: count of each op over the 6 edges
data/<dataset>/   one group per image dataset ("cifar10" for NB101; "cifar10", "cifar100",
                  "imagenet16" for NB201)
    features     (N, C, P, P) float32   ReNAS tensor (19x7x7 or 31x4x4)
    flops        (N,)        int64      whole-network FLOPs, NAR's convention
    params       (N,)        int64      whole-network trainable parameters
    val_acc      (N,)        float32    validation accuracy in PERCENT, NaN where unknown
    test_acc     (N,)        float32    test accuracy in PERCENT, NaN where unknown
    (optional)   training_time, latency (N,) float32

File attributes: schema_version, bench (the space's store id: "101"/"201"), n_archs, source_path, source_sha256,
sha256_verified (bool), datasets (comma list), created (ISO time), plus writer extras.
"""
from __future__ import annotations

import datetime as _dt
import logging
import os
from pathlib import Path

import h5py
import numpy as np

from pipeline.atomic import temp_path
from pipeline.errors import NarError

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1


def cache_dir(explicit=None) -> Path:
    """Where stores and caches go: ``explicit`` (``--cache-dir``), else ``$NAR_CACHE_DIR``, else
    ``./cache`` of the working directory; never the installed package's folder."""
    if explicit is not None:
        return Path(explicit)
    env = os.environ.get("NAR_CACHE_DIR")
    return Path(env) if env else Path.cwd() / "cache"

# NB101 vertex type codes used in the store and in channel 0 of the ReNAS tensor.
OP_CODES_101 = {"input": 1, "conv1x1-bn-relu": 2, "conv3x3-bn-relu": 3, "maxpool3x3": 4, "output": 5}
OP_NAMES_101 = {v: k for k, v in OP_CODES_101.items()}
# NB201 op indices used in ``cell_adjacency`` (NAR's convention).
OPS_201 = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]


class StoreWriter:
    """Create a store at ``path`` for ``n`` architectures; nothing appears at ``path`` until
    :meth:`commit`. Use as a context manager: an exception removes the temporary file."""

    def __init__(self, path, n: int, bench: str, attrs: dict | None = None):
        from pipeline.spaces import bench_of
        if bench_of(bench) != bench:  # NarError for unknown spaces
            raise NarError(f"store bench {bench!r}: give the space's store id {bench_of(bench)!r}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = temp_path(self.path)
        self.n = int(n)
        self.bench = bench
        self._attrs = dict(attrs or {})
        self._f = h5py.File(self.tmp, "w")

    def create(self, name: str, tail_shape=(), dtype="float32", fill=None):
        """Allocate a contiguous dataset of shape (n, *tail_shape)."""
        shape = (self.n, *tuple(tail_shape))
        ds = self._f.create_dataset(name, shape=shape, dtype=dtype)
        if fill is not None:
            ds[...] = fill
        return ds

    def write(self, name: str, start: int, values) -> None:
        values = np.asarray(values)
        self._f[name][start:start + len(values)] = values

    def put(self, name: str, values) -> None:
        """Create and fill a whole dataset at once."""
        values = np.asarray(values)
        if len(values) != self.n:
            raise ValueError(f"{name}: {len(values)} rows for a store of {self.n}")
        self.create(name, values.shape[1:], values.dtype)[...] = values

    def commit(self) -> Path:
        a = self._f.attrs
        a["schema_version"] = SCHEMA_VERSION
        a["bench"] = self.bench
        a["n_archs"] = self.n
        a["created"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        a["datasets"] = ",".join(sorted(self._f["data"].keys())) if "data" in self._f else ""
        for k, v in self._attrs.items():
            a[k] = v
        self._f.close()
        os.replace(self.tmp, self.path)
        log.info("wrote store %s (%d archs)", self.path, self.n)
        return self.path

    def abort(self) -> None:
        try:
            self._f.close()
        finally:
            self.tmp.unlink(missing_ok=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.abort()
        return False


class Store:
    """Read-only view of a store; :meth:`array` returns memory-mapped numpy arrays."""

    def __init__(self, path):
        self.path = Path(path)
        if not self.path.exists():
            raise NarError(f"store not found: {self.path} (run `nar-cli encode` first)")
        try:
            self._f = h5py.File(self.path, "r")
        except OSError as e:
            raise NarError(f"cannot open store {self.path}: {e} (delete it and re-run `nar-cli encode`)") from e
        self.attrs = {k: _plain(v) for k, v in self._f.attrs.items()}
        if self.attrs.get("schema_version") != SCHEMA_VERSION:
            raise NarError(
                f"store {self.path} has schema version {self.attrs.get('schema_version')}, "
                f"this version reads {SCHEMA_VERSION} (re-run `nar-cli encode`)")
        self.bench = str(self.attrs["bench"])
        self.n = int(self.attrs["n_archs"])
        self._maps: dict[str, np.ndarray] = {}

    @property
    def datasets(self) -> list[str]:
        return sorted(self._f["data"].keys()) if "data" in self._f else []

    def has(self, name: str) -> bool:
        return name in self._f

    def array(self, name: str) -> np.ndarray:
        """The whole dataset ``name`` as a read-only array, memory-mapped when possible."""
        if name in self._maps:
            return self._maps[name]
        if name not in self._f:
            raise NarError(f"store {self.path} has no dataset {name!r}")
        ds = self._f[name]
        offset = ds.id.get_offset()
        if ds.chunks is None and ds.compression is None and offset is not None and ds.size > 0:
            arr = np.memmap(self.path, mode="r", dtype=ds.dtype, offset=offset, shape=ds.shape)
        else:
            arr = ds[...]
        self._maps[name] = arr
        return arr

    def data(self, dataset: str, name: str) -> np.ndarray:
        """Shortcut for ``array(f"data/{dataset}/{name}")`` with a clear error."""
        if dataset not in self.datasets:
            raise NarError(f"store {self.path} has no data for dataset {dataset!r} "
                           f"(it has: {', '.join(self.datasets) or 'none'})")
        return self.array(f"data/{dataset}/{name}")

    def close(self) -> None:
        self._maps.clear()
        self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def _plain(v):
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, np.generic):
        return v.item()
    return v

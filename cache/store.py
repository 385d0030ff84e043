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
sha256_verified (bool), datasets (comma list), created (ISO time), content_sha256 (JSON:
dataset name -> SHA256 of its dtype, shape and bytes), plus writer extras.

Integrity: every open checks, cheaply, that the attributes are sane and that every dataset
has ``n_archs`` rows (``key`` and ``features`` included); :meth:`Store.verify` re-hashes the
contents against ``content_sha256`` (done when ``encode`` claims a cache hit, when ``train``
starts, and by ``nar-cli verify``).
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
from pathlib import Path

import h5py
import numpy as np

from pipeline.atomic import output_error, remove_stale_temps, temp_path
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
_HASH_BLOCK = 1 << 26  # bytes read per step while hashing a dataset
_REENCODE = "delete it and re-run `nar-cli encode`"


def content_digests(f: h5py.File) -> dict[str, str]:
    """SHA256 of every dataset of an open store (dtype, shape and bytes), by dataset name."""
    out: dict[str, str] = {}

    def visit(name, obj):
        if not isinstance(obj, h5py.Dataset):
            return
        h = hashlib.sha256(f"{obj.dtype.str}{tuple(obj.shape)}".encode())
        if obj.ndim == 0 or obj.size == 0:
            h.update(np.asarray(obj[()]).tobytes())
        else:
            row = max(1, obj.dtype.itemsize * int(np.prod(obj.shape[1:], dtype=np.int64)))
            step = max(1, _HASH_BLOCK // row)
            for i in range(0, obj.shape[0], step):
                h.update(np.ascontiguousarray(obj[i:i + step]).tobytes())
        out[name] = h.hexdigest()

    f.visititems(visit)
    return out


class StoreWriter:
    """Create a store at ``path`` for ``n`` architectures; nothing appears at ``path`` until
    :meth:`commit`. Use as a context manager: an exception removes the temporary file."""

    def __init__(self, path, n: int, bench: str, attrs: dict | None = None):
        from pipeline.spaces import bench_of
        if bench_of(bench) != bench:  # NarError for unknown spaces
            raise NarError(f"store bench {bench!r}: give the space's store id {bench_of(bench)!r}")
        self.path = Path(path)
        if self.path.is_dir():
            raise NarError(f"cannot write store {self.path}: it is a directory; give a file path")
        self.tmp = temp_path(self.path)
        self.n = int(n)
        self.bench = bench
        self._attrs = dict(attrs or {})
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            remove_stale_temps(self.path)
            self._f = h5py.File(self.tmp, "w")
        except OSError as e:
            raise output_error(self.path, e, "store") from e

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
        a["content_sha256"] = json.dumps(content_digests(self._f), sort_keys=True)
        self._f.close()
        try:
            os.replace(self.tmp, self.path)
        except OSError as e:
            self.tmp.unlink(missing_ok=True)
            raise output_error(self.path, e, "store") from e
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
        if self.path.is_dir():
            raise NarError(f"store {self.path} is a directory; give the .h5 file that `nar-cli encode` wrote")
        try:
            self._f = h5py.File(self.path, "r")
        except OSError as e:
            why = " ".join(str(e).split()).split(" (file read failed")[0][:120]
            raise NarError(f"cannot open store {self.path}: {why} (not an HDF5 store, or damaged: "
                           f"pass the .h5 file that `nar-cli encode` wrote, or re-run it)") from e
        try:
            self._open()
        except NarError:
            self._f.close()
            raise
        except Exception as e:  # noqa: BLE001 - any damage to the HDF5 structure
            self._f.close()
            raise NarError(f"store {self.path} is damaged ({type(e).__name__}: "
                           f"{' '.join(str(e).split())[:120]}); {_REENCODE}") from e

    def _open(self) -> None:
        self.attrs = {k: _plain(v) for k, v in self._f.attrs.items()}
        if self.attrs.get("schema_version") != SCHEMA_VERSION:
            raise NarError(
                f"store {self.path} has schema version {self.attrs.get('schema_version')}, "
                f"this version reads {SCHEMA_VERSION} (re-run `nar-cli encode`)")
        self.bench = str(self.attrs.get("bench"))
        n = self.attrs.get("n_archs")
        from pipeline.spaces import bench_of
        try:
            known = bench_of(self.bench) == self.bench
        except NarError:
            known = False
        if not known or not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise NarError(f"store {self.path} has a bad header (bench {self.attrs.get('bench')!r}, "
                           f"n_archs {n!r}); {_REENCODE}")
        self.n = n
        self._maps: dict[str, np.ndarray] = {}
        self._check_shapes()

    def _check_shapes(self) -> None:
        """Cheap consistency check: every dataset has ``n`` rows, keys and features exist."""
        bad = []

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset) and (obj.ndim == 0 or obj.shape[0] != self.n):
                bad.append(f"{name} has {obj.shape[0] if obj.ndim else 0} rows")

        self._f.visititems(visit)
        if "key" not in self._f:
            bad.append("dataset 'key' is missing")
        for ds in self.datasets:
            feats = self._f.get(f"data/{ds}/features")
            if not isinstance(feats, h5py.Dataset) or feats.ndim != 4:
                bad.append(f"data/{ds}/features is missing or not (N, C, P, P)")
        if bad:
            raise NarError(f"store {self.path} is inconsistent ({'; '.join(bad[:3])}; it should hold "
                           f"{self.n} architectures); {_REENCODE}")

    def verify(self, require: bool = True) -> bool:
        """Re-hash every dataset and compare with the checksums written at encode; NarError
        naming the store and the first damaged dataset. A store without checksums (an older
        version wrote it) is an error when ``require``, else a warning (returns False)."""
        raw = self.attrs.get("content_sha256")
        if not raw and not require:
            log.warning("store %s has no content checksum (an older version wrote it); its contents "
                        "cannot be verified: re-run `nar-cli encode` to add one", self.path)
            return False
        if not raw:
            raise NarError(f"store {self.path} has no content checksum (written by an older version); "
                           f"{_REENCODE}")
        try:
            expected = json.loads(raw)
        except ValueError:
            raise NarError(f"store {self.path} has an unreadable content checksum; {_REENCODE}") from None
        try:
            actual = content_digests(self._f)
        except Exception as e:  # noqa: BLE001 - unreadable bytes are damage too
            raise NarError(f"store {self.path} is damaged: its data cannot be read "
                           f"({type(e).__name__}); {_REENCODE}") from e
        for name in sorted(set(expected) | set(actual)):
            if expected.get(name) != actual.get(name):
                what = "is missing" if name not in actual else \
                    "was not written at encode" if name not in expected else "does not match its checksum"
                raise NarError(f"store {self.path} is damaged: dataset {name} {what}; {_REENCODE}")
        return True

    @property
    def datasets(self) -> list[str]:
        g = self._f.get("data")
        return sorted(g.keys()) if isinstance(g, h5py.Group) else []

    def has(self, name: str) -> bool:
        return name in self._f

    def array(self, name: str) -> np.ndarray:
        """The whole dataset ``name`` as a read-only array, memory-mapped when possible."""
        if name in self._maps:
            return self._maps[name]
        if name not in self._f:
            raise NarError(f"store {self.path} has no dataset {name!r}")
        try:
            ds = self._f[name]
            offset = ds.id.get_offset()
            if ds.chunks is None and ds.compression is None and offset is not None and ds.size > 0:
                arr = np.memmap(self.path, mode="r", dtype=ds.dtype, offset=offset, shape=ds.shape)
            else:
                arr = ds[...]
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as e:
            raise NarError(f"store {self.path}: dataset {name} cannot be read ({type(e).__name__}); "
                           f"{_REENCODE}") from e
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

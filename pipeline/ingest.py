"""NAR cell-information JSON -> HDF5 tensor store, streamed and cached by the file's SHA256.

One pass over the file computes its SHA256 and finds where each record ends
(``pipeline.json_split``), so the store can be allocated up front; worker processes
(``pipeline.workers``: they die with the command, even on ``kill -9``) then each
parse (ijson's C backend) and encode (``pipeline.encode``) a byte range of whole records, and
the main process writes each chunk into the store in file order. Files that cannot be split
are streamed by one process (the same code as ``n_jobs=1``). Nothing appears at the store
path unless every record was good.
"""
from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import ijson
import numpy as np
from tqdm import tqdm

from cache.store import CACHE_DIR, DATASETS, Store, StoreWriter
from pipeline.atomic import check_output_file, remove_stale_temps
from pipeline.checksum import file_sha256, normalise_hex, verify_sha256
from pipeline.encode import ENCODER_VERSION, ENCODERS
from pipeline.errors import NarError, other_bench_hint, require_path
from pipeline.json_split import RecordScanner, SplitFailed, byte_ranges, parse_range, tail_is_closing
from pipeline.record_checks import DepthGuard, StrictDict, prepare_hash_check
from pipeline.workers import ordered_map

log = logging.getLogger(__name__)

CHUNK_RECORDS = 4096
_MARKER = {"101": b'"unique_hash"', "201": b'"cell_adjacency"'}  # one per record
_TOP = {"101": (b"[", "a list of records"), "201": (b"{", "an object keyed by architecture index")}
_CLOSING = {"101": b"]", "201": b"}"}
_READ_BUF = 1 << 16


def check_bench(bench) -> str:
    b = str(bench)
    if b not in DATASETS:
        raise NarError(f"unknown bench {bench!r}: use 101 or 201")
    return b


def json_backend():
    """ijson's C backend (yajl2_c); falls back, with a warning, to ijson's default."""
    try:
        return ijson.get_backend("yajl2_c")
    except ImportError:
        log.warning("ijson's C backend yajl2_c is unavailable (using %s): parsing will be slow; "
                    "reinstall ijson from a wheel with its C extension", ijson.backend)
        return ijson


@dataclass
class SourceScan:
    """What one read of the source tells: its digest, record markers, first non-blank byte,
    and the byte offset past each record (None when the file cannot be split safely)."""
    sha256: str
    markers: int
    first: bytes
    ends: np.ndarray | None


def scan_source(path, bench: str) -> SourceScan:
    """Read ``path`` once: SHA256, record markers and record boundaries."""
    marker = _MARKER[bench]
    state = {"count": 0, "tail": b"", "first": b""}
    scanner = RecordScanner()
    depth = DepthGuard(path)

    def on_block(block: bytes) -> None:
        depth(block)
        buf = state["tail"] + block
        state["count"] += buf.count(marker)
        state["tail"] = buf[-(len(marker) - 1):]
        if not state["first"]:
            state["first"] = block.lstrip()[:1]
        scanner(block)

    digest = file_sha256(path, on_block)
    ends = scanner.ends
    if ends is not None and not (state["first"] == _TOP[bench][0]
                                 and tail_is_closing(path, ends, _CLOSING[bench])):
        ends = None
    return SourceScan(digest, state["count"], state["first"], ends)


def store_path_for(json_path, bench, out=None, sha256: str | None = None) -> Path:
    """Where the store of ``json_path`` lives: ``out`` if given, else
    ``cache/{bench}_{sha256[:12]}.h5`` (``sha256`` saves hashing the file when known)."""
    bench = check_bench(bench)
    if out is not None:
        return Path(out)
    if sha256:
        digest = normalise_hex(sha256, "--sha256")
    else:
        digest = file_sha256(require_path(json_path, "NAR JSON file", "check --data_path"))
    return CACHE_DIR / f"{bench}_{digest[:12]}.h5"


def _cache_hit(path: Path, bench: str, digest: str, verified: bool) -> bool:
    if not path.exists():
        return False
    try:
        with Store(path) as s:
            a = s.attrs
    except NarError as e:
        log.info("rebuilding %s: %s", path, e)
        return False
    same = (a.get("bench") == bench and a.get("source_sha256") == digest
            and a.get("encoder_version") == ENCODER_VERSION)
    if same and verified and not a.get("sha256_verified"):
        log.info("rebuilding %s: it was encoded without SHA256 verification", path)
        return False
    if not same:
        log.info("rebuilding %s: it holds another source, bench or encoder version", path)
        return False
    try:  # a cache hit is claimed only for intact contents
        with Store(path) as s:
            s.verify()
    except NarError as e:
        log.warning("rebuilding %s: %s", path, e)
        return False
    return True


class _CountingReader:
    """File wrapper that remembers how many bytes the parser has read."""

    def __init__(self, f):
        self.f, self.consumed, self.last = f, 0, 0

    def read(self, n=-1):
        b = self.f.read(n)
        self.consumed += len(b)
        self.last = len(b)
        return b


class _ByteFeeder(_CountingReader):
    """Reads whole blocks up to ``slow_from``, then one byte at a time (to locate an error)."""

    def __init__(self, f, slow_from: int):
        super().__init__(f)
        self.slow_from = slow_from

    def read(self, n=-1):
        if n == 0:  # ijson probes the return type with read(0)
            return self.f.read(0)
        if self.consumed >= self.slow_from:
            n = 1
        elif n < 0 or self.consumed + n > self.slow_from:
            n = self.slow_from - self.consumed
        return super().read(n)


def _json_error_offset(path, window_start: int) -> int:
    """Byte offset at which the JSON in ``path`` stops being valid (its length if truncated)."""
    limit = sys.get_int_max_str_digits() if hasattr(sys, "get_int_max_str_digits") else None
    if limit is not None:  # ijson's C backend crashes when Python refuses a long integer literal
        sys.set_int_max_str_digits(0)  # (DepthGuard keeps every literal under a few KiB)
    try:
        return _locate_json_error(path, window_start)
    finally:
        if limit is not None:
            sys.set_int_max_str_digits(limit)


def _locate_json_error(path, window_start: int) -> int:
    with open(path, "rb") as f:
        feeder = _ByteFeeder(f, max(0, window_start))
        try:
            # a prefix that matches nothing: yajl checks every byte, Python builds no objects
            for _ in json_backend().items(feeder, "\x00", buf_size=_READ_BUF):
                pass
        except (ijson.JSONError, UnicodeDecodeError):
            return feeder.consumed if feeder.last == 0 else feeder.consumed - 1
    return feeder.consumed


def _chunks(path, bench: str, chunk: int):
    """Yield (start, records) from the stream; NarError on malformed JSON."""
    backend = json_backend()
    with open(path, "rb") as f:
        reader = _CountingReader(f)
        if bench == "101":
            stream = backend.items(reader, "item", use_float=True, buf_size=_READ_BUF, map_type=StrictDict)
        else:
            stream = backend.kvitems(reader, "", use_float=True, buf_size=_READ_BUF, map_type=StrictDict)
        start, batch = 0, []
        try:
            for rec in stream:
                batch.append(rec)
                if len(batch) == chunk:
                    yield start, batch
                    start, batch = start + chunk, []
        except (ijson.JSONError, UnicodeDecodeError) as e:
            at = _json_error_offset(path, reader.consumed - reader.last)
            reason = " ".join(str(e).split()[:4]) if "overflow" in str(e) else ""
            hint = f" ({reason}: numbers must fit a 64-bit integer)" if reason else ""
            raise NarError(f"{path} is truncated or not JSON at byte {at}{hint}; re-download it "
                           f"(or rebuild it with `nar-cli build`)") from None
        if batch:
            yield start, batch


def encode_range(path, bench: str, first: int, n: int, start: int, end: int) -> dict:
    """Worker: parse and encode the ``n`` records in bytes [start, end) of ``path``."""
    return ENCODERS[bench](parse_range(path, bench, start, end, n), first)


def _encoded(path, bench: str, n_jobs: int, chunk: int, ends):
    """Encoded chunks in file order. With ``n_jobs`` > 1 and record boundaries known, worker
    processes each parse and encode a byte range of whole records; else one process streams."""
    if n_jobs > 1 and ends is not None and len(ends) > chunk:  # one chunk: no worker start-up
        yield from ordered_map(encode_range, ((str(path), bench, *r) for r in byte_ranges(ends, chunk)),
                               n_jobs)
        return
    encode = ENCODERS[bench]
    for start, recs in _chunks(path, bench, chunk):
        yield encode(recs, start)


def _check_unique(values: np.ndarray, what: str, path) -> None:
    order = np.argsort(values, kind="stable")
    s = values[order]
    dup = np.flatnonzero(s[1:] == s[:-1])
    if len(dup):
        i, j = order[dup[0]], order[dup[0] + 1]
        v = s[dup[0]]
        v = v.decode() if isinstance(v, bytes) else v
        raise NarError(f"{path}: records {i} and {j} have the same {what} {v!r}; "
                       f"each architecture must appear once (rebuild the file)")


def _write_store(path, out: Path, bench: str, n: int, attrs: dict, n_jobs: int,
                 chunk: int, progress: bool, ends) -> None:
    with StoreWriter(out, n, bench, attrs) as w, \
            tqdm(total=n, unit="rec", desc=f"encode NB{bench}", file=sys.stderr,
                 disable=not progress) as bar:
        pos, keys, index, counts = 0, [], [], {"records": n}
        for arrays in _encoded(path, bench, n_jobs, chunk, ends):
            k = len(arrays["key"])
            if pos + k > n:
                raise NarError(f"{path} holds more records than its {n} record markers; "
                               f"the file is malformed: re-download or rebuild it")
            for name, values in arrays.items():
                if pos == 0:
                    w.create(name, values.shape[1:], values.dtype)
                w.write(name, pos, values)
                if name.endswith("_acc"):
                    counts[name[5:]] = counts.get(name[5:], 0) + int(np.isfinite(values).sum())
            keys.append(arrays["key"])
            index.append(arrays["index"])
            pos += k
            bar.update(k)
        if pos != n:
            raise NarError(f"{path}: parsed {pos} records but counted {n} record markers; "
                           f"the file is malformed: re-download or rebuild it")
        if n == 0:
            raise NarError(f"{path} holds no NB{bench} records; check --bench and the file")
        _check_unique(np.concatenate(keys), "unique_hash" if bench == "101" else "arch_str", path)
        if bench == "201":
            _check_unique(np.concatenate(index), "index", path)
        w._attrs["counts"] = json.dumps(counts)
        w.commit()


def ingest(json_path, bench, out=None, sha256: str | None = None, skip_sha256: bool = False,
           n_jobs: int = 2, chunk_records: int = CHUNK_RECORDS, progress: bool = False) -> Path:
    """Encode a NAR cell-information JSON into a store and return its path; a store of the
    same source (SHA256), bench, schema and encoder version is reused ("cache hit")."""
    bench = check_bench(bench)
    path = require_path(json_path, "NAR JSON file", "check --data_path")
    if not path.is_file():
        raise NarError(f"{path} is not a file; give the NAR JSON file itself as --data_path")
    if n_jobs < 1:
        raise NarError(f"--n_jobs must be at least 1, got {n_jobs}")
    scan = scan_source(path, bench)
    digest = scan.sha256
    if not skip_sha256:
        verify_sha256(path, bench, digest, sha256)
    target = Path(out) if out is not None else CACHE_DIR / f"{bench}_{digest[:12]}.h5"
    check_output_file(target, "store")
    remove_stale_temps(target)  # left by an encode that was killed
    if _cache_hit(target, bench, digest, not skip_sha256):
        log.info("cache hit: %s (source %s, sha256 %s)", target, path, digest[:12])
        return target
    top, shape = _TOP[bench]
    if scan.first and scan.first in b"[{" and scan.first != top:
        other = "201" if bench == "101" else "101"
        raise NarError(f"{path} is not NB{bench} data (NB{bench} is {shape}); {other_bench_hint(other)}")
    attrs = {"source_path": str(path.resolve()), "source_sha256": digest,
             "sha256_verified": not skip_sha256, "encoder_version": ENCODER_VERSION}
    n = len(scan.ends) if scan.ends is not None else scan.markers
    if bench == "101":
        prepare_hash_check(n)
    log.info("encoding %s (NB%s, %d records, %d jobs) -> %s", path, bench, n, n_jobs, target)
    try:
        _write_store(path, target, bench, n, attrs, n_jobs, chunk_records, progress, scan.ends)
    except SplitFailed as e:
        log.warning("parallel parse failed (%s); parsing %s in one stream", e, path)
        _write_store(path, target, bench, scan.markers, attrs, n_jobs, chunk_records, progress, None)
    return target

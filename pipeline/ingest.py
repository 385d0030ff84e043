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

from cache.store import Store, StoreWriter, cache_dir
from pipeline.atomic import check_output_file, remove_stale_temps
from pipeline.checksum import file_sha256, normalise_hex, verify_sha256
from pipeline.encode import ENCODER_VERSION
from pipeline.errors import NarError, require_path
from pipeline.json_split import RecordScanner, SplitFailed, byte_ranges, parse_range, tail_is_closing
from pipeline.record_checks import DepthGuard, StrictDict, prepare_hash_check
from pipeline.spaces import all_spaces, create_space, space_for_data
from pipeline.workers import ordered_map

log = logging.getLogger(__name__)

CHUNK_RECORDS = 4096
_READ_BUF = 1 << 16


def check_bench(bench) -> str:
    """The store id of the space ``bench`` (a registered name, alias or store id)."""
    from pipeline.spaces import bench_of
    return bench_of(bench)


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
    space = create_space(bench) if isinstance(bench, str) else bench
    marker = space.json_marker
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
    closing = b"}" if space.json_keyed else b"]"
    if ends is not None and not (state["first"] == space.json_top
                                 and tail_is_closing(path, ends, closing)):
        ends = None
    return SourceScan(digest, state["count"], state["first"], ends)


def guess_bench(path) -> str:
    """The space of a NAR JSON when no ``--bench`` says: a described space when its description
    lies beside the file, else the space whose record marker and top-level bracket the file's
    start shows; NarError when none or several fit."""
    from pipeline.spaces import list_spaces, space_class
    from pipeline.spaces.registry import spec_sidecar
    if spec_sidecar(path).is_file():
        return next(n for n in list_spaces() if getattr(space_class(n), "needs_spec", False))
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    first = head.lstrip()[:1]
    fits = [s.bench for s in all_spaces() if first == s.json_top and s.json_marker in head]
    if len(fits) != 1:
        raise NarError(f"cannot tell the space of {path} ({'several fit' if fits else 'no known records'}); "
                       "pass --bench, a store (.h5), or a checkpoint")
    return fits[0]


def store_path_for(json_path, bench, out=None, sha256: str | None = None, cache=None) -> Path:
    """Where the store of ``json_path`` lives: ``out`` if given, else
    ``{cache}/{bench}_{sha256[:12]}.h5`` (``sha256`` saves hashing the file when known;
    ``cache``: see :func:`cache.store.cache_dir`)."""
    bench = check_bench(bench)
    if out is not None:
        return Path(out)
    if sha256:
        digest = normalise_hex(sha256, "--sha256")
    else:
        digest = file_sha256(require_path(json_path, "NAR JSON file", "check --data_path"))
    return cache_dir(cache) / f"{bench}_{digest[:12]}.h5"


def _cache_hit(path: Path, space, digest: str, verified: bool) -> bool:
    if not path.exists():
        return False
    try:
        with Store(path) as s:
            a = s.attrs
    except NarError as e:
        log.info("rebuilding %s: %s", path, e)
        return False
    same = (a.get("bench") == space.bench and a.get("source_sha256") == digest
            and a.get("encoder_version") == ENCODER_VERSION
            and a.get("space_spec", "") == space.store_attrs().get("space_spec", ""))
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


def _chunks(path, space, chunk: int):
    """Yield (start, records) from the stream; NarError on malformed JSON."""
    backend = json_backend()
    with open(path, "rb") as f:
        reader = _CountingReader(f)
        if space.json_keyed:
            stream = backend.kvitems(reader, "", use_float=True, buf_size=_READ_BUF, map_type=StrictDict)
        else:
            stream = backend.items(reader, "item", use_float=True, buf_size=_READ_BUF, map_type=StrictDict)
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


def encode_range(path, space, first: int, n: int, start: int, end: int) -> dict:
    """Worker: parse and encode the ``n`` records in bytes [start, end) of ``path``."""
    return space.encode_chunk(parse_range(path, space.json_keyed, start, end, n), first)


def _encoded(path, space, n_jobs: int, chunk: int, ends):
    """Encoded chunks in file order. With ``n_jobs`` > 1 and record boundaries known, worker
    processes each parse and encode a byte range of whole records; else one process streams."""
    if n_jobs > 1 and ends is not None and len(ends) > chunk:  # one chunk: no worker start-up
        yield from ordered_map(encode_range, ((str(path), space, *r) for r in byte_ranges(ends, chunk)),
                               n_jobs)
        return
    for start, recs in _chunks(path, space, chunk):
        yield space.encode_chunk(recs, start)


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


def _write_store(path, out: Path, space, n: int, attrs: dict, n_jobs: int,
                 chunk: int, progress: bool, ends) -> None:
    bench = space.bench
    with StoreWriter(out, n, bench, {**attrs, **space.store_attrs()}) as w, \
            tqdm(total=n, unit="rec", desc=f"encode {space.title}", file=sys.stderr,
                 disable=not progress) as bar:
        pos, keys, index, counts = 0, [], [], {"records": n}
        for arrays in _encoded(path, space, n_jobs, chunk, ends):
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
            raise NarError(f"{path} holds no {space.title} records; check --bench and the file")
        _check_unique(np.concatenate(keys), space.key_field, path)
        if space.unique_index:
            _check_unique(np.concatenate(index), "index", path)
        w._attrs["counts"] = json.dumps(counts)
        w.commit()


def ingest(json_path, bench, out=None, sha256: str | None = None, skip_sha256: bool = False,
           n_jobs: int = 2, chunk_records: int = CHUNK_RECORDS, progress: bool = False,
           cache=None, space_file=None) -> Path:
    """Encode a NAR cell-information JSON into a store and return its path; a store of the
    same source (SHA256), bench, schema and encoder version is reused ("cache hit"). ``bench``
    is a registered space name or alias, or a :class:`pipeline.spaces.SearchSpace`; the store
    goes to ``out``, else into :func:`cache.store.cache_dir` (``cache``, ``$NAR_CACHE_DIR`` or
    ``./cache``)."""
    path = require_path(json_path, "NAR JSON file", "check --data_path")
    if bench is None:
        bench = guess_bench(path) if path.is_file() else "101"
    space = bench if not isinstance(bench, (str, int)) else space_for_data(bench, json_path, space_file)
    bench = space.bench
    if not path.is_file():
        raise NarError(f"{path} is not a file; give the NAR JSON file itself as --data_path")
    if n_jobs < 1:
        raise NarError(f"--n_jobs must be at least 1, got {n_jobs}")
    scan = scan_source(path, space)
    digest = scan.sha256
    if not skip_sha256:
        verify_sha256(path, bench, digest, sha256)
    target = Path(out) if out is not None else cache_dir(cache) / f"{bench}_{digest[:12]}.h5"
    check_output_file(target, "store")
    remove_stale_temps(target)  # left by an encode that was killed
    if _cache_hit(target, space, digest, not skip_sha256):
        log.info("cache hit: %s (source %s, sha256 %s)", target, path, digest[:12])
        return target
    if scan.first and scan.first in b"[{" and scan.first != space.json_top:
        with open(path, "rb") as f:
            head = f.read(1 << 16)
        shaped = [s for s in all_spaces() if s.json_top == scan.first]
        other = "/".join(s.bench for s in ([s for s in shaped if s.json_marker in head] or shaped))
        raise NarError(f"{path} is not NB{bench} data (NB{bench} is {space.json_shape}); use --bench {other}?")
    attrs = {"source_path": str(path.resolve()), "source_sha256": digest,
             "sha256_verified": not skip_sha256, "encoder_version": ENCODER_VERSION}
    n = len(scan.ends) if scan.ends is not None else scan.markers
    if space.bench == "101":
        prepare_hash_check(n)
    log.info("encoding %s (%s, %d records, %d jobs) -> %s", path, space.title, n, n_jobs, target)
    try:
        _write_store(path, target, space, n, attrs, n_jobs, chunk_records, progress, scan.ends)
    except SplitFailed as e:
        log.warning("parallel parse failed (%s); parsing %s in one stream", e, path)
        _write_store(path, target, space, scan.markers, attrs, n_jobs, chunk_records, progress, None)
    return target

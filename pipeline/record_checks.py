"""Strictness checks shared by the JSON readers (``records``, ``ingest``, ``json_split``):
bounded nesting, no field given twice, a bool is not a number, integers fit int64, and an
NB101 ``unique_hash`` belongs to its cell. Each raises NarError naming the record and field."""
from __future__ import annotations

import logging
from itertools import chain

import numpy as np

from pipeline.errors import NarError

log = logging.getLogger(__name__)

MAX_DEPTH = 64          # NAR records nest 4 levels; anything far deeper is hostile or broken
MAX_RECORD_BYTES = 4 << 20  # NAR records are 2-4 KB; a larger one is broken or hostile
MAX_GAP_BYTES = 3 << 10  # NAR JSON has a bracket every 300-600 bytes (measured on NAR's examples)
INT64_MAX = 2 ** 63 - 1
_OPEN = np.zeros(256, np.int8)
_OPEN[[ord("["), ord("{")]] = 1
_OPEN[[ord("]"), ord("}")]] = -1


class DepthGuard:
    """Feed the raw bytes of a JSON file block by block; NarError as soon as the bracket
    nesting exceeds ``MAX_DEPTH`` or one top-level record (the bytes spent at depth >= 2)
    exceeds ``MAX_RECORD_BYTES``. Counted on raw bytes: NAR strings hold no brackets, so this
    is exact for NAR files and conservative for others. At most ``MAX_GAP_BYTES`` may pass
    without a bracket (bounds every single value). Runs before any parser, so a hostile
    file costs a read, never unbounded memory."""

    def __init__(self, path, limit: int = MAX_DEPTH, record_bytes: int = MAX_RECORD_BYTES,
                 gap_bytes: int = MAX_GAP_BYTES):
        self.path, self.limit, self.record_bytes, self.gap_bytes = path, limit, record_bytes, gap_bytes
        self.depth, self.offset, self.top_at = 0, 0, 0  # top_at: last byte seen at depth <= 1
        self.last_bracket = 0

    def __call__(self, block: bytes) -> None:
        b = np.frombuffer(block, np.uint8)
        pos = np.flatnonzero((b == 91) | (b == 93) | (b == 123) | (b == 125))  # [ ] { }
        ends = np.concatenate([[self.last_bracket], self.offset + pos, [self.offset + len(b)]])
        gaps = np.diff(ends)
        if len(gaps) and int(gaps.max()) > self.gap_bytes:
            start = int(ends[int(np.argmax(gaps))])
            raise NarError(f"{self.path}: near byte {start}, {self.gap_bytes >> 10} KiB pass without a bracket "
                           "(a huge value); NAR JSON is short values in nested objects: the file is broken "
                           "or not NAR JSON")
        if len(pos):
            self.last_bracket = self.offset + int(pos[-1])
        if len(pos):  # depth changes only at brackets: work on those alone
            d = self.depth + np.cumsum(_OPEN[b[pos]], dtype=np.int64)
            if int(d.max()) > self.limit:
                at = self.offset + int(pos[np.argmax(d > self.limit)])
                raise NarError(f"{self.path}: JSON nested deeper than {self.limit} levels at byte {at}; "
                               "NAR records nest 4 levels: this is not a NAR cell-information file")
            tops = self.offset + pos[d <= 1]
            self.depth = int(d[-1])
        else:
            tops = pos
        end = self.offset + len(b)
        marks = np.concatenate([[self.top_at], tops, [end]]) if self.depth > 1 else \
            np.concatenate([[self.top_at], tops])
        gaps = np.diff(marks)
        if len(gaps) and int(gaps.max()) > self.record_bytes:
            start = int(marks[int(np.argmax(gaps))])
            raise NarError(f"{self.path}: the record starting near byte {start} is larger than "
                           f"{self.record_bytes >> 20} MiB; NAR records are a few KB: the file is "
                           "broken or not a NAR cell-information file")
        if len(tops):
            self.top_at = int(tops[-1])
        if self.depth <= 1:
            self.top_at = end
        self.offset = end


class StrictDict(dict):
    """ijson ``map_type`` that remembers the first field given twice in one JSON object (ijson's
    C backend cannot propagate an exception raised here, so the check reads ``duplicate``)."""
    __slots__ = ("duplicate",)

    def __setitem__(self, key, value):
        if key in self and getattr(self, "duplicate", None) is None:
            self.duplicate = key
        dict.__setitem__(self, key, value)


def check_no_duplicate(obj, name: str, fix: str) -> None:
    dup = getattr(obj, "duplicate", None)
    if dup is not None:
        raise NarError(f"{name}: field {dup!r} is given twice in one object; {fix}")


def _has_bool(v) -> bool:
    if isinstance(v, bool):
        return True
    if isinstance(v, list):
        return any(_has_bool(x) for x in v)
    return False


def check_no_bool(values: list, what: str, names: list, fix: str, depth: int = 0) -> None:
    """NarError for the first record whose ``what`` holds true/false where numbers belong.
    ``depth``: list levels inside one record's value (0 scalar, 2 matrix); the types are
    gathered at C speed, records are walked one by one only when a bool is present."""
    it = iter(values)
    try:
        for _ in range(depth):
            it = chain.from_iterable(it)
        if bool not in set(map(type, it)):
            return
    except TypeError:  # a malformed value: walk the records to be sure
        pass
    for name, v in zip(names, values):
        if _has_bool(v):
            raise NarError(f"{name}: {what} holds true/false; a boolean is not a number; {fix}")


def prepare_hash_check(n_records: int, threshold: int = 50_000) -> None:
    """For large NB101 inputs, make sure the enumerated space is cached (built once, about a
    minute), so that hash checks compare arrays instead of hashing every cell."""
    if n_records >= threshold and _cached_space() is None:
        from pipeline import nb101_space

        try:
            nb101_space.load_space()
        except (NarError, OSError) as e:
            log.warning("no NB101 space cache (%s): hashing every cell to check its unique_hash", e)
        _SPACE.clear()


def as_int64(arr: np.ndarray, what: str, names: list, fix: str) -> np.ndarray:
    """A float64 array of counts as int64; NarError for negative, fractional or too large values."""
    bad = ~((arr >= 0) & (arr <= INT64_MAX) & (arr == np.floor(arr)))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise NarError(f"{names[i]}: {what} {arr[i]!r} is not a whole number in 0..{INT64_MAX} "
                       f"(it must fit a 64-bit integer); {fix}")
    return arr.astype(np.int64)


def check_hashes_101(keys: list, adjacency: np.ndarray, ops: np.ndarray, n_vertices: np.ndarray,
                     names: list, fix: str) -> None:
    """Each NB101 ``unique_hash`` must be the module hash of its cell: compared against the
    enumerated space when its cache exists (fast), else hashed cell by cell."""
    from cache.store import OP_NAMES_101
    from pipeline import nb101_space

    todo = range(len(keys))
    space = _cached_space()
    if space is not None:  # cells identical to the space's cell of their hash need no hashing
        idx = space.find(np.asarray(keys, dtype="S32"))
        safe = np.maximum(idx, 0)
        same = ((idx >= 0) & (space.n_vertices[safe] == n_vertices) & (space.ops[safe] == ops).all(1)
                & (space.adjacency[safe] == adjacency).all((1, 2)))
        todo = np.flatnonzero(~same).tolist()
    for i in todo:
        nv = int(n_vertices[i])
        got = nb101_space.module_hash(adjacency[i, :nv, :nv], [OP_NAMES_101[int(c)] for c in ops[i, :nv]])
        if got != keys[i]:
            raise NarError(f"{names[i]}: unique_hash {keys[i]} does not belong to its cell (the cell "
                           f"hashes to {got}); {fix}")


_SPACE = {}


def _cached_space():
    """The enumerated NB101 space if its cache file is present (never enumerates here)."""
    if "space" not in _SPACE:
        from cache.store import cache_dir
        from pipeline import nb101_space

        folder = cache_dir()
        space = None
        if (folder / nb101_space._CACHE_NAME).exists():
            try:
                space = nb101_space.load_space(folder)
            except (NarError, OSError, ValueError):
                space = None
        _SPACE["space"] = space
    return _SPACE["space"]

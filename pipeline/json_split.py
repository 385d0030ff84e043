"""Split a NAR JSON file into byte ranges of whole records, so workers can parse in parallel.

:class:`RecordScanner` sees the file block by block (during the SHA256 pass) and finds, with
numpy, where every top-level record ends: the closing bracket that brings the nesting depth
back to 1, outside strings. Files with backslash escapes are not split (an escaped quote would
need a real parser); they, and any range that does not parse as expected, go through the
serial stream instead, which also gives the exact error.
"""
from __future__ import annotations

import io

import ijson
import numpy as np

from pipeline.record_checks import StrictDict

_QUOTE, _BACKSLASH = ord('"'), ord("\\")
_OPEN = (ord("{"), ord("["))
_CLOSE = (ord("}"), ord("]"))


class SplitFailed(Exception):
    """A byte range did not hold the records the scan promised; fall back to the serial path."""


class RecordScanner:
    """Feed blocks in order; afterwards ``ends`` holds the byte offset just past every
    top-level record, or None when the file cannot be split safely."""

    def __init__(self):
        self.offset, self.depth, self.in_string = 0, 0, 0
        self._ends: list[np.ndarray] | None = []

    def __call__(self, block: bytes) -> None:
        if self._ends is None:
            return
        b = np.frombuffer(block, np.uint8)
        if (b == _BACKSLASH).any():
            self._ends = None
            return
        quotes = np.cumsum(b == _QUOTE) + self.in_string
        outside = (quotes & 1) == 0
        opens = ((b == _OPEN[0]) | (b == _OPEN[1])) & outside
        closes = ((b == _CLOSE[0]) | (b == _CLOSE[1])) & outside
        depth = self.depth + np.cumsum(opens.astype(np.int32) - closes)
        if len(b) and depth.min() < 0:
            self._ends = None
            return
        self._ends.append(self.offset + 1 + np.flatnonzero(closes & (depth == 1)))
        if len(b):
            self.depth, self.in_string = int(depth[-1]), int(quotes[-1] & 1)
        self.offset += len(b)

    @property
    def ends(self) -> np.ndarray | None:
        if self._ends is None or self.depth != 0 or self.in_string:
            return None  # truncated or malformed: the serial parser reports where
        return np.concatenate(self._ends) if self._ends else np.zeros(0, np.int64)


def byte_ranges(ends: np.ndarray, chunk: int) -> list[tuple[int, int, int, int]]:
    """(first record, n records, start byte, end byte) of consecutive chunks of records."""
    out, start_byte = [], 0  # the first range starts with the opening bracket
    for first in range(0, len(ends), chunk):
        last = min(first + chunk, len(ends)) - 1
        out.append((first, last - first + 1, start_byte, int(ends[last])))
        start_byte = int(ends[last])
    return out


def tail_is_closing(path, ends: np.ndarray, closing: bytes, limit: int = 4096) -> bool:
    """True when only blanks and ``closing`` follow the last record (no trailing garbage)."""
    with open(path, "rb") as f:
        f.seek(int(ends[-1]) if len(ends) else 0)
        rest = f.read(limit + 1)
    return len(rest) <= limit and rest.strip() == closing if len(ends) else False


def parse_range(path, keyed: bool, start: int, end: int, expected: int) -> list:
    """The records in bytes [start, end) of ``path`` (a list of records, or of (key, record)
    pairs when the file is an object ``keyed`` by index, as NB201's); SplitFailed unless
    exactly ``expected`` parse."""
    with open(path, "rb") as f:
        f.seek(start)
        text = f.read(end - start).lstrip()
    # drop the opening bracket (first range) or the comma after the previous record
    if text[:1] in (b",", b"[", b"{"):
        text = text[1:]
    try:
        backend = ijson.get_backend("yajl2_c")
    except ImportError:
        backend = ijson
    try:
        if keyed:
            recs = list(backend.kvitems(io.BytesIO(b"{" + text + b"}"), "", use_float=True,
                                        map_type=StrictDict))
        else:
            recs = list(backend.items(io.BytesIO(b"[" + text + b"]"), "item", use_float=True,
                                        map_type=StrictDict))
    except (ijson.JSONError, UnicodeDecodeError) as e:
        raise SplitFailed(f"bytes {start}..{end}: {e}") from None
    if len(recs) != expected:
        raise SplitFailed(f"bytes {start}..{end}: {len(recs)} records, expected {expected}")
    return recs

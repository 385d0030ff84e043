"""CRC32C (Castagnoli), the checksum of TFRecord framing, in numpy without a C extension.

One record at a time would be slow in Python, so :func:`crc32c_many` runs the byte-wise table
algorithm over many records at once: records of similar length are stacked as columns of a
(length, records) matrix and every step updates all of them with a few vectorised operations.
"""
from __future__ import annotations

import numpy as np

_POLY = 0x82F63B78  # reflected Castagnoli polynomial
_MASK_DELTA = 0xA282EAD8


def _table() -> np.ndarray:
    t = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        t = np.where(t & 1, (t >> 1) ^ np.uint32(_POLY), t >> 1).astype(np.uint32)
    return t


TABLE = _table()
_TABLE_LIST = TABLE.tolist()


def crc32c(data: bytes) -> int:
    """CRC32C of one byte string (pure Python; for short inputs and tests)."""
    crc = 0xFFFFFFFF
    t = _TABLE_LIST
    for b in data:
        crc = t[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def mask(crc):
    """TFRecord's masked CRC: rotate right by 15 bits and add a constant (mod 2**32)."""
    if isinstance(crc, np.ndarray):
        c = crc.astype(np.uint64)
        return ((((c >> np.uint64(15)) | (c << np.uint64(17))) + np.uint64(_MASK_DELTA))
                & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + _MASK_DELTA) & 0xFFFFFFFF


def crc32c_many(buf: np.ndarray, offsets: np.ndarray, lengths: np.ndarray,
                bucket: int = 64, max_cells: int = 1 << 22) -> np.ndarray:
    """CRC32C of ``buf[offsets[i]:offsets[i]+lengths[i]]`` for every i, as uint32.

    ``buf`` is a uint8 array (a memory map is fine). Records are sorted by length and processed
    in batches whose lengths differ by at most ``bucket`` bytes (shorter ones are front-padded
    and held at the initial state until their first byte) and whose padded matrix has at most
    ``max_cells`` bytes.
    """
    offsets = np.asarray(offsets, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    out = np.zeros(len(offsets), dtype=np.uint32)
    if len(offsets) == 0:
        return out
    order = np.argsort(lengths, kind="stable")
    sorted_len = lengths[order]
    start = 0
    n = len(order)
    while start < n:
        lo = sorted_len[start]
        stop = int(np.searchsorted(sorted_len, lo + bucket, side="right"))
        hi = int(sorted_len[stop - 1])
        rows = max(1, max_cells // max(hi, 1))
        stop = min(stop, start + rows)
        hi = int(sorted_len[stop - 1])
        idx = order[start:stop]
        out[idx] = _crc_batch(buf, offsets[idx], lengths[idx], hi)
        start = stop
    return out


def _crc_batch(buf, offsets, lengths, width):
    """CRC32C of records at most ``width`` long, front-padded into a (width, k) matrix."""
    k = len(offsets)
    crc = np.full(k, 0xFFFFFFFF, dtype=np.uint32)
    if width == 0:
        return crc ^ np.uint32(0xFFFFFFFF)
    pad = width - lengths  # leading columns each record skips
    pos = offsets[None, :] - pad[None, :] + np.arange(width, dtype=np.int64)[:, None]
    np.clip(pos, 0, len(buf) - 1, out=pos)
    mat = np.ascontiguousarray(buf[pos])  # (width, k); padded cells hold junk, masked below
    first_full = int(pad.max())
    ff = np.uint32(0xFF)
    eight = np.uint32(8)
    for j in range(width):
        new = TABLE[(crc ^ mat[j]) & ff] ^ (crc >> eight)
        if j < first_full:
            crc = np.where(pad <= j, new, crc)
        else:
            crc = new
    return crc ^ np.uint32(0xFFFFFFFF)

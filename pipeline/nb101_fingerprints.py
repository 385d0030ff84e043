"""64-bit isomorphism-invariant fingerprints of cell graphs: the refinement of NAS-Bench-101's
module hash with splitmix64 in place of MD5, vectorised over many graphs (used by the NB101
enumeration and by the search's look-ups of drawn cells)."""
from __future__ import annotations

import numpy as np

_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)
_SALT = [np.uint64(c) for c in (0x9E3779B97F4A7C15, 0xD6E8FEB86659FD93, 0xA0761D6478BD642F)]



def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser on a uint64 array (wrapping arithmetic)."""
    x = (x ^ (x >> _S30)) * _M1
    x = (x ^ (x >> _S27)) * _M2
    return x ^ (x >> _S31)


def int_fingerprints(mats: np.ndarray, labels: np.ndarray, present: np.ndarray | None = None,
                      radix: int = 8) -> np.ndarray:
    """64-bit analogue of :func:`pipeline.nb101_space._fingerprint`: mats (M, V, V), labels (M or 1, L, V) -> (M, L).

    Same refinement (seed from degrees and label, n rounds over the multisets of in- and
    out-neighbour values, sorted final multiset) with splitmix64 instead of MD5, so it splits
    graphs exactly as the MD5 hash does barring 64-bit collisions. ``present`` (M, V) bool
    restricts each graph to its present vertices (n = their count; default all V). Returns
    uint64. The enumeration and the search's look-ups both use it. ``radix`` must exceed every
    degree and label + 2 (8 for NB101) so the seed is injective."""
    n_m, v, _ = mats.shape
    a = mats.astype(bool)
    nv = None
    if present is not None:
        a = a & present[:, :, None] & present[:, None, :]
        nv = present.sum(1)
    out_deg = a.sum(2).astype(np.int64)[:, None, :]   # (M, 1, V)
    in_deg = a.sum(1).astype(np.int64)[:, None, :]
    seed = (out_deg * radix + in_deg) * radix + (np.asarray(labels, np.int64) + 2)  # (M, L, V), injective
    h = _mix(seed.astype(np.uint64) + _SALT[0])
    edges = [(x, y) for y in range(v) for x in range(v) if x != y]  # any vertex order
    for r in range(v):
        g = _mix(h ^ _SALT[1])
        s_in = np.zeros_like(h)
        s_out = np.zeros_like(h)
        for x, y in edges:
            e = a[:, x, y]
            if not e.any():
                continue
            on = e[:, None]
            s_in[:, :, y] += np.where(on, g[:, :, x], np.uint64(0))
            s_out[:, :, x] += np.where(on, g[:, :, y], np.uint64(0))
        new = _mix(_mix(_mix(s_in + _SALT[2]) ^ s_out) ^ h)
        h = new if nv is None else np.where((r < nv)[:, None, None], new, h)
    if nv is None:
        fp = np.full(h.shape[:2], np.uint64(v), np.uint64)
    else:  # absent vertices count as zeros, sorted first
        h = np.where(present[:, None, :], h, np.uint64(0))
        fp = np.broadcast_to(nv.astype(np.uint64)[:, None], h.shape[:2]).copy()
    h.sort(axis=2)
    for k in range(v):
        fp = _mix(fp ^ h[:, :, k])
    return fp

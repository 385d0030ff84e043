"""Distribution-guided sampling of candidate cells (METHOD.md section 5).

:class:`SearchPool` is the set of architectures a search may return: the rows of a store
(the whole space, or a part of it such as the NB101 20k table) that satisfy the user's hard
limits. Drawn cells are mapped to rows vectorised: NB201 by the base-5 code of the six edge
ops, NB101 by a 64-bit isomorphism-invariant fingerprint that refines vertices exactly like
NAS-Bench-101's module hash (same initial labels, same number of rounds, in- and
out-neighbour multisets kept apart), so isomorphic cells meet the same row.
:class:`Sampler` turns tier statistics of a ranked batch into the next batch of rows.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from nar.search_config import SamplerConfig
from pipeline.errors import NarError

log = logging.getLogger(__name__)

SPACE_SIZE = {"101": 423624, "201": 15625}
N_EDGES_201 = 6
EDGES_201 = [(0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3)]
# store op codes (input 1, conv1x1 2, conv3x3 3, maxpool 4, output 5) -> NAS-Bench-101 hash labels
_LABEL_OF_CODE = np.array([0, -1, 1, 0, 2, -2], np.int64)
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser, element-wise on uint64 (wraps modulo 2**64)."""
    x = x.astype(np.uint64, copy=True)
    x ^= x >> np.uint64(30)
    x *= _M1
    x ^= x >> np.uint64(27)
    x *= _M2
    x ^= x >> np.uint64(31)
    return x


def prune_batch(adj: np.ndarray, present: np.ndarray, out_vertex: np.ndarray):
    """Vectorised NB101 pruning: keep vertices on an input->output path.

    adj (B,7,7) bool upper-triangular, present (B,7) bool, out_vertex (B,) index of the output.
    Returns (adj, present, ok): ok is False where the input cannot reach the output."""
    a = adj & present[:, :, None] & present[:, None, :]
    b = len(a)
    fwd = np.zeros((b, 7), bool)
    fwd[:, 0] = True
    bwd = np.zeros((b, 7), bool)
    bwd[np.arange(b), out_vertex] = True
    ai = a.astype(np.int8)
    for _ in range(6):
        fwd |= np.einsum("bi,bij->bj", fwd.astype(np.int8), ai) > 0
        bwd |= np.einsum("bj,bij->bi", bwd.astype(np.int8), ai) > 0
    keep = fwd & bwd & present
    ok = keep[np.arange(b), out_vertex]
    a &= keep[:, :, None] & keep[:, None, :]
    return a, keep, ok


def fingerprint_101(adj: np.ndarray, labels: np.ndarray, present: np.ndarray) -> np.ndarray:
    """64-bit isomorphism-invariant fingerprint of pruned NB101 cells, vectorised.

    adj (B,7,7) 0/1, labels (B,7) NAS-Bench-101 hash labels (-1 input, -2 output, 0/1/2 op),
    present (B,7) bool. Mirrors the module hash: start from (out-degree, in-degree, label),
    refine V times with the multisets of in- and out-neighbour values, combine the multiset."""
    a = (adj.astype(bool) & present[:, :, None] & present[:, None, :]).astype(np.uint64)
    outdeg = a.sum(2).astype(np.uint64)
    indeg = a.sum(1).astype(np.uint64)
    lab = (labels + 3).astype(np.uint64)
    h = _mix(outdeg * np.uint64(1 << 40) + indeg * np.uint64(1 << 20) + lab + np.uint64(12345))
    nv = present.sum(1)
    for it in range(7):
        h_in = np.einsum("bij,bi->bj", a, _mix(h ^ np.uint64(0x1234567)))   # sum over predecessors
        h_out = np.einsum("bij,bj->bi", a, _mix(h ^ np.uint64(0x7654321)))  # sum over successors
        new = _mix(_mix(h_in) + _mix(h_out + np.uint64(0x9E3779B97F4A7C15)) * np.uint64(3) + h)
        h = np.where((it < nv)[:, None], new, h)
    return (_mix(h) * present.astype(np.uint64)).sum(1) + nv.astype(np.uint64)


def store_labels_101(ops: np.ndarray):
    """(labels, present, out_vertex) of NB101 store rows (``ops`` codes, 0 = no vertex)."""
    ops = np.asarray(ops, np.int64)
    present = ops > 0
    return _LABEL_OF_CODE[ops], present, present.sum(1) - 1


@dataclass
class SearchPool:
    """Rows of a store available to a search, with their costs and look-up tables."""
    bench: str
    keys: np.ndarray            # (N,) str
    flops: np.ndarray           # (N,) float64
    params: np.ndarray          # (N,) float64
    allowed: np.ndarray         # (N,) bool: within the user's hard limits
    structure: np.ndarray       # NB101: n_vertices (N,); NB201: ops6 (N, 6)
    adjacency: np.ndarray | None = None  # NB101 (N,7,7) int8
    ops: np.ndarray | None = None        # NB101 (N,7) store codes
    _sorted_code: np.ndarray = field(default=None, repr=False)
    _code_order: np.ndarray = field(default=None, repr=False)
    _key_row: dict = field(default=None, repr=False)

    @classmethod
    def from_store(cls, store, dataset: str, max_flops=None, max_params=None, max_latency=None):
        """Build the pool of ``store``'s rows for ``dataset``; NarError on impossible limits."""
        flops = np.asarray(store.data(dataset, "flops"), np.float64)
        params = np.asarray(store.data(dataset, "params"), np.float64)
        allowed = np.ones(store.n, bool)
        for name, limit, values in (("--max_flops", max_flops, flops), ("--max_params", max_params, params)):
            if limit is not None:
                allowed &= values <= float(limit)
                if not (values <= float(limit)).any():
                    raise NarError(f"{name} {limit:g}: no architecture in {store.path} satisfies it "
                                   f"(smallest is {values.min():g}); raise the limit")
        if max_latency is not None:
            name = f"data/{dataset}/latency"
            if not store.has(name):
                raise NarError(f"--max_latency given but {store.path} has no {name}; drop the option "
                               "or encode data with latency")
            lat = np.asarray(store.array(name), np.float64)
            if not (lat <= float(max_latency)).any():
                raise NarError(f"--max_latency {max_latency:g}: no architecture in {store.path} "
                               f"satisfies it (smallest is {np.nanmin(lat):g}); raise the limit")
            allowed &= lat <= float(max_latency)
        if not allowed.any():
            raise NarError(f"no architecture in {store.path} satisfies all the given limits together; "
                           "relax --max_flops / --max_params / --max_latency")
        keys = np.char.decode(np.asarray(store.array("key")), "ascii")
        if store.bench == "201":
            adj = np.asarray(store.array("adjacency"))
            ops6 = np.stack([adj[:, i, j] for i, j in EDGES_201], 1).astype(np.int64)
            pool = cls("201", keys, flops, params, allowed, ops6)
            code = pool.code_201(ops6)
        else:
            adj = np.asarray(store.array("adjacency"))
            ops = np.asarray(store.array("ops"))
            pool = cls("101", keys, flops, params, allowed, np.asarray(store.array("n_vertices"), np.int64),
                       adj, ops)
            labels, present, _ = store_labels_101(ops)
            code = fingerprint_101(adj, labels, present)
        order = np.argsort(code, kind="stable")
        pool._sorted_code, pool._code_order = code[order], order
        if len(np.unique(code)) != len(code):
            log.warning("store %s holds %d duplicate cells", store.path, len(code) - len(np.unique(code)))
        return pool

    @property
    def n(self) -> int:
        return len(self.keys)

    @property
    def is_whole_space(self) -> bool:
        return self.n >= SPACE_SIZE[self.bench]

    def row_of_key(self, key: str) -> int | None:
        if self._key_row is None:
            self._key_row = {k: i for i, k in enumerate(self.keys.tolist())}
        return self._key_row.get(key)

    @staticmethod
    def code_201(ops6: np.ndarray) -> np.ndarray:
        return (np.asarray(ops6, np.int64) * 5 ** np.arange(N_EDGES_201)).sum(1).astype(np.uint64)

    def lookup_codes(self, code: np.ndarray) -> np.ndarray:
        """Rows of the given codes/fingerprints; -1 where not in the store."""
        pos = np.searchsorted(self._sorted_code, code)
        pos = np.minimum(pos, len(self._sorted_code) - 1)
        hit = self._sorted_code[pos] == code
        return np.where(hit, self._code_order[pos], -1)

    def lookup_201(self, ops6: np.ndarray) -> np.ndarray:
        return self.lookup_codes(self.code_201(ops6))

    def lookup_101(self, adj: np.ndarray, labels: np.ndarray, present: np.ndarray, out_vertex):
        """Rows of (unpruned) NB101 cells; -1 where invalid or not in the store."""
        adj, keep, ok = prune_batch(adj.astype(bool), present, out_vertex)
        ok &= adj.sum((1, 2)) <= 9
        rows = self.lookup_codes(fingerprint_101(adj, labels, keep))
        return np.where(ok, rows, -1)


def _kl(p: np.ndarray, q: np.ndarray, eps: float) -> float:
    p = (p + eps) / (p + eps).sum()
    q = (q + eps) / (q + eps).sum()
    return float((p * np.log(p / q)).sum())


def tier_stats(pool: SearchPool, rows, tiers, n_tier: int, bins: int) -> dict:
    """Per-tier histograms of a ranked batch: FLOPs and params over ``bins`` equal bins
    spanning the batch's range, and the structure (NB101 vertex counts 2..7, NB201 per-edge
    op counts (6, 5)). Counts, not probabilities; ``count`` holds the tier sizes."""
    rows, tiers = np.asarray(rows), np.asarray(tiers)
    out = {"count": np.array([(tiers == t).sum() for t in range(1, n_tier + 1)])}
    for name, values in (("flops", pool.flops[rows]), ("params", pool.params[rows])):
        lo, hi = float(values.min()), float(values.max())
        edges = np.linspace(lo, hi if hi > lo else lo + 1.0, bins + 1)
        b = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, bins - 1)
        out[name] = np.stack([np.bincount(b[tiers == t], minlength=bins) for t in range(1, n_tier + 1)])
        out[name + "_edges"] = edges
    if pool.bench == "101":
        nv = pool.structure[rows]
        out["edges"] = np.stack([np.bincount(nv[tiers == t] - 2, minlength=6)[:6] for t in range(1, n_tier + 1)])
    else:
        ops6 = pool.structure[rows]
        out["edges"] = np.stack([np.stack([np.bincount(ops6[tiers == t, e], minlength=5) for e in range(6)])
                                 for t in range(1, n_tier + 1)])
    return out


class Sampler:
    """Draws batches of store rows, guided by the tier statistics of the previous batch."""

    def __init__(self, pool: SearchPool, cfg: SamplerConfig, n_tier: int, bins: int, seed: int = 0):
        self.pool, self.cfg, self.n_tier, self.bins = pool, cfg, n_tier, bins
        self.rng = np.random.default_rng(seed)
        self.stats: dict | None = None
        self._allowed_rows = np.flatnonzero(pool.allowed)
        if pool.bench == "101":  # unguided vertex counts follow the pool (mostly 7 vertices)
            c = np.bincount(pool.structure[self._allowed_rows] - 2, minlength=6)[:6].astype(float)
            self._p_vertices = c / c.sum()

    def update(self, rows, tiers) -> dict:
        """Record the tier statistics of a ranked batch; returns which parts will guide."""
        self.stats = tier_stats(self.pool, rows, tiers, self.n_tier, self.bins)
        return self.guidance()

    def guidance(self) -> dict:
        """{"flops": bool, "params": bool, "edges": bool}: draw from tier 1 (True) or uniformly."""
        c, s = self.cfg, self.stats
        flags = {"flops": False, "params": False, "edges": False}
        if s is None or c.force_uniform:
            return flags
        top = c.top_tier - 1
        if s["count"][top] < c.batch_factor * s["count"].sum():
            return flags
        low = [t - 1 for t in range(c.last_tier, self.n_tier + 1) if s["count"][t - 1] > 0]
        if not low:
            return flags
        for name, thr in (("flops", c.flops_kl_thred), ("params", c.params_kl_thred), ("edges", c.edges_kl_thred)):
            flags[name] = all(_kl(s[name][top].ravel(), s[name][t].ravel(), c.kl_eps) > thr for t in low)
        return flags

    def sample(self, size: int) -> tuple[np.ndarray, dict]:
        """``size`` distinct rows (fewer only if the pool is smaller): a noisy_factor share
        uniform over the allowed rows, the rest drawn cell by cell under caps reused for
        reuse_step candidates. Returns (rows, info)."""
        size = min(size, len(self._allowed_rows))
        taken = np.zeros(self.pool.n, bool)
        flags = self.guidance()
        n_noisy = int(round(self.cfg.noisy_factor * size)) if self.stats is not None else 0
        guided, fallbacks, tries = [], 0, 0
        need = size - n_noisy
        while need > 0:
            m = min(self.cfg.reuse_step, need)
            caps = self._caps(flags)
            got, t = self._draw(m, caps, flags["edges"], taken)
            tries += t
            taken[got] = True
            guided.append(got)
            if len(got) < m:  # max_trails exhausted for some: fill with uniform rows under the caps
                extra = self._uniform(m - len(got), taken, caps)
                taken[extra] = True
                guided.append(extra)
                fallbacks += m - len(got)
            need -= m
        noisy = self._uniform(n_noisy, taken, None)
        rows = np.concatenate(guided + [noisy]).astype(np.int64)
        info = {"guided": flags, "n_noisy": int(len(noisy)), "fallbacks": int(fallbacks), "tries": int(tries)}
        return rows, info

    def _caps(self, flags) -> tuple[float, float]:
        caps = []
        for name in ("flops", "params"):
            if self.stats is None:
                caps.append(np.inf)
                continue
            hist = self.stats[name][self.cfg.top_tier - 1].astype(float)
            p = hist / hist.sum() if flags[name] and hist.sum() > 0 else np.full(self.bins, 1.0 / self.bins)
            b = self.rng.choice(self.bins, p=p)
            caps.append(np.inf if b == self.bins - 1 else float(self.stats[name + "_edges"][b + 1]))
        return caps[0], caps[1]

    def _ok(self, rows, caps, taken) -> np.ndarray:
        ok = rows >= 0
        r = np.where(ok, rows, 0)
        ok &= self.pool.allowed[r] & ~taken[r]
        if caps is not None:
            ok &= (self.pool.flops[r] <= caps[0]) & (self.pool.params[r] <= caps[1])
        return ok

    def _uniform(self, m, taken, caps) -> np.ndarray:
        cand = self._allowed_rows[~taken[self._allowed_rows]]
        if caps is not None:
            within = cand[self._ok(cand, caps, taken)]
            cand = within if len(within) >= m else cand
        return self.rng.choice(cand, size=min(m, len(cand)), replace=False) if m > 0 else cand[:0]

    def _draw(self, m, caps, guided_edges, taken) -> tuple[np.ndarray, int]:
        """First valid draw of each of ``m`` candidates, at most max_trails tries each."""
        budget, tries, found = m * self.cfg.max_trails, 0, []
        seen = taken.copy()
        while tries < budget and len(found) < m:
            block = int(min(budget - tries, max(64, 8 * (m - len(found)))))
            rows = self._cells(block, guided_edges)
            tries += block
            ok = self._ok(rows, caps, seen)
            for r in rows[ok]:  # keep draw order; drop duplicates within the block
                if not seen[r]:
                    seen[r] = True
                    found.append(r)
                    if len(found) == m:
                        break
        return np.array(found, np.int64), tries

    def _cells(self, n, guided_edges) -> np.ndarray:
        """Draw ``n`` cells and map them to rows (-1 where invalid / not in the store)."""
        rng, s = self.rng, self.stats
        if self.pool.bench == "201":
            if guided_edges:
                p = s["edges"][self.cfg.top_tier - 1].astype(float) + self.cfg.kl_eps
                p /= p.sum(1, keepdims=True)
                u = rng.random((n, N_EDGES_201, 1))
                ops6 = (u > np.cumsum(p, 1)[None]).sum(2).clip(0, 4)
            else:
                ops6 = rng.integers(0, 5, (n, N_EDGES_201))
            return self.pool.lookup_201(ops6)
        p = self._p_vertices
        if guided_edges:
            p = s["edges"][self.cfg.top_tier - 1].astype(float)
            p /= p.sum()
        return self.pool.lookup_101(*draw_cells_101(rng, n, p))


def draw_cells_101(rng, n: int, p_vertices=None):
    """``n`` random NB101 cells: vertex count (2..7, from ``p_vertices`` or uniform), a random
    predecessor and op for each vertex, a random successor for each vertex left without one,
    then random extra edges up to 9 in all (more than 9 -> not in the space). Unpruned;
    returns (adj (n,7,7) bool, labels (n,7), present (n,7), out_vertex (n,))."""
    nv = rng.choice(np.arange(2, 8), size=n, p=p_vertices)
    present = np.arange(7)[None, :] < nv[:, None]
    adj = np.zeros((n, 7, 7), bool)
    for v in range(1, 7):  # a random predecessor for each vertex
        pred = (rng.random(n) * v).astype(np.int64)
        sel = v < nv
        adj[np.flatnonzero(sel), pred[sel], v] = True
    for v in range(5, -1, -1):  # a random successor for each vertex without one (no dead ends)
        sel = (v < nv - 1) & ~adj[:, v].any(1)
        succ = v + 1 + (rng.random(n) * (nv - 1 - v)).astype(np.int64)
        adj[np.flatnonzero(sel), v, succ[sel]] = True
    iu, ju = np.triu_indices(7, 1)
    free = (~adj[:, iu, ju]) & (ju[None, :] < nv[:, None])
    n_edges = adj.sum((1, 2))
    n_extra = np.minimum((rng.random(n) * np.maximum(9 - n_edges + 1, 0)).astype(np.int64), free.sum(1))
    keyed = np.where(free, rng.random((n, len(iu))), 2.0)
    rank = np.argsort(np.argsort(keyed, 1), 1)
    adj[:, iu, ju] |= rank < n_extra[:, None]
    labels = rng.integers(0, 3, (n, 7))
    labels[:, 0] = -1
    labels[np.arange(n), nv - 1] = -2
    return adj, labels, present, nv - 1

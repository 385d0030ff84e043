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
from pipeline.spaces import SearchSpace, space_of
# NB101 / NB201 helpers now owned by their space modules (re-exported for old imports)
from pipeline.nb101_space import prune_batch  # noqa: F401
from pipeline.nb201_space import EDGES_201  # noqa: F401
from pipeline.spaces.nb101 import draw_cells_101, fingerprint_101, store_labels_101  # noqa: F401

log = logging.getLogger(__name__)


@dataclass
class SearchPool:
    """Rows of a store available to a search, with their costs and look-up tables; what
    ``structure``, ``adjacency`` and ``ops`` hold is the space's (``SearchSpace.pool_arrays``)."""
    space: SearchSpace
    keys: np.ndarray            # (N,) str
    flops: np.ndarray           # (N,) float64
    params: np.ndarray          # (N,) float64
    allowed: np.ndarray         # (N,) bool: within the user's hard limits
    structure: np.ndarray       # e.g. NB101: n_vertices (N,); NB201: ops6 (N, 6)
    adjacency: np.ndarray | None = None  # e.g. NB101 (N,7,7) int8
    ops: np.ndarray | None = None        # e.g. NB101 (N,7) store codes
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
        space = space_of(store)
        pool = cls(space, keys, flops, params, allowed, **space.pool_arrays(store))
        code = space.row_codes(pool)
        order = np.argsort(code, kind="stable")
        pool._sorted_code, pool._code_order = code[order], order
        if len(np.unique(code)) != len(code):
            log.warning("store %s holds %d duplicate cells", store.path, len(code) - len(np.unique(code)))
        return pool

    @property
    def n(self) -> int:
        return len(self.keys)

    @property
    def bench(self) -> str:
        return self.space.bench

    @property
    def is_whole_space(self) -> bool:
        return self.space.size is not None and self.n >= self.space.size

    def row_of_key(self, key: str) -> int | None:
        if self._key_row is None:
            self._key_row = {k: i for i, k in enumerate(self.keys.tolist())}
        return self._key_row.get(key)

    def lookup_codes(self, code: np.ndarray) -> np.ndarray:
        """Rows of the given codes/fingerprints; -1 where not in the store."""
        pos = np.searchsorted(self._sorted_code, code)
        pos = np.minimum(pos, len(self._sorted_code) - 1)
        hit = self._sorted_code[pos] == code
        return np.where(hit, self._code_order[pos], -1)

    def lookup(self, cells) -> np.ndarray:
        """Rows of a batch of drawn cells (the space's form); -1 where invalid or not in the store."""
        return self.space.lookup(self, cells)

    def lookup_201(self, ops6: np.ndarray) -> np.ndarray:  # kept for old callers: NB201 pools
        return self.lookup(ops6)

    def lookup_101(self, adj, labels, present, out_vertex):  # kept for old callers: NB101 pools
        return self.lookup((adj, labels, present, out_vertex))


def _kl(p: np.ndarray, q: np.ndarray, eps: float) -> float:
    p = (p + eps) / (p + eps).sum()
    q = (q + eps) / (q + eps).sum()
    return float((p * np.log(p / q)).sum())


def tier_stats(pool: SearchPool, rows, tiers, n_tier: int, bins: int) -> dict:
    """Per-tier histograms of a ranked batch: FLOPs and params over ``bins`` equal bins
    spanning the batch's range, and the structure (``SearchSpace.structure_counts``: NB101
    vertex counts 2..7, NB201 per-edge op counts (6, 5)). Counts, not probabilities;
    ``count`` holds the tier sizes."""
    rows, tiers = np.asarray(rows), np.asarray(tiers)
    out = {"count": np.array([(tiers == t).sum() for t in range(1, n_tier + 1)])}
    for name, values in (("flops", pool.flops[rows]), ("params", pool.params[rows])):
        lo, hi = float(values.min()), float(values.max())
        edges = np.linspace(lo, hi if hi > lo else lo + 1.0, bins + 1)
        b = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, bins - 1)
        out[name] = np.stack([np.bincount(b[tiers == t], minlength=bins) for t in range(1, n_tier + 1)])
        out[name + "_edges"] = edges
    out["edges"] = pool.space.structure_counts(pool.structure[rows], tiers, n_tier)
    return out


class Sampler:
    """Draws batches of store rows, guided by the tier statistics of the previous batch."""

    def __init__(self, pool: SearchPool, cfg: SamplerConfig, n_tier: int, bins: int, seed: int = 0):
        self.pool, self.cfg, self.n_tier, self.bins = pool, cfg, n_tier, bins
        self.rng = np.random.default_rng(seed)
        self.stats: dict | None = None
        self._allowed_rows = np.flatnonzero(pool.allowed)
        self._prior = pool.space.sampler_prior(pool)  # what unguided structure draws follow

    def update(self, rows, tiers) -> dict:
        """Record the tier statistics of a ranked batch; returns which parts will guide."""
        self.stats = tier_stats(self.pool, rows, tiers, self.n_tier, self.bins)
        return self.guidance()

    def divergences(self) -> dict | None:
        """{"flops", "params", "edges"}: the smallest KL divergence of tier 1's histogram from
        a low tier's (last_tier..n_tier) in the last batch; None when tier 1 is under
        batch_factor of the batch or no low tier is populated (guidance cannot engage)."""
        c, s = self.cfg, self.stats
        if s is None:
            return None
        top = c.top_tier - 1
        if s["count"][top] < c.batch_factor * s["count"].sum():
            return None
        low = [t - 1 for t in range(c.last_tier, self.n_tier + 1) if s["count"][t - 1] > 0]
        if not low:
            return None
        return {name: min(_kl(s[name][top].ravel(), s[name][t].ravel(), c.kl_eps) for t in low)
                for name in ("flops", "params", "edges")}

    def guidance(self) -> dict:
        """{"flops": bool, "params": bool, "edges": bool}: draw from tier 1 (True) when its KL
        divergence from every low tier exceeds the threshold, else uniformly."""
        c = self.cfg
        kl = None if c.force_uniform else self.divergences()
        thr = {"flops": c.flops_kl_thred, "params": c.params_kl_thred, "edges": c.edges_kl_thred}
        return {name: bool(kl is not None and kl[name] > thr[name]) for name in thr}

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
        kl = self.divergences()
        info = {"guided": flags, "n_noisy": int(len(noisy)), "fallbacks": int(fallbacks), "tries": int(tries),
                "kl": None if kl is None else {k: round(v, 4) for k, v in kl.items()}}
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
        guide = self.stats["edges"][self.cfg.top_tier - 1] if guided_edges else None
        cells = self.pool.space.draw(self.rng, n, guide, self._prior, self.cfg.kl_eps)
        return self.pool.lookup(cells)

"""The NAS-Bench-101 search space: cell validation, pruning, the module hash, enumeration.

A cell is an upper-triangular 0/1 adjacency matrix (n x n, n <= 7, at most 9 edges) with a
list of n op names, first ``input``, last ``output``, the others from :data:`OPS`.
:func:`module_hash` is NAS-Bench-101's isomorphism-invariant fingerprint; :func:`load_space`
gives the 423,624 unique cells, sorted by hash, with the same representative matrix and ops
NAS-Bench-101 stores (the first one met in its generation order).
"""
from __future__ import annotations

import hashlib
import itertools
import logging
from dataclasses import dataclass

import numpy as np

from cache.store import OP_CODES_101, OP_NAMES_101, cache_dir as default_cache_dir
from pipeline.atomic import atomic_path
from pipeline.errors import NarError
from pipeline.nb101_fingerprints import int_fingerprints as _int_fingerprints

log = logging.getLogger(__name__)

OPS = ["conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3"]
INPUT = "input"
OUTPUT = "output"
MAX_VERTICES = 7
MAX_EDGES = 9
N_CELLS = 423624
VERTEX_HISTOGRAM = {2: 1, 3: 6, 4: 84, 5: 2441, 6: 62010, 7: 359082}

_LABEL = {INPUT: -1, OUTPUT: -2, **{op: i for i, op in enumerate(OPS)}}
# store op code of the hash label of an interior vertex (index in OPS)
_CODE_OF_LABEL = np.array([OP_CODES_101[op] for op in OPS], np.int8)
_CACHE_NAME = "nb101_space.npz"
_CACHE_VERSION = 1


# --------------------------------------------------------------------------- single cells
def _as_matrix(matrix, ops) -> np.ndarray:
    """Square 0/1 strictly upper-triangular int8 matrix matching ``ops`` in length."""
    try:
        m = np.asarray(matrix)
    except Exception as e:  # ragged nested lists
        raise NarError(f"adjacency matrix is not a rectangular array ({e}); give n x n 0/1 rows") from e
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise NarError(f"adjacency matrix has shape {m.shape}, not square; give an n x n matrix")
    if not np.issubdtype(m.dtype, np.number) and m.dtype != bool:
        raise NarError(f"adjacency matrix has non-numeric entries ({m.dtype}); use 0/1")
    bad = np.argwhere((m != 0) & (m != 1))
    if len(bad):
        i, j = bad[0]
        raise NarError(f"adjacency entry ({i}, {j}) is {m[i, j]!r}, not 0/1; use 0/1 entries only")
    m = m.astype(np.int8)
    low = np.argwhere(np.tril(m) != 0)
    if len(low):
        i, j = low[0]
        raise NarError(f"adjacency has edge ({i}, {j}) on or below the diagonal, so the cell is not "
                       "upper-triangular (vertices must be in topological order, no cycles)")
    if len(ops) != m.shape[0]:
        raise NarError(f"{len(ops)} ops for a {m.shape[0]}x{m.shape[0]} matrix; give one op per vertex")
    return m


def _checked_cell(matrix, ops):
    """(op list, int8 matrix, vertex count) of a cell with at least input and output."""
    ops = list(ops)
    m = _as_matrix(matrix, ops)
    n = m.shape[0]
    if n < 2:
        raise NarError(f"cell has {n} vertices; it needs at least input and output")
    return ops, m, n


def validate_cell(matrix, ops) -> None:
    """Raise NarError naming the first problem of the cell; return None when it is valid."""
    ops, m, n = _checked_cell(matrix, ops)
    if n > MAX_VERTICES:
        raise NarError(f"cell has {n} vertices, more than {MAX_VERTICES}; prune it or drop vertices")
    if int(m.sum()) > MAX_EDGES:
        raise NarError(f"cell has {int(m.sum())} edges, more than {MAX_EDGES}; prune it or drop edges")
    if ops[0] != INPUT:
        raise NarError(f"op 0 is {ops[0]!r}; the first op must be {INPUT!r}")
    if ops[-1] != OUTPUT:
        raise NarError(f"op {n - 1} is {ops[-1]!r}; the last op must be {OUTPUT!r}")
    for i, op in enumerate(ops[1:-1], start=1):
        if op not in OPS:
            raise NarError(f"op {i} is {op!r}, unknown; interior ops must be one of {', '.join(OPS)}")


def prune(matrix, ops):
    """Drop vertices not on an input->output path; returns (int8 matrix, op list).

    Raises NarError when the output cannot be reached from the input. Size limits are not
    checked here (call :func:`validate_cell` on the result)."""
    ops, m, n = _checked_cell(matrix, ops)
    _, keep, ok = prune_batch(m[None].astype(bool), np.ones((1, n), bool), np.array([n - 1]))
    if not ok[0]:
        raise NarError("the output vertex cannot be reached from the input; the cell computes "
                       "nothing (add an input->output path)")
    keep = np.flatnonzero(keep[0])
    return m[np.ix_(keep, keep)].copy(), [ops[i] for i in keep]


def prune_batch(adj: np.ndarray, present: np.ndarray, out_vertex: np.ndarray):
    """Vectorised pruning: keep the vertices on an input->output path.

    adj (B,V,V) bool upper-triangular, present (B,V) bool, out_vertex (B,) index of the output.
    Returns (adj, present, ok): ok is False where the input cannot reach the output."""
    a = adj & present[:, :, None] & present[:, None, :]
    b, v = a.shape[:2]
    fwd = np.zeros((b, v), bool)
    fwd[:, 0] = True
    bwd = np.zeros((b, v), bool)
    bwd[np.arange(b), out_vertex] = True
    ai = a.astype(np.int8)
    for _ in range(v - 1):
        fwd |= np.einsum("bi,bij->bj", fwd.astype(np.int8), ai) > 0
        bwd |= np.einsum("bj,bij->bi", bwd.astype(np.int8), ai) > 0
    keep = fwd & bwd & present
    ok = keep[np.arange(b), out_vertex]
    a &= keep[:, :, None] & keep[:, None, :]
    return a, keep, ok


_MD5 = hashlib.md5


def _fingerprint(rows, labels) -> str:
    """NAS-Bench-101's iterated-MD5 hash of a 0/1 matrix (list of rows) with integer labels."""
    n = len(labels)
    ins = [[w for w in range(n) if rows[w][v]] for v in range(n)]
    outs = [[w for w in range(n) if rows[v][w]] for v in range(n)]
    h = [_MD5(str((len(outs[v]), len(ins[v]), int(labels[v]))).encode()).hexdigest() for v in range(n)]
    for _ in range(n):
        h = [_MD5(("".join(sorted([h[w] for w in ins[v]])) + "|" + "".join(sorted([h[w] for w in outs[v]]))
                   + "|" + h[v]).encode()).hexdigest() for v in range(n)]
    return _MD5(str(sorted(h)).encode()).hexdigest()


def module_hash(matrix, ops) -> str:
    """NAS-Bench-101 module hash (32 hex) of a cell, as given (prune it first if needed)."""
    ops = list(ops)
    m = _as_matrix(matrix, ops)
    try:
        labels = [_LABEL[op] for op in ops]
    except KeyError as e:
        raise NarError(f"unknown op {e.args[0]!r}; ops must be input, output or one of {', '.join(OPS)}") from None
    return _fingerprint(m.tolist(), labels)


# --------------------------------------------------------------------------- rows of the space
def cell_to_row(matrix, ops):
    """(matrix, op names) -> ((7, 7) int8 adjacency in the top-left block, (7,) int8 op codes, n)."""
    ops = list(ops)
    m = _as_matrix(matrix, ops)
    n = m.shape[0]
    if n > MAX_VERTICES:
        raise NarError(f"cell has {n} vertices, more than {MAX_VERTICES}; prune it first")
    adj = np.zeros((MAX_VERTICES, MAX_VERTICES), np.int8)
    adj[:n, :n] = m
    codes = np.zeros(MAX_VERTICES, np.int8)
    for i, op in enumerate(ops):
        if op not in OP_CODES_101:
            raise NarError(f"op {i} is {op!r}, unknown; use input, output or one of {', '.join(OPS)}")
        codes[i] = OP_CODES_101[op]
    return adj, codes, n


def row_to_cell(adjacency, ops, n_vertices=None):
    """A space/store row -> (n x n int8 matrix, op-name list); n defaults to the nonzero op codes."""
    codes = np.asarray(ops)
    n = int(np.count_nonzero(codes)) if n_vertices is None else int(n_vertices)
    try:
        names = [OP_NAMES_101[int(c)] for c in codes[:n]]
    except KeyError as e:
        raise NarError(f"op code {e.args[0]} is unknown; codes are {OP_NAMES_101}") from None
    return np.asarray(adjacency)[:n, :n].astype(np.int8), names


@dataclass
class Space:
    """The unique NB101 cells sorted by hash (arrays as described in the module docstring)."""
    hashes: np.ndarray      # (N,) S32
    adjacency: np.ndarray   # (N, 7, 7) int8, n x n matrix in the top-left block
    ops: np.ndarray         # (N, 7) int8, cache.store.OP_CODES_101, 0 = no vertex
    n_vertices: np.ndarray  # (N,) int8

    def __len__(self) -> int:
        return len(self.hashes)

    def find(self, hashes) -> np.ndarray:
        """Row index of each hash (str/bytes, scalar or array); -1 where not in the space."""
        q = np.atleast_1d(np.asarray(hashes)).astype("S32")
        pos = np.searchsorted(self.hashes, q)
        pos_c = np.minimum(pos, len(self.hashes) - 1)
        return np.where(self.hashes[pos_c] == q, pos_c, -1).astype(np.int64)

    def cell(self, i: int):
        """(matrix, op names) of row ``i``."""
        return row_to_cell(self.adjacency[i], self.ops[i], self.n_vertices[i])


# --------------------------------------------------------------------------- enumeration
def _edge_bit(x: int, y: int) -> int:
    """Bit of NAS-Bench-101's generation counter that holds edge (x, y), x < y."""
    return x + y * (y - 1) // 2


def _full_dags(v: int) -> np.ndarray:
    """Counters ``bits`` (generation order) of the v-vertex matrices NAS-Bench-101 keeps."""
    bits = np.arange(2 ** (v * (v - 1) // 2), dtype=np.int64)
    pop = np.zeros(len(bits), np.int64)
    for b in range(v * (v - 1) // 2):
        pop += (bits >> b) & 1
    keep = pop <= MAX_EDGES
    for u in range(v):
        out_mask = sum(1 << _edge_bit(u, y) for y in range(u + 1, v))
        in_mask = sum(1 << _edge_bit(x, u) for x in range(u))
        if u < v - 1:
            keep &= (bits & out_mask) != 0
        if u > 0:
            keep &= (bits & in_mask) != 0
    return bits[keep]


def _matrices(bits: np.ndarray, v: int) -> np.ndarray:
    m = np.zeros((len(bits), v, v), np.int8)
    for y in range(v):
        for x in range(y):
            m[:, x, y] = (bits >> _edge_bit(x, y)) & 1
    return m


def _labellings(v: int) -> np.ndarray:
    """(3^(v-2), v) labels in itertools.product order, -1 input / -2 output at the ends."""
    combos = list(itertools.product(range(len(OPS)), repeat=v - 2))
    inner = np.array(combos, np.int64).reshape(len(combos), v - 2)
    return np.concatenate([np.full((len(inner), 1), -1), inner, np.full((len(inner), 1), -2)], axis=1)


def _md5_batch(v: int, bits: np.ndarray, labels: np.ndarray) -> list[str]:
    mats = _matrices(bits, v).tolist()
    return [_fingerprint(m, lab) for m, lab in zip(mats, labels.tolist())]


def enumerate_space(n_jobs: int = 2, chunk: int = 2000) -> Space:
    """Generate the whole space as NAS-Bench-101 did; returns it sorted by hash.

    Deduplicates with the 64-bit refinement, then computes the MD5 hash of each unique
    cell (``n_jobs`` processes) and checks that both hashes count the same cells."""
    from pipeline.workers import ordered_map

    fps, order_v, order_bits, order_lab = [], [], [], []
    for v in range(2, MAX_VERTICES + 1):
        bits = _full_dags(v)
        labels = _labellings(v)
        for start in range(0, len(bits), chunk):
            b = bits[start:start + chunk]
            fp = _int_fingerprints(_matrices(b, v), labels[None])   # (M, L): generation order
            fps.append(fp.ravel())
            order_v.append(np.full(fp.size, v, np.int8))
            order_bits.append(np.repeat(b, len(labels)))
            order_lab.append(np.tile(np.arange(len(labels), dtype=np.int32), len(b)))
        log.info("V=%d: %d matrices x %d labellings", v, len(bits), len(labels))
    fps = np.concatenate(fps)
    _, first = np.unique(fps, return_index=True)  # first occurrence in generation order
    first.sort()
    log.info("%d labelled graphs, %d unique by the 64-bit hash", len(fps), len(first))
    rep_v = np.concatenate(order_v)[first]
    rep_bits = np.concatenate(order_bits)[first]
    rep_lab = np.concatenate(order_lab)[first]
    del fps, order_v, order_bits, order_lab

    tasks = []
    for v in range(2, MAX_VERTICES + 1):
        sel = np.flatnonzero(rep_v == v)
        labels = _labellings(v)
        for part in np.array_split(sel, max(1, min(len(sel), 8 * max(1, n_jobs)))):
            if len(part):
                tasks.append((part, v, rep_bits[part], labels[rep_lab[part]]))
    results = list(ordered_map(_md5_batch, ((v, b, lab) for _, v, b, lab in tasks), n_jobs))

    n = len(first)
    hashes = np.empty(n, "S32")
    adjacency = np.zeros((n, MAX_VERTICES, MAX_VERTICES), np.int8)
    ops = np.zeros((n, MAX_VERTICES), np.int8)
    for (part, v, b, lab), res in zip(tasks, results):
        hashes[part] = np.array(res, "S32")
        adjacency[part, :v, :v] = _matrices(b, v)
        ops[part, 0] = OP_CODES_101[INPUT]
        ops[part, v - 1] = OP_CODES_101[OUTPUT]
        ops[part, 1:v - 1] = _CODE_OF_LABEL[lab[:, 1:v - 1]]
    n_md5 = len(np.unique(hashes))
    if n_md5 != n:
        raise RuntimeError(f"64-bit dedup found {n} cells but MD5 found {n_md5}: hash collision")
    idx = np.argsort(hashes)
    return Space(hashes[idx], adjacency[idx], ops[idx], rep_v[idx].astype(np.int8))


# --------------------------------------------------------------------------- on-disk cache
def _check_space(space: Space) -> str | None:
    """Why ``space`` is not a valid full enumeration, or None."""
    if len(space.hashes) != N_CELLS:
        return f"{len(space.hashes)} cells, expected {N_CELLS}"
    if (space.hashes.dtype != np.dtype("S32") or space.adjacency.shape != (N_CELLS, 7, 7)
            or space.ops.shape != (N_CELLS, 7) or space.n_vertices.shape != (N_CELLS,)):
        return "wrong array shapes or dtypes"
    if not np.all(space.hashes[1:] > space.hashes[:-1]):
        return "hashes not sorted and unique"
    vs, counts = np.unique(space.n_vertices, return_counts=True)
    if dict(zip(vs.tolist(), counts.tolist())) != VERTEX_HISTOGRAM:
        return "vertex-count histogram differs"
    for i in np.linspace(0, N_CELLS - 1, 64).astype(int):   # spot-check rows against their hash
        m, ops = space.cell(i)
        if _fingerprint(m.tolist(), [_LABEL[o] for o in ops]).encode() != space.hashes[i]:
            return f"row {i} does not hash to its key"
    return None


def load_space(cache_dir=None, n_jobs: int = 2) -> Space:
    """The enumerated space, read from ``<cache_dir>/nb101_space.npz`` or built and written there.

    ``cache_dir`` defaults to ``$NAR_CACHE_DIR`` or ``./cache`` of the working directory; pass
    ``False`` to build without touching the disk. A cache that fails validation is rebuilt."""
    if cache_dir is False:
        return enumerate_space(n_jobs=n_jobs)
    folder = default_cache_dir(cache_dir)
    path = folder / _CACHE_NAME
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as z:
                if int(z["version"]) == _CACHE_VERSION:
                    space = Space(z["hashes"], z["adjacency"], z["ops"], z["n_vertices"])
                    why = _check_space(space)
                    if why is None:
                        return space
                else:
                    why = f"cache version {int(z['version'])}"
        except (OSError, ValueError, KeyError) as e:
            why = f"unreadable ({e})"
        log.warning("ignoring space cache %s: %s; rebuilding", path, why)
    space = enumerate_space(n_jobs=n_jobs)
    try:
        with atomic_path(path, mkdir=True) as tmp:
            np.savez(tmp, version=_CACHE_VERSION, hashes=space.hashes, adjacency=space.adjacency,
                     ops=space.ops, n_vertices=space.n_vertices)
        log.info("wrote space cache %s", path)
    except OSError as e:
        log.warning("could not write space cache %s: %s", path, e)
    return space

"""NB101 space: validation errors, pruning, the module hash on the 20k table, enumeration."""
import csv
import gzip
import itertools

import numpy as np
import pytest

from cache.store import OP_CODES_101
from pipeline import nb101_space as sp
from pipeline.errors import NarError
from tests.conftest import shared_data

C3, C1, MP = sp.OPS
# input -> conv3x3 -> conv1x1 -> output, plus input -> maxpool -> output
GOOD_M = np.array([[0, 1, 0, 1, 0],
                   [0, 0, 1, 0, 0],
                   [0, 0, 0, 0, 1],
                   [0, 0, 0, 0, 1],
                   [0, 0, 0, 0, 0]])
GOOD_OPS = ["input", C3, C1, MP, "output"]


def _rows_20k():
    path = shared_data("nb101/nb101_20k.csv.gz")
    with gzip.open(path, "rt") as f:
        rows = list(csv.DictReader(f))
    cells = []
    for r in rows:
        n = int(r["n_vertices"])
        m = np.frombuffer(r["adjacency"].encode(), np.uint8).reshape(n, n) - ord("0")
        cells.append((r["hash"], m.astype(np.int8), r["ops"].split(",")))
    return cells


@pytest.fixture(scope="module")
def rows_20k():
    return _rows_20k()


# ---------------------------------------------------------------- validation
def test_valid_cell_passes():
    assert sp.validate_cell(GOOD_M, GOOD_OPS) is None
    assert sp.validate_cell(GOOD_M.tolist(), tuple(GOOD_OPS)) is None


def _chain(n):
    m = np.zeros((n, n), np.int8)
    for i in range(n - 1):
        m[i, i + 1] = 1
    return m, ["input"] + [C3] * (n - 2) + ["output"]


@pytest.mark.parametrize("matrix, ops, words", [
    (np.zeros((3, 4)), ["input", C3, "output"], "not square"),
    ([[0, 1], [0]], ["input", "output"], "rectangular"),
    (np.array([[0, 2], [0, 0]]), ["input", "output"], "not 0/1"),
    (np.array([[0, 1, 0], [0, 0, 1], [1, 0, 0]]), ["input", C3, "output"], "upper-triangular"),
    (np.array([[1, 1], [0, 0]]), ["input", "output"], "upper-triangular"),
    (GOOD_M, GOOD_OPS[:-1], "4 ops for a 5x5"),
    (*_chain(8), "more than 7"),
    (np.triu(np.ones((6, 6), np.int8), 1), ["input"] + [C3] * 4 + ["output"], "more than 9"),
    (GOOD_M, ["input", C3, "conv5x5", MP, "output"], "'conv5x5', unknown"),
    (GOOD_M, ["input", C3, "output", MP, "output"], "op 2 is 'output', unknown"),
    (GOOD_M, [C3, C3, C1, MP, "output"], "first op must be 'input'"),
    (GOOD_M, ["input", C3, C1, MP, MP], "last op must be 'output'"),
    (np.zeros((1, 1)), ["input"], "at least input and output"),
])
def test_validate_cell_errors(matrix, ops, words):
    with pytest.raises(NarError, match=words):
        sp.validate_cell(matrix, ops)


def test_validate_counts_edges_exactly():
    m = np.zeros((7, 7), np.int8)
    m[0, 1:] = 1                   # 6 edges
    m[1, 2] = m[2, 3] = m[3, 4] = 1  # 9 edges: allowed
    ops = ["input"] + [C1] * 5 + ["output"]
    sp.validate_cell(m, ops)
    m[4, 5] = 1
    with pytest.raises(NarError, match="10 edges"):
        sp.validate_cell(m, ops)


# ---------------------------------------------------------------- pruning
def test_prune_removes_dead_ends_and_unreachable():
    # vertex 2 has no path to output, vertex 3 is not reachable from input
    m = np.zeros((6, 6), np.int8)
    m[0, 1] = m[1, 5] = m[0, 2] = m[3, 4] = m[4, 5] = 1
    ops = ["input", C3, C1, MP, C3, "output"]
    pm, pops = sp.prune(m, ops)
    assert pops == ["input", C3, "output"]
    assert pm.tolist() == [[0, 1, 0], [0, 0, 1], [0, 0, 0]]


def test_prune_keeps_a_full_cell():
    pm, pops = sp.prune(GOOD_M, GOOD_OPS)
    assert np.array_equal(pm, GOOD_M) and pops == GOOD_OPS


def test_prune_disconnected_raises():
    m = np.zeros((4, 4), np.int8)
    m[0, 1] = m[2, 3] = 1
    with pytest.raises(NarError, match="cannot be reached"):
        sp.prune(m, ["input", C3, C1, "output"])


# ---------------------------------------------------------------- hash
def test_hash_invariant_under_interior_permutation():
    h = sp.module_hash(GOOD_M, GOOD_OPS)
    for perm in itertools.permutations([1, 2, 3]):
        order = [0, *perm, 4]
        m = GOOD_M[np.ix_(order, order)]
        if np.any(np.tril(m)):   # keep only topological orderings
            continue
        assert sp.module_hash(m, [GOOD_OPS[i] for i in order]) == h


def test_hash_separates_ops_and_edges():
    h = sp.module_hash(GOOD_M, GOOD_OPS)
    assert sp.module_hash(GOOD_M, ["input", C1, C1, MP, "output"]) != h
    m = GOOD_M.copy()
    m[0, 4] = 1
    assert sp.module_hash(m, GOOD_OPS) != h


def test_hash_unknown_op():
    with pytest.raises(NarError, match="unknown op 'conv5x5'"):
        sp.module_hash(GOOD_M, ["input", C3, "conv5x5", MP, "output"])


def test_hash_matches_the_20k_table(rows_20k):
    assert len(rows_20k) == 20001
    for h, m, ops in rows_20k:
        assert sp.module_hash(m, ops) == h, h


def _int_hashes(cells):
    """64-bit fingerprints of (matrix, ops) cells, vectorised per vertex count."""
    out = np.zeros(len(cells), np.uint64)
    by_n = {}
    for k, (m, ops) in enumerate(cells):
        by_n.setdefault(len(ops), []).append(k)
    for n, ks in by_n.items():
        mats = np.stack([cells[k][0] for k in ks]).astype(np.int8)
        labels = np.array([[sp._LABEL[o] for o in cells[k][1]] for k in ks])[:, None, :]
        out[ks] = sp._int_fingerprints(mats, labels)[:, 0]
    return out


def test_integer_hash_splits_the_20k_table_like_md5(rows_20k):
    """The 64-bit refinement gives 20,001 distinct values on the 20,001 distinct cells and is
    invariant under relabelling the interior vertices, as the MD5 hash is."""
    cells = [(m, ops) for _, m, ops in rows_20k]
    fps = _int_hashes(cells)
    assert len(np.unique(fps)) == len(cells)
    rng = np.random.default_rng(1)
    permuted = []
    for m, ops in cells[:500]:
        n = len(ops)
        while True:   # a random topological reordering of the interior vertices
            order = [0, *rng.permutation(np.arange(1, n - 1)).tolist(), n - 1]
            pm = m[np.ix_(order, order)]
            if not np.tril(pm).any():
                break
        permuted.append((pm, [ops[i] for i in order]))
    assert np.array_equal(_int_hashes(permuted), fps[:500])


# ---------------------------------------------------------------- rows
def test_row_round_trip():
    adj, codes, n = sp.cell_to_row(GOOD_M, GOOD_OPS)
    assert adj.shape == (7, 7) and codes.dtype == np.int8 and n == 5
    assert codes.tolist() == [1, OP_CODES_101[C3], OP_CODES_101[C1], OP_CODES_101[MP], 5, 0, 0]
    assert adj[:5, :5].tolist() == GOOD_M.tolist() and not adj[5:].any() and not adj[:, 5:].any()
    m, ops = sp.row_to_cell(adj, codes)
    assert m.tolist() == GOOD_M.tolist() and ops == GOOD_OPS


def test_generation_helpers_small_cases():
    assert sp._full_dags(2).tolist() == [1]
    assert len(sp._full_dags(3)) == 2          # 0->1->2 with and without 0->2
    lab = sp._labellings(4)
    assert lab.shape == (9, 4) and lab[1].tolist() == [-1, 0, 1, -2]  # product order


def test_space_find():
    hashes = np.array(sorted([b"a" * 32, b"c" * 32, b"e" * 32]), "S32")
    space = sp.Space(hashes, np.zeros((3, 7, 7), np.int8), np.zeros((3, 7), np.int8), np.zeros(3, np.int8))
    assert sp.Space.find(space, ["c" * 32, "b" * 32, "f" * 32, b"a" * 32]).tolist() == [1, -1, -1, 0]


def test_load_space_rejects_bad_cache(tmp_path, monkeypatch):
    """A cache that fails validation is rebuilt (enumeration stubbed) and replaced atomically."""
    np.savez(tmp_path / "nb101_space.npz", version=1, hashes=np.array([b"0" * 32], "S32"),
             adjacency=np.zeros((1, 7, 7), np.int8), ops=np.zeros((1, 7), np.int8),
             n_vertices=np.zeros(1, np.int8))
    built = sp.Space(np.array([b"1" * 32], "S32"), np.zeros((1, 7, 7), np.int8),
                     np.zeros((1, 7), np.int8), np.full(1, 2, np.int8))
    monkeypatch.setattr(sp, "enumerate_space", lambda n_jobs=2: built)
    out = sp.load_space(tmp_path)
    assert out is built
    with np.load(tmp_path / "nb101_space.npz") as z:
        assert z["hashes"].tolist() == [b"1" * 32]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nb101_space.npz"]


# ---------------------------------------------------------------- whole space
@pytest.mark.slow
def test_enumerate_whole_space(rows_20k, tmp_path):
    space = sp.load_space(tmp_path)   # builds, checks and writes the cache
    assert len(space) == sp.N_CELLS == 423624
    vs, counts = np.unique(space.n_vertices, return_counts=True)
    assert dict(zip(vs.tolist(), counts.tolist())) == {2: 1, 3: 6, 4: 84, 5: 2441, 6: 62010, 7: 359082}
    assert np.all(space.hashes[1:] > space.hashes[:-1])
    idx = space.find([h for h, _, _ in rows_20k])
    assert (idx >= 0).all()
    for (h, m, ops), i in zip(rows_20k, idx):
        sm, sops = space.cell(i)
        assert np.array_equal(sm, m) and sops == ops, h
    # every enumerated cell is valid, pruned, and hashes to its own key (sample)
    for i in np.random.default_rng(0).choice(len(space), 300, replace=False):
        m, ops = space.cell(i)
        sp.validate_cell(m, ops)
        assert np.array_equal(sp.prune(m, ops)[0], m)
        assert sp.module_hash(m, ops).encode() == space.hashes[i]
    again = sp.load_space(tmp_path)   # read back from the cache
    assert np.array_equal(again.hashes, space.hashes) and np.array_equal(again.ops, space.ops)
    assert sp._check_space(again) is None
    i = int(np.linspace(0, sp.N_CELLS - 1, 64).astype(int)[3])
    again.ops[i, 1] = OP_CODES_101[MP] if again.ops[i, 1] != OP_CODES_101[MP] else OP_CODES_101[C1]
    assert sp._check_space(again) == f"row {i} does not hash to its key"

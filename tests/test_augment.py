"""Topological-order augmentation of NB101 tensors: validity, isomorphism, determinism, config."""
import dataclasses

import numpy as np
import pytest
import torch

from cache.store import OP_NAMES_101
from nar.augment import augment_batch, permute_vertices, random_topological_order, topo_permute_101
from nar.config import Config, RankerConfig, load_config
from pipeline.encode import features_101
from pipeline.errors import NarError
from pipeline.nb101_space import _fingerprint, cell_to_row, module_hash, prune, validate_cell

_INTERIOR = ["conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3"]


def _random_cells(n, seed=0):
    """``n`` valid NB101 cells (pruned, <= 9 edges, 3..7 vertices) as (matrix, ops) pairs."""
    rng = np.random.default_rng(seed)
    cells = []
    while len(cells) < n:
        v = int(rng.integers(3, 8))
        m = np.zeros((v, v), np.int8)
        for j in range(1, v):  # a random predecessor for each vertex, a successor for each
            m[rng.integers(0, j), j] = 1
        for i in range(v - 1):
            if not m[i].any():
                m[i, rng.integers(i + 1, v)] = 1
        ops = ["input"] + [_INTERIOR[i] for i in rng.integers(0, 3, v - 2)] + ["output"]
        try:
            m, ops = prune(m, ops)
            validate_cell(m, ops)
        except NarError:
            continue
        cells.append((m, ops))
    return cells


def _encode(cells, seed=0):
    """ReNAS tensors of ``cells`` with random per-vertex FLOPs/params (distinct per module)."""
    rng = np.random.default_rng(seed)
    rows = [cell_to_row(m, ops) for m, ops in cells]
    adj = np.stack([r[0] for r in rows])
    codes = np.stack([r[1] for r in rows])
    nv = np.array([r[2] for r in rows])
    real = codes != 0
    flops = rng.uniform(1e6, 1e8, (len(cells), 9, 7)) * real[:, None]
    params = rng.uniform(1e3, 1e5, (len(cells), 9, 7)) * real[:, None]
    return torch.from_numpy(features_101(adj, codes, nv, flops, params)), nv


def _cell_of_tensor(t, n):
    """(matrix, op names) rebuilt from one tensor of an n-vertex cell (positions 0..n-2 and 6)."""
    pos = list(range(n - 1)) + [6]
    ch0 = t[0].numpy()[np.ix_(pos, pos)]
    m = (ch0 != 0).astype(np.int8)
    ops = ["input"] + [OP_NAMES_101[int(round(ch0[:, j].max()))] for j in range(1, n)]
    return m, ops


def _vertex_labels(t, n):
    """Integer label per vertex from all channels of its column (in-edge values), plus matrix."""
    pos = list(range(n - 1)) + [6]
    sub = t.numpy()[:, pos][:, :, pos]                     # (C, n, n)
    cols = np.round(sub.max(1).T.astype(np.float64), 4)     # (n, C): the vertex's values
    return (sub[0] != 0).astype(int).tolist(), [tuple(c) for c in cols]


@pytest.fixture(scope="module")
def batch():
    cells = _random_cells(300)
    x, nv = _encode(cells)
    return cells, x, nv


def test_augmented_tensors_stay_strictly_upper_triangular_with_padding_in_place(batch):
    _, x, nv = batch
    out = topo_permute_101(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    low = torch.tril(torch.ones(7, 7, dtype=torch.bool))
    assert not (out[:, :, low] != 0).any()
    for b in range(len(x)):  # padding rows and columns n-1..5 stay zero
        n = int(nv[b])
        assert not out[b, :, n - 1:6].any() and not out[b, :, :, n - 1:6].any()


def test_augmented_cells_hash_like_the_originals(batch):
    cells, x, nv = batch
    out = topo_permute_101(x, torch.Generator().manual_seed(1))
    changed = 0
    for b, (m, ops) in enumerate(cells):
        m2, ops2 = _cell_of_tensor(out[b], int(nv[b]))
        validate_cell(m2, ops2)
        assert module_hash(m2, ops2) == module_hash(m, ops), b
        changed += not torch.equal(out[b], x[b])
    assert changed > len(cells) // 4  # the augmentation does reorder many cells


def test_all_channels_are_permuted_with_channel_0(batch):
    _, x, nv = batch
    out = topo_permute_101(x, torch.Generator().manual_seed(2))
    for b in range(len(x)):
        rows_a, lab_a = _vertex_labels(x[b], int(nv[b]))
        rows_b, lab_b = _vertex_labels(out[b], int(nv[b]))
        ids = {lab: i for i, lab in enumerate(sorted(set(lab_a) | set(lab_b)))}
        fa = _fingerprint(rows_a, [ids[v] for v in lab_a])
        fb = _fingerprint(rows_b, [ids[v] for v in lab_b])
        assert fa == fb, b  # same graph with the same 19-channel vertex values
    # FLOPs row sums follow the permutation that channel 0 underwent
    order = random_topological_order(x[:, 0] != 0, torch.Generator().manual_seed(2))
    assert torch.equal(permute_vertices(x, order), out)
    assert torch.allclose(out[:, 1].sum(2), x[:, 1].sum(2).gather(1, order))


def test_orders_are_valid_permutations_fixing_input_output_and_padding(batch):
    _, x, nv = batch
    adj = x[:, 0] != 0
    order = random_topological_order(adj, torch.Generator().manual_seed(3))
    assert torch.equal(order.sort(1).values, torch.arange(7).expand(len(x), 7))
    assert (order[:, 0] == 0).all() and (order[:, 6] == 6).all()
    inv = order.argsort(1)  # new position of each old vertex
    b, i, j = adj.nonzero(as_tuple=True)
    assert (inv[b, i] < inv[b, j]).all()  # every edge still points forward
    for k in range(len(x)):
        n = int(nv[k])
        assert order[k, n - 1:6].tolist() == list(range(n - 1, 6))


def test_chain_cell_has_one_order_and_stays_unchanged():
    m = np.eye(7, k=1, dtype=np.int8)
    ops = ["input"] + _INTERIOR + _INTERIOR[:2] + ["output"]
    x, _ = _encode([(m, ops)] * 5)
    assert torch.equal(topo_permute_101(x, torch.Generator().manual_seed(0)), x)


def test_every_topological_order_is_drawn():
    # input -> a, b, c (independent) -> output: 3! = 6 orders of the interior
    m = np.zeros((5, 5), np.int8)
    m[0, 1:4] = 1
    m[1:4, 4] = 1
    x, _ = _encode([(m, ["input"] + _INTERIOR + ["output"])] * 600)
    order = random_topological_order(x[:, 0] != 0, torch.Generator().manual_seed(0))
    seen, counts = np.unique(order[:, 1:4].numpy(), axis=0, return_counts=True)
    assert len(seen) == 6 and counts.min() > 60  # each about 100 of 600


def test_same_seed_same_result_other_seed_other_orders(batch):
    _, x, _ = batch
    a = topo_permute_101(x, torch.Generator().manual_seed(5))
    assert torch.equal(a, topo_permute_101(x, torch.Generator().manual_seed(5)))
    b = topo_permute_101(x, torch.Generator().manual_seed(6))
    assert not torch.equal(a, b)


def test_bad_shape_and_cycles_raise():
    with pytest.raises(NarError, match="7, 7"):
        topo_permute_101(torch.zeros(2, 31, 4, 4), torch.Generator())
    x = torch.zeros(1, 19, 7, 7)
    x[0, 0, 1, 2] = x[0, 0, 2, 1] = 3  # 1 <-> 2 cycle
    with pytest.raises(NarError, match="cycle"):
        topo_permute_101(x, torch.Generator())
    with pytest.raises(NarError, match="none, topo"):
        augment_batch(x, "flip", torch.Generator())


def test_config_validates_augment():
    assert load_config(overrides=["augment=topo"], bench="101").augment == "topo"
    assert load_config(bench="101").augment == "none"
    with pytest.raises(NarError, match="none, topo"):
        load_config(overrides=["augment=shuffle"], bench="101")
    with pytest.raises(NarError, match="nasbench"):
        load_config(overrides=["augment=topo"], bench="201")


def test_training_applies_augmentation_deterministically(batch):
    from nar.train import train_ranker

    _, x, _ = batch
    y = np.random.default_rng(0).random(len(x))
    rc = RankerConfig(d_patch_vec=16, d_model=16, d_ffn_inner=32, d_tier_prj_inner=32, n_layers=1,
                      n_head=2, d_k=8, d_v=8, dropout=0.0, d_val_acc_prj_inner=32)
    cfg = Config(ranker=rc, train_size=64, val_size=16, batch_size=16, ranker_epochs=2, device="cpu", seed=3)
    xs, xv = x[:64].numpy(), x[64:80].numpy()
    plain, _ = train_ranker(cfg, xs, y[:64], xv, y[64:80])
    topo = dataclasses.replace(cfg, augment="topo")
    aug1, _ = train_ranker(topo, xs, y[:64], xv, y[64:80])
    aug2, _ = train_ranker(topo, xs, y[:64], xv, y[64:80])
    assert all(torch.equal(a, b) for a, b in zip(aug1.parameters(), aug2.parameters()))
    assert not torch.allclose(aug1.patch_proj.weight, plain.patch_proj.weight)

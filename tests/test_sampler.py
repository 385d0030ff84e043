"""The distribution-guided sampler: pool look-ups, NB101 fingerprints, tier statistics, caps."""
import csv
import gzip

import numpy as np
import pytest

from cache.store import OP_CODES_101, Store, StoreWriter
from nar.sampler import (SearchPool, Sampler, draw_cells_101, fingerprint_101, prune_batch,
                         store_labels_101, tier_stats)
from nar.search_config import SamplerConfig
from pipeline.errors import NarError
from tests.conftest import shared_data
from tests.fakes import fake_store_101, fake_store_201


def table_store_101(csv_path, out_path):
    """A store of the 20k NB101 table's cells with their real hashes. FLOPs are a proxy
    (= params), features only channel 0 (adjacency x op code); val_acc in percent, no test."""
    rows = list(csv.DictReader(gzip.open(csv_path, "rt")))
    n = len(rows)
    adj = np.zeros((n, 7, 7), np.int8)
    ops = np.zeros((n, 7), np.int8)
    for i, r in enumerate(rows):
        v = int(r["n_vertices"])
        adj[i, :v, :v] = np.frombuffer(r["adjacency"].encode(), np.uint8).reshape(v, v) - 48
        ops[i, :v] = [OP_CODES_101[o] for o in r["ops"].split(",")]
    params = np.array([int(r["trainable_parameters"]) for r in rows], np.int64)
    with StoreWriter(out_path, n, "101", {"source_path": str(csv_path)}) as w:
        w.put("key", np.array([r["hash"] for r in rows], "S32"))
        w.put("index", np.arange(n, dtype=np.int32))
        w.put("adjacency", adj)
        w.put("ops", ops)
        w.put("n_vertices", np.array([int(r["n_vertices"]) for r in rows], np.int8))
        w.put("data/cifar10/features", (adj * ops[:, None, :])[:, None].astype(np.float32))
        w.put("data/cifar10/flops", params)
        w.put("data/cifar10/params", params)
        w.put("data/cifar10/val_acc", np.array([100 * float(r["val_acc_108"]) for r in rows], np.float32))
        w.put("data/cifar10/test_acc", np.full(n, np.nan, np.float32))
        return w.commit()


@pytest.fixture(scope="module")
def store201(tmp_path_factory):
    return Store(fake_store_201(tmp_path_factory.mktemp("s201") / "s.h5", n=3000))


@pytest.fixture(scope="module")
def table101(tmp_path_factory):
    return Store(table_store_101(shared_data("nb101/nb101_20k.csv.gz"), tmp_path_factory.mktemp("t") / "t.h5"))


def test_fingerprint_separates_the_20k_table_and_ignores_vertex_order(table101):
    pool = SearchPool.from_store(table101, "cifar10")
    labels, present, _ = store_labels_101(pool.ops)
    fp = fingerprint_101(pool.adjacency, labels, present)
    assert len(np.unique(fp)) == table101.n  # 20,001 distinct hashes -> distinct fingerprints
    sel = np.flatnonzero(pool.structure == 7)[:500]
    perm = np.array([0, 4, 2, 5, 1, 3, 6])  # relabel interior vertices (no longer upper-triangular)
    fp2 = fingerprint_101(pool.adjacency[sel][:, perm][:, :, perm], labels[sel][:, perm], present[sel])
    np.testing.assert_array_equal(fp2, fp[sel])


def test_drawn_cells_meet_the_row_of_their_nasbench_hash(table101):
    from pipeline.nb101_space import OPS, module_hash, prune

    pool = SearchPool.from_store(table101, "cifar10")
    adj, labels, present, out = draw_cells_101(np.random.default_rng(1), 40000)
    rows = pool.lookup_101(adj, labels, present, out)
    _, _, ok = prune_batch(adj, present, out)
    names = {-1: "input", -2: "output", 0: OPS[0], 1: OPS[1], 2: OPS[2]}
    keys = set(pool.keys.tolist())

    def nb_hash(i):
        v = int(out[i]) + 1
        m, o = prune(adj[i, :v, :v].astype(int), [names[int(x)] for x in labels[i, :v]])
        return module_hash(m, o)

    hits = np.flatnonzero(rows >= 0)
    assert len(hits) > 100
    for i in hits[:150]:
        assert nb_hash(i) == pool.keys[rows[i]]
    misses = np.flatnonzero(ok & (rows < 0))[:150]
    assert all(nb_hash(i) not in keys for i in misses)
    assert not (rows[~ok] >= 0).any()  # cells whose input cannot reach the output never match


def test_prune_batch_drops_dead_vertices():
    adj = np.zeros((1, 7, 7), bool)
    adj[0, 0, 1] = adj[0, 1, 3] = adj[0, 0, 2] = True  # vertex 2 is a dead end; output is 3
    present = np.arange(7)[None] < 4
    a, keep, ok = prune_batch(adj, present, np.array([3]))
    assert ok[0] and keep[0].tolist() == [True, True, False, True, False, False, False]
    assert not a[0, 0, 2]


def test_tier_stats_histograms(store201):
    pool = SearchPool.from_store(store201, "cifar10")
    rows = np.arange(100)
    tiers = np.repeat(np.arange(1, 6), 20)
    s = tier_stats(pool, rows, tiers, 5, 4)
    assert s["count"].tolist() == [20] * 5
    assert s["flops"].shape == (5, 4) and s["flops"].sum() == 100
    assert s["flops_edges"][0] == pool.flops[rows].min() and s["flops_edges"][-1] == pool.flops[rows].max()
    assert s["edges"].shape == (5, 6, 5) and (s["edges"].sum(2) == 20).all()


def test_guidance_rules(store201):
    pool = SearchPool.from_store(store201, "cifar10")
    rows = np.argsort(pool.flops)[::10][:200]  # spread over the range, sorted by FLOPs
    tiers = np.repeat(np.arange(1, 6), 40)     # tier 1 = the smallest: far from tiers 4-5
    cfg = SamplerConfig(flops_kl_thred=0.5, params_kl_thred=0.5, edges_kl_thred=100.0)
    sp = Sampler(pool, cfg, 5, 5)
    assert sp.update(rows, tiers) == {"flops": True, "params": True, "edges": False}
    sp.cfg = SamplerConfig(force_uniform=True)
    assert not any(sp.guidance().values())
    sp.cfg = SamplerConfig(batch_factor=0.5, flops_kl_thred=0.5)
    assert not any(sp.guidance().values())  # tier 1 holds 20% < batch_factor


def test_guided_caps_hold_and_batch_is_distinct(store201):
    pool = SearchPool.from_store(store201, "cifar10")
    rows = np.argsort(pool.flops)[::10][:200]
    tiers = np.repeat(np.arange(1, 6), 40)
    cfg = SamplerConfig(flops_kl_thred=0.5, params_kl_thred=0.5, noisy_factor=0.25, reuse_step=10)
    sp = Sampler(pool, cfg, 5, 5, seed=3)
    sp.update(rows, tiers)
    out, info = sp.sample(80)
    assert len(out) == 80 == len(np.unique(out)) and info["n_noisy"] == 20
    guided = out[:60]
    # tier 1 only has the lowest FLOPs bin, so every guided cap is that bin's upper edge
    assert info["fallbacks"] < 60
    assert (pool.flops[guided] <= sp.stats["flops_edges"][1]).all()
    assert pool.flops[out[60:]].max() > sp.stats["flops_edges"][1]  # the uniform share is not capped


def test_hard_limits(tmp_path, store201):
    f = np.asarray(store201.data("cifar10", "flops"))
    limit = float(np.quantile(f, 0.3))
    pool = SearchPool.from_store(store201, "cifar10", max_flops=limit)
    rows, _ = Sampler(pool, SamplerConfig(), 5, 5, seed=0).sample(128)
    assert (pool.flops[rows] <= limit).all() and len(rows) == 128
    with pytest.raises(NarError, match="max_flops"):
        SearchPool.from_store(store201, "cifar10", max_flops=f.min() - 1)
    with pytest.raises(NarError, match="latency"):
        SearchPool.from_store(store201, "cifar10", max_latency=1.0)


def test_nb201_lookup_maps_every_store_row(store201):
    pool = SearchPool.from_store(store201, "cifar10")
    np.testing.assert_array_equal(pool.lookup_201(pool.structure), np.arange(pool.n))
    assert not pool.is_whole_space


def test_sampler_on_the_20k_table(table101):
    pool = SearchPool.from_store(table101, "cifar10")
    sp = Sampler(pool, SamplerConfig(), 5, 8, seed=0)
    rows, info = sp.sample(256)
    assert len(np.unique(rows)) == 256 and info["fallbacks"] == 0
    tiers = 1 + (np.argsort(np.argsort(-pool.params[rows])) * 5 // 256)
    sp.update(rows, tiers)
    rows2, info2 = sp.sample(256)
    assert len(np.unique(rows2)) == 256 and info2["n_noisy"] == 128


def test_fake_101_pool_falls_back_without_error(tmp_path):
    pool = SearchPool.from_store(Store(fake_store_101(tmp_path / "f.h5", n=200)), "cifar10")
    rows, info = Sampler(pool, SamplerConfig(max_trails=5), 5, 8, seed=0).sample(50)
    assert len(np.unique(rows)) == 50 and info["tries"] <= 50 * 5

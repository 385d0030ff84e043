"""NAS-Bench-Graph space: canonical key, the .bench reader and its errors, store arrays, search
cells; and, when the nas-bench-graph package is installed (the dev extra), its real tables."""
import importlib.util
import json
import os
import pickle

import numpy as np
import pytest
from click.testing import CliRunner

from cache.store import Store
from cli import cli
from nar.sampler import SearchPool
from pipeline.errors import NarError
from pipeline.ingest import ingest
from pipeline.sources import read_source
from pipeline.spaces import create_space
from pipeline.spaces import graph_cells as gc
from tests.fakes import fake_graph_bench

OP = {name: i for i, name in enumerate(gc.OPS_NBG)}


def _key(parents, ops):
    return gc.canonical_key(parents, [OP[o] for o in ops])


def _build(tmp_path, source, *extra):
    out = tmp_path / "t.json"
    res = CliRunner().invoke(cli, ["build", "--no-progress", "--bench", "graph", "--source", str(source),
                                   "--out", str(out), *extra])
    return res, out


# ------------------------------------------------------------------ canonical key
def test_key_is_the_tree_without_skips_and_ignores_sibling_order():
    assert _key((0, 0, 0, 0), ("gat", "gcn", "gin", "fc")) == "fc1,gat1,gcn1,gin1"
    assert _key((0, 1, 1, 0), ("gcn", "gat", "skip", "gin")) == "gcn1(gat1),gin1"
    # the same network written with other node numbers and sibling orders
    assert _key((0, 0, 2, 2), ("gin", "gcn", "skip", "gat")) == _key((0, 1, 1, 0), ("gcn", "gat", "skip", "gin"))
    # a skip chain from the input is the input; a skip leaf on the input is dropped
    assert _key((0, 1, 2, 2), ("skip", "skip", "gat", "gat")) == "gat1,gat1"
    assert _key((0, 0, 0, 0), ("skip", "gat", "gat", "gat")) == "gat1,gat1,gat1"
    # a skip leaf of an inner node makes that node feed the output once more
    assert _key((0, 1, 1, 0), ("gcn", "gat", "skip", "gin")) != _key((0, 1, 0, 0), ("gcn", "gat", "gin", "gin"))
    assert _key((0, 0, 1, 1), ("gat", "gat", "skip", "skip")) == "gat1,gat2"
    assert _key((0, 0, 0, 0), ("skip",) * 4) == ""


def test_codes_merge_exactly_the_cells_with_one_key():
    rng = np.random.default_rng(0)
    cells = gc.all_raw()[rng.choice(gc.N_RAW, 3000, replace=False)]
    codes, ok = gc.codes_of(cells)
    keys = [gc.canonical_key(c[:4], c[4:]) for c in cells]
    assert (ok == np.array([k != "" for k in keys])).all()
    by_code = {}
    for code, key in zip(codes[ok].tolist(), np.array(keys)[ok].tolist()):
        assert by_code.setdefault(code, key) == key
    assert len(set(by_code.values())) == len(by_code)
    table = gc.code_table()
    assert len(np.unique(table[table != 0])) == gc.N_CELLS  # 26,206 classes in the whole raw space
    bad = np.array([[1, 0, 0, 0, 0, 0, 0, 0], [0, 2, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 9, 0, 0, 0]])
    assert not gc.codes_of(bad)[1].any()


def test_cell_arrays_wire_leaves_to_the_output():
    adj, codes = gc.cell_arrays(np.array([[0, 1, 1, 0, OP["gcn"], OP["gat"], OP["skip"], OP["fc"]]]))
    edges = {(int(i), int(j)) for i, j in zip(*np.nonzero(adj[0]))}
    assert edges == {(0, 1), (1, 2), (1, 3), (0, 4), (2, 5), (3, 5), (4, 5)}
    assert codes[0].tolist() == [1, OP["gcn"] + 2, OP["gat"] + 2, OP["skip"] + 2, OP["fc"] + 2, 11]
    np.testing.assert_array_equal(gc.structure_of(adj, codes), [[0, 1, 1, 0, 1, 0, 8, 7]])


# ------------------------------------------------------------------ reader and build
def test_build_encode_keeps_every_architecture_and_its_metrics(tmp_path):
    src = fake_graph_bench(tmp_path / "pubmed.bench", 60, seed=3)
    table = pickle.loads(src.read_bytes())
    res, out = _build(tmp_path, src)
    assert res.exit_code == 0, res.output
    recs = json.loads(out.read_text())
    assert [r["nbg_hash"] for r in recs] == sorted(table) and {r["dataset"] for r in recs} == {"pubmed"}
    r0 = recs[0]
    assert r0["val_acc"] == pytest.approx(100 * table[r0["nbg_hash"]]["valid_perf"])
    assert r0["params"] == round(1e6 * float(table[r0["nbg_hash"]]["para"]))
    with Store(ingest(out, "graph", out=tmp_path / "s.h5", n_jobs=1)) as s:
        assert s.datasets == ["default"] and s.array("index").tolist() == sorted(table)
        f = s.data("default", "features")
        assert f.shape == (60, 3, 6, 6) and (f[:, 1] == 0).all()
        np.testing.assert_allclose(f[:, 2, :, 5].max(1), s.data("default", "params") / 1e6, rtol=1e-6)
        np.testing.assert_allclose(s.data("default", "test_acc"),
                                   [100 * table[h]["perf"] for h in sorted(table)], rtol=1e-6)
        assert np.isfinite(s.data("default", "latency")).all()


def test_dataset_option_names_the_table_and_is_refused_elsewhere(tmp_path):
    src = fake_graph_bench(tmp_path / "x.bench", 20)
    res, out = _build(tmp_path, src, "--dataset", "arxiv")
    assert res.exit_code == 0, res.output
    assert json.loads(out.read_text())[0]["dataset"] == "arxiv"
    with pytest.raises(NarError, match="--dataset is for sources that hold several tables"):
        read_source("201", "analognas", dataset="cora")
    with pytest.raises(NarError, match="unknown NAS-Bench-Graph dataset 'mnist'"):
        read_source("graph", "nasbenchgraph", dataset="mnist")
    with pytest.raises(NarError, match="source nasbenchgraph needs --dataset"):
        read_source("graph", "nasbenchgraph")


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.update({90000: t[next(iter(t))]}), "not a NAS-Bench-Graph architecture hash"),
    (lambda t: t.update({9: t[next(iter(t))]}), "not a NAS-Bench-Graph architecture hash"),
    (lambda t: t.update({8888: t[next(iter(t))]}), "all-skip cell"),
    (lambda t: t[next(iter(t))].pop("perf"), "expected the fields"),
    (lambda t: t[next(iter(t))].update(valid_perf=1.5), "valid_perf is 1.5"),
    (lambda t: t[next(iter(t))].update(latency=float("nan")), "latency is nan"),
])
def test_bad_tables_give_one_error_and_no_output(tmp_path, edit, message):
    src = fake_graph_bench(tmp_path / "cora.bench", 20)
    table = pickle.loads(src.read_bytes())
    edit(table)
    src.write_bytes(pickle.dumps(table))
    res, out = _build(tmp_path, src)
    assert res.exit_code != 0 and message in res.output and not out.exists()


def test_a_table_listing_one_architecture_twice_is_refused(tmp_path):
    src = tmp_path / "cora.bench"
    a = {"valid_perf": 0.8, "perf": 0.8, "latency": 0.01, "para": 1.0}
    # link (0,0,0,0) with gat, gcn, gin, fc and the same cell with the ops in another order
    src.write_bytes(pickle.dumps({gc.nbg_hash((0, 0, 0, 0), (0, 1, 2, 7)): a,
                                  gc.nbg_hash((0, 0, 0, 0), (7, 2, 1, 0)): a}))
    res, out = _build(tmp_path, src)
    assert res.exit_code != 0 and "is the same architecture as 127" in res.output and not out.exists()


def test_a_table_that_would_run_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

    src = tmp_path / "cora.bench"
    src.write_bytes(pickle.dumps({0: Evil()}))
    res, out = _build(tmp_path, src)
    assert res.exit_code != 0 and "is not allowed in a NAS-Bench-Graph table" in res.output
    assert not (tmp_path / "pwned").exists() and not out.exists()


def test_encode_refuses_a_record_whose_key_does_not_match(tmp_path):
    res, out = _build(tmp_path, fake_graph_bench(tmp_path / "cora.bench", 20))
    recs = json.loads(out.read_text())
    recs[3]["key"] = recs[4]["key"]
    out.write_text(json.dumps(recs))
    with pytest.raises(NarError, match="record 3: key .* does not match its cell"):
        ingest(out, "graph", out=tmp_path / "s.h5", n_jobs=1, skip_sha256=True)
    assert not (tmp_path / "s.h5").exists()


# ------------------------------------------------------------------ search cells
def test_draws_keep_to_the_ops_of_the_pool(tmp_path):
    src = fake_graph_bench(tmp_path / "proteins.bench", 80, seed=1, ops_used=[1, 4, 5, 7, 8])
    res, out = _build(tmp_path, src)
    assert res.exit_code == 0, res.output
    space = create_space("graph")
    with Store(ingest(out, "graph", out=tmp_path / "s.h5", n_jobs=1)) as store:
        pool = SearchPool.from_store(store, "default")
        prior = space.sampler_prior(pool)
        assert prior.tolist() == [i in (1, 4, 5, 7, 8) for i in range(9)]
        cells = space.draw(np.random.default_rng(0), 2000, None, prior, 1e-3)
        assert set(np.unique(cells[:, 4:]).tolist()) <= {1, 4, 5, 7, 8}
        assert ((cells[:, :4] >= 0) & (cells[:, :4] < np.arange(1, 5))).all()
        # every parent list appears, and rows found are the pool's own
        assert len({tuple(c) for c in cells[:, :4].tolist()}) == 24
        rows = pool.lookup(cells)
        assert (rows >= 0).any() and all(space.key(cells[i]) == pool.keys[r] for i, r in enumerate(rows) if r >= 0)


def test_iterative_nar_search_trains_the_graph_config(tmp_path, monkeypatch):
    """Without --config_file the NAR surrogate is the space's default ranker (config/graph.yml,
    the gated graph encoder), not the built-in patch-transformer defaults."""
    import nar.iterative
    from nar.search_run import run_sample

    src = fake_graph_bench(tmp_path / "cora.bench", 80, seed=2)
    res, out = _build(tmp_path, src)
    assert res.exit_code == 0, res.output
    store = ingest(out, "graph", out=tmp_path / "s.h5", n_jobs=1)
    configs = []
    real = nar.iterative.nar_surrogate
    monkeypatch.setattr(nar.iterative, "nar_surrogate",
                        lambda ctx, cfg, ft=0: configs.append(cfg) or real(ctx, cfg, ft))
    rep = run_sample(str(store), tmp_path / "run", mode="iterative", surrogate="nar", budget=32, seed=0)
    assert rep["surrogate_config"] == {"from": "preset nar_default (config/graph.yml)", "encoder": "gated_graph"}
    (cfg,) = configs
    assert cfg.exp_name == "nar_graph" and cfg.ranker.encoder == "gated_graph" and cfg.ranker.backward_pass
    assert cfg.seed == 0 and cfg.ranker_epochs == cfg.sampler.surrogate_epochs  # the search's surrogate sizes
    assert [r["queries"] for r in rep["rounds"]] == [32] and rep["strict_protocol"]["queries"] == 32


# ------------------------------------------------------------------ the real tables
def _require_package():
    if importlib.util.find_spec("nas_bench_graph") is None:
        msg = "nas-bench-graph is not installed (pip install .[graph])"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)


def test_real_tables_read_with_one_key_per_architecture():
    _require_package()
    rows = read_source("graph", "nasbenchgraph", dataset="cora")
    assert len(rows) == gc.N_CELLS == len(set(rows.keys))
    assert 0 < rows.val_acc.min() and rows.val_acc.max() <= 100 and (rows.params > 0).all()
    proteins = read_source("graph", "nasbenchgraph", dataset="proteins")
    assert len(proteins) == 2021 and set(np.unique(proteins.cells[:, 4:]).tolist()) == {1, 4, 5, 7, 8}


def test_keys_agree_with_the_benchmarks_own_duplicate_removal():
    """On random raw cells of all 24 parent lists, two cells get one key exactly when the
    package's ``Arch(...).valid_hash()`` gives them one hash, and that hash is in the table."""
    _require_package()
    from nas_bench_graph import Arch, light_read
    table = light_read("cora")
    rng = np.random.default_rng(0)
    cells = gc.all_raw()[rng.choice(gc.N_RAW, 6000, replace=False)]
    key_of_hash, hash_of_key = {}, {}
    for c in cells.tolist():
        key = gc.canonical_key(c[:4], c[4:])
        if not key:
            continue
        h = Arch(c[:4], [gc.OPS_NBG[o] for o in c[4:]]).valid_hash()
        assert h in table
        assert key_of_hash.setdefault(h, key) == key and hash_of_key.setdefault(key, h) == h

"""Conformance: every registered search space passes the same checks (key round trip, encoding
shape, draw / mutate validity, build -> encode -> train -> test -> sample on a tiny fake)."""
import json

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from cache.store import Store
from cli import cli
from nar.sampler import SearchPool
from pipeline.errors import NarError
from pipeline.ingest import ingest
from pipeline.spaces import SearchSpace, create_space, list_spaces, space_choices, space_class, space_of
from pipeline.spaces.user import load_spec
from tests.fakes import FAKE_SOURCES

SPACES = list_spaces()


def _run(*args):
    res = CliRunner().invoke(cli, [str(a) for a in args])
    assert res.exit_code == 0, res.output
    return res


@pytest.fixture(scope="module", params=SPACES)
def built(request, tmp_path_factory):
    """(space, store path, json path) of a fake table of the space, built and encoded."""
    name = request.param
    d = tmp_path_factory.mktemp(name)
    src, space_file = FAKE_SOURCES[name](d, 150, 1)
    out = d / "table.json"
    extra = ["--space-file", space_file] if space_file else []
    _run("build", "--no-progress", "--bench", name, "--source", src, "--out", out, *extra)
    store = ingest(out, name, out=d / "store.h5", n_jobs=1)
    space = create_space(name, load_spec(space_file) if space_file else None)
    return space, store, out


def test_every_space_has_a_fake_source_and_its_aliases_resolve():
    assert {"nasbench101", "nasbench201"} <= set(list_spaces())
    for name in SPACES:
        assert name in FAKE_SOURCES and name in space_choices()
        if getattr(space_class(name), "needs_spec", False):
            continue
        space = create_space(name)
        assert isinstance(space, SearchSpace)
        for alias in (name, *space.aliases, *space.config_names, space.bench):
            assert create_space(alias) is space
        assert set(space.aliases) <= set(space_choices())
    assert create_space("101").name == "nasbench101" and create_space("201").name == "nasbench201"
    with pytest.raises(NarError, match="unknown bench 'nb999'"):
        create_space("nb999")


def test_store_holds_the_space_and_its_feature_shape(built):
    space, path, _ = built
    with Store(path) as store:
        assert store.bench == space.bench and repr(space_of(store)) == repr(space)
        assert store.n == 150
        for ds in store.datasets:
            assert ds in space.datasets
            assert store.data(ds, "features").shape == (150, *space.feature_shape)
        assert len(store.array("key")[0]) <= space.key_bytes


def test_keys_round_trip_and_every_row_finds_itself(built):
    space, path, _ = built
    with Store(path) as store:
        pool = SearchPool.from_store(store, store.datasets[0])
        for row in range(0, pool.n, 7):
            assert space.key(space.cell(pool, row)) == pool.keys[row]
        np.testing.assert_array_equal(pool.lookup(space.pool_cells(pool)), np.arange(pool.n))


def test_draws_are_valid_cells_of_the_space(built):
    space, path, _ = built
    rng = np.random.default_rng(0)
    with Store(path) as store:
        pool = SearchPool.from_store(store, store.datasets[0])
        prior = space.sampler_prior(pool)
        for guide in (None, space.structure_counts(pool.structure, np.ones(pool.n, np.int64), 1)[0] + 1):
            rows = pool.lookup(space.draw(rng, 3000, guide, prior, 1e-3))
            assert rows.min() >= -1 and (rows >= 0).any()  # a fake holds a part of the space
        counts = space.structure_counts(pool.structure, np.ones(pool.n, np.int64), 2)
        assert counts[0].sum() > 0 and counts[1].sum() == 0


def test_mutants_are_other_valid_rows_one_step_away(built):
    space, path, _ = built
    with Store(path) as store:
        pool = SearchPool.from_store(store, store.datasets[0])
        n_found = 0
        for row in range(pool.n):
            kids = space.mutants(pool, row)
            assert row not in kids and (kids >= 0).all() and (np.diff(kids) > 0).all()
            for k in kids:
                assert space.key(space.cell(pool, k)) == pool.keys[k] != pool.keys[row]
            n_found += len(kids)
        assert n_found > 0


def test_flat_features_are_finite_and_fixed_width(built):
    space, path, _ = built
    from nar.baselines import onehot_features
    with Store(path) as store:
        x = onehot_features(store, np.arange(store.n))
        assert x.shape[0] == store.n and x.ndim == 2 and np.isfinite(x).all()
        assert len({tuple(r) for r in x.tolist()}) > store.n // 2  # features tell cells apart


def test_train_test_sample_end_to_end(built, tmp_path, monkeypatch):
    space, path, json_path = built
    monkeypatch.setenv("NAR_CACHE_DIR", str(tmp_path / "cache"))
    c, p, _ = space.feature_shape
    cfg = {"space": space.config_names[0], "train_size": 40, "val_size": 20, "batch_size": 20,
           "train_batch_size": 20, "val_batch_size": 20, "ranker_epochs": 2, "sampler_epochs": 4,
           "bins": 4, "device": "cpu",
           "ranker": {"n_arch_patch": c, "d_patch": p, "d_patch_vec": 16, "d_model": 16, "d_ffn_inner": 32,
                      "d_tier_prj_inner": 32, "n_layers": 1, "n_head": 2, "d_k": 8, "d_v": 8,
                      "d_val_acc_prj_inner": 32},
           "sampler": {"search_size": 16, "sample_size": 16, "strict_lookups": 5}}
    conf = tmp_path / "tiny.yml"
    conf.write_text(yaml.safe_dump(cfg))
    run = tmp_path / "run"
    _run("train", "--config_file", conf, "--data_path", path, "--save_dir", run, "--seed", 0)
    _run("test", "--config_file", conf, "--data_path", path, "--save_dir", run, "--seed", 0)
    res = json.loads((run / "results.json").read_text())
    assert res["bench"] == space.bench and res["heldout"]["n"] == 150 - 60
    _run("sample", "--config_file", conf, "--data_path", path, "--save_dir", run, "--checkpoint", "ckp_best.pth",
         "--seed", 0)
    rep = json.loads((run / "search.json").read_text())
    assert rep["bench"] == space.bench and rep["iterations"] == 2
    assert rep["strict_protocol"]["pick"]["key"] in set(np.char.decode(Store(path).array("key"), "ascii"))
    for mode, data in (("random", json_path), ("evolution", path)):  # a JSON path: its space is recognised
        _run("sample", "--data_path", data, "--save_dir", tmp_path / mode, "--mode", mode, "--budget", 30,
             "--seed", 0)
        rep = json.loads((tmp_path / mode / "search.json").read_text())
        assert rep["strict_protocol"]["queries"] == 30


def test_equivalence_codes_are_a_partition_coarser_than_identity(built):
    space, path, _ = built
    with Store(path) as store:
        pool = SearchPool.from_store(store, store.datasets[0])
        cls = space.equivalence_codes(pool)
        assert cls.shape == (pool.n,) and np.issubdtype(cls.dtype, np.integer)
        code = space.row_codes(pool)
        _, first = np.unique(code, return_index=True)  # rows of one cell share a class
        np.testing.assert_array_equal(cls, cls[first][np.unique(code, return_inverse=True)[1].ravel()])
        if space.bench != "201":  # the default: every row its own class
            np.testing.assert_array_equal(cls, np.arange(pool.n))
        else:
            assert 1 < len(np.unique(cls)) < pool.n  # 150 random NB201 cells hold some duplicates

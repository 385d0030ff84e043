"""Baseline predictors: one-hot features, fit/predict on fake stores, checkpoints, errors."""
import importlib.util

import numpy as np
import pytest

from cache.store import Store, StoreWriter
from nar.baselines import create_baseline, list_baselines, load_baseline, onehot_features
from nar.metrics import ranking_metrics
from pipeline.errors import NarError
from tests.fakes import fake_store_101, fake_store_201

HAS_XGB = importlib.util.find_spec("xgboost") is not None


@pytest.fixture(scope="module")
def store201(tmp_path_factory):
    s = Store(fake_store_201(tmp_path_factory.mktemp("s") / "s201.h5", n=600))
    yield s
    s.close()


@pytest.fixture(scope="module")
def store101(tmp_path_factory):
    s = Store(fake_store_101(tmp_path_factory.mktemp("s") / "s101.h5", n=400))
    yield s
    s.close()


def _small_101_store(path):
    """Two hand-written cells: a 7-vertex chain and a 4-vertex cell input->conv3x3->pool->output
    plus input->output."""
    adj = np.zeros((2, 7, 7), np.int8)
    adj[0, np.arange(6), np.arange(1, 7)] = 1
    adj[1, 0, 1] = adj[1, 1, 2] = adj[1, 2, 3] = adj[1, 0, 3] = 1
    ops = np.zeros((2, 7), np.int8)
    ops[0] = [1, 2, 3, 4, 2, 3, 5]
    ops[1, :4] = [1, 3, 4, 5]
    with StoreWriter(path, 2, "101") as w:
        w.put("key", np.array([b"a" * 32, b"b" * 32]))
        w.put("adjacency", adj)
        w.put("ops", ops)
        w.put("n_vertices", np.array([7, 4], np.int8))
        return w.commit()


def test_nb101_features_pad_output_to_vertex_6(tmp_path):
    with Store(_small_101_store(tmp_path / "small.h5")) as s:
        x = onehot_features(s, np.array([1, 0]))
    assert x.shape == (2, 36) and x.dtype == np.float32
    iu = np.triu_indices(7, 1)
    edges = {(int(i), int(j)) for i, j, v in zip(*iu, x[0, :21]) if v}
    # 4-vertex cell: vertices 0, 1, 2 stay, the output (3) moves to 6
    assert edges == {(0, 1), (1, 2), (2, 6), (0, 6)}
    onehot = x[0, 21:].reshape(5, 3)  # interior vertices 1..5 x (conv1x1, conv3x3, maxpool)
    assert onehot.tolist() == [[0, 1, 0], [0, 0, 1], [0, 0, 0], [0, 0, 0], [0, 0, 0]]
    chain = {(int(i), int(j)) for i, j, v in zip(*iu, x[1, :21]) if v}
    assert chain == {(k, k + 1) for k in range(6)}
    assert x[1, 21:].reshape(5, 3).argmax(1).tolist() == [0, 1, 2, 0, 1]


def test_nb101_features_match_renas_channel0(store101):
    x = onehot_features(store101, np.arange(store101.n))
    ch0 = np.asarray(store101.data("cifar10", "features")[:, 0])
    iu = np.triu_indices(7, 1)
    assert np.array_equal(x[:, :21] > 0, ch0[:, iu[0], iu[1]] > 0)


def test_nb201_features_onehot_per_edge(store201):
    idx = np.array([5, 0, 17])
    x = onehot_features(store201, idx)
    assert x.shape == (3, 30)
    per_edge = x.reshape(3, 6, 5)
    assert np.all(per_edge.sum(2) == 1)
    assert np.array_equal(per_edge.sum(1), store201.array("op_counts")[idx])
    adj = store201.array("adjacency")[idx]
    assert np.array_equal(per_edge.argmax(2)[:, 5], adj[:, 2, 3])  # last edge is 2->3


@pytest.mark.parametrize("name,target", [("lightgbm", "raw"), ("lightgbm", "rank"), ("mlp", "raw"),
                                         pytest.param("xgboost", "raw", marks=pytest.mark.skipif(
                                             not HAS_XGB, reason="xgboost not installed (optional extra)"))])
def test_fit_predict_ranks_fake_201(store201, name, target, tmp_path):
    y = np.asarray(store201.data("cifar10", "val_acc"), np.float64)
    tr, ho = np.arange(400), np.arange(400, 600)
    kw = {"max_epochs": 60} if name == "mlp" else {}
    model = create_baseline(name, "201", seed=0, target=target, **kw).fit(store201, tr, y[tr])
    score = model.predict(store201, ho)
    assert score.shape == (200,) and np.isfinite(score).all()
    tau = ranking_metrics(score, store201.data("cifar10", "test_acc")[ho])["kendalltau"]
    assert tau > 0.5
    again = create_baseline(name, "201", seed=0, target=target, **kw).fit(store201, tr, y[tr])
    assert np.allclose(again.predict(store201, ho), score)  # same seed, same model
    loaded = load_baseline(model.save(tmp_path / f"{name}.joblib"))
    assert np.allclose(loaded.predict(store201, ho), score)


def test_lightgbm_fits_fake_101(store101):
    y = np.asarray(store101.data("cifar10", "val_acc"), np.float64)
    model = create_baseline("lightgbm", "101", seed=1).fit(store101, np.arange(300), y[:300])
    tau = ranking_metrics(model.predict(store101, np.arange(300, 400)), y[300:])["kendalltau"]
    assert tau > 0.4


def test_sklearn_names_are_translated(store201):
    y = np.asarray(store201.data("cifar10", "val_acc"), np.float64)
    a = create_baseline("lightgbm", "201", n_estimators=3).fit(store201, np.arange(100), y[:100])
    b = create_baseline("lightgbm", "201", num_boost_round=3).fit(store201, np.arange(100), y[:100])
    assert a.booster.num_trees() == b.booster.num_trees() == 3


def test_errors(store201, store101, tmp_path):
    with pytest.raises(NarError, match="unknown baseline 'svm'"):
        create_baseline("svm", "201")
    assert {"lightgbm", "mlp", "xgboost"} <= set(list_baselines())
    m = create_baseline("lightgbm", "201")
    with pytest.raises(NarError, match="not fitted"):
        m.predict(store201, [0, 1])
    with pytest.raises(NarError, match="made for NB201"):
        m.fit(store101, np.arange(20), np.ones(20))
    with pytest.raises(NarError, match="not finite at position 2"):
        m.fit(store201, np.arange(20), np.r_[np.ones(2), np.nan, np.ones(17)])
    with pytest.raises(NarError, match="row index 600 is outside"):
        onehot_features(store201, [1, 600])
    with pytest.raises(NarError, match="unknown mlp options"):
        create_baseline("mlp", "101", hiden=3)
    with pytest.raises(NarError, match="checkpoint not found"):
        load_baseline(tmp_path / "none.joblib")
    if not HAS_XGB:
        with pytest.raises(NarError, match="pip install xgboost"):
            create_baseline("xgboost", "201")

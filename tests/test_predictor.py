"""The predictor protocol (nar/predictor.py): every registered predictor goes through the same
checks on a tiny fake store (fit returns self, predict shape and finiteness, tiers, save -> load,
determinism per seed, bad input), then the API, the harness and the search use them alike."""
import importlib.util

import numpy as np
import pytest

from cache.store import Store
from nar.api import fit
from nar.baselines import Baseline
from nar.config import CONFIG_DIR, load_config
from nar.metrics import ranking_metrics
from nar.nar_predictor import Ranker
from nar.predictor import create_predictor, list_predictors, load_predictor, load_run_predictor, predictor_class
from pipeline.errors import NarError
from tests.fakes import fake_store_201

HAS_XGB = importlib.util.find_spec("xgboost") is not None
NAR_TINY = ["ranker.d_model=16", "ranker_epochs=6", "swa_epochs=2", "n_ensemble=2", "batch_size=32",
            "train_batch_size=32", "lr_scheduler.n_warmup_steps=2"]
NAMES = [pytest.param(n, marks=pytest.mark.skipif(n == "xgboost" and not HAS_XGB,
                                                  reason="xgboost not installed (optional extra)"))
         for n in sorted({*list_predictors(), "xgboost"})]


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    return fake_store_201(tmp_path_factory.mktemp("s") / "s201.h5", n=300)


@pytest.fixture(scope="module")
def store(store_path):
    s = Store(store_path)
    yield s
    s.close()


def _make(name, seed=0):
    if name == "nar":
        return create_predictor("nar", load_config(CONFIG_DIR / "default201.yml", NAR_TINY, bench="201"), seed=seed)
    kw = {"mlp": {"max_epochs": 40}, "lightgbm": {"num_boost_round": 60},
          "xgboost": {"num_boost_round": 60}}.get(name, {})
    return create_predictor(name, bench="201", seed=seed, **kw)


def _split(store):
    y = np.asarray(store.data("cifar10", "val_acc"), np.float64)
    return y, np.arange(0, 240), np.arange(240, 300)


def test_registry_names_every_predictor():
    assert {"nar", "lightgbm", "mlp", "xgboost"} <= set(list_predictors())
    with pytest.raises(NarError, match="unknown predictor 'svm'; choose one of"):
        create_predictor("svm", bench="201")
    with pytest.raises(NarError, match="needs bench= or a config"):
        create_predictor("lightgbm")
    assert isinstance(create_predictor("NAR", bench="201"), Ranker)  # the config's spelling


@pytest.mark.parametrize("name", NAMES)
def test_conformance(name, store, store_path, tmp_path):
    y, tr, ho = _split(store)
    model = _make(name)
    assert model.fit(store, tr, y[tr]) is model
    score = model.predict(store, ho)
    assert score.shape == (len(ho),) and score.dtype == np.float64 and np.isfinite(score).all()
    assert ranking_metrics(score, store.data("cifar10", "test_acc")[ho])["kendalltau"] > 0.3  # it learned
    tier, score2 = model.predict_tiers(store, ho)
    assert np.allclose(score2, score) and tier.dtype == np.int64 and 1 <= tier.min() <= tier.max() <= 5
    assert np.allclose(model.predict(store)[ho], score, atol=1e-5)  # rows None = the whole store
    assert np.allclose(model.predict(str(store_path), ho), score)  # a store path works as well
    # save -> load gives the same predictions, through the class and through load_predictor
    path = model.save(tmp_path / ("m.pth" if name == "nar" else "m.joblib"))
    for loaded in (load_predictor(path), type(model).load(path)):
        assert type(loaded) is type(model)
        assert np.allclose(loaded.predict(store, ho), score, atol=1e-6)
        assert np.array_equal(loaded.predict_tiers(store, ho)[0], tier)
    # deterministic per seed: a second fit from scratch gives the same numbers
    assert np.array_equal(_make(name).fit(store, tr, y[tr]).predict(store, ho), score)


@pytest.mark.parametrize("name", NAMES)
def test_bad_input_is_one_clear_error(name, store):
    y, tr, _ = _split(store)
    model = _make(name)
    with pytest.raises(NarError, match="not fitted"):
        model.predict(store, tr)
    with pytest.raises(NarError, match="rows is empty"):
        model.fit(store, [], [])
    bad = y[tr].copy()
    bad[3] = np.nan
    with pytest.raises(NarError, match="not finite at position 3"):
        model.fit(store, tr, bad)
    with pytest.raises(NarError, match="one accuracy per row"):
        model.fit(store, tr, y[tr][:-1])
    with pytest.raises(NarError, match="row index 300 in rows is outside"):
        model.fit(store, np.r_[tr, 300], y[np.r_[tr, 0]])
    with pytest.raises(NarError, match="1-D array of row indices"):
        model.fit(store, tr.reshape(2, -1), y[tr])
    with pytest.raises(NarError, match="not finite at position 0"):
        model.fit(store, tr, y[tr], val_rows=[250], val_labels=[np.inf])
    with pytest.raises(NarError, match="is not fitted"):
        model.save("never-written.bin")


@pytest.mark.parametrize("arch", ["NAR", "lightgbm"])
def test_api_fit_returns_a_predictor_for_any_arch(arch, store_path, tmp_path):
    ov = dict(arch=arch, train_size=120, val_size=40, ranker_epochs=4, swa_epochs=2, n_ensemble=1,
              ranker__d_model=16, baseline_target="rank", batch_size=32, train_batch_size=32)
    model = fit(store_path, str(CONFIG_DIR / "default201.yml"), **ov)
    assert isinstance(model, Ranker if arch == "NAR" else Baseline)
    assert len(model.meta["train_keys"]) == 120 and len(model.meta["val_keys"]) == 40
    with Store(store_path) as s:
        score = model.predict(s, np.arange(50))
        again = load_predictor(model.save(tmp_path / ("m.pth" if arch == "NAR" else "m.joblib")))
        assert np.allclose(again.predict(s, np.arange(50)), score, atol=1e-6)
    if arch == "lightgbm":
        assert model.target == "rank" and again.meta["train_keys"] == model.meta["train_keys"]


def test_run_checkpoints_load_as_predictors(store_path, tmp_path):
    from nar.harness import run_training

    for arch, ext in (("lightgbm", "joblib"), ("NAR", "pth")):
        run = run_training(CONFIG_DIR / "default201.yml", store_path, tmp_path / arch,
                           overrides=[f"arch={arch}", "train_size=100", "val_size=30", "ranker_epochs=3",
                                      "swa_epochs=1", "n_ensemble=1", "ranker.d_model=16"])
        model = load_predictor(run / f"ckp_best.{ext}")
        assert model.meta["val_keys"] and len(model.meta["train_keys"]) == 100
        with Store(store_path) as s:
            assert model.predict(s, [0, 5, 7]).shape == (3,)
            if arch == "lightgbm":  # the run's tiers are the score cut at its training scores' quantiles
                assert np.allclose(model.score_thresholds, model.meta["score_thresholds"])
        # nar-cli test / predict read a run checkpoint through the class its arch names
        again = load_run_predictor(run / f"ckp_best.{ext}")
        assert type(again) is predictor_class(arch) and again.arch == arch
        assert again.source == str(run / f"ckp_best.{ext}")
        with Store(store_path) as s:
            tier, score = again.predict_tiers(s)
            assert np.array_equal(score, model.predict(s)) and tier.min() >= 1 and tier.max() <= 5
    _damaged_run_checkpoints(tmp_path)


def _damaged_run_checkpoints(tmp_path):
    """What only one class writes is checked by that class; an unknown arch is named."""
    import joblib
    import torch

    blob = torch.load(tmp_path / "NAR" / "ckp_best.pth", weights_only=True)
    for arch, match in (("svm", "arch 'svm' is not a known predictor"),
                        ("lightgbm", "needs 'model' \\(a fitted baseline\\)")):
        torch.save({**blob, "arch": arch}, tmp_path / "bad.pth")
        with pytest.raises(NarError, match="bad.pth is damaged .*" + match):
            load_run_predictor(tmp_path / "bad.pth")
    blob = joblib.load(tmp_path / "lightgbm" / "ckp_best.joblib")
    for bad, match in (({"model": "x"}, "needs 'model'"), ({"arch": "NAR"}, "'members' must be")):
        joblib.dump({**blob, **bad}, tmp_path / "bad.joblib")
        with pytest.raises(NarError, match="bad.joblib is damaged .*" + match):
            load_run_predictor(tmp_path / "bad.joblib")
    with pytest.raises(NarError, match="holds a 'lightgbm' predictor, not a 'nar' one"):
        Ranker.from_checkpoint(tmp_path / "lightgbm" / "ckp_best.joblib")


def test_iterative_search_takes_a_predictor_or_a_factory(store, caplog):
    import logging

    from nar.iterative import baseline_surrogate, iterative_search, nar_surrogate
    from nar.search import open_context

    caplog.set_level(logging.INFO, logger="nar")

    ctx = open_context(store, "cifar10")
    made = []

    def factory(n_rows):
        made.append(n_rows)
        return baseline_surrogate("lightgbm", "201", seed=0, num_boost_round=30)(n_rows)

    rows, rounds = iterative_search(ctx, factory, 40, init_size=24, query_step=8, seed=0)
    assert len(set(rows.tolist())) == 40 and made == [24, 32] and [r.queries for r in rounds] == [32, 40]
    # the terminal (INFO) gets one summary line; the line per round is at the DETAIL level
    assert "iterative search: 2 rounds, 40 queries" in caplog.text and "iterative round" not in caplog.text
    cfg = load_config(CONFIG_DIR / "default201.yml", NAR_TINY + ["n_ensemble=1"], bench="201")
    ranker = nar_surrogate(ctx, cfg)
    rows2, _ = iterative_search(ctx, ranker, 32, init_size=24, query_step=8, seed=0)
    assert np.array_equal(rows2[:24], rows[:24]) and ranker.fitted and len(ranker.meta["train_keys"]) == 24

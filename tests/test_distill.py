"""``distill``: the trained ensemble distilled into one network (nar/distill.py)."""
import numpy as np
import pytest
import torch

from cache.store import Store
from nar.api import fit, load_ranker
from nar.config import load_config
from nar.data import load_features
from nar.distill import distill_rows
from nar.nar_predictor import Ranker
from nar.rankstats import kendalltau
from pipeline.errors import NarError
from tests.conftest import REPO
from tests.fakes import fake_store_101

CFG101 = REPO / "config" / "default101.yml"


def _kw(cells, n_ensemble=3):
    return {"train_size": 120, "val_size": 0, "ranker_epochs": 8, "swa_epochs": 2, "n_ensemble": n_ensemble,
            "pretrain": {"steps": 0}, "distill": {"cells": cells, "epochs": 6, "batch_size": 64},
            "ranker": {"d_model": 16, "structure_aux": 0, "d_tier_prj_inner": 16, "d_val_acc_prj_inner": 16}}


def test_rows_hold_every_training_row_and_are_seeded():
    train = np.array([5, 3, 90, 17])
    rows = distill_rows(100, train, 30, seed=1)
    assert len(rows) == 30 and len(np.unique(rows)) == 30 and np.all(np.diff(rows) > 0)
    assert set(train) <= set(rows)
    assert np.array_equal(rows, distill_rows(100, train, 30, seed=1))
    assert not np.array_equal(rows, distill_rows(100, train, 30, seed=2))
    assert np.array_equal(distill_rows(100, train, 500, seed=1), np.arange(100))
    assert np.array_equal(distill_rows(100, train, 2, seed=1), np.sort(train))  # never fewer than the training rows


def test_the_student_replaces_the_ensemble_and_follows_it(tmp_path):
    path = fake_store_101(tmp_path / "s.h5", n=400)
    with Store(path) as st:
        x = load_features(st, "cifar10", np.arange(st.n))
    ens = fit(str(path), config=str(CFG101), seed=0, **_kw(0))
    dist = fit(str(path), config=str(CFG101), seed=0, **_kw(400))
    assert len(ens.members) == 3 and len(dist.members) == 1
    s_ens, s_dist = ens.predict(x)[1], dist.predict(x)[1]
    from nar.predict import predict_batched

    _, s_member0 = predict_batched(ens.members[:1], x)
    # the student starts as member 0 and ends closer to the ensemble than member 0 is
    gap_student = np.mean((s_dist - s_ens) ** 2)
    gap_member0 = np.mean((s_member0 - s_ens) ** 2)
    assert gap_student < gap_member0
    assert kendalltau(s_dist, s_ens) > 0.8
    dist.save(tmp_path / "d.pth")
    again = load_ranker(tmp_path / "d.pth")
    assert len(again.members) == 1 and np.array_equal(again.predict(x)[1], s_dist)
    assert again.config.distill.cells == 400


def test_no_accuracy_beyond_the_training_labels_is_read(tmp_path):
    """The store's accuracies of every cell replaced by noise: the distilled ranker is identical."""
    import h5py

    a = fake_store_101(tmp_path / "a.h5", n=300)
    b = fake_store_101(tmp_path / "b.h5", n=300)
    with Store(a) as st:
        y = np.asarray(st.data("cifar10", "val_acc"), np.float64)
    with h5py.File(b, "r+") as f:
        for name in ("val_acc", "test_acc"):
            f[f"data/cifar10/{name}"][...] = np.random.default_rng(5).uniform(0, 100, 300).astype(np.float32)
    rows = np.arange(0, 300, 3)
    cfg = load_config(CFG101, [{**_kw(300, n_ensemble=2), "seed": 0}])
    runs = [Ranker(cfg, dataset="cifar10").fit(str(p), rows, y[rows]) for p in (a, b)]
    assert len(runs[0].members) == 1
    with Store(a) as st:
        x = load_features(st, "cifar10", np.arange(st.n))
    assert np.array_equal(runs[0].predict(x)[1], runs[1].predict(x)[1])


def test_config_checks():
    with pytest.raises(NarError, match="distill.cells"):
        load_config(CFG101, ["distill.cells=-1"])
    with pytest.raises(NarError, match="distill.epochs"):
        load_config(CFG101, ["distill.epochs=0"])
    with pytest.raises(NarError, match="distill"):
        load_config(CFG101, ["distill.cellz=10"])


def test_a_training_run_keeps_the_student_in_ckp_best(tmp_path):
    import yaml

    from nar.checkpoint import load_checkpoint
    from nar.evaluate import run_test
    from nar.harness import run_training

    path = fake_store_101(tmp_path / "s.h5", n=300)
    kw = _kw(300, n_ensemble=2)
    sets = [f"{k}={v}" for k, v in kw.items() if not isinstance(v, dict)]
    sets += [f"{sec}.{k}={v}" for sec, d in kw.items() if isinstance(d, dict) for k, v in d.items()]
    run = run_training(CFG101, path, tmp_path / "run", seed=0, overrides=sets)
    assert len(load_checkpoint(run / "ckp_best.pth")["members"]) == 1
    assert len(load_checkpoint(run / "ckp_last.pth")["members"]) == 2
    assert yaml.safe_load((run / "config.yaml").read_text())["distill"]["cells"] == 300
    res = run_test(None, path, run)
    assert 0.3 < res["heldout"]["kendalltau"] <= 1


def test_a_finetuned_refit_keeps_its_members(tmp_path):
    """A ranker refitted by fine-tuning (the search's surrogate) is never distilled: the next
    refit starts from every member."""
    path = fake_store_101(tmp_path / "s.h5", n=200)
    with Store(path) as st:
        y = np.asarray(st.data("cifar10", "val_acc"), np.float64)
    cfg = load_config(CFG101, [{**_kw(200, n_ensemble=2), "seed": 0}])
    r = Ranker(cfg, dataset="cifar10", finetune_epochs=2)
    rows = np.arange(60)
    assert len(r.fit(str(path), rows, y[rows]).members) == 2
    rows = np.arange(90)
    assert len(r.fit(str(path), rows, y[rows]).members) == 2


def test_damaged_features_of_a_distillation_cell_are_one_error(tmp_path):
    import h5py

    path = fake_store_101(tmp_path / "s.h5", n=200)
    with h5py.File(path, "r+") as f:
        f["data/cifar10/features"][150, 1, 0, 1] = np.nan  # not a training row below
    with Store(path) as st:
        y = np.asarray(st.data("cifar10", "val_acc"), np.float64)
    cfg = load_config(CFG101, [{**_kw(200, n_ensemble=2), "seed": 0}])
    rows = np.arange(100)
    with pytest.raises(NarError, match="drawn for distillation hold NaN"):
        Ranker(cfg, dataset="cifar10").fit(str(path), rows, y[rows])


def test_search_surrogates_are_never_distilled(tmp_path):
    """The strict pick's held-out refit builds its ranker through nar_surrogate too."""
    from nar.iterative import nar_surrogate

    class Ctx:
        dataset = "cifar10"

    cfg = load_config(CFG101, [{**_kw(200, n_ensemble=2), "seed": 0}])
    assert cfg.distill.cells == 200 and nar_surrogate(Ctx(), cfg).config.distill.cells == 0

"""Training harness, checkpoints, `nar-cli train/test/predict` and the Python API on fake stores."""
import csv
import json

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner

from cache.store import Store
from cli import cli
from nar.api import fit, load_ranker
from nar.config import load_config
from nar.data import load_features
from nar.train import train_ranker
from pipeline.errors import NarError
from tests.conftest import REPO
from tests.fakes import fake_store_101, fake_store_201

CFG201 = str(REPO / "config" / "config201.yml")
TINY = ["ranker.d_model=16", "ranker.d_patch_vec=16", "ranker.n_layers=1", "ranker.d_ffn_inner=32",
        "ranker.d_tier_prj_inner=32", "ranker.d_val_acc_prj_inner=32", "ranker.d_k=8", "ranker.d_v=8",
        "ranker.n_head=2", "train_size=120", "val_size=40", "train_batch_size=32", "ranker_epochs=8",
        "lr_scheduler.n_warmup_steps=5", "lr_scheduler.lr_mul=0.1"]


def _sets(extra=()):
    return [a for kv in [*TINY, *extra] for a in ("--set", kv)]


def cli_train(store, run, *args):
    """``nar-cli train`` of config201.yml on ``store`` into ``run`` (must succeed); returns ``run``."""
    res = CliRunner().invoke(cli, ["train", "--config_file", CFG201, "--data_path", str(store),
                                   "--save_dir", str(run), *map(str, args)])
    assert res.exit_code == 0, res.output
    return run


@pytest.fixture(scope="module")
def store201(tmp_path_factory):
    return fake_store_201(tmp_path_factory.mktemp("s") / "s201.h5", n=320)


@pytest.fixture(scope="module")
def trained(store201, tmp_path_factory):
    return cli_train(store201, tmp_path_factory.mktemp("run") / "r", "--seed", 3, *_sets())


def test_train_writes_run_dir_and_learns(trained):
    assert {p.name for p in trained.iterdir()} >= {"config.yaml", "train.log", "metrics.csv",
                                                   "ckp_best.pth", "ckp_last.pth"}
    rows = list(csv.DictReader(open(trained / "metrics.csv")))
    assert [int(r["epoch"]) for r in rows] == list(range(1, 9))
    assert all(r["val_kendalltau"] and r["lr"] and r["train_tier_acc"] for r in rows)
    assert load_config(trained / "config.yaml").seed == 3
    assert "epoch 8" in (trained / "train.log").read_text()
    blob = torch.load(trained / "ckp_best.pth", weights_only=True)
    assert blob["bench"] == "201" and blob["dataset"] == "cifar10" and blob["label"] == "val_acc"
    assert len(blob["train_keys"]) == 120 and len(blob["tier_thresholds"]) == 4
    assert blob["members"][0]["tier_emb"].abs().sum() > 0
    best = max(float(r["val_kendalltau"]) for r in rows)
    assert abs(blob["val_kendalltau"] - best) < 1e-5 and best > 0.15


def test_test_and_predict_commands(trained, store201, tmp_path):
    res = CliRunner().invoke(cli, ["test", "--config_file", CFG201, "--data_path", str(store201),
                                   "--save_dir", str(trained), "--checkpoint", "ckp_best.pth", "--seed", "3",
                                   "--save_file_name", "test.log", *_sets()])
    assert res.exit_code == 0, res.output
    out = json.loads((trained / "results.json").read_text())
    assert out["target"] == "test_acc" and out["label"] == "val_acc" and out["n_train"] == 120
    keys = {"kendalltau", "spearman", "precision_10", "precision_100", "n_at_10", "tier_accuracy", "n"}
    assert keys <= set(out["heldout"]) and keys <= set(out["whole_space"])
    with Store(store201) as s:
        n_keys = len(set(s.array("key").tolist()))
    assert out["whole_space"]["n"] == 320 and out["heldout"]["n"] <= 320 - 160
    assert out["heldout"]["n"] >= n_keys - 160 - 5 and out["heldout"]["kendalltau"] > 0.15  # random: 0 +- 0.05
    assert (trained / "test.log").exists()
    res = CliRunner().invoke(cli, ["test", "--data_path", str(store201), "--save_dir", str(trained),
                                   "--save_file_name", "test2.log"])  # no --config_file: the checkpoint's
    assert res.exit_code == 0, res.output
    assert json.loads((trained / "results.json").read_text()) == out

    csv_path = tmp_path / "pred.csv"
    res = CliRunner().invoke(cli, ["predict", "--checkpoint", str(trained / "ckp_best.pth"),
                                   "--data_path", str(store201), "--out", str(csv_path)])
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(open(csv_path)))
    assert len(rows) == 320 and sorted(int(r["rank"]) for r in rows) == list(range(1, 321))
    assert {int(r["tier"]) for r in rows} <= set(range(1, 6))
    top = min(rows, key=lambda r: int(r["rank"]))
    assert float(top["score"]) == max(float(r["score"]) for r in rows)


def test_training_is_deterministic_on_cpu(store201, tmp_path):
    runs = []
    for name in ("a", "b"):
        res = CliRunner().invoke(cli, ["train", "--config_file", CFG201, "--data_path", str(store201),
                                       "--save_dir", str(tmp_path / name), *_sets(["ranker_epochs=2"])])
        assert res.exit_code == 0, res.output
        rows = list(csv.DictReader(open(tmp_path / name / "metrics.csv")))
        runs.append([(r["loss"], r["val_kendalltau"], r["val_tier_acc"]) for r in rows])
    assert runs[0] == runs[1]


@pytest.mark.parametrize("extra, match", [
    (["ranker.bogus=1"], "unknown config key 'ranker.bogus'"),
    (["train_size=300", "val_size=100"], "train_size 300 \\+ val_size 100 > 320"),
    (["ranker.d_patch=7"], "features of shape \\(31, 4, 4\\)"),
    (["strategy=test_acc", "network_type=imagenet16"], "no data for dataset 'imagenet16'"),
])
def test_bad_input_exits_2_and_writes_nothing(store201, tmp_path, extra, match):
    run = tmp_path / "run"
    res = CliRunner().invoke(cli, ["train", "--config_file", CFG201, "--data_path", str(store201),
                                   "--save_dir", str(run), *_sets(extra)])
    assert res.exit_code == 2
    assert res.output.count("\n") == 1 and res.output.startswith("error: ")
    assert match and __import__("re").search(match, res.output), res.output
    assert not run.exists()


def test_checkpoint_from_another_bench_or_shape_is_refused(trained, store201, tmp_path):
    s101 = fake_store_101(tmp_path / "s101.h5", n=60)
    res = CliRunner().invoke(cli, ["predict", "--checkpoint", str(trained / "ckp_best.pth"),
                                   "--data_path", str(s101), "--out", str(tmp_path / "p.csv")])
    assert res.exit_code == 2 and "NB101" in res.output and not (tmp_path / "p.csv").exists()
    res = CliRunner().invoke(cli, ["test", "--config_file", CFG201, "--data_path", str(store201),
                                   "--save_dir", str(trained), "--checkpoint", "ckp_last.pth",
                                   *_sets(["ranker.d_model=32"])])
    assert res.exit_code == 2 and "shape mismatch" in res.output
    bad = tmp_path / "junk.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(NarError, match="cannot read checkpoint"):
        load_ranker(bad)


def test_cifar100_without_val_acc_falls_back_to_test_acc(tmp_path, caplog):
    import h5py

    p = fake_store_201(tmp_path / "s.h5", n=200)
    with h5py.File(p, "r+") as f:
        f["data/cifar100/val_acc"][...] = np.nan
    kw = {k.replace(".", "__"): yaml.safe_load(v) for k, v in (kv.split("=") for kv in TINY)}
    kw.update(ranker_epochs=2, train_size=100, val_size=30)
    ranker = fit(p, CFG201, network_type="cifar100", **kw)
    assert ranker.label == "test_acc" and ranker.dataset == "cifar100"
    assert "training on test_acc" in caplog.text


def test_api_fit_save_load_predict_and_finetune(tmp_path):
    p = fake_store_101(tmp_path / "s101.h5", n=150)
    ov = {"ranker": {"d_model": 16, "d_patch_vec": 16, "n_layers": 1, "d_ffn_inner": 32, "d_k": 8, "d_v": 8,
                     "d_tier_prj_inner": 32, "d_val_acc_prj_inner": 32},
          "train_size": 80, "val_size": 30, "batch_size": 32, "ranker_epochs": 3, "feature_scale": "log1p"}
    ranker = fit(p, **ov)
    assert ranker.bench == "101" and len(ranker.train_keys) == 80
    with Store(p) as s:
        feats = s.data("cifar10", "features")
        tier, score = ranker.predict(feats, batch_size=64)  # memmap input, several batches
        assert tier.dtype == np.int64 and tier.min() >= 1 and tier.max() <= 5 and score.shape == (150,)
        order = ranker.rank(s)
        assert np.allclose(ranker.predict(feats)[1], score, atol=1e-5)  # batching does not matter
        assert np.array_equal(order, np.argsort(-ranker.predict(feats)[1], kind="stable"))
        ranker.save(tmp_path / "r.pth")
        again = load_ranker(tmp_path / "r.pth")
        t2, s2 = again.predict(np.asarray(feats[:7]))
        assert np.array_equal(t2, tier[:7]) and np.allclose(s2, score[:7], atol=1e-5)
        assert bool(again.members[0].feat_log)
        # the search's fine-tuning entry point: train_ranker on arrays from an existing model
        idx = np.arange(60)
        x = load_features(s, "cifar10", idx)
        y = np.asarray(s.data("cifar10", "val_acc"))[idx]
        cfg = again.config
        cfg.ranker_epochs = 1
        tuned, hist = train_ranker(cfg, x[:40], y[:40], x[40:], y[40:], init=again.members[0])
        assert len(hist) == 1 and tuned is not again.members[0]
        assert not torch.equal(tuned.score_head[0].weight, again.members[0].score_head[0].weight)
    with pytest.raises(NarError, match="do not fit"):
        ranker.predict(np.zeros((2, 31, 4, 4), np.float32))


def test_baseline_arch_uses_the_same_harness(store201, tmp_path):
    run = tmp_path / "lgb"
    args = ["--config_file", CFG201, "--data_path", str(store201), "--save_dir", str(run),
            *_sets(["arch=lightgbm"])]
    res = CliRunner().invoke(cli, ["train", *args])
    assert res.exit_code == 0, res.output
    assert (run / "ckp_best.joblib").exists() and (run / "metrics.csv").exists()
    res = CliRunner().invoke(cli, ["test", *args, "--checkpoint", "ckp_best.pth"])
    assert res.exit_code == 0, res.output
    out = json.loads((run / "results.json").read_text())
    assert out["n_train"] == 120 and out["heldout"]["kendalltau"] > 0.15
    assert 0 <= out["heldout"]["tier_accuracy"] <= 1
    res = CliRunner().invoke(cli, ["predict", "--checkpoint", str(run / "ckp_best.joblib"),
                                   "--data_path", str(store201), "--out", str(tmp_path / "p.csv")])
    assert res.exit_code == 0, res.output
    assert len(list(csv.DictReader(open(tmp_path / "p.csv")))) == 320

"""``nar-cli build``: NAR-schema JSON from CSV, tfrecord, .pth, analognas and the space source."""
import csv
import gzip
import json

import numpy as np
import pytest
from click.testing import CliRunner

from cli import cli
from pipeline.nar_json import FIELDS_101, fields_201
from tests.conftest import shared_data

HASH = "00005c142e6f48ac74fdcf73e3439874"
METRICS_101 = {"avg_training_time", "avg_train_accuracy", "avg_validation_accuracy",
               "avg_test_accuracy"}


def _fixture(name):
    with open(shared_data(f"fixtures/{name}")) as fh:
        return json.load(fh)


def _gz_slice(src, dst, n):
    with gzip.open(src, "rt", newline="") as fh:
        lines = [next(fh) for _ in range(n + 1)]
    with gzip.open(dst, "wt", newline="") as fh:
        fh.writelines(lines)
    return dst


def _build(*args, ok=True):
    res = CliRunner().invoke(cli, ["build", "--no-progress", *map(str, args)])
    if ok:
        assert res.exit_code == 0, res.output
    return res


def _types_101(rec):
    n = len(rec["module_operations"])
    assert len(rec["module_adjacency"]) == n and all(len(r) == n for r in rec["module_adjacency"])
    assert isinstance(rec["trainable_parameters"], int) and isinstance(rec["flops"], int)
    for key in ("vertex_flops", "vertex_params"):
        assert len(rec[key]) == 9
        assert all(len(v) == n and all(isinstance(x, int) for x in v) for v in rec[key].values())


def test_nb101_csv_round_trip_matches_the_nar_example(tmp_path):
    src = _gz_slice(shared_data("nb101/nb101_20k.csv.gz"), tmp_path / "t.csv.gz", 300)
    out = tmp_path / "nb101.json"
    _build("--bench", 101, "--source", src, "--out", out)
    data = json.loads(out.read_text())
    example = _fixture("nar_nasbench101_vertice_example.json")[0]
    assert isinstance(data, list) and len(data) == 300
    assert all(tuple(r) == FIELDS_101 == tuple(example) for r in data)
    for r in data:
        _types_101(r)
        assert r["avg_train_accuracy"] is None and r["avg_test_accuracy"] is None
    rec = next(r for r in data if r["unique_hash"] == HASH)
    for key in FIELDS_101:
        if key not in METRICS_101:
            assert rec[key] == example[key], key
    with gzip.open(src, "rt", newline="") as fh:
        table = {row["hash"]: row for row in csv.DictReader(fh)}
    assert rec["avg_validation_accuracy"] == float(table[HASH]["val_acc_108"])
    assert rec["avg_training_time"] == float(table[HASH]["training_time_108"])
    assert [r["unique_hash"] for r in data] == list(table)
    assert all(r["trainable_parameters"] == int(table[r["unique_hash"]]["trainable_parameters"])
               for r in data)


def test_nb101_params_mismatch_fails_and_writes_nothing(tmp_path):
    src = _gz_slice(shared_data("nb101/nb101_20k.csv.gz"), tmp_path / "t.csv.gz", 40)
    with gzip.open(src, "rt", newline="") as fh:
        lines = fh.readlines()
    victim = lines[33].split(",")[0]
    lines[33] = lines[33].rstrip("\n").rsplit(",", 1)[0] + ",12345\n"
    bad = tmp_path / "bad.csv"
    bad.write_text("".join(lines))
    out = tmp_path / "out" / "x.json"
    res = _build("--bench", 101, "--source", bad, "--out", out, ok=False)
    assert res.exit_code == 2
    assert f"cell {victim}: computed trainable_parameters" in res.output
    assert "12345" in res.output and len(res.output.strip().splitlines()) == 1
    assert not out.exists() and list(out.parent.iterdir()) == []


def test_nb201_csv_round_trip_matches_the_nar_example(tmp_path):
    src = _gz_slice(shared_data("nb201/nb201.csv.gz"), tmp_path / "t.csv.gz", 300)
    out = tmp_path / "nb201.json"
    _build("--bench", 201, "--source", src, "--out", out, "--limit", 120)
    data = json.loads(out.read_text())
    example = _fixture("nar_nasbench201_vertice_example.json")["0"]
    assert list(data) == [str(i) for i in range(120)]
    assert all(tuple(r) == fields_201() == tuple(example) for r in data.values())
    rec = data["0"]
    for key, value in example.items():
        if key.endswith(("_acc", "_latency")):
            continue
        assert rec[key] == value, key
    assert rec["cifar10_val_acc"] == pytest.approx(example["cifar10_val_acc"], abs=1e-6)
    assert rec["cifar10_test_acc"] == pytest.approx(example["cifar10_test_acc"], abs=1e-6)
    assert rec["cifar100_test_acc"] == pytest.approx(example["cifar100_test_acc"], abs=1e-6)
    for key in ("cifar100_val_acc", "imagenet16_val_acc", "imagenet16_test_acc",
                "cifar10_latency", "cifar100_latency", "imagenet16_latency"):
        assert rec[key] is None, key


def test_tfrecord_build_at_a_budget(tmp_path):
    src = shared_data("fixtures/ecnas_energy_4V9E.tfrecord")
    out = tmp_path / "ecnas.json"
    _build("--bench", 101, "--source", src, "--out", out, "--epochs", 36)
    data = json.loads(out.read_text())
    with open(shared_data("fixtures/ecnas_energy_4V9E_expected.csv"), newline="") as fh:
        runs = [r for r in csv.DictReader(fh) if r["budget_epochs"] == "36"]
    assert len(data) == len({r["hash"] for r in runs}) == 91
    for rec in data:
        mine = [r for r in runs if r["hash"] == rec["unique_hash"]]
        _types_101(rec)
        assert rec["trainable_parameters"] == int(mine[0]["trainable_parameters"])
        assert rec["avg_test_accuracy"] == pytest.approx(
            np.mean([float(r["final_test_accuracy"]) for r in mine]), rel=1e-12)


def test_pth_build(tmp_path):
    from tests.test_sources import _save_pth

    src = tmp_path / "NAS-Bench-201-tiny.pth"
    _save_pth(src)
    out = tmp_path / "nb201.json"
    _build("--bench", 201, "--source", src, "--out", out)
    data = json.loads(out.read_text())
    assert list(data) == ["0", "1", "2", "3"]
    example = _fixture("nar_nasbench201_vertice_example.json")["0"]
    assert data["0"]["cifar10-valid_total_params"] == example["cifar10-valid_total_params"]
    assert data["2"]["cifar10_val_acc"] == 52.5 and data["0"]["cifar100_latency"] is None


def test_analognas_build_with_limit(tmp_path):
    out = tmp_path / "analog.json"
    _build("--bench", 201, "--source", "analognas", "--out", out, "--limit", 30)
    data = json.loads(out.read_text())
    assert list(data) == [str(i) for i in range(30)]
    assert data["0"]["arch_str"] == "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
    assert all(r["cifar10_val_acc"] is None and 0 < r["cifar10_test_acc"] <= 100
               for r in data.values())


def test_space_source_on_a_small_space(tmp_path, monkeypatch):
    """The space path end to end, with ``load_space`` replaced by the first 200 table cells."""
    from pipeline import nb101_space
    from pipeline.sources import read_source

    table = read_source("101", str(_gz_slice(shared_data("nb101/nb101_20k.csv.gz"),
                                             tmp_path / "t.csv.gz", 200)))
    small = nb101_space.Space(np.asarray(table.hashes, dtype="S32"), table.adjacency,
                              table.ops, table.n_vertices)
    monkeypatch.setattr(nb101_space, "load_space", lambda *a, **k: small)
    out = tmp_path / "space.json"
    _build("--bench", 101, "--source", "space", "--out", out, "--limit", 150)
    data = json.loads(out.read_text())
    assert len(data) == 150
    assert all(r[m] is None for r in data for m in METRICS_101)
    assert [r["trainable_parameters"] for r in data] == table.expected_params[:150].tolist()
    example = _fixture("nar_nasbench101_vertice_example.json")[0]
    assert data[0]["vertex_flops"] == example["vertex_flops"]


@pytest.mark.parametrize("args,message", [
    (["--bench", 102, "--source", "space"], "unknown bench '102'"),
    (["--bench", 201, "--source", "nowhere.csv"], "source not found: nowhere.csv"),
    (["--bench", 201, "--source", "table.xlsx"], "unknown source 'table.xlsx'"),
    (["--bench", 101, "--source", "x.pth"], "is for bench 201, not 101"),
])
def test_bad_arguments_are_one_line_errors(tmp_path, args, message):
    out = tmp_path / "o.json"
    res = _build(*args, "--out", out, ok=False)
    assert res.exit_code == 2 and message in res.output
    assert len(res.output.strip().splitlines()) == 1
    assert not out.exists()

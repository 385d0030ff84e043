"""Source readers: CRC32C, the tfrecord reader on a real EC-NAS file, NB201 .pth, analognas, CSV errors."""
import csv
import gzip
import struct
from collections import defaultdict

import numpy as np
import pytest
import torch

from pipeline.errors import NarError
from pipeline.sources import read_source
from pipeline.sources import analognas, nb201_pth, tfrecord
from pipeline.sources.crc32c import crc32c, crc32c_many, mask
from tests.conftest import shared_data

FINAL_FLOATS = {"current_epoch": "final_current_epoch", "training_time": "final_training_time",
                "train_accuracy": "final_train_accuracy",
                "validation_accuracy": "final_validation_accuracy",
                "test_accuracy": "final_test_accuracy"}


# ------------------------------------------------------------------ CRC32C

def test_crc32c_check_value_and_vectorised_agree():
    assert crc32c(b"123456789") == 0xE3069283  # the standard CRC-32C check value
    assert crc32c(b"") == 0
    rng = np.random.default_rng(1)
    buf = rng.integers(0, 256, 20000, dtype=np.uint8)
    offs = rng.integers(0, 15000, 300)
    lens = np.minimum(rng.integers(0, 900, 300), len(buf) - offs)
    lens[:5] = 0
    got = crc32c_many(buf, offs, lens, bucket=37, max_cells=5000)
    want = [crc32c(buf[o:o + n].tobytes()) for o, n in zip(offs, lens)]
    assert got.tolist() == want
    assert mask(np.array([want[7]], dtype=np.uint32))[0] == mask(want[7])


# ------------------------------------------------------------------ tfrecord

def _expected_runs():
    with open(shared_data("fixtures/ecnas_energy_4V9E_expected.csv"), newline="") as fh:
        return list(csv.DictReader(fh))


def test_tfrecord_every_run_matches_expected_csv():
    path = shared_data("fixtures/ecnas_energy_4V9E.tfrecord")
    runs = list(tfrecord.iter_runs(path))
    rows = _expected_runs()
    assert len(runs) == len(rows) == 1092
    for run, row in zip(runs, rows):
        assert (run.hash, run.epochs, run.adjacency, run.ops) == (
            row["hash"], int(row["budget_epochs"]), row["adjacency_rowmajor"], row["ops"])
        assert run.trainable_parameters == int(row["trainable_parameters"])
        assert len(run.evaluations) == int(row["n_evals"])
        assert run.total_time == float(row["total_time"])
        final = run.evaluations[-1]
        for attr, col in FINAL_FLOATS.items():
            assert getattr(final, attr) == float(row[col]), (row["hash"], col)


@pytest.mark.parametrize("epochs", [4, 12, 36, 108])
def test_tfrecord_rows_average_runs_per_budget(epochs):
    path = shared_data("fixtures/ecnas_energy_4V9E.tfrecord")
    rows = tfrecord.read(path, epochs=epochs)
    groups = defaultdict(list)
    for row in _expected_runs():
        if int(row["budget_epochs"]) == epochs:
            groups[row["hash"]].append(row)
    assert list(rows.hashes) == list(groups)
    for i, h in enumerate(rows.hashes):
        g = groups[h]
        assert rows.expected_params[i] == int(g[0]["trainable_parameters"])
        assert rows.n_vertices[i] == len(g[0]["ops"].split(","))
        for field, col in (("avg_validation_accuracy", "final_validation_accuracy"),
                           ("avg_test_accuracy", "final_test_accuracy"),
                           ("avg_train_accuracy", "final_train_accuracy"),
                           ("avg_training_time", "final_training_time")):
            assert rows.metrics[field][i] == pytest.approx(
                np.mean([float(r[col]) for r in g]), rel=1e-12)


def _frames(path):
    data = path.read_bytes()
    starts, pos = [], 0
    while pos < len(data):
        starts.append(pos)
        pos += 16 + struct.unpack_from("<Q", data, pos)[0]
    return bytearray(data), starts


@pytest.mark.parametrize("where,message", [("data", "record 5: bad CRC of the data"),
                                            ("length_crc", "record 5: bad CRC of the length"),
                                            ("truncate", "record 5: short read")])
def test_tfrecord_corruption_names_the_record(tmp_path, where, message):
    data, starts = _frames(shared_data("fixtures/ecnas_energy_4V9E.tfrecord"))
    s = starts[5]
    if where == "data":
        data[s + 40] ^= 0x01
    elif where == "length_crc":
        data[s + 9] ^= 0x80
    else:
        data = data[:s + 30]
    bad = tmp_path / "bad.tfrecord"
    bad.write_bytes(bytes(data))
    with pytest.raises(NarError, match=message):
        list(tfrecord.iter_frames(bad))


def test_tfrecord_without_the_budget_is_an_error():
    with pytest.raises(NarError, match="no runs at 200 epochs"):
        tfrecord.read(shared_data("fixtures/ecnas_energy_4V9E.tfrecord"), epochs=200)


# ------------------------------------------------------------------ NAS-Bench-201 .pth

ARCHS = ["|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|",
         "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
         "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
         "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|"]
SETS = {"cifar10-valid": ["x-valid", "ori-test"], "cifar10": ["ori-test"],
        "cifar100": ["x-valid", "x-test", "ori-test"], "ImageNet16-120": ["x-valid", "x-test", "ori-test"]}


def _result(acc, epochs, latency):
    """ResultsCount state of one run: accuracy ``acc + set offset`` at the last epoch."""
    offsets = {"x-valid": 0.0, "ori-test": 1.0, "x-test": 2.0}
    return {"epochs": epochs, "seed": 0, "flop": 1.0, "params": 0.1, "net_state_dict": None,
            "eval_acc1es": {f"{s}@{e}": acc + offsets[s] + (0 if e == epochs - 1 else -50)
                            for s in offsets for e in (epochs - 2, epochs - 1)},
            "latency": latency, "train_times": None}


def _arch_results(index, arch_str, base, seeds=(777, 888)):
    all_results, dataset_seed = {}, {}
    for d, dataset in enumerate(SETS):
        dataset_seed[dataset] = list(seeds)
        for s, seed in enumerate(seeds):
            lat = [0.01 * (index + 1) + 0.001 * s] if dataset != "cifar100" or index else None
            all_results[(dataset, seed)] = _result(base + 10 * d + s, 200, lat)
    return {"arch_index": index, "arch_str": arch_str, "all_results": all_results,
            "dataset_seed": dataset_seed, "clear_net_done": True}


def _save_pth(path, archs=ARCHS, corrupt=None):
    infos = {i: {"full": _arch_results(i, a, 50.0 + i), "less": {}} for i, a in enumerate(archs)}
    if corrupt == "arch_str":
        infos[2]["full"]["arch_str"] = archs[3]
    torch.save({"meta_archs": list(archs), "arch2infos": infos,
                "evaluated_indexes": set(range(len(archs))), "total_archs": len(archs)}, path)


def test_pth_metrics_are_seed_means_at_the_last_epoch(tmp_path):
    path = tmp_path / "NAS-Bench-201-tiny.pth"
    _save_pth(path)
    rows = read_source("201", str(path))
    assert rows.arch_index.tolist() == [0, 1, 2, 3]
    m = rows.metrics
    for i in range(4):
        base = 50.0 + i  # seeds add 0 and 1 -> mean + 0.5
        assert m["cifar10_val_acc"][i] == base + 0.5             # cifar10-valid x-valid
        assert m["cifar10_test_acc"][i] == base + 10 + 1 + 0.5   # cifar10 ori-test
        assert m["cifar100_val_acc"][i] == base + 20 + 0.5
        assert m["cifar100_test_acc"][i] == base + 20 + 2 + 0.5
        assert m["imagenet16_val_acc"][i] == base + 30 + 0.5
        assert m["imagenet16_test_acc"][i] == base + 30 + 2 + 0.5
        assert m["cifar10_latency"][i] == pytest.approx(0.01 * (i + 1) + 0.0005)
    assert np.isnan(m["cifar100_latency"][0]) and m["cifar100_latency"][1] > 0
    assert rows.ops6[0].tolist() == [4, 2, 1, 2, 1, 1]


def test_pth_inconsistent_arch_str_and_foreign_objects_are_errors(tmp_path):
    path = tmp_path / "bad.pth"
    _save_pth(path, corrupt="arch_str")
    with pytest.raises(NarError, match="architecture 2: arch_str"):
        nb201_pth.read(path)
    torch.save({"meta_archs": ARCHS, "arch2infos": {0: {"full": NarError("x")}}}, path)
    with pytest.raises(NarError, match="other than plain data"):
        nb201_pth.read(path)


# ------------------------------------------------------------------ analognas

def test_analognas_all_cells_with_mapped_keys():
    raw = analognas.load()
    rows = read_source("201", "analognas")
    assert len(rows) == 15625
    assert rows.arch_index.tolist() == list(range(15625))
    assert np.isnan(rows.metrics["cifar10_val_acc"]).all()
    # AnalogNAS code 0 is skip_connect, 1 none, 2 conv3x3, 3 conv1x1, 4 avg_pool
    assert analognas.tuple_to_ops6((0, 0, 0, 0, 0, 0)).tolist() == [1] * 6
    # tuple position 2 is edge (1,4) = 0->3 = string position 3; position 3 is 1->2
    assert analognas.tuple_to_ops6((1, 1, 2, 3, 1, 1)).tolist() == [0, 0, 2, 3, 0, 0]
    from pipeline.nb201_space import arch_code
    for key in list(raw)[:50:7]:
        code = int(arch_code(analognas.tuple_to_ops6(key)))
        assert rows.metrics["cifar10_test_acc"][code] == float(raw[key].baseline_accuracy)


def test_analognas_accuracy_tracks_nb201_test_accuracy():
    from pipeline.nb201_space import official_index_table

    with gzip.open(shared_data("nb201/nb201.csv.gz"), "rt", newline="") as fh:
        table = list(csv.DictReader(fh))
    official = official_index_table([int(r["arch_index"]) for r in table],
                                    [r["arch_str"] for r in table])
    c10 = np.array([float(r["cifar10_test_acc"]) for r in table])
    rows = read_source("201", "analognas")
    r = np.corrcoef(rows.metrics["cifar10_test_acc"], c10[official[rows.arch_index]])[0, 1]
    assert r > 0.999  # README: Pearson 0.9993 when the key mapping is right


# ------------------------------------------------------------------ CSV errors

def _set_field(line, k, value):
    """The CSV line with field ``k`` (8 = val_acc_108) replaced."""
    fields = next(csv.reader([line]))
    fields[k] = value
    return ",".join(f'"{f}"' if "," in f else f for f in fields) + "\n"


def _nb101_slice(tmp_path, n=20, edit=None):
    with gzip.open(shared_data("nb101/nb101_20k.csv.gz"), "rt", newline="") as fh:
        lines = [next(fh) for _ in range(n + 1)]
    if edit:
        lines = edit(lines)
    p = tmp_path / "slice.csv"
    p.write_text("".join(lines))
    return p


@pytest.mark.parametrize("edit,message", [
    (lambda ls: [ls[0], ls[1].replace("00005c142e6f48ac74fdcf73e3439874", "0" * 32)] + ls[2:],
     "hash 00000000000000000000000000000000.*module hash"),
    (lambda ls: [ls[0].replace("ops,", "opz,")] + ls[1:], "missing column"),
    (lambda ls: ls[:3] + [ls[3].replace("conv1x1-bn-relu", "conv5x5", 1)] + ls[4:],
     "row 3 .*conv5x5"),
    (lambda ls: ls[:2] + [_set_field(ls[2], 8, "zero")] + ls[3:], "row 2 .*'zero' is not a number"),
    (lambda ls: ls[:2] + [ls[2].rstrip("\n") + ",7\n"] + ls[3:], "row 2: wrong number"),
])
def test_csv_malformed_rows_name_the_row(tmp_path, edit, message):
    with pytest.raises(NarError, match=message):
        read_source("101", str(_nb101_slice(tmp_path, edit=edit)))


def test_csv_cell_off_the_path_is_invalid(tmp_path):
    # 3 vertices, input -> v1 and input -> output; v1 feeds nothing, so it is not pruned away
    header = "hash,n_vertices,n_edges,adjacency,ops,val_acc_108,training_time_108\n"
    p = tmp_path / "cell.csv"
    p.write_text(header + 'h,3,2,011000000,"input,conv3x3-bn-relu,output",0.1,1.0\n')
    with pytest.raises(NarError, match="row 1 .*off every input->output path"):
        read_source("101", str(p))


def test_space_check_hashes_only_cells_not_in_the_space(tmp_path, monkeypatch):
    from cache.store import OP_NAMES_101
    from pipeline import nb101_space
    from pipeline.sources import cells_101

    table = read_source("101", str(_nb101_slice(tmp_path, n=30)))
    small = nb101_space.Space(np.asarray(table.hashes[:20], dtype="S32"), table.adjacency[:20],
                              table.ops[:20], table.n_vertices[:20])
    monkeypatch.setattr(nb101_space, "load_space", lambda *a, **k: small)
    hashed = []
    real_hash = nb101_space.module_hash
    monkeypatch.setattr(nb101_space, "module_hash", lambda m, o: hashed.append(1) or real_hash(m, o))
    nv = table.n_vertices.tolist()
    mats = [table.adjacency[i, :n, :n] for i, n in enumerate(nv)]
    ops = [[OP_NAMES_101[c] for c in table.ops[i, :n].tolist()] for i, n in enumerate(nv)]
    hashes = list(table.hashes)
    adj, codes, n_v = cells_101(hashes, mats, ops, str, space_check_min=1)
    assert len(hashed) == 10 and (adj == table.adjacency).all() and (codes == table.ops).all()
    hashes[3] = hashes[25]  # a space cell under another cell's hash
    with pytest.raises(NarError, match=f"^3: module hash {table.hashes[3]}"):
        cells_101(hashes, mats, ops, str, space_check_min=1)

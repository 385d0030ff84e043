"""ReNAS tensors of the two fixture records, checked element by element against docs/method.md s.3."""
import copy
import json

import numpy as np
import pytest

from pipeline.encode import encode_chunk_101, encode_chunk_201
from pipeline.errors import NarError
from pipeline.nb101_space import module_hash
from pipeline.records import CELLS_201, EDGES_201, MODULES_101
from tests.conftest import shared_data

CODE = {"input": 1, "conv1x1-bn-relu": 2, "conv3x3-bn-relu": 3, "maxpool3x3": 4, "output": 5}


def fixture(bench):
    name = {"101": "nar_nasbench101_vertice_example.json", "201": "nar_nasbench201_vertice_example.json"}
    return json.loads(shared_data(f"fixtures/{name[bench]}").read_text())


def five_vertex_record(rec):
    """The fixture record pruned to a 5-vertex cell (input, conv3x3, maxpool, conv1x1, output)."""
    r = copy.deepcopy(rec)
    r["module_adjacency"] = [[0, 1, 0, 0, 1], [0, 0, 1, 0, 0], [0, 0, 0, 1, 0], [0, 0, 0, 0, 1], [0] * 5]
    r["module_operations"] = ["input", "conv3x3-bn-relu", "maxpool3x3", "conv1x1-bn-relu", "output"]
    for field in ("vertex_flops", "vertex_params"):
        r[field] = {m: [v[0], v[1], v[2], v[5], 0] for m, v in r[field].items()}
    r["unique_hash"] = module_hash(r["module_adjacency"], r["module_operations"])
    return r


def expected_101(rec):
    """Tensor built the slow, literal way: position of vertex v is v, except output -> 6."""
    adj, ops = rec["module_adjacency"], rec["module_operations"]
    n = len(ops)
    pos = {v: (6 if v == n - 1 else v) for v in range(n)}
    t = np.zeros((19, 7, 7))
    for i in range(n):
        for j in range(n):
            if adj[i][j]:
                t[0, pos[i], pos[j]] = CODE[ops[j]]
                for m, mod in enumerate(MODULES_101):
                    t[1 + 2 * m, pos[i], pos[j]] = rec["vertex_flops"][mod][j] / 1e7
                    t[2 + 2 * m, pos[i], pos[j]] = rec["vertex_params"][mod][j] / 1e5
    return t.astype(np.float32)


def test_nb101_fixture_tensor():
    rec = fixture("101")[0]
    out = encode_chunk_101([rec], 0)
    f = out["data/cifar10/features"]
    assert f.shape == (1, 19, 7, 7) and f.dtype == np.float32
    np.testing.assert_array_equal(f[0], expected_101(rec))
    # channel 0: vertex 1 is conv3x3 (3), vertex 2 maxpool (4), vertex 5 conv1x1 (2), output 5
    assert f[0, 0, 0, 1] == 3 and f[0, 0, 0, 5] == 2 and f[0, 0, 1, 2] == 4 and f[0, 0, 2, 6] == 5
    # stack0/module0 FLOPs of vertex 1 = 92,274,688 -> 9.2274688; params of vertex 4 45,312 -> 0.45312
    assert f[0, 1, 0, 1] == np.float32(9.2274688) and f[0, 2, 0, 4] == np.float32(0.45312)
    assert f[0, 18, 0, 1] == np.float32(721920 / 1e5)  # stack2/module2 params, last channel
    assert out["key"][0] == b"00005c142e6f48ac74fdcf73e3439874"
    assert out["data/cifar10/params"][0] == 8555530 and out["data/cifar10/flops"][0] == 2527684618
    assert out["data/cifar10/val_acc"][0] == pytest.approx(92.64155824979147, rel=1e-6)  # percent
    assert out["data/cifar10/test_acc"][0] == pytest.approx(92.06063151359558, rel=1e-6)
    np.testing.assert_array_equal(out["adjacency"][0], rec["module_adjacency"])
    np.testing.assert_array_equal(out["ops"][0], [CODE[o] for o in rec["module_operations"]])


def test_nb101_padding_puts_output_at_index_6():
    rec = five_vertex_record(fixture("101")[0])
    out = encode_chunk_101([rec], 0)
    f = out["data/cifar10/features"][0]
    np.testing.assert_array_equal(f, expected_101(rec))
    assert f[0, 3, 6] == 5 and f[0, 0, 6] == 5  # edges into the output now land in column 6
    assert not f[:, 4:6, :].any() and not f[:, :, 4:6].any()  # padding rows/columns
    assert f[1, 0, 6] == 0  # the output vertex has no FLOPs of its own
    assert f[1, 2, 3] == np.float32(25296896 / 1e7)  # conv1x1 (old vertex 5's FLOPs) at vertex 3
    # the store keeps the cell's own order, top-left
    assert out["n_vertices"][0] == 5
    np.testing.assert_array_equal(out["adjacency"][0, :5, :5], rec["module_adjacency"])
    assert not out["adjacency"][0, 5:].any() and not out["adjacency"][0, :, 5:].any()
    np.testing.assert_array_equal(out["ops"][0], [1, 3, 4, 2, 5, 0, 0])


def test_nb101_chunk_mixes_vertex_counts_and_nulls():
    rec = fixture("101")[0]
    small = five_vertex_record(rec)
    small["avg_test_accuracy"] = None
    out = encode_chunk_101([rec, small, rec], 10)
    np.testing.assert_array_equal(out["index"], [10, 11, 12])
    np.testing.assert_array_equal(out["n_vertices"], [7, 5, 7])
    np.testing.assert_array_equal(out["data/cifar10/features"][1], expected_101(small))
    assert np.isnan(out["data/cifar10/test_acc"][1]) and np.isfinite(out["data/cifar10/test_acc"][[0, 2]]).all()


def test_nb201_fixture_patches():
    key, rec = next(iter(fixture("201").items()))
    out = encode_chunk_201([(key, rec)])
    np.testing.assert_array_equal(out["adjacency"][0], rec["cell_adjacency"])
    assert out["key"][0].decode() == rec["arch_str"] and out["index"][0] == 0
    # edges 0->1 avg_pool, 0->2 conv1x1, 1->2 skip, 0->3 conv1x1, 1->3 skip, 2->3 skip
    np.testing.assert_array_equal(out["op_counts"][0], [0, 3, 2, 0, 1])
    for ds, pre, acc in (("cifar10", "cifar10-valid", "cifar10_"), ("cifar100", "cifar100", "cifar100_"),
                         ("imagenet16", "ImageNet16-120", "imagenet16_")):
        f = out[f"data/{ds}/features"][0]
        assert f.shape == (31, 4, 4)
        np.testing.assert_array_equal(f[0], rec["cell_adjacency"])
        for c, cell in enumerate(CELLS_201):
            flops = np.zeros((4, 4))
            params = np.zeros((4, 4))
            for e, (i, j) in enumerate(EDGES_201):
                flops[i, j] = rec[f"{pre}_opt_flops"][cell][e]
                params[i, j] = rec[f"{pre}_opt_params"][cell][e]
            np.testing.assert_array_equal(f[1 + 2 * c], flops)  # unscaled
            np.testing.assert_array_equal(f[2 + 2 * c], params)
        assert out[f"data/{ds}/flops"][0] == rec[f"{pre}_total_flops"]
        assert out[f"data/{ds}/params"][0] == rec[f"{pre}_total_params"]
        assert out[f"data/{ds}/val_acc"][0] == np.float32(rec[f"{acc}val_acc"])  # already percent
        assert out[f"data/{ds}/latency"][0] == np.float32(rec[f"{acc}latency"])
    # 16 channels at 32x32 with a 1x1 conv: 288 params, 294,912 FLOPs on edge 0->2 of cell 0
    f = out["data/cifar10/features"][0]
    assert f[1, 0, 2] == 294912 and f[2, 0, 2] == 288 and f[1, 0, 1] == 0


@pytest.mark.parametrize("edit, message", [
    (lambda r: r.pop("flops"), "NB101 record 4: missing field"),
    (lambda r: r.update(extra=1), "NB101 record 4: unknown field"),
    (lambda r: r["module_adjacency"][2].append(0), "NB101 record 4: module_adjacency must be 7x7"),
    (lambda r: r["vertex_flops"]["stack1/module2"].pop(), "NB101 record 4: vertex_flops must be 9x7"),
    (lambda r: r["vertex_params"]["stack0/module0"].__setitem__(1, "x"), "NB101 record 4: vertex_params"),
    (lambda r: r.update(trainable_parameters=None), "NB101 record 4: trainable_parameters"),
    (lambda r: r["module_adjacency"][1].__setitem__(2, 0), "NB101 record 4: .*without an input"),
    (lambda r: r["module_adjacency"][3].__setitem__(1, 1), "NB101 record 4: .*not strictly upper"),
    (lambda r: r["module_operations"].__setitem__(2, "conv5x5"), "NB101 record 4: unknown operation"),
    (lambda r: r.update(avg_validation_accuracy=92.6), "NB101 record 4: avg_validation_accuracy must be a fraction"),
])
def test_nb101_bad_record_names_its_index(edit, message):
    recs = [copy.deepcopy(fixture("101")[0]) for _ in range(6)]
    edit(recs[4])
    with pytest.raises(NarError, match=message):
        encode_chunk_101(recs[2:], 2)


@pytest.mark.parametrize("edit, message", [
    (lambda r: r["cell_adjacency"][2].__setitem__(0, 1), "'0': cell_adjacency must be zero on and below"),
    (lambda r: r["cell_adjacency"][0].__setitem__(1, 7), "'0': cell_adjacency entries must be op indices"),
    (lambda r: r.update(arch_str="|none~0|"), "'0': arch_str .* does not match"),
    (lambda r: r["cifar100_opt_flops"].pop("cells5", None) or r["cifar100_opt_flops"].pop("cells16"),
     "'0': cifar100_opt_flops must be an object"),
    (lambda r: r.update(cifar10_val_acc="high"), "'0': cifar10_val_acc must be a number"),
])
def test_nb201_bad_record_names_its_key(edit, message):
    key, rec = next(iter(fixture("201").items()))
    rec = copy.deepcopy(rec)
    edit(rec)
    with pytest.raises(NarError, match=message):
        encode_chunk_201([(key, rec)])

"""NB101 per-vertex and total FLOPs/params against NAR's example record and NAS-Bench-101's
own parameter counts of the 20,001-row table."""
import csv
import gzip
import json

import numpy as np
import pytest

from cache.store import OP_CODES_101
from pipeline.errors import NarError
from pipeline.nb101_cost import (MODULE_KEYS_101, cell_arrays, cell_info, module_shapes,
                                 network_totals, vertex_channels, vertex_costs)
from tests.conftest import shared_data


@pytest.fixture(scope="module")
def example():
    path = shared_data("fixtures/nar_nasbench101_vertice_example.json")
    return json.loads(path.read_text())[0]


@pytest.fixture(scope="module")
def table():
    """The 20k table as store-convention arrays plus the parameter oracle."""
    with gzip.open(shared_data("nb101/nb101_20k.csv.gz"), "rt") as f:
        rows = list(csv.DictReader(f))
    n = len(rows)
    adj = np.zeros((n, 7, 7), np.int8)
    ops = np.zeros((n, 7), np.int8)
    nv = np.array([int(r["n_vertices"]) for r in rows], np.int8)
    for i, r in enumerate(rows):
        k = nv[i]
        adj[i, :k, :k] = (np.frombuffer(r["adjacency"].encode(), np.uint8) - ord("0")).reshape(k, k)
        ops[i, :k] = [OP_CODES_101[o] for o in r["ops"].split(",")]
    oracle = np.array([int(r["trainable_parameters"]) for r in rows], np.int64)
    return adj, ops, nv, oracle


def test_example_record_exact(example):
    info = cell_info(example["module_adjacency"], example["module_operations"])
    assert list(info["vertex_flops"]) == list(MODULE_KEYS_101)
    assert info["vertex_flops"] == example["vertex_flops"]
    assert info["vertex_params"] == example["vertex_params"]
    assert info["flops"] == example["flops"]
    assert info["trainable_parameters"] == example["trainable_parameters"]


def test_trainable_parameters_of_all_table_rows(table):
    adj, ops, nv, oracle = table
    assert len(oracle) == 20001
    _, params = network_totals(adj, ops, nv)
    bad = np.flatnonzero(params != oracle)
    assert bad.size == 0, f"{bad.size} mismatches, first row {bad[:1]}"
    # the table exercises the input->output projection and the 2-vertex cell
    assert adj[np.arange(len(nv)), 0, nv - 1].sum() > 1000 and (nv == 2).any()


def test_vectorised_matches_per_cell_and_padding_is_zero(table):
    adj, ops, nv, _ = table
    sel = np.r_[np.flatnonzero(nv == 2), np.arange(0, len(nv), 997)]
    flops, params = vertex_costs(adj[sel], ops[sel], nv[sel])
    tf, tp = network_totals(adj[sel], ops[sel], nv[sel])
    for j, i in enumerate(sel):
        n = int(nv[i])
        names = [{v: k for k, v in OP_CODES_101.items()}[c] for c in ops[i, :n]]
        info = cell_info(adj[i, :n, :n], names)
        assert info["vertex_flops"] == {k: flops[j, m, :n].tolist() for m, k in enumerate(MODULE_KEYS_101)}
        assert info["vertex_params"] == {k: params[j, m, :n].tolist() for m, k in enumerate(MODULE_KEYS_101)}
        assert (info["flops"], info["trainable_parameters"]) == (tf[j], tp[j])
        assert not flops[j, :, n - 1:].any() and not flops[j, :, 0].any()
        assert not params[j, :, n - 1:].any() and not params[j, :, 0].any()


def test_channel_rule_remainder_and_back_propagation():
    # 1 -> {2, 3}; 2, 3, 4 feed the output; the input feeds 1 and 4
    m = np.zeros((6, 6), np.int8)
    for i, j in [(0, 1), (1, 2), (1, 3), (2, 5), (3, 5), (4, 5), (0, 4)]:
        m[i, j] = 1
    adj, ops, nv = cell_arrays(m, ["input"] + ["conv3x3-bn-relu"] * 4 + ["output"])
    # 128 = 43 + 43 + 42 (earlier vertices take the remainder); vertex 1 takes max(43, 43)
    assert vertex_channels(adj, ops, nv, 128)[0].tolist() == [0, 43, 43, 43, 42, 0, 0]
    # 256 = 86 + 85 + 85
    assert vertex_channels(adj, ops, nv, 256)[0].tolist() == [0, 86, 86, 85, 85, 0, 0]


def test_two_vertex_cell_is_only_projections():
    adj, ops, nv = cell_arrays([[0, 1], [0, 0]], ["input", "output"])
    flops, params = vertex_costs(adj, ops, nv)
    assert not flops.any() and not params.any()
    tf, tp = network_totals(adj, ops, nv)
    proj_f = sum(2 * h * h * ci * co for ci, co, h in module_shapes())
    proj_p = sum(ci * co + 2 * co for ci, co, h in module_shapes())
    stem_f, stem_p = 2 * 32 * 32 * 27 * 128, 27 * 128 + 256
    rest_f = 4 * 16 * 16 * 128 + 4 * 8 * 8 * 256 + 8 * 8 * 512 + 2 * 512 * 10 + 10
    assert tf[0] == stem_f + proj_f + rest_f
    assert tp[0] == stem_p + proj_p + 512 * 10 + 10


def test_vertex_terms_of_a_small_cell():
    # input -> maxpool(1) -> conv1x1(2) -> output, input -> conv1x1(2): stack 0, 128 channels
    m = [[0, 1, 1, 0], [0, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]]
    info = cell_info(m, ["input", "maxpool3x3", "conv1x1-bn-relu", "output"])
    P, c = 32 * 32, 128
    pool = 2 * P * 128 * c + 9 * P * c  # projection of the input + pooling
    conv = 2 * P * 128 * c + P * c + 2 * P * c * c  # projection + one addition + conv
    assert info["vertex_flops"]["stack0/module0"] == [0, pool, conv, 0]
    assert info["vertex_params"]["stack0/module0"] == [0, 128 * c + 2 * c, 2 * (128 * c + 2 * c), 0]


@pytest.mark.parametrize("n, first, last", [(8, 1, 5), (1, 1, 5), (3, 2, 5), (3, 1, 3)])
def test_bad_arrays_raise(n, first, last):
    adj = np.zeros((1, 7, 7), np.int8)
    ops = np.zeros((1, 7), np.int8)
    k = min(max(n, 1), 7)
    ops[0, 0], ops[0, k - 1] = first, last
    with pytest.raises(NarError, match="cell 0"):
        vertex_costs(adj, ops, np.array([n]))


def test_bad_single_cell_raises():
    with pytest.raises(NarError, match="conv5x5"):
        cell_info([[0, 1, 0], [0, 0, 1], [0, 0, 0]], ["input", "conv5x5", "output"])
    with pytest.raises(NarError, match="shape"):
        cell_info([[0, 1], [0, 0]], ["input", "conv3x3-bn-relu", "output"])
    with pytest.raises(NarError, match="expected"):
        network_totals(np.zeros((2, 6, 6)), np.zeros((2, 7)), np.array([2, 2]))

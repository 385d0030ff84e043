"""NB201 space (strings, indices, adjacency) and per-edge/total FLOPs/params against NAR's
example record and NAS-Bench-201's own parameter counts."""
import csv
import gzip
import json

import numpy as np
import pytest

from pipeline.errors import NarError
from pipeline.nb201_cost import CELL_KEYS_201, DATASETS_201, cell_info, edge_costs, network_totals
from pipeline.nb201_space import (N_ARCHS_201, all_archs, arch_code, arch_index, cell_adjacency,
                                  format_arch, official_index_table, op_counts,
                                  ops_from_adjacency, parse_arch)
from tests.conftest import shared_data


@pytest.fixture(scope="module")
def example():
    path = shared_data("fixtures/nar_nasbench201_vertice_example.json")
    return json.loads(path.read_text())["0"]


@pytest.fixture(scope="module")
def table():
    with gzip.open(shared_data("nb201/nb201.csv.gz"), "rt") as f:
        rows = list(csv.DictReader(f))
    index = np.array([int(r["arch_index"]) for r in rows])
    strings = [r["arch_str"] for r in rows]
    params_m = [r["cifar10_params_M"] for r in rows]
    return index, strings, params_m


def test_example_strings_and_adjacency(example):
    ops = parse_arch(example["arch_str"])
    assert ops == (4, 2, 1, 2, 1, 1)
    assert format_arch(ops) == example["arch_str"]
    assert cell_adjacency(ops).tolist() == example["cell_adjacency"]
    assert tuple(ops_from_adjacency(example["cell_adjacency"])) == ops
    assert op_counts(np.array([ops])).tolist() == [[0, 3, 2, 0, 1]]


@pytest.mark.parametrize("dataset", sorted(DATASETS_201))
def test_example_record_exact(example, dataset):
    info = cell_info(parse_arch(example["arch_str"]), dataset)
    prefix = DATASETS_201[dataset][0]
    assert set(info) == {f"{prefix}_{k}" for k in ("opt_flops", "opt_params", "total_flops", "total_params")}
    for key, value in info.items():
        assert value == example[key], key
    assert list(info[prefix + "_opt_flops"]) == list(CELL_KEYS_201)


def test_params_oracle_of_every_table_row(table):
    _, strings, params_m = table
    have = np.array([v != "" for v in params_m])
    assert have.sum() == 15421
    decimals = {len(v.split(".")[1]) for v in np.array(params_m)[have] if "." in v}
    assert decimals == {6}  # millions with 6 decimals: the comparison is exact to one parameter
    ops = np.array([parse_arch(s) for s in strings], np.int8)
    _, params = network_totals(ops, "cifar10")
    expected = np.rint(np.array([float(v) for v in np.array(params_m)[have]]) * 1e6).astype(np.int64)
    bad = np.flatnonzero(params[have] != expected)
    assert bad.size == 0, f"{bad.size} mismatches, e.g. {np.array(strings)[have][bad[:1]]}"


@pytest.mark.parametrize("dataset", sorted(DATASETS_201))
def test_edge_costs_add_up_and_scale_with_resolution(dataset):
    archs = all_archs()
    flops, params = edge_costs(archs, dataset)
    assert flops.shape == params.shape == (N_ARCHS_201, 15, 6) and flops.dtype == np.int64
    size = DATASETS_201[dataset][2]
    hw = np.repeat([(size >> s) ** 2 for s in range(3)], 5)
    assert (flops == params * hw[None, :, None]).all()
    conv = (archs == 2) | (archs == 3)
    assert ((params[:, 0] > 0) == conv).all()
    tf, tp = network_totals(archs, dataset)
    # everything outside the normal cells is the same for every cell of the space
    assert len(np.unique(tf - flops.sum(axis=(1, 2)))) == 1
    assert len(np.unique(tp - params.sum(axis=(1, 2)))) == 1


def test_all_archs_and_canonical_code():
    archs = all_archs()
    assert archs.shape == (N_ARCHS_201, 6) and archs.dtype == np.int8
    assert len(np.unique(archs, axis=0)) == N_ARCHS_201
    assert (arch_code(archs) == np.arange(N_ARCHS_201)).all()
    assert archs[1].tolist() == [1, 0, 0, 0, 0, 0]  # first edge is the least significant digit
    counts = op_counts(archs)
    assert counts.shape == (N_ARCHS_201, 5) and (counts.sum(axis=1) == 6).all()
    for i in (0, 7, 15624):
        assert parse_arch(format_arch(archs[i])) == tuple(archs[i])


def test_official_index_from_table(table):
    index, strings, _ = table
    official = official_index_table(index, strings)
    ops = np.array([parse_arch(s) for s in strings], np.int8)
    assert (arch_index(ops, official) == index).all()
    assert [format_arch(o) for o in all_archs()[np.argsort(official)][:3]] == strings[:3]
    # the official order is a permutation the benchmark carries, not the canonical code
    assert not (arch_index(ops) == index).all()


@pytest.mark.parametrize("bad, match", [
    ("|nor_conv_3x3~0|+|none~0|none~1|", "2 node groups"),
    ("|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|conv5~2|", "unknown op 'conv5'"),
    ("|nor_conv_3x3~0|+|none~0|none~0|+|none~0|none~1|none~2|", "input node 1"),
    ("|nor_conv_3x3~0|+|none~0|+|none~0|none~1|none~2|", "node 2 has 1 inputs"),
    ("nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|", "start and end"),
    ("|nor_conv_3x3|+|none~0|none~1|+|none~0|none~1|none~2|", "input node 0"),
    (17, "not a string"),
])
def test_bad_arch_strings_raise(bad, match):
    with pytest.raises(NarError, match=match) as err:
        parse_arch(bad)
    assert repr(bad) in str(err.value)


def test_bad_ops_and_dataset_raise():
    with pytest.raises(NarError, match="op index 5"):
        format_arch([0, 1, 2, 3, 4, 5])
    with pytest.raises(NarError, match="shape"):
        op_counts(np.zeros((3, 5), np.int8))
    with pytest.raises(NarError, match="unknown NB201 dataset 'svhn'"):
        network_totals(all_archs()[:2], "svhn")
    with pytest.raises(NarError, match="permutation"):
        official_index_table(np.zeros(N_ARCHS_201, int), [format_arch(a) for a in all_archs()])


# ---------------------------------------------------------------- which cells are the same network
N_PRUNED_201, N_CLASSES_201 = 9445, 5425  # distinct cells without dead edges; same-network classes


def _cls(*strings):
    from pipeline.nb201_equivalence import network_class
    return network_class(np.array([parse_arch(s) for s in strings], np.int64)).tolist()


def _arch(e01, e02, e12, e03, e13, e23):
    return f"|{e01}~0|+|{e02}~0|{e12}~1|+|{e03}~0|{e13}~1|{e23}~2|"


C3, C1, P, S, N = "nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3", "skip_connect", "none"


def test_dead_edges_are_pruned_by_hand():
    from pipeline.nb201_equivalence import live_edges, prune_dead_edges
    # node 1 unreachable (0->1 none): 1->2 and 1->3 are dead; node 2 reaches no output: 0->2 dead
    ops = np.array(parse_arch(_arch(N, C3, C1, C3, P, N)))
    assert live_edges(ops[None]).tolist() == [[False, False, False, True, False, False]]
    assert format_arch(prune_dead_edges(ops)) == _arch(N, N, N, C3, N, N)
    a, b = _cls(_arch(N, C3, C1, C3, P, N), _arch(N, N, N, C3, N, N))
    assert a == b
    assert len(set(_cls(_arch(N, N, N, N, N, N), _arch(C3, N, N, N, N, N), _arch(N, N, N, N, C3, C1)))) == 1


def test_skip_wiring_and_node_swap_are_the_same_network_by_hand():
    # conv(x) on the output edge, or before / after a skip through node 1 or node 2
    assert len(set(_cls(_arch(N, N, N, C3, N, N), _arch(C3, N, N, N, S, N), _arch(S, N, N, N, C3, N),
                        _arch(N, C3, N, N, N, S), _arch(C3, N, S, N, N, S)))) == 1
    # nodes 1 and 2 swap roles when no edge joins them
    a, b = _cls(_arch(C3, P, N, S, C1, S), _arch(P, C3, N, S, S, C1))
    assert a == b


def test_different_networks_stay_apart_by_hand():
    pairs = [
        # x + x is not x
        (_arch(S, N, N, S, S, N), _arch(N, N, N, S, N, N)),
        # conv_c(a) + conv_d(a) with one shared conv a (3 convs) vs two chains of two convs (4 convs)
        (_arch(C3, N, N, N, C3, N), _arch(C3, C3, N, N, C3, C3)),
        (_arch(C3, N, C3, N, C3, S), _arch(C3, C3, N, N, C3, C3)),
        # c(a(x) + b(x)) (3 convs) vs c(a(x)) + d(b(x)) (4 convs): the same multiset of
        # input-output op paths once skips are dropped, different networks
        (_arch(C3, C3, S, N, N, C3), _arch(C3, C3, N, N, C3, C3)),
        # d(b(x) + c(a(x))) vs c(a(x)) + d(b(x))
        (_arch(C3, C3, C3, N, N, C3), _arch(C3, C3, N, N, C3, C3)),
        # the op type matters, and so does the order of ops along a path
        (_arch(C3, N, N, N, C1, N), _arch(C1, N, N, N, C3, N)),
        (_arch(N, N, N, C3, N, N), _arch(N, N, N, P, N, N)),
    ]
    for a, b in pairs:
        ca, cb = _cls(a, b)
        assert ca != cb, (a, b)


def test_classes_of_the_whole_space_compute_the_same_function():
    """Every cell evaluated with one fixed nonlinear function per op type (zero at zero, as a
    conv on zeros) on a random input: cells of one class (isomorphic op-instance graphs) must
    agree; and the class count."""
    from pipeline.nb201_equivalence import network_classes, prune_dead_edges

    cells = all_archs().astype(np.int64)
    cls = network_classes()
    assert cls.shape == (N_ARCHS_201,) and cls.min() == 0
    n_cls = int(cls.max()) + 1
    assert n_cls == len(np.unique(cls)) == N_CLASSES_201
    assert len(np.unique(arch_code(prune_dead_edges(cells)))) == N_PRUNED_201
    np.testing.assert_array_equal(cls[arch_code(prune_dead_edges(cells))], cls)  # dead edges never matter
    x = np.random.default_rng(0).normal(size=8)
    f = {2: lambda v: np.tanh(1.3 * v), 3: lambda v: np.sin(2.1 * v) + 0.1 * v, 4: lambda v: v * v / (1 + v * v)}
    node = [np.broadcast_to(x, (len(cells), 8)), 0, 0, 0]
    for (i, j), e in zip(((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3)), range(6)):
        op = cells[:, e:e + 1]
        v = node[i] * (op == 1)
        for o, fn in f.items():
            v = v + np.where(op == o, fn(node[i] + 0 * op), 0.0)
        node[j] = node[j] + v
    out = node[3]
    order = np.argsort(cls, kind="stable")
    first = np.r_[True, np.diff(cls[order]) > 0]
    rep = order[first][np.cumsum(first) - 1]  # the first cell of each row's class, in sorted order
    np.testing.assert_allclose(out[order], out[rep], atol=1e-12)
    # different classes mostly compute different functions here (shared-function coincidences aside)
    assert len(np.unique(np.round(out[order[first]], 9), axis=0)) > 0.9 * n_cls

"""Which NAS-Bench-201 cells are the same network.

A NB201 cell computes ``node_j = sum_{i<j} op_ij(node_i)`` (node 0 = the cell's input, node 3
= its output) with ``none`` = no contribution, ``skip_connect`` = the identity, and the three
parametrised or pooling ops (``nor_conv_1x1``, ``nor_conv_3x3``, ``avg_pool_3x3``) as
*op instances*. Many of the 15,625 op strings build the same computation:

1. **Dead edges** (:func:`live_edges`, vectorised): an edge whose source node no path of
   non-``none`` edges reaches from the input, or whose target reaches the output by none, adds
   nothing to the output (its op reads zeros, or its result is never read). Setting such edges
   to ``none`` (:func:`prune_dead_edges`) leaves 9,445 distinct cells of the 15,625.
2. **The op-instance graph** (:func:`network_certificate`): sums and skips are wiring; what the
   network computes is which op instances exist, which multiset of sources (the input and other
   op instances) each one reads, and which multiset the output sums. ``0->1 conv, 1->3 skip``
   and ``0->3 conv`` are the same network; so are two cells that differ by swapping the roles
   of nodes 1 and 2 when no edge joins them. Two cells are **the same network** here when their
   op-instance graphs are isomorphic (op types, sources and multiplicities preserved): same
   ops, same parameter tensors, same computation, so their accuracies differ by training noise
   only. The 15,625 cells form 5,425 such classes (4,246 of one cell).

Not merged (a different computation, or equal only by an algebraic identity of an op): sums
with a different multiplicity (``x + x`` is not ``x``), and the linearity of average pooling
(``pool(a) + pool(b) = pool(a + b)``). One approximation: an op whose input node is
unreachable reads zeros, and a conv-BN on zeros still adds BatchNorm's learned shift, a
constant per channel; dead-edge removal drops it. The benchmark's ``params``/``flops`` count
dead edges' modules, so classmates can differ in those columns while computing the same.

The classes of the whole space are computed once per process (about a second) and looked
up by canonical code (:func:`network_classes`).
"""
from __future__ import annotations

import functools
import itertools
from collections import Counter

import numpy as np

from pipeline.nb201_space import EDGES_201, N_ARCHS_201, all_archs, arch_code, check_ops6

NONE, SKIP = 0, 1
_EDGE = {e: k for k, e in enumerate(EDGES_201)}


def live_edges(ops6) -> np.ndarray:
    """(N, 6) bool: edges on some input -> output path of non-``none`` edges (vectorised)."""
    a = check_ops6(ops6).reshape(-1, len(EDGES_201))
    on = a != NONE
    e = {ij: on[:, k] for ij, k in _EDGE.items()}
    from_in = [np.ones(len(a), bool), e[0, 1]]                       # node reached from node 0
    from_in.append(e[0, 2] | (from_in[1] & e[1, 2]))
    to_out = [None, None, e[2, 3], np.ones(len(a), bool)]            # node reaches node 3
    to_out[1] = e[1, 3] | (e[1, 2] & to_out[2])
    return np.stack([on[:, k] & from_in[i] & to_out[j] for (i, j), k in _EDGE.items()], 1)


def prune_dead_edges(ops6) -> np.ndarray:
    """The cells with every dead edge set to ``none`` (same shape and dtype as given)."""
    a = check_ops6(ops6)
    live = live_edges(a).reshape(a.shape)
    return np.where(live, a, NONE).astype(a.dtype)


def _sources(ops6) -> tuple[Counter, dict]:
    """(output multiset, {instance edge: (op, input multiset)}) of one pruned cell; a source is
    ``-1`` (the input) or the edge index of an op instance."""
    node = [Counter({-1: 1}), Counter(), Counter(), Counter()]
    inst = {}
    for (i, j), k in sorted(_EDGE.items(), key=lambda t: t[0][1]):  # by target node: inputs ready
        op = int(ops6[k])
        if op == SKIP:
            node[j].update(node[i])
        elif op != NONE:
            inst[k] = (op, node[i])
            node[j][k] += 1
    return node[3], inst


def network_certificate(ops6) -> tuple:
    """A canonical form of the op-instance graph of one cell (6 op indices): equal for two
    cells exactly when their graphs are isomorphic (see the module docstring)."""
    out, inst = _sources(prune_dead_edges(np.asarray(ops6, np.int64)))
    name = {-1: "x"}
    for k in sorted(inst):  # edge order is a topological order of the instances
        op, src = inst[k]
        name[k] = f"{op}(" + ",".join(sorted(f"{name[s]}*{c}" for s, c in src.items())) + ")"
    ks = sorted(inst, key=lambda k: name[k])
    groups = [list(g) for _, g in itertools.groupby(ks, key=lambda k: name[k])]
    best = None
    # isomorphisms preserve names, so only instances of equal name are interchangeable
    for perm in itertools.product(*(itertools.permutations(g) for g in groups)):
        order = [k for g in perm for k in g]
        pos = {-1: -1, **{k: p for p, k in enumerate(order)}}
        form = tuple((inst[k][0], tuple(sorted((pos[s], c) for s, c in inst[k][1].items()))) for k in order)
        form += (tuple(sorted((pos[s], c) for s, c in out.items())),)
        best = form if best is None or form < best else best
    return tuple(name[k] for k in ks), best


@functools.lru_cache(maxsize=1)
def network_classes() -> np.ndarray:
    """(15625,) int64 class id of every cell by canonical code (``arch_code``): equal ids =
    the same network. Ids number the classes in order of their first cell's code."""
    cells = all_archs().astype(np.int64)
    pruned = prune_dead_edges(cells)
    uniq, inverse = np.unique(arch_code(pruned), return_inverse=True)
    ids, cls_of_pruned = {}, np.empty(len(uniq), np.int64)
    for u, code in enumerate(uniq):  # the 9,445 pruned cells; a dict, not a search
        cls_of_pruned[u] = ids.setdefault(network_certificate(cells[code]), len(ids))
    classes = cls_of_pruned[inverse.ravel()]
    # renumber in order of the first cell's code, so ids do not depend on np.unique's order
    _, first = np.unique(classes, return_index=True)
    renum = np.empty(len(first), np.int64)
    renum[np.argsort(first)] = np.arange(len(first))
    out = renum[classes]
    assert len(out) == N_ARCHS_201
    out.setflags(write=False)
    return out


def network_class(ops6) -> np.ndarray:
    """Class ids (see :func:`network_classes`) of (..., 6) cells."""
    return network_classes()[arch_code(ops6)]

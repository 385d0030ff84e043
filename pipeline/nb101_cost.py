"""Per-vertex and whole-network FLOPs / trainable parameters of NAS-Bench-101 cells (NAR's
convention), vectorised over cells (Python loops only over the 7 vertex positions and the
distinct module shapes).

Inputs follow the store: ``adjacency`` (N, 7, 7) 0/1 with the pruned n x n matrix in the
top-left block, ``ops`` (N, 7) codes of ``cache.store.OP_CODES_101`` (input 1, conv1x1 2,
conv3x3 3, maxpool 4, output 5, 0 = no vertex), ``n_vertices`` (N,).

Network: stem 3x3 conv 3->128 + BN at 32x32; stacks of 3 modules at (128, 32x32),
(256, 16x16), (512, 8x8), a 2x2 max-pool before stacks 1 and 2; global average pool; dense
512 -> 10. Module input channels: 128 for stack 0 and the first module of stack 1, then the
previous module's output channels.

Vertex channels (NAS-Bench-101's rule): the module's output channels are split evenly among
the interior vertices with an edge to the output (earlier ones take one extra while a
remainder is left); then, from the back, every other interior vertex takes the largest
channel count among its interior successors.

What a vertex's entry counts (P = H x W, c = the vertex's channels, Cin = module input
channels; FLOPs are 2 x multiply-accumulates for convs, BN FLOPs are not counted):
- 1x1 conv-BN-ReLU projection of the module input if the input feeds the vertex:
  FLOPs 2 P Cin c, params Cin c + 2c;
- summing its k inputs: (k - 1) P c FLOPs;
- its op: conv3x3 2 P 9 c^2 FLOPs, 9 c^2 + 2c params; conv1x1 2 P c^2, c^2 + 2c;
  maxpool3x3 9 P c FLOPs, no params.
Input and output vertices count 0. Outside the vertex lists the totals add: the input->output
projection (FLOPs 2 P Cin Cout, params Cin Cout + 2 Cout; added to the concatenation at no
cost), stem (2 x MACs FLOPs; conv + BN params), the two 2x2 down-sampling max-pools (4 per
output element), global average pool (H W C) and the dense layer (2 x MACs + 10 for the
bias; 512 x 10 + 10 params).
"""
from __future__ import annotations

import numpy as np

from cache.store import OP_CODES_101
from pipeline.errors import NarError

MAX_VERTICES_101 = 7
STEM_CHANNELS_101 = 128
N_STACKS_101 = 3
MODULES_PER_STACK_101 = 3
IMAGE_SIZE_101 = 32
N_CLASSES_101 = 10
MODULE_KEYS_101 = tuple(f"stack{s}/module{m}" for s in range(N_STACKS_101)
                        for m in range(MODULES_PER_STACK_101))
_CONV1, _CONV3, _POOL = (OP_CODES_101[k] for k in ("conv1x1-bn-relu", "conv3x3-bn-relu", "maxpool3x3"))


def module_shapes() -> list[tuple[int, int, int]]:
    """(input channels, output channels, H) of the 9 modules in ``MODULE_KEYS_101`` order."""
    shapes, cin = [], STEM_CHANNELS_101
    for s in range(N_STACKS_101):
        cout, h = STEM_CHANNELS_101 << s, IMAGE_SIZE_101 >> s
        for _ in range(MODULES_PER_STACK_101):
            shapes.append((cin, cout, h))
            cin = cout
    return shapes


def _check(adjacency, ops, n_vertices):
    adj = np.asarray(adjacency)
    ops = np.asarray(ops)
    n = np.asarray(n_vertices).astype(np.intp)
    V = MAX_VERTICES_101
    if adj.ndim != 3 or adj.shape[1:] != (V, V) or ops.shape != adj.shape[:2] or n.shape != adj.shape[:1]:
        raise NarError(f"NB101 arrays of shapes adjacency {adj.shape}, ops {ops.shape}, "
                       f"n_vertices {n.shape}: expected (N, 7, 7), (N, 7), (N,)")
    if n.size == 0:
        return adj.astype(bool), ops, n
    bad = np.flatnonzero((n < 2) | (n > V))
    if bad.size:
        raise NarError(f"NB101 cell {bad[0]} has {n[bad[0]]} vertices: expected 2..7")
    rows = np.arange(len(n))
    bad = np.flatnonzero((ops[:, 0] != OP_CODES_101["input"]) | (ops[rows, n - 1] != OP_CODES_101["output"]))
    if bad.size:
        raise NarError(f"NB101 cell {bad[0]}: ops {ops[bad[0]].tolist()} must start with input (1) "
                       f"and end with output (5) at vertex n_vertices-1")
    return adj.astype(bool), ops, n


def _structure(A, n):
    """Per-cell masks shared by all modules: interior vertices, output feeders, their rank
    among output feeders, inputs fed by the module input, and in-degrees."""
    pos = np.arange(MAX_VERTICES_101)
    rows = np.arange(len(n))
    interior = (pos[None, :] >= 1) & (pos[None, :] <= (n - 2)[:, None])
    to_out = A[rows, :, n - 1] & interior
    rank = np.cumsum(to_out, axis=1) - to_out
    from_in = A[:, 0, :] & interior
    in_degree = A.sum(axis=1, dtype=np.int64)
    io_edge = A[rows, 0, n - 1]
    return interior, to_out, rank, from_in, in_degree, io_edge


def vertex_channels(adjacency, ops, n_vertices, out_channels: int) -> np.ndarray:
    """(N, 7) int64 channels of each interior vertex (0 elsewhere) for a module with
    ``out_channels`` output channels."""
    A, _, n = _check(adjacency, ops, n_vertices)
    interior, to_out, rank, _, _, _ = _structure(A, n)
    return _channels(A, interior, to_out, rank, out_channels)


def _channels(A, interior, to_out, rank, cout):
    k = np.maximum(to_out.sum(axis=1), 1)
    base, rem = cout // k, cout % k
    ch = np.where(to_out, base[:, None] + (rank < rem[:, None]), 0).astype(np.int64)
    for v in range(MAX_VERTICES_101 - 2, 0, -1):
        need = interior[:, v] & ~to_out[:, v]
        succ = A[:, v, :] & interior
        largest = np.where(succ, ch, 0).max(axis=1)
        ch[:, v] = np.where(need, largest, ch[:, v])
    return ch


def _module_costs(A, ops, interior, to_out, rank, from_in, in_degree, cin, cout, h):
    """(flops, params) (N, 7) int64 of the vertices of one module shape."""
    c = _channels(A, interior, to_out, rank, cout)
    P = h * h
    flops = np.where(from_in, 2 * P * cin * c, 0)
    params = np.where(from_in, cin * c + 2 * c, 0)
    flops += np.where(interior, np.maximum(in_degree - 1, 0) * P * c, 0)
    conv3, conv1, pool = (ops == _CONV3) & interior, (ops == _CONV1) & interior, (ops == _POOL) & interior
    flops += np.where(conv3, 18 * P * c * c, 0) + np.where(conv1, 2 * P * c * c, 0)
    flops += np.where(pool, 9 * P * c, 0)
    params += np.where(conv3, 9 * c * c + 2 * c, 0) + np.where(conv1, c * c + 2 * c, 0)
    return flops, params


def vertex_costs(adjacency, ops, n_vertices) -> tuple[np.ndarray, np.ndarray]:
    """(flops, params), each (N, 9, 7) int64: per module (``MODULE_KEYS_101`` order) and per
    vertex in the cell's own order; 0 for input, output and beyond ``n_vertices``."""
    A, ops, n = _check(adjacency, ops, n_vertices)
    s = _structure(A, n)[:5]
    flops = np.zeros((len(n), len(MODULE_KEYS_101), MAX_VERTICES_101), dtype=np.int64)
    params = np.zeros_like(flops)
    done = {}
    for m, shape in enumerate(module_shapes()):
        if shape in done:
            flops[:, m], params[:, m] = flops[:, done[shape]], params[:, done[shape]]
            continue
        flops[:, m], params[:, m] = _module_costs(A, ops, *s, *shape)
        done[shape] = m
    return flops, params


def _fixed_costs() -> tuple[int, int]:
    """FLOPs and params outside the modules: stem, down-sampling pools, pool, dense."""
    c0, size = STEM_CHANNELS_101, IMAGE_SIZE_101
    flops = 2 * size * size * 9 * 3 * c0
    params = 9 * 3 * c0 + 2 * c0
    for s in range(1, N_STACKS_101):
        flops += 4 * (size >> s) ** 2 * (c0 << (s - 1))
    c_last, h_last = c0 << (N_STACKS_101 - 1), size >> (N_STACKS_101 - 1)
    flops += h_last * h_last * c_last + 2 * c_last * N_CLASSES_101 + N_CLASSES_101
    params += c_last * N_CLASSES_101 + N_CLASSES_101
    return flops, params


def network_totals(adjacency, ops, n_vertices) -> tuple[np.ndarray, np.ndarray]:
    """(flops, params), each (N,) int64: NAR's ``flops`` and NAS-Bench-101's
    ``trainable_parameters``."""
    A, ops, n = _check(adjacency, ops, n_vertices)
    interior, to_out, rank, from_in, in_degree, io_edge = _structure(A, n)
    fixed_f, fixed_p = _fixed_costs()
    flops = np.full(len(n), fixed_f, dtype=np.int64)
    params = np.full(len(n), fixed_p, dtype=np.int64)
    shapes = module_shapes()
    for (cin, cout, h) in dict.fromkeys(shapes):
        times = shapes.count((cin, cout, h))
        f, p = _module_costs(A, ops, interior, to_out, rank, from_in, in_degree, cin, cout, h)
        flops += times * (f.sum(axis=1) + np.where(io_edge, 2 * h * h * cin * cout, 0))
        params += times * (p.sum(axis=1) + np.where(io_edge, cin * cout + 2 * cout, 0))
    return flops, params


def cell_arrays(matrix, op_names) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One pruned cell (n x n 0/1 matrix, n op names) -> store-convention arrays for N = 1."""
    m = np.asarray(matrix)
    n = len(op_names)
    if m.shape != (n, n) or not 2 <= n <= MAX_VERTICES_101:
        raise NarError(f"NB101 matrix of shape {m.shape} with {n} ops: expected n x n, n in 2..7")
    unknown = [o for o in op_names if o not in OP_CODES_101]
    if unknown:
        raise NarError(f"NB101 op {unknown[0]!r} unknown; use one of {', '.join(OP_CODES_101)}")
    adj = np.zeros((1, MAX_VERTICES_101, MAX_VERTICES_101), dtype=np.int8)
    adj[0, :n, :n] = m
    ops = np.zeros((1, MAX_VERTICES_101), dtype=np.int8)
    ops[0, :n] = [OP_CODES_101[o] for o in op_names]
    return adj, ops, np.array([n], dtype=np.int8)


def cell_info(matrix, op_names) -> dict:
    """NAR record fields of one cell: ``vertex_flops``, ``vertex_params`` (module key -> n
    ints), ``flops``, ``trainable_parameters``."""
    adj, ops, nv = cell_arrays(matrix, op_names)
    n = int(nv[0])
    flops, params = vertex_costs(adj, ops, nv)
    tf, tp = network_totals(adj, ops, nv)
    return {
        "vertex_flops": {k: flops[0, i, :n].tolist() for i, k in enumerate(MODULE_KEYS_101)},
        "vertex_params": {k: params[0, i, :n].tolist() for i, k in enumerate(MODULE_KEYS_101)},
        "flops": int(tf[0]),
        "trainable_parameters": int(tp[0]),
    }

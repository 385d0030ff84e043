"""Per-edge and whole-network FLOPs / trainable parameters of NAS-Bench-201 cells (NAR's
convention), vectorised over cells.

Network: stem 3x3 conv 3->16 + BN at the input size S; stages of 5 normal cells at
(16, S), (32, S/2), (64, S/4) channels/resolution; a residual reduction block between stages;
final BN, global average pool, dense 64 -> classes.

What each term counts (FLOPs = params x output H x W for every conv; BN FLOPs included):
- conv edge (ReLU-conv-BN, C -> C): params k*k*C*C + 2C, FLOPs params x H x W;
- skip_connect, none, avg_pool_3x3 inside a cell: 0 params, 0 FLOPs;
- stem: 3*3*3*16 + 2*16 params, FLOPs params x S x S;
- residual block Cin -> Cout: ReLU-conv3x3-BN stride 2 (9 Cin Cout + 2 Cout),
  ReLU-conv3x3-BN (9 Cout^2 + 2 Cout), shortcut avg-pool 2x2 (0) + 1x1 conv without BN
  (Cin Cout); each FLOPs = params x output H x W;
- final BN: 2C params, 2C x H x W FLOPs; global average pool: H x W x C FLOPs;
- classifier: 64 x classes + classes params, 64 x classes FLOPs (bias not counted).
"""
from __future__ import annotations

import numpy as np

from pipeline.errors import NarError
from pipeline.nb201_space import N_OPS_201, OPS_201, check_ops6

# store dataset name -> (NAR JSON key prefix, classes, input size)
DATASETS_201 = {
    "cifar10": ("cifar10-valid", 10, 32),
    "cifar100": ("cifar100", 100, 32),
    "imagenet16": ("ImageNet16-120", 120, 16),
}
STAGE_CHANNELS_201 = (16, 32, 64)
CELLS_PER_STAGE_201 = 5
# NAR's keys of the 15 normal cells (5 and 11 are the reduction blocks)
CELL_KEYS_201 = tuple(f"cells{s * (CELLS_PER_STAGE_201 + 1) + c}"
                      for s in range(len(STAGE_CHANNELS_201)) for c in range(CELLS_PER_STAGE_201))
_KERNEL = {"nor_conv_1x1": 1, "nor_conv_3x3": 3}


def _dataset(dataset: str):
    if dataset not in DATASETS_201:
        raise NarError(f"unknown NB201 dataset {dataset!r}; use one of {', '.join(DATASETS_201)}")
    return DATASETS_201[dataset]


def _op_tables(size: int) -> tuple[np.ndarray, np.ndarray]:
    """(3 stages, 5 ops) int64 params and FLOPs of one edge."""
    params = np.zeros((len(STAGE_CHANNELS_201), N_OPS_201), dtype=np.int64)
    flops = np.zeros_like(params)
    for s, c in enumerate(STAGE_CHANNELS_201):
        hw = (size >> s) ** 2
        for op, name in enumerate(OPS_201):
            k = _KERNEL.get(name)
            if k is not None:
                params[s, op] = k * k * c * c + 2 * c
                flops[s, op] = params[s, op] * hw
    return flops, params


def _fixed_costs(dataset: str) -> tuple[int, int]:
    """FLOPs and params of everything outside the normal cells."""
    _, classes, size = _dataset(dataset)
    c0 = STAGE_CHANNELS_201[0]
    p = 9 * 3 * c0 + 2 * c0
    flops, params = p * size * size, p
    for s in range(1, len(STAGE_CHANNELS_201)):
        cin, cout, hw = STAGE_CHANNELS_201[s - 1], STAGE_CHANNELS_201[s], (size >> s) ** 2
        p = (9 * cin * cout + 2 * cout) + (9 * cout * cout + 2 * cout) + cin * cout
        flops, params = flops + p * hw, params + p
    c, hw = STAGE_CHANNELS_201[-1], (size >> (len(STAGE_CHANNELS_201) - 1)) ** 2
    flops += 2 * c * hw + hw * c + c * classes
    params += 2 * c + c * classes + classes
    return flops, params


def edge_costs(ops6_array, dataset: str) -> tuple[np.ndarray, np.ndarray]:
    """(flops, params), each (N, 15, 6) int64: per edge (string order) of the 15 normal cells
    in ``CELL_KEYS_201`` order."""
    _, _, size = _dataset(dataset)
    a = check_ops6(ops6_array).reshape(-1, 6).astype(np.intp)
    f_tab, p_tab = _op_tables(size)
    stage = np.repeat(np.arange(len(STAGE_CHANNELS_201)), CELLS_PER_STAGE_201)  # (15,)
    flops = f_tab[stage[None, :, None], a[:, None, :]]
    params = p_tab[stage[None, :, None], a[:, None, :]]
    return flops, params


def network_totals(ops6_array, dataset: str) -> tuple[np.ndarray, np.ndarray]:
    """(flops, params), each (N,) int64: whole-network totals (NAR's ``*_total_*``)."""
    _, _, size = _dataset(dataset)
    a = check_ops6(ops6_array).reshape(-1, 6).astype(np.intp)
    f_tab, p_tab = _op_tables(size)
    fixed_f, fixed_p = _fixed_costs(dataset)
    # each stage's 5 cells are identical: 5 x sum over stages of the per-stage edge costs
    flops = CELLS_PER_STAGE_201 * sum(f_tab[s][a].sum(axis=1) for s in range(len(STAGE_CHANNELS_201)))
    params = CELLS_PER_STAGE_201 * sum(p_tab[s][a].sum(axis=1) for s in range(len(STAGE_CHANNELS_201)))
    return flops + fixed_f, params + fixed_p


def cell_info(ops6, dataset: str) -> dict:
    """NAR record fields of one cell for one dataset: ``{prefix}_opt_flops``,
    ``{prefix}_opt_params`` (``cells{k}`` -> 6 ints), ``{prefix}_total_flops``/``_params``."""
    prefix = _dataset(dataset)[0]
    a = check_ops6(ops6)
    if a.shape != (6,):
        raise NarError(f"cell_info takes one cell of 6 op indices, got shape {a.shape}")
    flops, params = edge_costs(a[None], dataset)
    tf, tp = network_totals(a[None], dataset)
    return {
        f"{prefix}_opt_flops": {k: flops[0, i].tolist() for i, k in enumerate(CELL_KEYS_201)},
        f"{prefix}_opt_params": {k: params[0, i].tolist() for i, k in enumerate(CELL_KEYS_201)},
        f"{prefix}_total_flops": int(tf[0]),
        f"{prefix}_total_params": int(tp[0]),
    }

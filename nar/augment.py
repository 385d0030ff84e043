"""Training-time augmentation of NB101 feature tensors by random topological re-ordering.

An NB101 tensor (B, C, 7, 7) stores a cell with vertices in one topological order (layout in
``pipeline.encode``): every channel holds A[i, j] x value of vertex j, channel 0 the type codes
(nonzero wherever there is an edge), the input at position 0, the output at 6 and, for a cell
with n < 7 vertices, zero rows/columns at positions n-1..5. :func:`topo_permute_101` draws, per
item, another topological order of the interior vertices (Kahn's algorithm: at each slot pick
uniformly among the unplaced interior vertices whose predecessors are all placed; padding
stays where it is) and applies X -> P X P^T to every channel, so the result is strictly
upper-triangular and describes the same (isomorphic) cell.
"""
from __future__ import annotations

import torch

from nar.config_ranges import AUGMENTS  # noqa: F401  (the names live with the other allowed values)
from pipeline.errors import NarError

N_VERTICES_101 = 7


def random_topological_order(adjacency: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """(B, 7) long: source position of each new position for a batch of (B, 7, 7) boolean
    strictly upper-triangular adjacencies (padded NB101 layout). Position 0 and 6 map to
    themselves; real interior vertices get a random topological order; padding vertices
    (no edges) keep their positions, after all real ones."""
    b, n = adjacency.shape[0], adjacency.shape[-1]
    dev = adjacency.device
    inner = slice(1, n - 1)
    pred = adjacency[:, inner, inner]                       # (B, k, k): u -> v among interior
    real = adjacency[:, :, inner].any(1) | adjacency[:, inner, :].any(2)  # (B, k)
    k = n - 2
    # uniform priorities for real vertices; padding after them, in position order
    pos = torch.arange(1, n - 1, device=dev, dtype=torch.float32)
    noise = torch.rand((b, k), generator=generator).to(dev)
    prio = torch.where(real, noise, -pos.expand(b, k))
    placed = torch.zeros((b, k), dtype=torch.bool, device=dev)
    order = torch.empty((b, n), dtype=torch.long, device=dev)
    order[:, 0], order[:, n - 1] = 0, n - 1
    rows = torch.arange(b, device=dev)
    stuck = torch.zeros(b, dtype=torch.bool, device=dev)
    for slot in range(k):
        blocked = (pred & ~placed[:, :, None]).any(1)       # some predecessor not placed yet
        ready = ~placed & ~blocked
        stuck |= ~ready.any(1)
        pick = torch.where(ready, prio, torch.full_like(prio, -torch.inf)).argmax(1)
        placed[rows, pick] = True
        order[:, slot + 1] = pick + 1
    if bool(stuck.any()):
        raise NarError("topological augmentation met a cell with a cycle (adjacency not strictly "
                       "upper-triangular); check the feature tensors")
    return order


def permute_vertices(x: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """X[b, c] -> X[b, c][order[b]][:, order[b]] for (B, C, P, P) ``x`` and (B, P) ``order``."""
    b, c, p, _ = x.shape
    rows = order[:, None, :, None].expand(b, c, p, p)
    out = x.gather(2, rows)
    cols = order[:, None, None, :].expand(b, c, p, p)
    return out.gather(3, cols)


def topo_permute_101(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A random topological re-ordering of each NB101 tensor of the batch (B, C, 7, 7);
    the structure is read from channel 0 (nonzero = edge)."""
    if x.ndim != 4 or x.shape[-2:] != (N_VERTICES_101, N_VERTICES_101):
        raise NarError(f"topological augmentation needs NB101 tensors (B, C, 7, 7), got shape "
                       f"{tuple(x.shape)}; use augment 'none' for other spaces")
    if len(x) == 0:
        return x
    order = random_topological_order(x[:, 0] != 0, generator)
    return permute_vertices(x, order)


def augment_batch(x: torch.Tensor, mode: str, generator: torch.Generator) -> torch.Tensor:
    """Apply the configured augmentation (``cfg.augment``) to a training batch."""
    if mode == "none":
        return x
    if mode == "topo":
        return topo_permute_101(x, generator)
    raise NarError(f"unknown augment {mode!r}; use one of {', '.join(AUGMENTS)}")

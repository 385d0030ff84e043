"""Self-supervised pre-training of the gated graph encoder on unlabelled cells (``pretrain:`` keys).

Every cell of a store carries its structure, FLOPs and params, labelled or not. Before the
ranker sees any accuracy, its encoder (nar/graph_ranker.py) learns to compute, from the cell,
a set of structural quantities that architecture quality depends on: for each op type the
number of input -> output paths through it and the most it occurs on one path, the number,
longest and shortest input -> output paths, degrees of the input and output, op and edge
counts, and the log FLOPs and params (:func:`structure_targets`). Those quantities are then
available to the score head from the first step of training on the labelled cells; no
accuracy of any cell is read here.

The pre-trained encoder is a one-off per (store, ranker shape, pre-training settings): it is
cached beside the store as ``<store>.pretrain-<hash>.pt`` (written atomically) and every later
training run, ensemble member and seed starts from it. Only the heads are trained from a fresh,
seeded initialisation.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from nar.console import DETAIL, progress_bar
from pipeline.errors import NarError

log = logging.getLogger(__name__)

VERSION = 1          # bump when the targets or the loop change: old caches are then ignored
HEADS = ("score_head.", "tier_head.", "aux_")  # trained from scratch on the labelled cells


def _edge_ops(model, x: torch.Tensor):
    """(adjacency (B, P, P) bool, per-edge op one-hot (B, P, P, K)): the op applied on the way
    into a vertex (ops on nodes: the receiving vertex's op; ops on edges: the edge's op)."""
    codes, adj = model.graph(x)
    a = adj > 0
    n = model.rc.op_onehot
    if model.rc.ops_on == "edges":
        onehot = F.one_hot(codes, n)[..., 1:]                       # (B, P, P, n-1), dead = none
    else:
        onehot = F.one_hot(codes, n)[:, None, :, 2:].expand(-1, a.shape[1], -1, -1)  # skip none, input
    return a, onehot.to(x.dtype) * a[..., None]


@torch.no_grad()
def structure_targets(model, x: torch.Tensor) -> torch.Tensor:
    """(B, K) structural quantities of each cell of ``x`` (vertex 0 input, vertex P-1 output),
    computed by dynamic programming over the vertices in topological order."""
    a, e = _edge_ops(model, x)
    b, p, _, k = e.shape
    af = a.to(x.dtype)
    paths = x.new_zeros(b, p)
    paths[:, 0] = 1
    through = x.new_zeros(b, p, k)       # sum over input paths of the op counts on them
    most = x.new_zeros(b, p, k)          # most occurrences of each op on one input path
    far = x.new_zeros(b, p)
    near = x.new_zeros(b, p)
    neg, pos = x.new_tensor(-1e9), x.new_tensor(1e9)
    for j in range(1, p):
        aj = af[:, :j, j]                                                  # (B, j)
        paths[:, j] = (aj * paths[:, :j]).sum(1)
        through[:, j] = (aj[..., None] * (through[:, :j] + paths[:, :j, None] * e[:, :j, j])).sum(1)
        reach = a[:, :j, j, None]
        most[:, j] = torch.where(reach, most[:, :j] + e[:, :j, j], neg).amax(1).clamp_min(0)
        far[:, j] = torch.where(a[:, :j, j], far[:, :j], neg).amax(1).clamp_min(-1) + 1
        near[:, j] = torch.where(a[:, :j, j], near[:, :j], pos).amin(1).clamp_max(p) + 1
    out = p - 1
    counts = e.sum((1, 2))
    cols = [torch.log1p(paths[:, out]), far[:, out], near[:, out], torch.log1p(through[:, out]),
            most[:, out], counts, a.sum((1, 2)).to(x.dtype)[:, None], af[:, :, out].sum(1, keepdim=True),
            af[:, 0].sum(1, keepdim=True), af[:, 0, out, None]]
    cols.append(model.log_costs(x))
    return torch.cat([c if c.dim() == 2 else c[:, None] for c in cols], 1)


def cache_path(store, cfg, source=None) -> Path:
    """Where the pre-trained encoder of (cells of ``source``, ranker, pretrain settings) is
    cached: beside the training ``store``."""
    from nar.data import store_fingerprint

    key = json.dumps({"v": VERSION, "store": store_fingerprint(source if source is not None else store),
                      "ranker": _encoder_settings(cfg.ranker),
                      "pretrain": {k: v for k, v in dataclasses.asdict(cfg.pretrain).items() if k != "store"}},
                     sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return Path(store.path).with_name(f"{Path(store.path).stem}.pretrain-{digest}.pt")


def _encoder_settings(rc) -> dict:
    """The ranker settings the pre-trained encoder depends on (not the auxiliary loss's weight)."""
    return {k: v for k, v in dataclasses.asdict(rc).items() if k != "structure_aux"}


def _pretrain_store(cfg, train_store):
    """The store whose cells are used: ``pretrain.store`` (same space) or the training store."""
    if not cfg.pretrain.store:
        return train_store
    from nar.data import open_store

    other = open_store(cfg.pretrain.store, bench=cfg.bench)
    if other.bench != train_store.bench:
        raise NarError(f"config key 'pretrain.store': {cfg.pretrain.store} holds NB{other.bench} cells but "
                       f"training uses NB{train_store.bench}; give a store of the same space or ''")
    return other


def _feature_rows(store, dataset: str, n_cells: int, seed: int) -> np.ndarray:
    n = len(store.data(dataset, "features"))
    if n_cells >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, n_cells, replace=False))


def _step(model, head, opt, x, y, step: int, pc, gen) -> None:
    """One AdamW step on a random batch: linear warm-up over 100 steps, then cosine decay."""
    rows = torch.randint(0, len(x), (pc.batch_size,), generator=gen)
    warm = min(1.0, (step + 1) / 100)
    for g in opt.param_groups:
        g["lr"] = pc.lr * warm * 0.5 * (1 + np.cos(np.pi * step / pc.steps))
    loss = F.mse_loss(head(model.encode(x[rows])), y[rows])
    if not torch.isfinite(loss):
        raise NarError(f"pre-training stopped: the loss is {loss.item()} at step {step + 1}; lower pretrain.lr")
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def pretrain_encoder(cfg, src, dataset: str, progress: bool = False) -> dict:
    """Run the pre-training on the cells of store ``src`` (no cache): returns the encoder's
    state dict (heads left out)."""
    from nar.data import load_features
    from nar.model import build_model

    pc = cfg.pretrain
    ds = dataset if dataset in src.datasets else src.datasets[0]
    x = torch.from_numpy(load_features(src, ds, _feature_rows(src, ds, pc.cells, pc.seed)))
    if not torch.isfinite(x).all():
        raise NarError(f"store {src.path}: features hold NaN or infinite values; check it with "
                       "`nar-cli verify` and re-run `nar-cli encode`")
    torch.manual_seed(pc.seed)
    model = build_model(dataclasses.replace(cfg.ranker, structure_aux=0.0))  # the encoder only
    model.fit_feature_scale(x)
    y = torch.cat([structure_targets(model, x[i:i + 8192]) for i in range(0, len(x), 8192)])
    y = (y - y.mean(0)) / y.std(0).clamp_min(1e-6)
    width = model.score_head[0].in_features
    head = torch.nn.Sequential(torch.nn.Linear(width, 128), torch.nn.ReLU(), torch.nn.Linear(128, y.shape[1]))
    opt = torch.optim.AdamW(list(model.parameters()) + list(head.parameters()), lr=pc.lr, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(pc.seed)
    t0 = time.perf_counter()
    model.train()
    bar = progress_bar(pc.steps, "pre-train", "step", enabled=progress)
    try:
        for step in range(pc.steps):
            _step(model, head, opt, x, y, step, pc, gen)
            bar.update(1)
            if (step + 1) % 500 == 0 or step + 1 == pc.steps:
                log.log(DETAIL, "pre-training step %d/%d (%.0f s)", step + 1, pc.steps, time.perf_counter() - t0)
    finally:
        bar.close()
    return {k: v.detach().clone() for k, v in model.state_dict().items() if not k.startswith(HEADS)}


def pretrained_encoder(cfg, store, dataset: str, progress: bool = False) -> dict | None:
    """The cached pre-trained encoder state for ``cfg`` (None when ``pretrain.steps`` is 0),
    computed and cached on first use."""
    if cfg.pretrain.steps <= 0:
        return None
    if cfg.ranker.encoder != "gated_graph":
        raise NarError("config key 'pretrain.steps' > 0 needs ranker.encoder gated_graph; "
                       "set pretrain.steps 0 for the patch transformer")
    src = _pretrain_store(cfg, store)
    path = cache_path(store, cfg, src)
    if path.is_file():
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            log.info("pre-trained encoder: %s (cached)", path)
            return state
        except Exception as e:  # noqa: BLE001 - a damaged cache is rebuilt
            log.warning("pre-trained encoder cache %s is unreadable (%s); pre-training again", path, e)
    t0 = time.perf_counter()
    state = pretrain_encoder(cfg, src, dataset, progress)
    from pipeline.atomic import atomic_path

    try:
        with atomic_path(path) as tmp:
            torch.save(state, tmp)
        log.info("pre-trained the encoder in %.0f s -> %s", time.perf_counter() - t0, path)
    except OSError as e:  # a read-only cache folder: use it without caching
        log.warning("could not cache the pre-trained encoder at %s (%s)", path, e)
    return state


def load_encoder(model, state: dict | None) -> None:
    """Copy a pre-trained encoder state into ``model`` (heads keep their fresh initialisation)."""
    if state is None:
        return
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shapes differ
        raise NarError(f"the pre-trained encoder does not fit this ranker ({str(e).splitlines()[-1].strip()}); "
                       "delete the cached .pretrain-*.pt file beside the store") from e
    wrong = [k for k in missing if not k.startswith(HEADS)] + list(unexpected)
    if wrong:
        raise NarError(f"the pre-trained encoder does not fit this ranker ({wrong[:3]}); delete the "
                       "cached .pretrain-*.pt file beside the store")

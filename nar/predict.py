"""Batched inference of ranker ensembles: the tier and score of every row of a feature array.

On CPU with more than one torch thread, batches are spread over that many Python threads that
each run torch with ONE thread: small per-cell graphs (7 vertices) make intra-op parallelism
mostly synchronisation, while whole batches in parallel keep both cores busy (whole NB101
space: ``bench/bench_default.py --parts space``). Each batch is computed exactly as it would be
alone, so the output does not depend on the number of threads (nor, without ``tta_orders``, on
the batch size: checked on 20,000 NB101 cells). Batches of 1024 7-vertex cells keep a member's
intermediate tensors in cache (8192: 35 % slower).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from nar.augment import topo_permute_101


def _one_batch(models, feats, i: int, batch_size: int, device, tta_orders: int):
    """(tier, score) of rows i .. i + batch_size (grad mode and autocast are per thread: set here)."""
    with torch.no_grad():
        x = torch.from_numpy(np.array(feats[i:i + batch_size], dtype=np.float32)).to(device)
        views = [x]
        if tta_orders > 0:
            gen = torch.Generator().manual_seed(i)
            views += [topo_permute_101(x.cpu(), gen).to(device) for _ in range(tta_orders)]
        prob, score = summed_outputs(models, views)
        return (prob.argmax(-1) + 1).cpu().numpy(), (score / (len(models) * len(views))).cpu().numpy()


def summed_outputs(models, views):
    """(tier probabilities, scores) of ``models`` summed over the models and the ``views`` (the
    same rows, e.g. vertex re-orderings); divided by their number they are the ensemble's two
    outputs. Call under no_grad."""
    prob, score = 0.0, 0.0
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=views[0].device.type == "cuda"):
        for view in views:
            for m in models:
                logits, s, _ = m(view)
                prob = prob + torch.softmax(logits.float(), -1)
                score = score + s.float()
    return prob, score


def predict_batched(models, feats, batch_size: int = 1024, device=None, tta_orders: int = 0):
    """Tier (1..n_tier, int64) and score (float64) of every row of ``feats`` (array or memmap).
    Ensembles average the tier probabilities and the scores of their members; with
    ``tta_orders`` > 0 (NB101) also over that many random topological re-orderings of each
    cell's vertices (seeded by the batch's first row: the same rows and batch size give the
    same orders)."""
    if isinstance(models, torch.nn.Module):
        models = [models]
    device = torch.device(device) if device is not None else next(models[0].parameters()).device
    n = len(feats)
    tiers = np.empty(n, np.int64)
    scores = np.empty(n, np.float64)
    starts = range(0, n, batch_size)
    states = [m.training for m in models]
    for m in models:
        m.eval()
    threads = torch.get_num_threads()
    workers = min(threads, len(starts)) if device.type == "cpu" else 1
    try:
        if workers > 1:
            torch.set_num_threads(1)
            with ThreadPoolExecutor(workers) as pool:
                done = pool.map(lambda i: _one_batch(models, feats, i, batch_size, device, tta_orders), starts)
                for i, (t, s) in zip(starts, done):
                    tiers[i:i + len(t)], scores[i:i + len(s)] = t, s
        else:
            for i in starts:
                t, s = _one_batch(models, feats, i, batch_size, device, tta_orders)
                tiers[i:i + len(t)], scores[i:i + len(s)] = t, s
    finally:
        torch.set_num_threads(threads)
        for m, t in zip(models, states):
            m.train(t)
    return tiers, scores

"""Training loop of the ranker on in-memory arrays (no DataLoader: batches are slices of a
seeded permutation of one tensor). Used by ``nar-cli train``, :func:`nar.api.fit` and the
search's query-efficient fine-tuning."""
from __future__ import annotations

import copy
import logging
import time

import numpy as np
import torch

from nar.augment import augment_batch
from nar.config import Config
from nar.console import DETAIL, progress_bar
from nar.metrics import assign_tiers, tier_labels, tier_thresholds
from nar.model import NARanker, build_model, nar_loss
from nar.predict import predict_batched  # noqa: F401  (re-exported: callers import it from here)
from nar.pretrain import load_encoder
from nar.rankstats import kendalltau
from pipeline.errors import NarError

log = logging.getLogger(__name__)


def select_device(cfg: Config) -> torch.device:
    """cuda when available and allowed (device auto/cuda and is_cuda), else cpu."""
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise NarError("config device 'cuda' but CUDA is not available; use --set device=auto")
    if cfg.device != "cpu" and cfg.is_cuda and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def learning_rate(step: int, cfg: Config) -> float:
    """lr_mul * d_model^-0.5 * min(step^-0.5, step * warmup^-1.5), step counted from 1."""
    s = max(int(step), 1)
    w = cfg.lr_scheduler.n_warmup_steps
    return cfg.lr_scheduler.lr_mul * cfg.ranker.d_model ** -0.5 * min(s ** -0.5, s * w ** -1.5)


def average_model(model: NARanker, param_sums: dict, count: int) -> NARanker:
    """A copy of ``model`` whose parameters are ``param_sums[name] / count``."""
    avg = copy.deepcopy(model)
    with torch.no_grad():
        for name, p in avg.named_parameters():
            p.copy_(param_sums[name] / count)
    return avg


def _batches(n: int, bs: int, drop_last: bool, gen: torch.Generator):
    perm = torch.randperm(n, generator=gen)
    stop = (n // bs) * bs if drop_last and n >= bs else n
    return [perm[i:i + bs] for i in range(0, stop, bs)]


def train_ranker(cfg: Config, feats, labels, val_feats, val_labels, init: NARanker | None = None,
                 run=None, *, progress=False, encoder_state: dict | None = None):
    """Train one ranker; ``labels`` are accuracies (cut into tiers here). Returns (model, history):
    the model of the best validation Kendall tau with exact tier embeddings over the training
    set, and one dict per epoch. ``init`` (an existing model, copied) is fine-tuned instead of
    a fresh one; ``encoder_state`` (nar/pretrain.py) starts a fresh one from a pre-trained
    encoder. ``run`` (optional) gets ``on_epoch(row)`` and ``on_finish(last, best)``.
    ``progress``: True for a bar of its own, or a bar (``update(n)``) shared with other work, such
    as the other members of an ensemble; each epoch's line is logged at the DETAIL level.
    With ``cfg.swa_epochs`` > 0 (improved config) the returned "best" model is instead the
    uniform average of the weights after each of the last ``swa_epochs`` epochs."""
    labels = np.asarray(labels, dtype=np.float64)
    val_labels = np.asarray(val_labels, dtype=np.float64)
    for what, arr in (("training labels", labels), ("validation labels", val_labels)):
        if not np.isfinite(arr).all():
            raise NarError(f"{what} hold NaN or infinite values; train only on architectures with a "
                           "known accuracy (check the data with `nar-cli verify`)")
    tiers_np, thresholds = tier_labels(labels, cfg.ranker.n_tier), tier_thresholds(labels, cfg.ranker.n_tier)
    val_tiers = assign_tiers(val_labels, thresholds)
    device = select_device(cfg)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    aug_gen = torch.Generator().manual_seed(cfg.seed + 1)  # own stream: batch order unchanged by augment

    x = torch.from_numpy(np.ascontiguousarray(feats, dtype=np.float32)).to(device)
    y = torch.from_numpy(labels).to(device)
    t = torch.from_numpy(tiers_np).to(device)
    if init is None:
        model = build_model(cfg.ranker)
        load_encoder(model, encoder_state)
        model = model.to(device)
        model.fit_feature_scale(x, cfg.feature_scale)
    else:
        model = copy.deepcopy(init).to(device)
    o = cfg.optimizer
    opt = torch.optim.AdamW(model.parameters(), lr=learning_rate(1, cfg), betas=(o.beta1, o.beta2),
                            eps=o.eps, weight_decay=o.weight_decay)
    epochs = range(cfg.start_epochs, cfg.ranker_epochs)
    batch_size = cfg.train_bs
    if cfg.batches_per_epoch > 0:
        batch_size = max(batch_size, -(-len(x) // cfg.batches_per_epoch))
    log.log(DETAIL, "training batch size %d, %d training cells", batch_size, len(x))
    own_bar = not hasattr(progress, "update")
    bar = progress_bar(len(epochs), "train", "epoch", enabled=bool(progress)) if own_bar else progress
    try:
        history, best_state, swa_sum, swa_n = _epochs(cfg, model, opt, x, y, t, val_feats, val_labels, val_tiers,
                                                      epochs, batch_size, gen, aug_gen, device, run, bar)
    finally:
        if own_bar:
            bar.close()
    return _finish(cfg, model, history, best_state, swa_sum, swa_n, x, t, val_feats, val_labels, device, run)


def _epochs(cfg, model, opt, x, y, t, val_feats, val_labels, val_tiers, epochs, batch_size, gen, aug_gen,
            device, run, bar):
    """The epochs of :func:`train_ranker`; returns (history, best state, SWA sums, SWA count)."""
    amp = device.type == "cuda"
    history, best_tau, best_state, step = [], -np.inf, None, 0
    swa_from = cfg.ranker_epochs - cfg.swa_epochs if cfg.swa_epochs > 0 else None
    swa_sum, swa_n = None, 0
    for epoch in epochs:
        t0 = time.perf_counter()
        model.train()
        model.reset_tier_counts()
        tot = ce_sum = rank_sum = 0.0
        correct = seen = 0
        for idx in _batches(len(x), batch_size, cfg.drop_last, gen):
            idx = idx.to(device)
            step += 1
            lr = learning_rate(step, cfg)
            for g in opt.param_groups:
                g["lr"] = lr
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
                xb = augment_batch(x[idx], cfg.augment, aug_gen)
                logits, score, enc = model(xb)
                loss, ce, rank = nar_loss(logits, score, t[idx], y[idx], cfg.aux_loss, cfg.loss_factor,
                                          cfg.rank_loss)
                if cfg.ranker.structure_aux > 0:
                    loss = loss + cfg.ranker.structure_aux * model.structure_loss(xb, enc)
            if not torch.isfinite(loss):
                raise NarError(f"training stopped: the loss is {loss.item()} at epoch {epoch + 1}, step "
                               f"{step}; no checkpoint was written. Check the data (`nar-cli verify STORE`) "
                               "or lower lr_scheduler.lr_mul")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            model.update_tier_emb(enc, t[idx])
            k = len(idx)
            tot += loss.item() * k
            ce_sum += ce.item() * k
            rank_sum += rank.item() * k
            correct += int((logits.argmax(-1) + 1 == t[idx]).sum())
            seen += k
        row = {"epoch": epoch + 1, "loss": tot / seen, "tier_loss": ce_sum / seen,
               "rank_loss": rank_sum / seen, "lr": lr, "train_tier_acc": correct / seen}
        if len(val_labels) and ((epoch + 1) % cfg.validate_freq == 0 or epoch + 1 == cfg.ranker_epochs):
            vt, vs = predict_batched([model], val_feats, cfg.val_bs, device)
            tau = kendalltau(vs, val_labels)
            row.update(val_tier_acc=float((vt == val_tiers).mean()), val_kendalltau=tau)
            if np.isfinite(tau) and tau > best_tau:
                best_tau = tau
                best_state = copy.deepcopy(model.state_dict())
                row["best"] = True
        if swa_from is not None and epoch >= swa_from:
            params = {k: v.detach().float().clone() for k, v in model.named_parameters()}
            swa_sum = params if swa_sum is None else {k: swa_sum[k] + params[k] for k in params}
            swa_n += 1
        row["time"] = time.perf_counter() - t0
        history.append(row)
        log.log(DETAIL, "epoch %d loss %.4f lr %.2e train tier acc %.3f val tier acc %s val tau %s",
                row["epoch"], row["loss"], lr, row["train_tier_acc"],
                f"{row.get('val_tier_acc', float('nan')):.3f}", f"{row.get('val_kendalltau', float('nan')):.4f}")
        if run is not None:
            run.on_epoch(row)
        bar.update(1)
    return history, best_state, swa_sum, swa_n


def _finish(cfg, model, history, best_state, swa_sum, swa_n, x, t, val_feats, val_labels, device, run):
    """The last and the returned model of :func:`train_ranker` (weight average, best epoch or last)."""
    model.recompute_tier_emb(x, t, cfg.val_bs)
    last = model
    best = model
    if swa_n > 0:
        best = average_model(model, swa_sum, swa_n)
        best.recompute_tier_emb(x, t, cfg.val_bs)
        if len(val_labels) > 1:
            _, vs = predict_batched([best], val_feats, cfg.val_bs, device)
            log.log(DETAIL, "weight average of the last %d epochs: val tau %.4f", swa_n,
                    kendalltau(vs, val_labels))
    elif best_state is not None and history and not history[-1].get("best"):
        best = copy.deepcopy(model)
        best.load_state_dict(best_state)
        best.recompute_tier_emb(x, t, cfg.val_bs)
    last.eval()
    best.eval()
    if run is not None:
        run.on_finish(last, best)
    return best, history

"""The Neural Architecture Ranker network (docs/method.md, section 5) and its training loss.

Input: raw ReNAS feature tensors (B, C, P, P). The model holds, as buffers saved with its
weights, the feature transform (optional log1p, per-element shift/scale fitted on the
training set) and the tier embeddings (n_tier, C, d), so a checkpoint predicts on its own.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nar.config import RankerConfig
from nar.layers import DecoderLayer, EncoderLayer, init_weights, sinusoid_table
from pipeline.errors import NarError


class NARanker(nn.Module):
    def __init__(self, rc: RankerConfig):
        super().__init__()
        self.rc = rc
        C, P, d = rc.n_arch_patch, rc.d_patch, rc.d_model
        self.patch_proj = nn.Linear(P * P, rc.d_patch_vec)
        # improved option: channel 0's integer codes one-hot (n_code * P * P) -> token 0
        self.op_proj = nn.Linear(rc.op_onehot * P * P, rc.d_patch_vec) if rc.op_onehot > 0 else None
        self.to_model = nn.Linear(rc.d_patch_vec, d) if rc.d_patch_vec != d else nn.Identity()
        self.register_buffer("pos_table", sinusoid_table(rc.n_position, d), persistent=False)
        self.drop = nn.Dropout(rc.dropout)
        self.norm = nn.LayerNorm(d, eps=1e-6)
        layer_args = (d, rc.d_ffn_inner, rc.n_head, rc.d_k, rc.d_v, rc.dropout)
        self.encoder = nn.ModuleList(EncoderLayer(*layer_args) for _ in range(rc.n_layers))
        self.decoder = nn.ModuleList(DecoderLayer(*layer_args) for _ in range(rc.n_layers))
        self.score_head = nn.Sequential(nn.Linear(C * d, rc.d_val_acc_prj_inner), nn.ReLU(),
                                        nn.Dropout(rc.dropout), nn.Linear(rc.d_val_acc_prj_inner, 1))
        self.tier_head = nn.Sequential(nn.Linear(C * d, rc.d_tier_prj_inner), nn.ReLU(),
                                       nn.Dropout(rc.dropout), nn.Linear(rc.d_tier_prj_inner, rc.n_tier))
        init_weights(self)
        self.register_buffer("tier_emb", torch.zeros(rc.n_tier, C, d))
        self.register_buffer("tier_count", torch.zeros(rc.n_tier))
        self.register_buffer("feat_log", torch.zeros((), dtype=torch.bool))
        self.register_buffer("feat_shift", torch.zeros(C, P, P))
        self.register_buffer("feat_scale", torch.ones(C, P, P))

    # --- features -------------------------------------------------------------------------
    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """Raw features -> network input (identity unless feature scaling was fitted)."""
        if bool(self.feat_log):
            x = torch.log1p(x.clamp_min(0))
        return (x - self.feat_shift) * self.feat_scale

    def fit_feature_scale(self, feats: torch.Tensor, mode: str) -> None:
        """Fit the transform on training features: none | log1p | standardize | log1p_standardize.
        Standardisation is per element (C, P, P); constant elements keep scale 1."""
        self.feat_log.fill_(mode in ("log1p", "log1p_standardize"))
        self.feat_shift.zero_()
        self.feat_scale.fill_(1.0)
        if mode in ("standardize", "log1p_standardize"):
            x = self.transform(feats.float())
            mean, std = x.mean(0), x.std(0)
            self.feat_shift.copy_(mean)
            self.feat_scale.copy_(torch.where(std > 1e-8, 1.0 / std.clamp_min(1e-8), torch.ones_like(std)))

    def op_codes_onehot(self, plane: torch.Tensor) -> torch.Tensor:
        """(B, P, P) raw integer codes of channel 0 -> (B, op_onehot * P * P) one-hot."""
        n = self.rc.op_onehot
        codes = plane.round().long()
        if bool(((codes < 0) | (codes >= n)).any()):
            raise NarError(f"feature channel 0 holds codes outside 0..{n - 1}; raise ranker.op_onehot "
                           "or set it to 0")
        return F.one_hot(codes, n).to(plane.dtype).flatten(1)

    # --- network --------------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, P, P) raw features -> E (B, C, d)."""
        b, c = x.shape[:2]
        h = self.patch_proj(self.transform(x).reshape(b, c, -1))
        if self.op_proj is not None:
            h = torch.cat([self.op_proj(self.op_codes_onehot(x[:, 0]))[:, None], h[:, 1:]], 1)
        h = self.to_model(h)
        h = self.norm(self.drop(h + self.pos_table[:c]))
        for layer in self.encoder:
            h = layer(h)
        return h

    def score(self, enc: torch.Tensor) -> torch.Tensor:
        """E -> one relative-quality scalar per architecture (higher is better)."""
        return self.score_head(enc.flatten(1)).squeeze(-1)

    def tier_logits(self, enc: torch.Tensor) -> torch.Tensor:
        """E -> (B, n_tier) logits: one decoder pass with every tier folded into the batch
        (architecture-major: row b * n_tier + t is tier t's target for architecture b)."""
        n_tier = self.tier_emb.shape[0]
        b, c, d = enc.shape
        emb = self.tier_emb.to(enc.dtype)
        first = self.decoder[0]
        if self.training:
            tgt, done = emb[None].expand(b, n_tier, c, d).reshape(b * n_tier, c, d), False
        else:  # without dropout the first self-attention is the same for every architecture
            tgt, done = first.self_block(emb)[None].expand(b, n_tier, c, d).reshape(b * n_tier, c, d), True
        tgt = first(tgt, enc, self_done=done)
        for layer in self.decoder[1:]:
            tgt = layer(tgt, enc)
        out = tgt.view(b, n_tier, c, d).sum(1).flatten(1)
        logits = self.tier_head(out)
        return logits * d ** -0.5 if self.rc.scale_prj else logits

    def forward(self, x: torch.Tensor):
        """Returns (tier logits (B, n_tier), score (B,), E (B, C, d))."""
        enc = self.encode(x)
        return self.tier_logits(enc), self.score(enc), enc

    # --- tier embeddings ------------------------------------------------------------------
    def reset_tier_counts(self) -> None:
        """Start a new running mean: the next update of a tier replaces its embedding."""
        self.tier_count.zero_()

    @torch.no_grad()
    def update_tier_emb(self, enc: torch.Tensor, tiers: torch.Tensor) -> None:
        """Fold E of a batch into each tier's running mean; ``tiers`` in 1..n_tier."""
        n_tier = self.tier_emb.shape[0]
        onehot = F.one_hot(tiers.long() - 1, n_tier).to(torch.float32)  # (B, T)
        sums = torch.einsum("bt,bcd->tcd", onehot, enc.detach().float())
        counts = onehot.sum(0)
        new = self.tier_count + counts
        seen = counts > 0
        upd = self.tier_emb + (sums - counts[:, None, None] * self.tier_emb) / new.clamp_min(1)[:, None, None]
        self.tier_emb.copy_(torch.where(seen[:, None, None], upd, self.tier_emb))
        self.tier_count.copy_(new)

    @torch.no_grad()
    def recompute_tier_emb(self, feats: torch.Tensor, tiers: torch.Tensor, batch_size: int = 1024) -> None:
        """Exact per-tier means of E over ``feats`` in eval mode (order independent)."""
        was_training = self.training
        self.eval()
        self.reset_tier_counts()
        self.tier_emb.zero_()
        for i in range(0, len(feats), batch_size):
            self.update_tier_emb(self.encode(feats[i:i + batch_size]), tiers[i:i + batch_size])
        self.train(was_training)


def build_model(rc: RankerConfig) -> nn.Module:
    """The ranker network of ``rc.encoder``: the paper's patch transformer or the gated graph
    ranker (nar/graph_ranker.py); both map (B, C, P, P) features to (tier logits, score, E)."""
    if rc.encoder == "gated_graph":
        from nar.graph_ranker import GatedGraphRanker
        return GatedGraphRanker(rc)
    return NARanker(rc)


def pairwise_rank_loss(score: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean over ordered pairs with y_i != y_j of log(1 + exp(-(s_i - s_j) sign(y_i - y_j)))."""
    sign = torch.sign(y[:, None] - y[None, :])
    mask = sign != 0
    if not bool(mask.any()):
        return score.sum() * 0.0
    diff = score[:, None] - score[None, :]
    return F.softplus(-diff * sign)[mask].mean()


def listmle_loss(score: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """ListMLE: negative log Plackett-Luce likelihood of the order of ``y`` (best first) under
    ``score``, divided by the list length."""
    s = score[torch.argsort(y, descending=True)]
    tail_lse = torch.logcumsumexp(s.flip(0), 0).flip(0)  # log sum_{j >= i} exp(s_j)
    return (tail_lse - s).mean()


RANK_LOSSES = {"pairwise": pairwise_rank_loss, "listmle": listmle_loss}


def nar_loss(logits, score, tiers, y, aux_loss: bool, loss_factor: float, rank_loss: str = "pairwise"):
    """Cross-entropy of tier logits vs the one-hot tier (+ loss_factor x ranking loss on the
    score: pairwise (paper) or listmle). Returns (total, tier loss, ranking loss)."""
    ce = F.cross_entropy(logits.float(), tiers.long() - 1)
    rank = RANK_LOSSES[rank_loss](score.float(), y.float()) if aux_loss else ce.new_zeros(())
    return ce + loss_factor * rank, ce, rank

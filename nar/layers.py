"""Transformer building blocks of the ranker: sinusoidal positions, multi-head attention with
per-head d_k/d_v, position-wise FFN, post-norm encoder and decoder layers."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def sinusoid_table(n_position: int, d: int) -> torch.Tensor:
    """(n_position, d) table: sin on even, cos on odd dimensions."""
    pos = torch.arange(n_position, dtype=torch.float64)[:, None]
    i = torch.arange(d, dtype=torch.float64)[None, :]
    angle = pos / torch.pow(10000.0, 2 * torch.div(i, 2, rounding_mode="floor") / d)
    table = torch.where(i % 2 == 0, torch.sin(angle), torch.cos(angle))
    return table.float()


class MultiHeadAttention(nn.Module):
    """Scaled dot-product attention over n_head heads of width d_k (queries/keys) and d_v."""

    def __init__(self, d_model: int, n_head: int, d_k: int, d_v: int, dropout: float):
        super().__init__()
        self.n_head, self.d_k, self.d_v = n_head, d_k, d_v
        self.w_q = nn.Linear(d_model, n_head * d_k, bias=False)
        self.w_k = nn.Linear(d_model, n_head * d_k, bias=False)
        self.w_v = nn.Linear(d_model, n_head * d_v, bias=False)
        self.fc = nn.Linear(n_head * d_v, d_model, bias=False)
        self.attn_dropout = dropout

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        b, lq, _ = q.shape
        lk = k.shape[1]
        h = self.n_head
        q = self.w_q(q).view(b, lq, h, self.d_k).transpose(1, 2)
        k = self.w_k(k).view(b, lk, h, self.d_k).transpose(1, 2)
        v = self.w_v(v).view(b, lk, h, self.d_v).transpose(1, 2)
        p = self.attn_dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=p)
        return self.fc(out.transpose(1, 2).reshape(b, lq, h * self.d_v))


class FeedForward(nn.Module):
    def __init__(self, d_model: int, d_inner: int):
        super().__init__()
        self.w_1 = nn.Linear(d_model, d_inner)
        self.w_2 = nn.Linear(d_inner, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w_2(F.relu(self.w_1(x)))


class EncoderLayer(nn.Module):
    """Post-norm: x = LN(x + drop(MHA(x))); x = LN(x + drop(FFN(x)))."""

    def __init__(self, d_model, d_inner, n_head, d_k, d_v, dropout):
        super().__init__()
        self.attn = MultiHeadAttention(d_model, n_head, d_k, d_v, dropout)
        self.ffn = FeedForward(d_model, d_inner)
        self.norm1 = nn.LayerNorm(d_model, eps=1e-6)
        self.norm2 = nn.LayerNorm(d_model, eps=1e-6)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x + self.drop(self.attn(x, x, x)))
        return self.norm2(x + self.drop(self.ffn(x)))


class DecoderLayer(nn.Module):
    """Post-norm: self-attention on the target, attention to the memory, FFN.

    Several targets per memory are folded into the batch, memory-major: x is (B * n_tgt, L, d)
    and memory (B, M, d). Attention to the memory then runs on x viewed as (B, n_tgt * L, d):
    each query row attends independently, so this equals running every target separately,
    with the memory's keys and values projected once."""

    def __init__(self, d_model, d_inner, n_head, d_k, d_v, dropout):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, n_head, d_k, d_v, dropout)
        self.cross_attn = MultiHeadAttention(d_model, n_head, d_k, d_v, dropout)
        self.ffn = FeedForward(d_model, d_inner)
        self.norm1 = nn.LayerNorm(d_model, eps=1e-6)
        self.norm2 = nn.LayerNorm(d_model, eps=1e-6)
        self.norm3 = nn.LayerNorm(d_model, eps=1e-6)
        self.drop = nn.Dropout(dropout)

    def self_block(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm1(x + self.drop(self.self_attn(x, x, x)))

    def forward(self, x: torch.Tensor, memory: torch.Tensor, self_done: bool = False) -> torch.Tensor:
        """``self_done``: x already went through :meth:`self_block`."""
        if not self_done:
            x = self.self_block(x)
        b, m, d = memory.shape
        bt, lq, _ = x.shape
        q = x.reshape(b, (bt // b) * lq, d)
        x = self.norm2(x + self.drop(self.cross_attn(q, memory, memory).reshape(bt, lq, d)))
        return self.norm3(x + self.drop(self.ffn(x)))


def init_weights(module: nn.Module) -> None:
    """Xavier-uniform for every weight matrix (the usual choice for this transformer)."""
    for p in module.parameters():
        if p.dim() > 1:
            nn.init.xavier_uniform_(p)


__all__ = ["sinusoid_table", "MultiHeadAttention", "FeedForward", "EncoderLayer", "DecoderLayer",
           "init_weights"]

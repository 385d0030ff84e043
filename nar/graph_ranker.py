"""The gated graph ranker: the project's default encoder (``ranker.encoder: gated_graph``).

It reads the same ReNAS feature tensor as the paper's patch transformer (so stores, search
and checkpoints are shared) but treats the cell as the graph it is. Channel 0 of the tensor
holds the structure: for ops on nodes (NAS-Bench-101) entry (i, j) is A[i, j] times the type
code of vertex j, with the input at vertex 0 and the output at vertex P-1; for ops on edges
(NAS-Bench-201) it is the op index of edge i -> j, 0 meaning "none".

Information flows through the cell as it does in the network: vertex 0 starts from a learned
vector; in each of ``n_layers`` passes every vertex, in topological order, sums the messages
of its predecessors, each message a linear map of the predecessor's state gated by an
op-dependent sigmoid (ops on edges: the gate and a bias belong to the edge's op; ops on nodes:
to the receiving vertex's op), and adds the result to its state through a ReLU and a
LayerNorm. The readout is the output vertex's state and the mean state of the other vertices,
optionally with the log of the cell's FLOPs and params summed from the tensor's cost channels.
Two heads give NAR's two outputs: a score (higher is better) and n_tier tier logits.

Properties the design buys: the prediction does not depend on how the vertices of a cell are
numbered (NB101 isomorphic cells get one score, no re-ordering augmentation needed), and ops
on edges that lie on no input -> output path are ignored (NB201 cells that differ only in dead
edges are the same network and get one score).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.errors import NarError


def live_edges(ops: torch.Tensor) -> torch.Tensor:
    """(B, P, P) op indices on the edges (0 = none) -> bool mask of the edges that lie on an
    input (vertex 0) -> output (vertex P-1) path of non-none edges."""
    live = torch.triu(ops != 0, diagonal=1)
    b, p = ops.shape[:2]
    fwd = torch.zeros(b, p, dtype=torch.bool, device=ops.device)
    fwd[:, 0] = True
    for j in range(1, p):
        fwd[:, j] = (live[:, :j, j] & fwd[:, :j]).any(1)
    bwd = torch.zeros_like(fwd)
    bwd[:, p - 1] = True
    for i in range(p - 2, -1, -1):
        bwd[:, i] = (live[:, i, i + 1:] & bwd[:, i + 1:]).any(1)
    return live & fwd[:, :, None] & bwd[:, None, :]


class GatedGraphRanker(nn.Module):
    """Same interface as :class:`nar.model.NARanker`: ``forward(x) -> (tier logits, score, readout)``."""

    def __init__(self, rc):
        super().__init__()
        if rc.op_onehot < 2:
            raise NarError("ranker.encoder gated_graph needs ranker.op_onehot = the number of op codes "
                           "in feature channel 0 (6 for NB101, 5 for NB201)")
        if rc.ops_on not in ("nodes", "edges"):
            raise NarError(f"config key 'ranker.ops_on': {rc.ops_on!r}; use nodes or edges")
        self.rc = rc
        d, n_codes, layers = rc.d_model, rc.op_onehot, rc.n_layers
        self.start = nn.Parameter(torch.randn(d) * 0.5)
        self.gate = nn.ModuleList(nn.Embedding(n_codes, d) for _ in range(layers))
        self.bias = nn.ModuleList(nn.Embedding(n_codes, d) for _ in range(layers))
        self.message = nn.ModuleList(nn.Linear(d, d, bias=False) for _ in range(layers))
        self.norm = nn.ModuleList(nn.LayerNorm(d) for _ in range(layers))
        n_back = layers if rc.backward_pass else 0
        self.back_gate = nn.ModuleList(nn.Embedding(n_codes, d) for _ in range(n_back))
        self.back_message = nn.ModuleList(nn.Linear(d, d, bias=False) for _ in range(n_back))
        self.back_norm = nn.ModuleList(nn.LayerNorm(d) for _ in range(n_back))
        n_read = 2 * d + (2 if rc.global_features else 0)
        self.score_head = nn.Sequential(nn.Linear(n_read, rc.d_val_acc_prj_inner), nn.ReLU(),
                                        nn.Dropout(rc.dropout), nn.Linear(rc.d_val_acc_prj_inner, 1))
        self.tier_head = nn.Sequential(nn.Linear(n_read, rc.d_tier_prj_inner), nn.ReLU(),
                                       nn.Dropout(rc.dropout), nn.Linear(rc.d_tier_prj_inner, rc.n_tier))
        # log FLOPs / params standardisation, fitted on the training set (fit_feature_scale)
        self.register_buffer("cost_shift", torch.zeros(2))
        self.register_buffer("cost_scale", torch.ones(2))
        if rc.structure_aux > 0:  # built last: configs without it initialise exactly as before
            k = n_codes - (1 if rc.ops_on == "edges" else 2)  # op types counted by the structure targets
            self.aux_head = nn.Sequential(nn.Linear(n_read, 128), nn.ReLU(), nn.Linear(128, 3 * k + 9))
            self.register_buffer("aux_shift", torch.zeros(3 * k + 9))
            self.register_buffer("aux_scale", torch.ones(3 * k + 9))

    # --- features -------------------------------------------------------------------------
    def log_costs(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 2) log1p of the cell's total FLOPs and params as the cost channels hold them
        (odd channels FLOPs, even channels params; per vertex the column maximum for ops on
        nodes, every entry for ops on edges)."""
        cost = x[:, 1:].clamp_min(0)
        per = cost.amax(2).sum(-1) if self.rc.ops_on == "nodes" else cost.sum((2, 3))
        return torch.log1p(torch.stack([per[:, 0::2].sum(1), per[:, 1::2].sum(1)], 1))

    def fit_feature_scale(self, feats: torch.Tensor, mode: str = "") -> None:
        """Standardise the log costs on the training features (``mode`` is not used)."""
        c = self.log_costs(feats.float())
        self.cost_shift.copy_(c.mean(0))
        self.cost_scale.copy_(1.0 / c.std(0).clamp_min(1e-6) if len(c) > 1 else torch.ones(2))
        if self.rc.structure_aux > 0:
            from nar.pretrain import structure_targets

            t = torch.cat([structure_targets(self, feats[i:i + 8192].float()) for i in range(0, len(feats), 8192)])
            self.aux_shift.copy_(t.mean(0))
            self.aux_scale.copy_(1.0 / t.std(0).clamp_min(1e-6) if len(t) > 1 else torch.ones_like(self.aux_scale))

    def structure_loss(self, x: torch.Tensor, enc: torch.Tensor) -> torch.Tensor:
        """MSE of the auxiliary head's prediction of the standardised structural quantities of
        the cells ``x`` (nar/pretrain.py) from their readout ``enc`` (``ranker.structure_aux``):
        keeps the structure the pre-training taught in the readout while the scores are fitted
        to few labels."""
        from nar.pretrain import structure_targets

        target = (structure_targets(self, x) - self.aux_shift) * self.aux_scale
        return F.mse_loss(self.aux_head(enc).float(), target.float())

    def graph(self, x: torch.Tensor):
        """Channel 0 -> (codes, adjacency): ops on nodes: codes (B, P) with the input's code
        at vertex 0 and adjacency (B, P, P) float; ops on edges: codes (B, P, P) with dead
        edges set to 0 (none) and the live-edge mask as adjacency."""
        plane = x[:, 0].round().long()
        n = self.rc.op_onehot
        if bool(((plane < 0) | (plane >= n)).any()):
            raise NarError(f"feature channel 0 holds codes outside 0..{n - 1}; check ranker.op_onehot "
                           "against the store's space")
        if self.rc.ops_on == "edges":
            live = live_edges(plane)
            return plane * live, live.to(x.dtype)
        adj = torch.triu(plane > 0, diagonal=1)
        codes = plane.amax(1)
        codes[:, 0] = 1  # vertex 0 is the input (code 1 in NB101's channel 0)
        return codes, adj.to(x.dtype)

    # --- network --------------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, P, P) raw features -> readout (B, 2d [+2])."""
        codes, adj = self.graph(x)
        b, p = adj.shape[:2]
        edges = self.rc.ops_on == "edges"
        # a vertex takes part when it has an in-edge (input always); padding vertices keep 0
        active = adj.amax(1) > 0
        active[:, 0] = True
        states = [self.start.expand(b, -1)] + [x.new_zeros(b, self.rc.d_model) for _ in range(p - 1)]
        for layer, (gate_emb, bias_emb, msg, norm) in enumerate(zip(self.gate, self.bias, self.message, self.norm)):
            gate, bias = torch.sigmoid(gate_emb(codes)), bias_emb(codes)
            new, sent = [states[0]], [msg(states[0])]
            for j in range(1, p):
                a = adj[:, :j, j, None]                                    # (B, j, 1)
                if edges:
                    m = (a * (gate[:, :j, j] * torch.stack(sent, 1) + bias[:, :j, j])).sum(1)
                else:
                    m = gate[:, j] * (a * torch.stack(sent, 1)).sum(1) + bias[:, j]
                h = norm(states[j] + F.relu(m))
                h = torch.where(active[:, j, None], h, states[j])
                new.append(h)
                sent.append(msg(h))
            states = new
            if self.rc.backward_pass:
                states = self._backward(states, codes, adj, active, layer)
        h = torch.stack(states, 1)                                         # (B, P, d)
        inner = active.clone()
        inner[:, 0] = False
        mean = (h * inner[..., None]).sum(1) / inner.sum(1, keepdim=True).clamp_min(1)
        parts = [h[:, p - 1], mean]
        if self.rc.global_features:
            parts.append((self.log_costs(x) - self.cost_shift) * self.cost_scale)
        return torch.cat(parts, -1)

    def _backward(self, states, codes, adj, active, layer):
        """One pass against the edges, output first: each vertex adds the gated messages of
        its successors (what its output feeds), so a state also describes its downstream."""
        p = len(states)
        gate = torch.sigmoid(self.back_gate[layer](codes))
        msg, norm = self.back_message[layer], self.back_norm[layer]
        new = list(states)
        sent = {p - 1: msg(states[p - 1])}
        for i in range(p - 2, -1, -1):
            a = adj[:, i, i + 1:, None]                                    # (B, p-1-i, 1)
            back = torch.stack([sent[j] for j in range(i + 1, p)], 1)
            if self.rc.ops_on == "edges":
                m = (a * gate[:, i, i + 1:] * back).sum(1)
            else:
                m = (a * gate[:, i + 1:] * back).sum(1)
            h = norm(states[i] + F.relu(m))
            new[i] = torch.where(active[:, i, None], h, states[i])
            sent[i] = msg(new[i])
        return new

    def score(self, enc: torch.Tensor) -> torch.Tensor:
        return self.score_head(enc).squeeze(-1)

    def tier_logits(self, enc: torch.Tensor) -> torch.Tensor:
        return self.tier_head(enc)

    def forward(self, x: torch.Tensor):
        enc = self.encode(x)
        return self.tier_logits(enc), self.score(enc), enc

    # --- NARanker's tier-embedding hooks: this model classifies tiers from its readout ------
    def reset_tier_counts(self) -> None:
        pass

    def update_tier_emb(self, enc: torch.Tensor, tiers: torch.Tensor) -> None:
        pass

    def recompute_tier_emb(self, feats: torch.Tensor, tiers: torch.Tensor, batch_size: int = 1024) -> None:
        pass

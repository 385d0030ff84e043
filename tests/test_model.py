"""The ranker network: batched decoder vs a per-tier loop, tier embeddings, loss, lr schedule."""
import dataclasses
import math

import numpy as np
import pytest
import torch

from nar.config import Config, RankerConfig
from nar.model import build_model, nar_loss, pairwise_rank_loss
from nar.train import learning_rate

TINY = RankerConfig(n_tier=5, n_arch_patch=31, d_patch=4, d_patch_vec=16, d_model=16, d_ffn_inner=32,
                    d_tier_prj_inner=32, n_layers=2, n_head=2, d_k=8, d_v=8, dropout=0.1,
                    d_val_acc_prj_inner=32)


def _model(seed=0, **kw):
    torch.manual_seed(seed)
    rc = RankerConfig(**{**TINY.__dict__, **kw})
    return build_model(rc)


@pytest.mark.parametrize("training", [False, True])
def test_batched_decoder_equals_per_tier_loop(training):
    m = _model(d_patch_vec=24, dropout=0.0)  # d_patch_vec != d_model exercises the extra projection
    m.train(training)  # eval mode shares the first self-attention across architectures
    m.tier_emb.copy_(torch.randn_like(m.tier_emb))
    x = torch.rand(7, 31, 4, 4) * 3
    with torch.no_grad():
        logits, score, enc = m(x)
        total = 0
        for t in range(m.tier_emb.shape[0]):
            h = m.tier_emb[t].expand(len(x), -1, -1)
            for layer in m.decoder:
                h = layer(h, enc)
            total = total + h
        ref = m.tier_head(total.flatten(1)) * m.rc.d_model ** -0.5
    assert logits.shape == (7, 5) and score.shape == (7,) and enc.shape == (7, 31, 16)
    assert torch.allclose(logits, ref, atol=1e-5)
    assert not torch.allclose(logits[0], logits[1])  # inputs matter


def test_running_mean_and_exact_recompute_are_order_independent():
    m = _model().eval()
    enc = torch.randn(12, 31, 16)
    tiers = torch.tensor([1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 1, 1])
    m.update_tier_emb(enc[:5], tiers[:5])
    m.update_tier_emb(enc[5:], tiers[5:])
    for t in range(1, 6):
        assert torch.allclose(m.tier_emb[t - 1], enc[tiers == t].mean(0), atol=1e-6)
    m.reset_tier_counts()  # the next update replaces tier 1 with the new batch's mean
    m.update_tier_emb(enc[:1], tiers[:1])
    assert torch.allclose(m.tier_emb[0], enc[0], atol=1e-6)
    assert torch.allclose(m.tier_emb[1], enc[tiers == 2].mean(0), atol=1e-6)

    x = torch.rand(40, 31, 4, 4)
    t = torch.randint(1, 6, (40,))
    m.recompute_tier_emb(x, t, batch_size=7)
    a = m.tier_emb.clone()
    perm = torch.randperm(40)
    m.recompute_tier_emb(x[perm], t[perm], batch_size=16)
    assert torch.allclose(a, m.tier_emb, atol=1e-5)
    with torch.no_grad():
        assert torch.allclose(a[0], m.encode(x[t == 1]).mean(0), atol=1e-5)


def test_pairwise_loss_matches_definition_and_skips_ties():
    s = torch.tensor([0.3, -1.0, 2.0, 0.5])
    y = torch.tensor([90.0, 91.0, 90.0, 80.0])
    terms = [math.log1p(math.exp(-(s[i] - s[j]).item() * np.sign((y[i] - y[j]).item())))
             for i in range(4) for j in range(4) if y[i] != y[j]]
    assert len(terms) == 10
    assert abs(pairwise_rank_loss(s, y).item() - np.mean(terms)) < 1e-6
    logits = torch.randn(4, 5)
    tiers = torch.tensor([1, 2, 5, 3])
    total, ce, rank = nar_loss(logits, s, tiers, y, aux_loss=True, loss_factor=9.0)
    assert abs(ce.item() - torch.nn.functional.cross_entropy(logits, tiers - 1).item()) < 1e-6
    assert abs(total.item() - (ce.item() + 9 * rank.item())) < 1e-5
    assert nar_loss(logits, s, tiers, y, aux_loss=False, loss_factor=9.0)[0].item() == ce.item()


def test_learning_rate_schedule():
    cfg = Config()
    cfg.ranker.d_model, cfg.lr_scheduler.lr_mul, cfg.lr_scheduler.n_warmup_steps = 128, 0.07, 30
    peak = 0.07 * 128 ** -0.5 * 30 ** -0.5
    assert math.isclose(learning_rate(30, cfg), peak)
    assert math.isclose(learning_rate(1, cfg), 0.07 * 128 ** -0.5 * 30 ** -1.5)
    assert learning_rate(15, cfg) < peak and learning_rate(120, cfg) == peak / 2


def test_feature_scaling_is_fitted_on_training_features():
    m = _model()
    x = torch.rand(50, 31, 4, 4) * torch.logspace(0, 7, 31)[None, :, None, None]
    x[:, :, 3, 0] = 0.0  # a constant element keeps scale 1
    m.fit_feature_scale(x, "log1p_standardize")
    z = m.transform(x)
    assert torch.allclose(z.mean(0), torch.zeros(31, 4, 4), atol=1e-4)
    assert torch.allclose(z[:, 5, 0, 1].std(), torch.tensor(1.0), atol=1e-4)
    assert torch.equal(z[:, :, 3, 0], torch.zeros(50, 31))
    m.fit_feature_scale(x, "none")
    assert torch.equal(m.transform(x), x)


# --- improved-config options (op_onehot, listmle) ----------------------------------------

def _nb201_like(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 31, 4, 4, generator=g) * 5
    x[:, 0] = torch.randint(0, 5, (n, 4, 4), generator=g).float().triu(1)  # op codes 0..4
    return x


def test_op_onehot_token0_reads_codes_not_magnitudes():
    m = _model(op_onehot=5, dropout=0.0).eval()
    assert m.op_proj.in_features == 5 * 16
    x = _nb201_like(2)
    x[1] = x[0]
    x[1, 0, 0, 1] = 4 if x[0, 0, 0, 1] != 4 else 1  # change one edge's op
    with torch.no_grad():
        _, s, enc = m(x)
        oh = m.op_codes_onehot(x[:, 0])
    assert oh.shape == (2, 80) and torch.equal(oh.sum(1), torch.full((2,), 16.0))
    assert torch.equal(oh.view(2, 4, 4, 5).argmax(-1).float(), x[:, 0])
    assert not torch.allclose(enc[0], enc[1]) and s[0] != s[1]
    # token 0 comes from the raw codes only: rescaling channel 0's numeric transform changes nothing
    m.feat_scale[0] = 7.0
    with torch.no_grad():
        _, s2, enc2 = m(x)
    assert torch.allclose(enc2, enc) and torch.allclose(s2, s)
    m.op_proj = None  # the paper path does read channel 0 through the transform
    with torch.no_grad():
        _, _, enc3 = m(x)
        m.feat_scale[0] = 1.0
        _, _, enc4 = m(x)
    assert not torch.allclose(enc3, enc4)


def test_op_onehot_off_is_the_paper_model():
    assert RankerConfig().op_onehot == 0 and Config().rank_loss == "pairwise"
    assert _model().op_proj is None
    assert "op_proj.weight" not in _model().state_dict()


def test_op_onehot_rejects_out_of_range_codes():
    from pipeline.errors import NarError

    m = _model(op_onehot=3)
    x = _nb201_like(2)
    x[0, 0, 0, 1] = 4
    with pytest.raises(NarError, match="op_onehot"):
        m(x)


def test_listmle_matches_plackett_luce_and_prefers_the_true_order():
    from nar.model import listmle_loss

    y = torch.tensor([0.3, 0.9, 0.1, 0.5])
    s = torch.tensor([0.2, -1.0, 0.7, 1.5])
    order = torch.argsort(y, descending=True)
    ref = 0.0
    for i in range(4):
        rest = s[order[i:]]
        ref += torch.logsumexp(rest, 0) - rest[0]
    assert torch.allclose(listmle_loss(s, y), ref / 4)
    assert listmle_loss(y * 10, y) < listmle_loss(-y * 10, y)
    _, _, rank = nar_loss(torch.zeros(4, 5), s, torch.tensor([1, 2, 3, 4]), y, True, 1.0, "listmle")
    assert torch.allclose(rank, ref / 4)


def test_improved_keys_are_validated(tmp_path):
    from nar.config import load_config
    from pipeline.errors import NarError

    assert load_config(overrides=["rank_loss=listmle", "ranker.op_onehot=5"], bench="201").ranker.op_onehot == 5
    with pytest.raises(NarError, match="rank_loss"):
        load_config(overrides=["rank_loss=listnet"], bench="201")
    with pytest.raises(NarError, match="op_onehot"):
        load_config(overrides=["ranker.op_onehot=-1"], bench="201")
    with pytest.raises(NarError, match="swa_epochs"):
        load_config(overrides=["swa_epochs=56"], bench="201")  # > ranker_epochs 55


def test_swa_returns_the_mean_of_the_last_epochs_weights():
    from nar.train import average_model, train_ranker

    cfg = Config(ranker=RankerConfig(**{**TINY.__dict__, "dropout": 0.0}), train_size=48, val_size=16,
                 batch_size=16, ranker_epochs=3, device="cpu", seed=3)
    x, y = _nb201_like(64).numpy(), np.random.default_rng(0).random(64)
    snaps = []

    class Run:  # keeps the last model of each run
        def on_epoch(self, row):
            pass

        def on_finish(self, last, best):
            snaps.append((last, best))

    one, _ = train_ranker(dataclasses.replace(cfg, swa_epochs=1), x[:48], y[:48], x[48:], y[48:], run=Run())
    last1 = snaps[-1][0]
    assert all(torch.equal(a, b) for a, b in zip(one.parameters(), last1.parameters()))
    avg, _ = train_ranker(dataclasses.replace(cfg, swa_epochs=3), x[:48], y[:48], x[48:], y[48:], run=Run())
    last3 = snaps[-1][0]
    assert all(torch.equal(a, b) for a, b in zip(last1.parameters(), last3.parameters()))  # same seed
    assert not torch.allclose(avg.patch_proj.weight, last3.patch_proj.weight)
    sums = {k: 2 * v.detach() for k, v in last3.named_parameters()}
    assert torch.allclose(average_model(last3, sums, 2).patch_proj.weight, last3.patch_proj.weight)


def test_improved_config_turns_on_only_the_improved_options():
    from nar.config import CONFIG_DIR, load_config

    imp = load_config(CONFIG_DIR / "improved201.yml")
    assert (imp.ranker.op_onehot, imp.rank_loss, imp.swa_epochs, imp.n_ensemble) == (5, "listmle", 20, 3)
    for name in ("config.yml", "config201.yml", "cpu201.yml"):
        cfg = load_config(CONFIG_DIR / name)
        assert (cfg.ranker.op_onehot, cfg.rank_loss, cfg.swa_epochs, cfg.n_ensemble) == (0, "pairwise", 0, 1), name
    base = load_config(CONFIG_DIR / "cpu201.yml", ["ranker.op_onehot=5", "rank_loss=listmle", "swa_epochs=20",
                                                     "n_ensemble=3", f"exp_name={imp.exp_name}"])
    assert base.to_dict() == imp.to_dict()  # improved201 = cpu201 + the four options

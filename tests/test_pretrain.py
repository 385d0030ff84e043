"""Pre-training of the gated graph encoder on unlabelled cells (nar/pretrain.py): the structural
targets against brute force, the cache beside the store, training from it, bad settings."""
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from cache.store import Store
from cli import cli
from nar.config import load_config
from nar.graph_ranker import GatedGraphRanker
from nar.model import build_model
from nar.pretrain import cache_path, load_encoder, pretrained_encoder, structure_targets
from pipeline.errors import NarError
from tests.conftest import REPO
from tests.fakes import fake_store_101, fake_store_201
from tests.test_augment import _encode, _random_cells
from tests.test_graph_ranker import TINY, _ops_tensor, _rc

CFG201 = REPO / "config" / "default201.yml"


def _paths(adj: np.ndarray) -> list[list[int]]:
    """Every input -> output path of a DAG (brute force)."""
    p = len(adj)
    out, stack = [], [[0]]
    while stack:
        path = stack.pop()
        if path[-1] == p - 1:
            out.append(path)
            continue
        stack.extend(path + [j] for j in range(p) if adj[path[-1], j])
    return out


def test_targets_of_a_hand_made_edge_cell():
    # 0->1 conv3x3 (3), 0->3 skip (1), 1->3 conv3x3, 2->3 avgpool on a dead edge (node 2 unreachable)
    m = GatedGraphRanker(_rc(ops_on="edges", op_onehot=5, n_arch_patch=31, d_patch=4))
    t = structure_targets(m, _ops_tensor([[3, 0, 0, 1, 3, 4]]))[0]
    k = 4
    paths, far, near = t[0], t[1], t[2]
    through, most, counts = t[3:3 + k], t[3 + k:3 + 2 * k], t[3 + 2 * k:3 + 3 * k]
    assert torch.isclose(paths, torch.log1p(torch.tensor(2.0)))      # 0->3 and 0->1->3
    assert (far, near) == (2, 1)
    assert torch.allclose(through, torch.log1p(torch.tensor([1.0, 0, 2, 0])))  # skip once, conv twice
    assert most.tolist() == [1, 0, 2, 0]
    assert counts.tolist() == [1, 0, 2, 0]                            # the dead avgpool is not counted
    assert t[3 + 3 * k:3 + 3 * k + 4].tolist() == [3, 2, 2, 1]       # live edges, in(out), out(in), direct


def test_targets_of_nb101_cells_match_brute_force_paths():
    cells = _random_cells(40, seed=5)
    x, _ = _encode(cells)
    m = GatedGraphRanker(_rc(ops_on="nodes", op_onehot=6, global_features=True))
    t = structure_targets(m, x)
    _, adj = m.graph(x)
    for b in range(len(x)):
        paths = _paths(adj[b].numpy() > 0)
        lengths = [len(q) - 1 for q in paths]
        assert np.isclose(float(t[b, 0]), np.log1p(len(paths)), atol=1e-5)
        assert (float(t[b, 1]), float(t[b, 2])) == (max(lengths), min(lengths))
    assert torch.isfinite(t).all()


def _cfg(tmp_path, *extra):
    return load_config(CFG201, [*TINY, "pretrain.steps=30", "pretrain.cells=200", *extra])


def test_pretrained_encoder_is_cached_beside_the_store(tmp_path):
    path = fake_store_201(tmp_path / "s.h5", n=300)
    cfg = _cfg(tmp_path)
    with Store(path) as st:
        first = pretrained_encoder(cfg, st, "cifar10")
        cached = cache_path(st, cfg)
        assert cached.is_file() and cached.parent == tmp_path
        stamp = cached.stat().st_mtime_ns
        again = pretrained_encoder(cfg, st, "cifar10")
        assert cached.stat().st_mtime_ns == stamp                     # read, not recomputed
        assert all(torch.equal(first[k], again[k]) for k in first)
        assert not any(k.startswith(("score_head", "tier_head")) for k in first)
        other = _cfg(tmp_path, "pretrain.steps=31")
        assert cache_path(st, other) != cached                        # settings are in the key
        assert pretrained_encoder(load_config(CFG201, TINY), st, "cifar10") is None  # steps 0: none
    assert not list(tmp_path.glob("*.tmp*"))


def test_training_starts_from_the_pretrained_encoder(tmp_path):
    path = fake_store_101(tmp_path / "s.h5", n=300)
    cfg101 = str(REPO / "config" / "default101.yml")
    runs = {}
    for name, extra in (("plain", ["pretrain.steps=0"]), ("pre", ["pretrain.steps=30", "pretrain.cells=300"])):
        run = tmp_path / name
        sets = [a for kv in [*TINY, "n_ensemble=1", "ranker_epochs=3", "swa_epochs=1", *extra]
                for a in ("--set", kv)]
        r = CliRunner().invoke(cli, ["train", "--config_file", cfg101, "--data_path", str(path),
                                     "--save_dir", str(run), "--seed", "0", *sets])
        assert r.exit_code == 0, r.output
        runs[name] = torch.load(run / "ckp_best.pth", weights_only=True)
    assert list(tmp_path.glob("s.pretrain-*.pt"))
    key = "message.0.weight"
    state = {n: next(v for k, v in _flat(r).items() if k.endswith(key)) for n, r in runs.items()}
    assert not torch.equal(state["plain"], state["pre"])


def _flat(blob, prefix=""):
    out = {}
    if isinstance(blob, dict):
        for k, v in blob.items():
            out.update(_flat(v, f"{prefix}{k}."))
    elif isinstance(blob, (list, tuple)):
        for i, v in enumerate(blob):
            out.update(_flat(v, f"{prefix}{i}."))
    elif isinstance(blob, torch.Tensor):
        out[prefix.rstrip(".")] = blob
    return out


def test_bad_pretraining_settings_are_one_clear_error(tmp_path):
    path = fake_store_201(tmp_path / "s.h5", n=300)
    other = fake_store_101(tmp_path / "o.h5", n=100)
    with Store(path) as st:
        paper = load_config(REPO / "config" / "config201.yml", ["pretrain.steps=5"])
        with pytest.raises(NarError, match="gated_graph"):
            pretrained_encoder(paper, st, "cifar10")
        with pytest.raises(NarError, match="pretrain.store"):
            pretrained_encoder(_cfg(tmp_path, f"pretrain.store={other}"), st, "cifar10")
    with pytest.raises(NarError, match="pretrain.steps"):
        load_config(CFG201, ["pretrain.steps=-1"])
    small = build_model(load_config(CFG201, TINY).ranker)
    wide = build_model(load_config(CFG201, [*TINY, "ranker.d_model=24"]).ranker)
    with pytest.raises(NarError, match="does not fit"):
        load_encoder(small, wide.state_dict())


def test_test_time_averaging_over_vertex_orders(tmp_path):
    """``tta_orders``: predictions average re-numberings of each cell. The patch transformer is
    not order-invariant, so its scores move; the gated graph ranker is, so they do not."""
    from nar.train import predict_batched

    x, _ = _encode(_random_cells(48, seed=9))
    torch.manual_seed(0)
    paper = build_model(load_config(REPO / "config" / "improved101.yml",
                                    ["ranker.d_model=16", "ranker.d_patch_vec=16", "ranker.n_layers=1",
                                     "ranker.d_ffn_inner=16", "ranker.d_k=8", "ranker.d_v=8"]).ranker).eval()
    _, s0 = predict_batched([paper], x.numpy(), 16)
    _, s4 = predict_batched([paper], x.numpy(), 16, tta_orders=4)
    _, s4b = predict_batched([paper], x.numpy(), 16, tta_orders=4)
    assert np.array_equal(s4, s4b)                 # seeded: reproducible
    assert not np.allclose(s0, s4)                 # the average differs from one order
    graph = GatedGraphRanker(_rc(ops_on="nodes", op_onehot=6)).eval()
    _, g0 = predict_batched([graph], x.numpy(), 16)
    _, g4 = predict_batched([graph], x.numpy(), 16, tta_orders=4)
    assert np.allclose(g0, g4, atol=1e-4)
    with pytest.raises(NarError, match="tta_orders"):
        load_config(CFG201, ["tta_orders=2"])      # NB201 has no vertex re-ordering
    assert load_config(REPO / "config" / "default101.yml", ["tta_orders=2"]).tta_orders == 2

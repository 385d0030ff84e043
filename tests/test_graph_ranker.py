"""The gated graph ranker (ranker.encoder: gated_graph): graph read-out of the ReNAS tensor,
invariances (vertex numbering, dead edges), training through the harness, checkpoints."""
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from cache.store import Store
from cli import cli
from nar.api import load_ranker
from nar.augment import topo_permute_101
from nar.config import RankerConfig, load_config
from nar.data import load_features, store_keys
from nar.graph_ranker import GatedGraphRanker, live_edges
from nar.model import build_model
from pipeline.errors import NarError
from tests.conftest import REPO
from tests.fakes import fake_store_101, fake_store_201
from tests.test_augment import _encode, _random_cells

EDGES = [(0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3)]
TINY = ["ranker.d_model=16", "ranker.d_tier_prj_inner=16", "ranker.d_val_acc_prj_inner=16",
        "ranker.n_layers=2", "ranker_epochs=30", "swa_epochs=10", "n_ensemble=2", "train_size=150"]


def _rc(**kw):
    base = dict(encoder="gated_graph", d_model=16, n_layers=2, d_tier_prj_inner=16, d_val_acc_prj_inner=16,
                dropout=0.0)
    return RankerConfig(**{**base, **kw})


def _ops_tensor(rows):
    """(B, 31, 4, 4) NB201-shaped features whose channel 0 holds the given edge ops."""
    x = torch.zeros(len(rows), 31, 4, 4)
    for b, ops in enumerate(rows):
        for e, (i, j) in enumerate(EDGES):
            x[b, 0, i, j] = ops[e]
    return x


def test_live_edges_keep_only_edges_on_an_input_output_path():
    # edges 0->1 conv, 1->2 none, 0->2 none, 0->3 skip, 1->3 conv, 2->3 conv: node 2 is unreachable
    ops = _ops_tensor([[3, 0, 0, 1, 3, 3]])[:, 0].long()
    live = live_edges(ops)[0]
    assert [bool(live[i, j]) for i, j in EDGES] == [True, False, False, True, True, False]
    # a cell with no path from input to output has no live edge at all
    dead = _ops_tensor([[3, 3, 3, 0, 0, 0]])[:, 0].long()
    assert not live_edges(dead).any()


def test_edge_ops_model_ignores_ops_on_dead_edges():
    torch.manual_seed(0)
    m = GatedGraphRanker(_rc(ops_on="edges", op_onehot=5, n_arch_patch=31, d_patch=4)).eval()
    # node 2 has no input (0->2 and 1->2 are none): the op on 2->3 is dead, whatever it is
    x = _ops_tensor([[3, 0, 0, 1, 2, k] for k in range(5)] + [[3, 2, 0, 1, 2, 3]])
    _, score, _ = m(x)
    assert torch.allclose(score[:5], score[0].expand(5), atol=1e-6)
    assert not torch.isclose(score[5], score[0])  # a live change does move the score


def test_node_ops_model_gives_isomorphic_cells_one_score():
    torch.manual_seed(0)
    cells = _random_cells(64, seed=3)
    x, _ = _encode(cells)
    m = GatedGraphRanker(_rc(ops_on="nodes", op_onehot=6, global_features=True)).eval()
    m.fit_feature_scale(x)
    _, s0, _ = m(x)
    _, s1, _ = m(topo_permute_101(x, torch.Generator().manual_seed(1)))
    assert torch.allclose(s0, s1, atol=1e-4)
    assert s0.std() > 1e-3  # different cells, different scores


def test_config_checks_for_the_graph_encoder():
    with pytest.raises(NarError, match="ranker.encoder"):
        load_config(REPO / "config" / "default201.yml", ["ranker.encoder=gnn"])
    with pytest.raises(NarError, match="ranker.ops_on"):
        load_config(REPO / "config" / "default201.yml", ["ranker.ops_on=arcs"])
    with pytest.raises(NarError, match="op_onehot"):
        load_config(REPO / "config" / "default201.yml", ["ranker.op_onehot=0"])
    assert isinstance(build_model(load_config(REPO / "config" / "default101.yml").ranker), GatedGraphRanker)


def test_codes_outside_the_vocabulary_are_an_error():
    m = GatedGraphRanker(_rc(ops_on="edges", op_onehot=5, n_arch_patch=31, d_patch=4))
    with pytest.raises(NarError, match="channel 0"):
        m(_ops_tensor([[7, 0, 0, 1, 2, 3]]))


@pytest.mark.parametrize("bench", ["201", "101"])
def test_default_config_trains_tests_and_reloads_on_a_fake(bench, tmp_path):
    store = (fake_store_201 if bench == "201" else fake_store_101)(tmp_path / f"s{bench}.h5", n=360)
    cfg = str(REPO / "config" / ("default201.yml" if bench == "201" else "default101.yml"))
    run = tmp_path / "run"
    sets = [a for kv in TINY + (["pretrain.steps=40"] if bench == "101" else []) for a in ("--set", kv)]
    r = CliRunner().invoke(cli, ["train", "--config_file", cfg, "--data_path", str(store),
                                 "--save_dir", str(run), "--seed", "0", *sets])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(cli, ["test", "--config_file", cfg, "--data_path", str(store), "--save_dir", str(run),
                                 "--checkpoint", "ckp_best.pth", "--seed", "0", *sets])
    assert r.exit_code == 0, r.output
    res = json.loads((run / "results.json").read_text())
    held = res["heldout"]
    train_list = torch.load(run / "ckp_best.pth", weights_only=True)["train_keys"]
    train_keys = set(train_list)
    with Store(store) as st:
        keys = store_keys(st)
    assert len(train_list) == 150
    assert held["n"] == sum(k not in train_keys for k in keys)  # val_size 0: no validation cells
    assert held["kendalltau"] > 0.3  # the fake's accuracy is a learnable function of the cell
    ranker = load_ranker(run / "ckp_best.pth")
    assert len(ranker.members) == (2 if bench == "201" else 1)  # default101 distils its members into one
    with Store(store) as st:
        feats = load_features(st, "cifar10", np.arange(20))
    t1, s1 = ranker.predict(feats)
    t2, s2 = load_ranker(run / "ckp_best.pth").predict(feats)
    assert np.array_equal(t1, t2) and np.allclose(s1, s2)
    assert set(np.unique(t1)) <= set(range(1, 6))


def test_batches_per_epoch_sets_the_batch_size(tmp_path):
    store = fake_store_201(tmp_path / "s.h5", n=300)
    run = tmp_path / "run"
    sets = [a for kv in [*TINY, "n_ensemble=1", "batches_per_epoch=1", "ranker_epochs=2", "swa_epochs=1"]
            for a in ("--set", kv)]
    r = CliRunner().invoke(cli, ["train", "--config_file", str(REPO / "config" / "default201.yml"),
                                 "--data_path", str(store), "--save_dir", str(run), "--seed", "0", *sets])
    assert r.exit_code == 0, r.output
    log = (run / "train.log").read_text()
    assert "batch size 150" in log  # 150 training cells in 1 batch per epoch (> batch_size 128)

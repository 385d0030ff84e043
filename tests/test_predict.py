"""Batched inference (nar/predict.py): the output does not depend on the thread count or on how
batches are spread over threads, tta views included, and no autograd graph is built."""
import numpy as np
import torch

from cache.store import Store
from nar.config import RankerConfig
from nar.data import load_features
from nar.graph_ranker import GatedGraphRanker
from nar.predict import predict_batched
from tests.fakes import fake_store_101


def _members():
    rc = RankerConfig(encoder="gated_graph", ops_on="nodes", op_onehot=6, global_features=True,
                      backward_pass=True, n_arch_patch=19, d_patch=7, d_model=16, n_layers=2, dropout=0.0,
                      d_tier_prj_inner=16, d_val_acc_prj_inner=16)
    out = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        out.append(GatedGraphRanker(rc))
    return out


def test_threads_give_the_same_output_as_one_thread(tmp_path):
    path = fake_store_101(tmp_path / "s.h5", n=300)
    with Store(path) as store:
        feats = load_features(store, "cifar10", np.arange(store.n))
    members = _members()
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = predict_batched(members, feats, batch_size=64, tta_orders=2)
        torch.set_num_threads(3)  # 5 batches over 3 worker threads
        many = predict_batched(members, feats, batch_size=64, tta_orders=2)
        assert torch.get_num_threads() == 3  # restored after the pool
    finally:
        torch.set_num_threads(threads)
    assert np.array_equal(one[0], many[0]) and np.array_equal(one[1], many[1])
    assert one[1].shape == (300,) and np.isfinite(one[1]).all()
    assert set(np.unique(one[0])) <= set(range(1, 6))
    assert all(m.training for m in members)  # train mode restored


def test_no_autograd_graph_in_worker_threads(tmp_path):
    path = fake_store_101(tmp_path / "s.h5", n=130)
    with Store(path) as store:
        feats = load_features(store, "cifar10", np.arange(store.n))
    members = _members()
    seen = []
    hook = members[0].score_head.register_forward_hook(lambda m, i, o: seen.append(o.requires_grad))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        predict_batched(members, feats, batch_size=32)
    finally:
        torch.set_num_threads(threads)
        hook.remove()
    assert len(seen) == 5 and not any(seen)

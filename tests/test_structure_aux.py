"""``ranker.structure_aux``: an auxiliary loss that keeps the cell's structural quantities
(nar/pretrain.py targets) predictable from the readout while training on the labelled cells."""
import numpy as np
import pytest
import torch

from cache.store import Store
from nar.api import fit, load_ranker
from nar.config import load_config
from nar.data import load_features
from nar.model import build_model
from nar.pretrain import structure_targets
from pipeline.errors import NarError
from tests.conftest import REPO
from tests.fakes import fake_store_101
from tests.test_graph_ranker import TINY

CFG101 = REPO / "config" / "default101.yml"
SMALL = [o for o in TINY if not o.startswith("train_size")] + ["train_size=120", "pretrain.steps=20",
                                                              "pretrain.batch_size=32"]


def test_off_by_default_and_the_model_is_unchanged():
    from nar.config import RankerConfig

    assert RankerConfig().structure_aux == 0                    # off unless a config sets it
    assert load_config(CFG101, SMALL).ranker.structure_aux == 50  # default101 sets it
    cfg = load_config(CFG101, [*SMALL, "ranker.structure_aux=0"])
    torch.manual_seed(0)
    plain = build_model(cfg.ranker)
    torch.manual_seed(0)
    aux = build_model(load_config(CFG101, [*SMALL, "ranker.structure_aux=5"]).ranker)
    assert not hasattr(plain, "aux_head") and hasattr(aux, "aux_head")
    for k, v in plain.state_dict().items():  # the head is built last: the same initialisation otherwise
        assert torch.equal(v, aux.state_dict()[k]), k


def test_the_loss_is_standardised_on_the_training_cells(tmp_path):
    path = fake_store_101(tmp_path / "s.h5", n=200)
    with Store(path) as st:
        x = torch.from_numpy(load_features(st, "cifar10", np.arange(st.n)))
    model = build_model(load_config(CFG101, [*SMALL, "ranker.structure_aux=5"]).ranker)
    model.fit_feature_scale(x)
    t = (structure_targets(model, x) - model.aux_shift) * model.aux_scale
    varying = t.std(0) > 0
    assert torch.allclose(t.mean(0), torch.zeros(t.shape[1]), atol=1e-4)
    assert torch.allclose(t.std(0)[varying], torch.ones(int(varying.sum())), atol=1e-3)
    enc = model.encode(x)
    loss = model.structure_loss(x, enc)
    assert torch.isfinite(loss) and loss.item() > 0
    loss.backward()
    assert model.aux_head[0].weight.grad is not None and model.message[0].weight.grad is not None


def test_training_with_it_changes_the_ranker_and_the_checkpoint_round_trips(tmp_path):
    path = fake_store_101(tmp_path / "s.h5", n=300)
    runs = {w: fit(str(path), config=str(CFG101), seed=0, **_kw(w)) for w in (0, 5)}
    with Store(path) as st:
        x = load_features(st, "cifar10", np.arange(st.n))
    s0, s5 = runs[0].predict(x)[1], runs[5].predict(x)[1]
    assert not np.allclose(s0, s5)
    runs[5].save(tmp_path / "aux.pth")
    again = load_ranker(tmp_path / "aux.pth")
    assert np.array_equal(again.predict(x)[1], s5)


def _kw(w):
    return {"train_size": 120, "val_size": 0, "ranker_epochs": 6, "swa_epochs": 2, "n_ensemble": 1,
            "pretrain": {"steps": 20, "batch_size": 32}, "ranker": {"d_model": 16, "structure_aux": w,
                                                                  "d_tier_prj_inner": 16, "d_val_acc_prj_inner": 16}}


def test_only_for_the_gated_graph_encoder():
    with pytest.raises(NarError, match="structure_aux"):
        load_config(REPO / "config" / "improved101.yml", ["ranker.structure_aux=1"])
    with pytest.raises(NarError, match="structure_aux"):
        load_config(CFG101, ["ranker.structure_aux=-1"])

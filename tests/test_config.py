"""Config loading: paper settings, overrides, unknown keys, bench checks."""
import pytest
import yaml

from nar.config import Config, config_from_dict, default_config, load_config, parse_override
from nar.search_config import SamplerConfig
from pipeline.errors import NarError
from tests.conftest import REPO


def test_paper_configs_match_builtin_defaults():
    c101 = load_config(REPO / "config" / "config.yml")
    c201 = load_config(REPO / "config" / "config201.yml")
    assert c101 == default_config("101") and c201 == default_config("201")
    assert (c101.bench, c101.train_size, c101.val_size, c101.train_bs) == ("101", 4236, 1024, 256)
    assert (c101.ranker_epochs, c101.sampler_epochs, c101.loss_factor, c101.bins) == (35, 85, 9.0, 8)
    assert (c101.ranker.d_model, c101.ranker.n_arch_patch, c101.ranker.d_patch) == (256, 19, 7)
    assert (c201.bench, c201.dataset, c201.train_size, c201.val_size) == ("201", "cifar10", 1000, 256)
    assert (c201.train_bs, c201.val_bs, c201.ranker_epochs, c201.sampler_epochs) == (128, 128, 55, 105)
    r = c201.ranker
    assert (r.n_arch_patch, r.d_patch, r.d_model, r.d_ffn_inner, r.d_k, r.d_tier_prj_inner) == (31, 4, 128, 512, 32, 256)
    assert c201.optimizer.weight_decay == 1e-2 and c201.lr_scheduler.lr_mul == 0.07
    assert isinstance(c201.sampler, SamplerConfig) and c201.sampler.force_uniform is True
    assert c201.sampler.edges_kl_thred == 1.5 and c201.sampler.sample_size == 128
    # the faithful configs keep every addition of ours at its neutral value
    assert (c201.feature_scale, c201.n_ensemble, c101.feature_scale) == ("none", 1, "none")


RELEASE_RANKER_KEYS = {"n_tier", "n_arch_patch", "d_patch", "d_patch_vec", "d_model", "d_ffn_inner",
                       "d_tier_prj_inner", "n_layers", "n_head", "d_k", "d_v", "dropout", "n_position",
                       "d_val_acc_prj_inner", "scale_prj"}


def test_every_key_of_the_files_is_known_and_complete():
    for name in ("config.yml", "config201.yml"):
        values = yaml.safe_load((REPO / "config" / name).read_text())
        keys = set(Config().to_dict())
        assert set(values) <= keys
        assert set(values["ranker"]) == RELEASE_RANKER_KEYS  # the release's keys, ours at defaults


@pytest.mark.parametrize("text, where", [("ranker: {d_modle: 3}\n", "ranker.d_modle"),
                                         ("bogus: 1\n", "bogus"),
                                         ("sampler: {nope: 2}\n", "sampler.nope")])
def test_unknown_key_names_key_and_file(tmp_path, text, where):
    p = tmp_path / "bad.yml"
    p.write_text("space: nasbench201\n" + text)
    with pytest.raises(NarError, match=rf"'{where}'.*bad\.yml"):
        load_config(p)


def test_overrides_parse_yaml_values_and_types():
    cfg = load_config(REPO / "config" / "config201.yml",
                      ["ranker.d_model=64", "loss_factor=2", "aux_loss=false", "network_type=cifar100"])
    assert cfg.ranker.d_model == 64 and cfg.loss_factor == 2.0 and cfg.aux_loss is False
    assert cfg.dataset == "cifar100"
    assert parse_override("a.b.c=[1, 2]") == {"a": {"b": {"c": [1, 2]}}}
    with pytest.raises(NarError, match="ranker.d_model.*expected int"):
        load_config(None, ["ranker.d_model=abc"])
    with pytest.raises(NarError, match="unknown config key 'ranker.width'.*--set"):
        load_config(None, ["ranker.width=3"])
    with pytest.raises(NarError, match="key=value"):
        load_config(None, ["ranker.d_model"])
    with pytest.raises(NarError, match="network_type"):
        load_config(None, ["network_type=svhn"], bench="201")


def test_bench_mismatch_and_roundtrip(tmp_path):
    with pytest.raises(NarError, match="NB101 .* NB201|space 'nasbench'"):
        load_config(REPO / "config" / "config.yml", bench="201")
    cfg = load_config(None, ["ranker.n_layers=2"], bench="201")
    assert cfg.bench == "201" and cfg.ranker.n_layers == 2
    assert config_from_dict(cfg.to_dict()) == cfg
    cfg.save(tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == cfg
    with pytest.raises(NarError, match="config file not found"):
        load_config(tmp_path / "missing.yml")


def test_cpu_presets_load_and_keep_the_paper_data_settings():
    c201 = load_config(REPO / "config" / "cpu201.yml")
    c101 = load_config(REPO / "config" / "cpu101.yml")
    assert (c201.bench, c201.train_size, c201.val_size, c201.ranker.n_arch_patch) == ("201", 1000, 256, 31)
    assert (c101.bench, c101.train_size, c101.val_size, c101.ranker.n_arch_patch) == ("101", 4236, 1024, 19)
    assert c201.ranker.d_model < default_config("201").ranker.d_model
    assert c201.feature_scale == "log1p_standardize"


def test_space_key_takes_registered_names_and_limits_come_from_the_space():
    assert load_config(None, ["space=nasbench101"]).bench == "101"
    assert load_config(None, ["space=nasbench201"]).bench == "201"
    assert load_config(None, ["space=user"]).dataset == "default"
    with pytest.raises(NarError, match="config key 'space' in --set: 'nb999'"):
        load_config(None, ["space=nb999"])
    assert load_config(None, ["max_edges=9"]).max_edges == 9  # the release's value: NB101's limit
    with pytest.raises(NarError, match="edge limit of space 'nasbench' is 9"):
        load_config(None, ["max_edges=8"])
    with pytest.raises(NarError, match="not available for space 'nasbench201'"):
        load_config(None, ["space=nasbench201", "augment=topo"])

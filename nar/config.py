"""Configuration: dataclasses with the release's keys and defaults, YAML loading, ``--set`` overrides.

The defaults of :class:`Config` are the paper's NAS-Bench-101 settings; :data:`PAPER_201` holds
the keys that differ for NAS-Bench-201. Keys the release does not have (ours, kept few):
``network_type`` values, ``target``, ``device``, ``feature_scale``, ``train_batch_size`` /
``val_batch_size`` fallbacks. Unknown keys are errors naming the key and the file.
"""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from nar.augment import AUGMENTS
from nar.search_config import SamplerConfig
from pipeline.errors import NarError

SPACES = {"nasbench": "101", "nasbench201": "201"}
NETWORK_TYPES = ("cifar10", "cifar100", "imagenet16")
ENCODERS = ("patch_transformer", "gated_graph")
FEATURE_SCALES = ("none", "log1p", "standardize", "log1p_standardize")
CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"


@dataclass
class RankerConfig:
    """Transformer sizes (the release's ``ranker.*``)."""
    n_tier: int = 5
    n_arch_patch: int = 19        # C: channels (tokens) of the feature tensor
    d_patch: int = 7              # P: a token is a P x P patch
    d_patch_vec: int = 256        # patch projection width (projected to d_model if different)
    d_model: int = 256
    d_ffn_inner: int = 1024
    d_tier_prj_inner: int = 2048  # hidden width of the tier classifier MLP
    n_layers: int = 6
    n_head: int = 4
    d_k: int = 64
    d_v: int = 64
    dropout: float = 0.1
    n_position: int = 200         # length of the sinusoidal position table
    d_val_acc_prj_inner: int = 2048  # hidden width of the score MLP
    scale_prj: bool = True        # scale tier logits by d_model ** -0.5
    op_onehot: int = 0            # ours, improved config: >0 embeds channel 0's integer codes
                                  # (op / vertex type, 0..op_onehot-1) one-hot; 0 = paper (linear)
    encoder: str = "patch_transformer"  # patch_transformer (paper) | gated_graph (ours, nar/graph_ranker.py)
    ops_on: str = "nodes"         # gated_graph: ops on "nodes" (NB101) or "edges" (NB201)
    global_features: bool = False  # gated_graph: add log FLOPs / params to the readout
    backward_pass: bool = False   # gated_graph: each layer also propagates from the output back


@dataclass
class OptimizerConfig:
    """AdamW settings."""
    beta1: float = 0.9
    beta2: float = 0.982
    eps: float = 1.0e-9
    weight_decay: float = 5.0e-4


@dataclass
class LRSchedulerConfig:
    """lr = lr_mul * d_model^-0.5 * min(step^-0.5, step * n_warmup_steps^-1.5)."""
    lr_mul: float = 0.1
    n_warmup_steps: int = 50


@dataclass
class Config:
    arch: str = "NAR"             # "NAR" or a baseline name: lightgbm, xgboost, mlp
    exp_name: str = "nar_nasbench101"
    seed: int = 77777777
    is_cuda: bool = True          # False forces CPU even when CUDA is present
    space: str = "nasbench"       # "nasbench" (NB101) | "nasbench201"
    network_type: str = "cifar10"  # NB201 image dataset: cifar10 | cifar100 | imagenet16
    node_type_dict: dict = field(default_factory=lambda: {
        "input": 1, "conv1x1-bn-relu": 2, "conv3x3-bn-relu": 3, "maxpool3x3": 4, "output": 5})
    max_edges: int = 9
    train_size: int = 4236
    val_size: int = 1024
    drop_last: bool = True
    data_loader_workers: int = 6  # kept for the release's configs; batches are tensor slices
    batch_size: int = 256
    train_batch_size: int | None = None  # default: batch_size
    val_batch_size: int | None = None    # default: batch_size
    start_epochs: int = 0
    ranker_epochs: int = 35
    sampler_epochs: int = 85
    validate_freq: int = 1
    strategy: str = "val_acc"     # training label: val_acc (falls back to test_acc if absent) | test_acc
    bins: int = 8
    ranker: RankerConfig = field(default_factory=RankerConfig)
    aux_loss: bool = True         # add the pairwise ranking loss on the score
    loss_factor: float = 9.0
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    lr_scheduler: LRSchedulerConfig = field(default_factory=LRSchedulerConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    # ours
    target: str = "test_acc"      # accuracy evaluated against (val_acc when the store lacks it)
    device: str = "auto"          # auto | cpu | cuda
    feature_scale: str = "none"   # none (release) | log1p | standardize | log1p_standardize
    rank_loss: str = "pairwise"   # ranking loss on the score: pairwise (paper) | listmle (improved)
    swa_epochs: int = 0           # >0: return the weight average of the last N epochs (improved)
    n_ensemble: int = 1           # >1: average the scores of that many seeds (improved config)
    augment: str = "none"         # training batches: none | topo (random topological re-ordering, NB101)
    batches_per_epoch: int = 0    # >0: training batch size = ceil(train cells / this), at least
                                  # batch_size, so every training size gets the same number of steps

    @property
    def bench(self) -> str:
        return SPACES[self.space]

    @property
    def dataset(self) -> str:
        return "cifar10" if self.bench == "101" else self.network_type

    @property
    def train_bs(self) -> int:
        return int(self.train_batch_size or self.batch_size)

    @property
    def val_bs(self) -> int:
        return int(self.val_batch_size or self.batch_size)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def save(self, path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))


# Keys of the paper's NB201 config that differ from the NB101 defaults.
PAPER_201 = {
    "exp_name": "nar_nasbench201", "space": "nasbench201", "network_type": "cifar10",
    "train_size": 1000, "val_size": 256, "train_batch_size": 128, "val_batch_size": 128,
    "ranker_epochs": 55, "sampler_epochs": 105, "bins": 5, "loss_factor": 1.0,
    "ranker": {"n_arch_patch": 31, "d_patch": 4, "d_patch_vec": 128, "d_model": 128,
               "d_ffn_inner": 512, "d_tier_prj_inner": 256, "d_k": 32, "d_v": 32,
               "d_val_acc_prj_inner": 1024},
    "optimizer": {"beta2": 0.99, "weight_decay": 1.0e-2},
    "lr_scheduler": {"lr_mul": 0.07, "n_warmup_steps": 30},
    "sampler": {"flops_kl_thred": 0.35, "params_kl_thred": 0.3, "edges_kl_thred": 1.5,
                "sample_size": 128, "search_size": 128, "force_uniform": True},
}


def _check_type(default, value, key, source):
    """Coerce ``value`` to the type of ``default``; NarError when impossible."""
    if default is None or value is None:
        return value
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
    elif isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif isinstance(default, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif isinstance(default, str):
        if isinstance(value, str):
            return value
    elif isinstance(default, dict):
        if isinstance(value, dict):
            return dict(value)
    raise NarError(f"config key {key!r} in {source}: expected {type(default).__name__}, got {value!r}; "
                   "fix the value")


def _apply(obj, values: dict, source: str, prefix: str = "") -> None:
    if not isinstance(values, dict):
        raise NarError(f"config section {prefix.rstrip('.') or '<top>'} in {source} must be a mapping")
    names = {f.name for f in dataclasses.fields(obj)}
    for key, value in values.items():
        full = f"{prefix}{key}"
        if key not in names:
            raise NarError(f"unknown config key {full!r} in {source}; known keys: {', '.join(sorted(names))}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            _apply(current, value, source, f"{full}.")
        else:
            setattr(obj, key, _check_type(current, value, full, source))


def _validate(cfg: Config, source: str) -> None:
    if cfg.space not in SPACES:
        raise NarError(f"config key 'space' in {source}: {cfg.space!r}; use one of {', '.join(SPACES)}")
    aliases = {"cifar10-valid": "cifar10", "imagenet16-120": "imagenet16", "ImageNet16-120": "imagenet16"}
    cfg.network_type = aliases.get(cfg.network_type, cfg.network_type)
    if cfg.network_type not in NETWORK_TYPES:
        raise NarError(f"config key 'network_type' in {source}: {cfg.network_type!r}; "
                       f"use one of {', '.join(NETWORK_TYPES)}")
    if cfg.feature_scale not in FEATURE_SCALES:
        raise NarError(f"config key 'feature_scale' in {source}: {cfg.feature_scale!r}; "
                       f"use one of {', '.join(FEATURE_SCALES)}")
    if not 0 <= cfg.swa_epochs <= cfg.ranker_epochs:
        raise NarError(f"config key 'swa_epochs' in {source}: {cfg.swa_epochs}; use 0 (off) .. ranker_epochs")
    if cfg.rank_loss not in ("pairwise", "listmle"):
        raise NarError(f"config key 'rank_loss' in {source}: {cfg.rank_loss!r}; use pairwise or listmle")
    if cfg.augment not in AUGMENTS:
        raise NarError(f"config key 'augment' in {source}: {cfg.augment!r}; use one of {', '.join(AUGMENTS)}")
    if cfg.augment != "none" and cfg.bench != "101":
        raise NarError(f"config key 'augment' in {source}: {cfg.augment!r} needs space nasbench (NB101); "
                       "use augment none")
    if cfg.strategy not in ("val_acc", "test_acc"):
        raise NarError(f"config key 'strategy' in {source}: {cfg.strategy!r}; use val_acc or test_acc")
    if cfg.target not in ("val_acc", "test_acc"):
        raise NarError(f"config key 'target' in {source}: {cfg.target!r}; use val_acc or test_acc")
    if cfg.device not in ("auto", "cpu", "cuda"):
        raise NarError(f"config key 'device' in {source}: {cfg.device!r}; use auto, cpu or cuda")
    r = cfg.ranker
    for key in ("n_tier", "n_arch_patch", "d_patch", "d_model", "n_layers", "n_head", "d_k", "d_v"):
        if getattr(r, key) < 1:
            raise NarError(f"config key 'ranker.{key}' in {source} must be >= 1")
    if r.n_tier < 2:
        raise NarError(f"config key 'ranker.n_tier' in {source} must be >= 2")
    if r.encoder not in ENCODERS:
        raise NarError(f"config key 'ranker.encoder' in {source}: {r.encoder!r}; use one of {', '.join(ENCODERS)}")
    if r.ops_on not in ("nodes", "edges"):
        raise NarError(f"config key 'ranker.ops_on' in {source}: {r.ops_on!r}; use nodes or edges")
    if r.encoder == "gated_graph" and r.op_onehot < 2:
        raise NarError(f"config key 'ranker.op_onehot' in {source}: the gated_graph encoder needs the number "
                       "of op codes of feature channel 0 (6 for NB101, 5 for NB201)")
    if r.op_onehot < 0:
        raise NarError(f"config key 'ranker.op_onehot' in {source} must be >= 0 (0 = off)")
    if r.n_position < r.n_arch_patch:
        raise NarError(f"config key 'ranker.n_position' in {source} must be >= n_arch_patch")
    if cfg.batches_per_epoch < 0:
        raise NarError(f"config key 'batches_per_epoch' in {source} must be >= 0 (0 = off)")
    for key in ("train_size", "batch_size", "ranker_epochs", "validate_freq", "n_ensemble"):
        if getattr(cfg, key) < 1:
            raise NarError(f"config key {key!r} in {source} must be >= 1")
    if cfg.val_size < 0:
        raise NarError(f"config key 'val_size' in {source} must be >= 0 (0: no validation cells; "
                       "the model of the last epoch, or the weight average with swa_epochs, is kept)")


def parse_override(text: str) -> dict:
    """``"ranker.d_model=64"`` -> ``{"ranker": {"d_model": 64}}`` (value parsed as YAML)."""
    if "=" not in text:
        raise NarError(f"--set {text!r}: expected key=value (e.g. ranker.d_model=64)")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as e:
        raise NarError(f"--set {text!r}: value is not valid YAML ({e})") from e
    out: dict = {}
    node = out
    parts = key.strip().split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value
    return out


def default_config(bench: str | None = None) -> Config:
    """The paper settings for ``bench`` ("101" default, or "201")."""
    cfg = Config()
    if bench == "201":
        _apply(cfg, copy.deepcopy(PAPER_201), "the built-in NB201 defaults")
    elif bench not in (None, "101"):
        raise NarError(f"unknown bench {bench!r}: use 101 or 201")
    return cfg


def config_from_dict(values: dict, source: str = "a checkpoint") -> Config:
    """Rebuild a Config from :meth:`Config.to_dict` output (or any partial mapping)."""
    cfg = Config()
    _apply(cfg, copy.deepcopy(values), source)
    _validate(cfg, source)
    return cfg


def load_config(path=None, overrides=(), bench: str | None = None) -> Config:
    """Paper defaults (for ``bench`` when no ``path``), then the YAML at ``path``, then overrides
    (``"key=value"`` strings or mappings). ``bench`` must agree with the file's ``space``."""
    if path is None:
        cfg = default_config(bench)
    else:
        p = Path(path)
        if not p.exists():
            raise NarError(f"config file not found: {p}; pass an existing --config_file")
        try:
            values = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise NarError(f"config file {p} is not valid YAML: {e}") from e
        space = values.get("space", "nasbench") if isinstance(values, dict) else "nasbench"
        cfg = default_config("201" if space == "nasbench201" else None)
        _apply(cfg, values, str(p))
    for ov in overrides or ():
        _apply(cfg, parse_override(ov) if isinstance(ov, str) else ov, "--set")
    _validate(cfg, str(path) if path else "defaults")
    if bench is not None and cfg.bench != bench:
        raise NarError(f"config {path or 'defaults'} is for space {cfg.space!r} (NB{cfg.bench}) but the "
                       f"data is NB{bench}; use a config with space "
                       f"{'nasbench201' if bench == '201' else 'nasbench'}")
    return cfg

"""Configuration: dataclasses with the release's keys and defaults, YAML loading, ``--set`` overrides.

The defaults of :class:`Config` are the paper's NAS-Bench-101 settings; :data:`PAPER_201` holds
the keys that differ for NAS-Bench-201. Keys the release does not have (ours, kept few):
``network_type`` values, ``target``, ``device``, ``feature_scale``, ``train_batch_size`` /
``val_batch_size`` fallbacks. Unknown keys are errors naming the key and the file.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from nar.config_ranges import AUGMENTS, RANGES, SEED_MAX
from nar.search_config import SamplerConfig
from nar.stage_config import DistillConfig, PretrainConfig
from pipeline.errors import NarError
from pipeline.spaces import bench_of, list_spaces, space_class
from pipeline.spaces.nb201 import PAPER_201  # noqa: F401  (moved to the NB201 space; re-exported)
from pipeline.yaml_file import read_yaml

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
    structure_aux: float = 0.0    # gated_graph: weight of an auxiliary loss, while training on the
                                  # labelled cells, that predicts the cell's structural quantities
                                  # (nar/pretrain.py targets) from the readout; 0 = off


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
    space: str = "nasbench"       # a registered space: "nasbench" (NB101) | "nasbench201" | ...
    network_type: str = "cifar10"  # NB201 image dataset: cifar10 | cifar100 | imagenet16
    node_type_dict: dict = field(default_factory=lambda: {
        "input": 1, "conv1x1-bn-relu": 2, "conv3x3-bn-relu": 3, "maxpool3x3": 4, "output": 5})
    max_edges: int = 9            # the release's key; the limit is the space's (an other value is an error)
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
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    # ours
    target: str = "test_acc"      # accuracy evaluated against (val_acc when the store lacks it)
    device: str = "auto"          # auto | cpu | cuda
    feature_scale: str = "none"   # none (release) | log1p | standardize | log1p_standardize
    rank_loss: str = "pairwise"   # ranking loss on the score: pairwise (paper) | listmle (improved)
    swa_epochs: int = 0           # >0: return the weight average of the last N epochs (improved)
    n_ensemble: int = 1           # >1: average the scores of that many seeds (improved config)
    augment: str = "none"         # training batches: none | topo (random topological re-ordering, NB101)
    tta_orders: int = 0           # >0: predictions average the cell as numbered and this many random
                                  # topological re-orderings of its vertices (spaces with augment topo)
    baseline_target: str = "raw"  # baselines (arch != NAR) fit: raw accuracy | rank (share within the training sample)
    batches_per_epoch: int = 0    # >0: training batch size = ceil(train cells / this), at least
                                  # batch_size, so every training size gets the same number of steps

    @property
    def bench(self) -> str:
        return bench_of(self.space)

    @property
    def dataset(self) -> str:
        return space_class(self.space).dataset_of(self.network_type)

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


_FLOAT_TEXT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
_INT_KEYS_NULLABLE = ("train_batch_size", "val_batch_size")

def _check_type(default, value, key, source, nullable_int=False):
    """Coerce ``value`` to the type of ``default``; NarError when impossible. A bool is not a
    number, a number is not a bool, and floats must be finite."""
    if value is None and (default is None or nullable_int):
        return None
    if default is None and nullable_int:
        default = 0
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
    elif isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif isinstance(default, float):
        if isinstance(value, str) and _FLOAT_TEXT.fullmatch(value.strip()):
            value = float(value)  # YAML 1.1 reads 1e-3 (no dot) as a string
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise NarError(f"config key {key!r} in {source}: {value!r} is not a finite number; "
                               "fix the value")
            return float(value)
    elif isinstance(default, str):
        if isinstance(value, str):
            return value
    elif isinstance(default, dict):
        if isinstance(value, dict):
            return dict(value)
    elif default is None:
        return value
    want = "int or null" if nullable_int else type(default).__name__
    raise NarError(f"config key {key!r} in {source}: expected {want}, got {value!r}; fix the value")


def _apply(obj, values: dict, source: str, prefix: str = "", origins: dict | None = None) -> None:
    if not isinstance(values, dict):
        raise NarError(f"config section {prefix.rstrip('.') or '<top>'} in {source} must be a mapping "
                       f"of keys to values, got {str(values)[:60]!r}")
    names = {f.name for f in dataclasses.fields(obj)}
    for key, value in values.items():
        full = f"{prefix}{key}"
        if key not in names:
            raise NarError(f"unknown config key {full!r} in {source}; known keys: {', '.join(sorted(names))}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            _apply(current, value, source, f"{full}.", origins)
        else:
            setattr(obj, key, _check_type(current, value, full, source, full in _INT_KEYS_NULLABLE))
            if origins is not None:
                origins[full] = source


def _get(cfg: Config, key: str):
    obj = cfg
    for part in key.split("."):
        obj = getattr(obj, part)
    return obj


def _check_range(cfg: Config, key: str, source) -> None:
    value = _get(cfg, key)
    if value is None:
        return
    lo, hi, lo_open, hi_open = RANGES[key]
    low_bad = lo is not None and (value <= lo if lo_open else value < lo)
    high_bad = hi is not None and (value >= hi if hi_open else value > hi)
    if low_bad or high_bad:
        lo_s = "" if lo is None else f"{'>' if lo_open else '>='} {lo}"
        hi_s = "" if hi is None else f"{'<' if hi_open else '<='} {hi}"
        raise NarError(f"config key {key!r} in {source(key)}: {value!r} is out of range; it must be "
                       f"{' and '.join(x for x in (lo_s, hi_s) if x)}")


def _validate(cfg: Config, source: str, origins: dict | None = None) -> None:
    """``origins`` (key -> file or --set) lets each message name where the bad value came from."""
    def src(key: str) -> str:
        return (origins or {}).get(key, source)

    for key in RANGES:  # ranges first, so each message names the key that is wrong
        _check_range(cfg, key, src)
    if cfg.seed + cfg.n_ensemble > SEED_MAX:
        raise NarError(f"config key 'seed' in {src('seed')}: {cfg.seed} with n_ensemble {cfg.n_ensemble} uses "
                       f"seeds up to {cfg.seed + cfg.n_ensemble}; keep seed <= {SEED_MAX - cfg.n_ensemble}")
    try:
        space = space_class(cfg.space)
    except NarError:
        raise NarError(f"config key 'space' in {src('space')}: {cfg.space!r}; use one of "
                       f"{', '.join(list_spaces())} (or nasbench for NB101)") from None
    aliases = {"cifar10-valid": "cifar10", "imagenet16-120": "imagenet16", "ImageNet16-120": "imagenet16"}
    cfg.network_type = aliases.get(cfg.network_type, cfg.network_type)
    if cfg.network_type not in NETWORK_TYPES:
        raise NarError(f"config key 'network_type' in {src('network_type')}: {cfg.network_type!r}; "
                       f"use one of {', '.join(NETWORK_TYPES)}")
    if cfg.feature_scale not in FEATURE_SCALES:
        raise NarError(f"config key 'feature_scale' in {src('feature_scale')}: {cfg.feature_scale!r}; "
                       f"use one of {', '.join(FEATURE_SCALES)}")
    if cfg.swa_epochs > cfg.ranker_epochs:
        raise NarError(f"config key 'swa_epochs' in {src('swa_epochs')}: {cfg.swa_epochs} > ranker_epochs "
                       f"{cfg.ranker_epochs}; use 0 (off) .. ranker_epochs")
    if cfg.start_epochs >= cfg.ranker_epochs:
        raise NarError(f"config key 'start_epochs' in {src('start_epochs')}: {cfg.start_epochs} >= ranker_epochs "
                       f"{cfg.ranker_epochs}; nothing would be trained: lower start_epochs")
    if cfg.rank_loss not in ("pairwise", "listmle"):
        raise NarError(f"config key 'rank_loss' in {src('rank_loss')}: {cfg.rank_loss!r}; use pairwise or listmle")
    if cfg.augment not in AUGMENTS:
        raise NarError(f"config key 'augment' in {src('augment')}: {cfg.augment!r}; use one of {', '.join(AUGMENTS)}")
    if cfg.tta_orders > 0 and "topo" not in space.augments:
        raise NarError(f"config key 'tta_orders' in {src('tta_orders')}: {cfg.tta_orders} needs vertex "
                       f"re-ordering, which space {cfg.space!r} does not have; set tta_orders 0")
    if cfg.augment not in space.augments:
        raise NarError(f"config key 'augment' in {src('augment')}: {cfg.augment!r} is not available for space "
                       f"{cfg.space!r} (it has {', '.join(space.augments)}); use augment none")
    if cfg.max_edges != Config.max_edges and cfg.max_edges != space.max_edges:
        raise NarError(f"config key 'max_edges' in {src('max_edges')}: {cfg.max_edges}; the edge limit of space "
                       f"{cfg.space!r} is {space.max_edges} (the space's, not configurable); drop the key")
    if cfg.strategy not in ("val_acc", "test_acc"):
        raise NarError(f"config key 'strategy' in {src('strategy')}: {cfg.strategy!r}; use val_acc or test_acc")
    if cfg.target not in ("val_acc", "test_acc"):
        raise NarError(f"config key 'target' in {src('target')}: {cfg.target!r}; use val_acc or test_acc")
    if cfg.baseline_target not in ("raw", "rank"):
        raise NarError(f"config key 'baseline_target' in {src('baseline_target')}: {cfg.baseline_target!r}; use raw or rank")
    if cfg.device not in ("auto", "cpu", "cuda"):
        raise NarError(f"config key 'device' in {src('device')}: {cfg.device!r}; use auto, cpu or cuda")
    r, sm = cfg.ranker, cfg.sampler
    if r.encoder not in ENCODERS:
        raise NarError(f"config key 'ranker.encoder' in {src('ranker.encoder')}: {r.encoder!r}; use one of {', '.join(ENCODERS)}")
    if r.ops_on not in ("nodes", "edges"):
        raise NarError(f"config key 'ranker.ops_on' in {src('ranker.ops_on')}: {r.ops_on!r}; use nodes or edges")
    if r.structure_aux > 0 and r.encoder != "gated_graph":
        raise NarError(f"config key 'ranker.structure_aux' in {src('ranker.structure_aux')}: {r.structure_aux} needs "
                       "ranker.encoder gated_graph; set it to 0 for the patch transformer")
    if r.encoder == "gated_graph" and r.op_onehot < 2:
        raise NarError(f"config key 'ranker.op_onehot' in {src('ranker.op_onehot')}: the gated_graph encoder needs the "
                       "number of op codes of feature channel 0 (6 for NB101, 5 for NB201)")
    if r.n_position < r.n_arch_patch:
        raise NarError(f"config key 'ranker.n_position' in {src('ranker.n_position')}: {r.n_position} < ranker.n_arch_patch "
                       f"{r.n_arch_patch}; it must be >= n_arch_patch")
    if not sm.top_tier <= sm.last_tier <= r.n_tier:
        raise NarError(f"config keys 'sampler.top_tier' {sm.top_tier} and 'sampler.last_tier' {sm.last_tier} "
                       f"in {src('sampler.last_tier')}: need 1 <= top_tier <= last_tier <= ranker.n_tier ({r.n_tier})")
    if sm.tournament > sm.population:
        raise NarError(f"config key 'sampler.tournament' in {src('sampler.tournament')}: {sm.tournament} > sampler.population "
                       f"{sm.population}; use a tournament no larger than the population")
    nodes = cfg.node_type_dict
    if not all(isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool)
               for k, v in nodes.items()):
        raise NarError(f"config key 'node_type_dict' in {src('node_type_dict')}: must map op names to integer codes")


def validate_config(cfg: Config, source: str = "the config") -> None:
    """Check every key of ``cfg`` for range and meaning; NarError naming the key."""
    _validate(cfg, source)


def parse_override(text: str) -> dict:
    """``"ranker.d_model=64"`` -> ``{"ranker": {"d_model": 64}}`` (value parsed as YAML)."""
    if "=" not in text:
        raise NarError(f"--set {text!r}: expected key=value (e.g. ranker.d_model=64)")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except (yaml.YAMLError, ValueError, RecursionError) as e:
        raise NarError(f"--set {text!r}: value is not valid YAML ({e})") from e
    out: dict = {}
    node = out
    parts = key.strip().split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value
    return out


def default_config(bench: str | None = None) -> Config:
    """The paper settings for the space ``bench`` (NB101 by default; a store id such as "201"
    or any registered space name)."""
    cfg = Config()
    if bench is not None:
        space = space_class(bench)
        if space.paper_overrides:
            _apply(cfg, copy.deepcopy(space.paper_overrides), f"the built-in {space.title} defaults")
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
        values = read_yaml(p, "config file", "pass an existing YAML file as --config_file") or {}
        if not isinstance(values, dict):
            raise NarError(f"config file {p} must hold a mapping of keys to values, got {str(values)[:60]!r}")
        space = values.get("space", "nasbench") if isinstance(values, dict) else "nasbench"
        try:
            cfg = default_config(space)
        except NarError:
            cfg = default_config(None)  # _apply/_validate below name the bad key and file
        _apply(cfg, values, str(p))
    origins: dict = {}
    for ov in overrides or ():
        _apply(cfg, parse_override(ov) if isinstance(ov, str) else ov, "--set", origins=origins)
    _validate(cfg, str(path) if path else "defaults", origins)
    if bench is not None and cfg.bench != bench_of(bench):
        raise NarError(f"config {path or 'defaults'} is for space {cfg.space!r} (NB{cfg.bench}) but the "
                       f"data is NB{bench_of(bench)}; use a config with space "
                       f"{space_class(bench).config_names[0]}")
    return cfg

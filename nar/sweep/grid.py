"""Expand a :class:`~nar.sweep.spec.SweepSpec` into cells. A cell is one run directory:

- ``rank``: data x dataset x model x training size x seed: ``nar-cli train`` + ``test`` (+ the
  NAR search ``sample`` when the spec asks and the model is NAR);
- ``search``: data x dataset x search x seed: ``nar-cli sample --mode random|evolution|iterative``.

Every config is resolved here (``load_config`` with the same ``--set`` list the cell will
use), the stores are opened (a NAR JSON is encoded once, cached) and sizes are checked, so a
bad spec fails before anything runs. A cell's directory is named ``<labels>-<key>`` where
``key`` hashes its resolved settings: the resolved config (as its differences from the code's
defaults, so a config key added later changes no key; bump :data:`FORMAT` when a default
changes meaning), the data's identity (bench, size, source SHA256 / creation time), the jobs
and their settings.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cache.store import Store
from nar.config import NETWORK_TYPES, load_config
from nar.predictor import create_predictor
from nar.presets import preset_available, preset_config, space_config
from nar.sweep.spec import DataSpec, ModelSpec, SweepSpec
from pipeline.errors import NarError
from pipeline.spaces import space_class

FORMAT = 1  # bump when the meaning of a cell's settings changes


@dataclass
class Cell:
    kind: str                   # "rank" | "search"
    name: str                   # run directory name: labels and the settings key
    key: str                    # hash of ``settings``
    labels: dict                # data, bench, dataset, model, train_size, val_size, seed, budget
    store: str                  # store path (absolute)
    config_file: str | None
    overrides: list[str]
    seed: int
    settings: dict              # what the key hashes
    sample: dict | None = None  # rank cells: {"iterations", "overrides"} of the NAR search
    search: dict | None = None  # search cells: {"mode", "budget", "surrogate"}
    commands: list[str] = field(default_factory=list)  # the equivalent nar-cli commands


def config_settings(cfg) -> dict:
    """The resolved config as the values that differ from the code's defaults (``Config()``),
    nested: a key added to the code later with a default changes no cell's settings."""
    from nar.config import Config

    def diff(value, default):
        if isinstance(value, dict) and isinstance(default, dict):
            out = {k: diff(v, default.get(k)) for k, v in value.items() if k not in default or v != default[k]}
            return out
        return value

    return diff(cfg.to_dict(), Config().to_dict())


def settings_key(settings: dict) -> str:
    """12 hex digits of the SHA256 of ``settings`` as canonical JSON."""
    text = json.dumps({"format": FORMAT, **settings}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _title(bench) -> str:
    return space_class(bench).title


@dataclass
class _Data:
    spec: DataSpec
    store: Path
    bench: str
    datasets: list[str]
    identity: dict
    labelled: dict = field(default_factory=dict)  # (dataset, strategy) -> labelled count


def _open_data(d: DataSpec) -> _Data:
    path = d.path
    if path.suffix.lower() == ".json":
        from pipeline.ingest import ingest
        path = Path(ingest(path, d.bench)).resolve()
    with Store(path) as s:
        if d.bench is not None and s.bench != d.bench:
            raise NarError(f"data {d.name}: {path} holds {_title(s.bench)} cells but the spec says bench "
                           f"{d.bench} ({_title(d.bench)}); fix bench:")
        sha = str(s.attrs.get("source_sha256", ""))
        source = sha if sha.strip("0") else str(s.attrs.get("created", ""))
        ident = {"bench": s.bench, "n": int(s.n), "source": source,
                 "encoder_version": s.attrs.get("encoder_version"), "schema_version": s.attrs.get("schema_version")}
        return _Data(d, path, s.bench, list(s.datasets), ident)


def _labelled(data: _Data, dataset: str, strategy: str) -> int:
    k = (dataset, strategy)
    if k not in data.labelled:
        from nar.data import label_array
        with Store(data.store) as s:
            y, _ = label_array(s, dataset, strategy)
        data.labelled[k] = int(np.isfinite(y).sum())
    return data.labelled[k]


def _model_config(m: ModelSpec, bench: str):
    """(config file, preset overrides) of model ``m`` on ``bench``, or None when it has no
    config for that bench."""
    if m.preset:
        if not preset_available(m.preset, bench):
            return None
        path, over = preset_config(m.preset, bench)
        return str(path), over
    if m.arch:
        return str(space_config(bench)), [f"arch={m.arch}"]
    if None in m.configs:
        f = m.configs[None]
        return (str(f), []) if load_config(f).bench == bench else None
    return (str(m.configs[bench]), []) if bench in m.configs else None


def _resolve(config_file, overrides, where: str):
    try:
        return load_config(config_file, overrides)
    except NarError as e:
        raise NarError(f"{where}: {e}") from e


def _cmd(name, config_file, store, save_dir, seed, overrides, extra=()) -> str:
    parts = [f"nar-cli {name}", f"--config_file {config_file}", f"--data_path {store}", f"--save_dir {save_dir}",
             f"--seed {seed}", *extra, *(f"--set {o}" for o in overrides)]
    return " ".join(parts)


def takes_network_type(bench) -> bool:
    """Whether a store of space ``bench`` holds several datasets that the config key
    ``network_type`` picks (NB201: cifar10, cifar100, imagenet16). A space with one dataset
    (NB101: cifar10; NAS-Bench-Graph and user spaces: one table per store) ignores it."""
    return len(space_class(bench).datasets) > 1


def _grid_dataset(data: _Data, ds: str) -> list[str]:
    return [f"network_type={ds}"] if takes_network_type(data.bench) else []


def _dataset_items(spec: SweepSpec, data: _Data):
    if not takes_network_type(data.bench):  # its one dataset, with that name's overrides if listed
        ds = space_class(data.bench).datasets[0]
        return [(ds, spec.datasets.get(ds, []))]
    items = []
    for ds, over in spec.datasets.items():
        if ds not in NETWORK_TYPES:
            raise NarError(f"sweep spec {spec.path}: datasets: unknown dataset {ds!r}; use {', '.join(NETWORK_TYPES)}")
        if ds not in data.datasets:
            raise NarError(f"sweep spec {spec.path}: data {data.spec.name} ({data.store}) has no dataset {ds!r} "
                           f"(it has {', '.join(data.datasets)}); drop it from datasets:")
        items.append((ds, over))
    return items


def _rank_cells(spec, data, ds, ds_over, m, cfg_file, preset_over) -> list[Cell]:
    cells = []
    for size in (m.train_sizes or data.spec.train_sizes or spec.train_sizes):
        grid_over = _grid_dataset(data, ds)
        if size is not None:
            grid_over += [f"train_size={size[0]}"] + ([f"val_size={size[1]}"] if size[1] is not None else [])
        overrides = [*preset_over, *spec.overrides, *data.spec.overrides, *ds_over, *m.overrides, *grid_over]
        where = f"sweep spec {spec.path}: model {m.name} on {data.spec.name}/{ds}"
        cfg = _resolve(cfg_file, overrides, where)
        if cfg.bench != data.bench:
            raise NarError(f"{where}: the config is for {_title(cfg.bench)} but the data is {_title(data.bench)}")
        if cfg.train_size < cfg.ranker.n_tier:
            raise NarError(f"{where}: train_size {cfg.train_size} < n_tier {cfg.ranker.n_tier}; raise it")
        n_lab = _labelled(data, ds, cfg.strategy)
        if cfg.train_size + cfg.val_size > n_lab:
            raise NarError(f"{where}: train_size {cfg.train_size} + val_size {cfg.val_size} > {n_lab} labelled "
                           "architectures; lower train_sizes")
        predictor = create_predictor(cfg.arch, cfg)
        with Store(data.store) as s:
            try:
                predictor.check_data(s, ds)
            except NarError as e:
                raise NarError(f"{where}: {e}") from e
        sample = None
        if spec.sample is not None and predictor.samples:
            scfg = _resolve(cfg_file, overrides + spec.sample.overrides, f"{where} (sample)")
            if spec.sample.iterations is None and scfg.sampler_epochs <= scfg.ranker_epochs:
                raise NarError(f"{where}: sample needs iterations: the config gives none (sampler_epochs <= "
                               "ranker_epochs); set sample: {iterations: N}")
            sample = {"iterations": spec.sample.iterations, "overrides": list(spec.sample.overrides),
                      "sampler": config_settings(scfg).get("sampler", {})}
        for seed in (size[2] if size is not None and size[2] is not None else spec.seeds):
            cfg.seed = seed
            settings = {"kind": "rank", "data": data.identity, "config": config_settings(cfg), "sample": sample}
            key = settings_key(settings)
            labels = {"data": data.spec.name, "bench": data.bench, "dataset": ds, "model": m.name,
                      "train_size": cfg.train_size, "val_size": cfg.val_size, "seed": seed, "budget": None}
            name = f"{data.spec.name}-{m.name}-{ds}-n{cfg.train_size}-s{seed}-{key}"
            cmds = [_cmd("train", cfg_file, data.store, name, seed, overrides),
                    _cmd("test", cfg_file, data.store, name, seed, overrides, ["--checkpoint ckp_best.pth"])]
            if sample:
                it = [f"--iterations {sample['iterations']}"] if sample["iterations"] else []
                cmds.append(_cmd("sample", cfg_file, data.store, name, seed, overrides + sample["overrides"],
                                 ["--checkpoint ckp_best.pth", *it]))
            cells.append(Cell("rank", name, key, labels, str(data.store), cfg_file, overrides, seed, settings,
                              sample=sample, commands=cmds))
    return cells


def _search_cells(spec, data, ds, ds_over, s, models) -> list[Cell]:
    where = f"sweep spec {spec.path}: search {s.name} on {data.spec.name}/{ds}"
    if s.model is not None:
        mc = _model_config(models[s.model], data.bench)
        if mc is None:
            raise NarError(f"{where}: model {s.model} has no config for {_title(data.bench)}")
        cfg_file, over = mc[0], [*mc[1], *models[s.model].overrides]
    elif s.config is not None:
        cfg_file, over = str(s.config), []
        if load_config(cfg_file).bench != data.bench:
            return []  # a config of the other bench: this search does not apply to this data
    else:
        cfg_file, over = str(space_config(data.bench)), []
    grid_over = _grid_dataset(data, ds)
    overrides = [*over, *spec.overrides, *data.spec.overrides, *ds_over, *s.overrides, *grid_over]
    cfg = _resolve(cfg_file, overrides, where)
    if s.mode == "iterative" and s.budget < cfg.sampler.init_size:
        raise NarError(f"{where}: budget {s.budget} < sampler.init_size {cfg.sampler.init_size}; raise budget")
    search = {"mode": s.mode, "budget": s.budget, "surrogate": s.surrogate if s.mode == "iterative" else None}
    cells = []
    for seed in spec.seeds:
        cfg.seed = seed
        used = config_settings(cfg)
        if search["surrogate"] != "nar":
            used = {"sampler": used.get("sampler", {})}
        settings = {"kind": "search", "data": data.identity, "dataset": ds, "search": search, "seed": seed,
                    "config": used}
        key = settings_key(settings)
        labels = {"data": data.spec.name, "bench": data.bench, "dataset": ds, "model": s.name,
                  "train_size": None, "val_size": None, "seed": seed, "budget": s.budget}
        name = f"{data.spec.name}-{s.name}-{ds}-b{s.budget}-s{seed}-{key}"
        extra = [f"--mode {s.mode}", f"--budget {s.budget}", f"--dataset {ds}"]
        if s.mode == "iterative":
            extra.append(f"--surrogate {s.surrogate}")
        cmd = _cmd("sample", cfg_file, data.store, name, seed, overrides, extra)
        cells.append(Cell("search", name, key, labels, str(data.store), cfg_file, overrides, seed, settings,
                          search=search, commands=[cmd]))
    return cells


def expand(spec: SweepSpec) -> list[Cell]:
    """Every cell of the grid, checked; NarError on the first problem, before anything runs."""
    datas = [_open_data(d) for d in spec.data]
    models = {m.name: m for m in spec.models}
    cells: list[Cell] = []
    for m in spec.models:
        if not any(_model_config(m, d.bench) for d in datas):
            raise NarError(f"sweep spec {spec.path}: model {m.name} has no config for the benches of the data "
                           f"({', '.join(sorted({_title(d.bench) for d in datas}))}); fix config: or data:")
    for data in datas:
        for ds, ds_over in _dataset_items(spec, data):
            for m in spec.models:
                mc = _model_config(m, data.bench)
                if mc is not None:
                    cells += _rank_cells(spec, data, ds, ds_over, m, *mc)
            for s in spec.searches:
                cells += _search_cells(spec, data, ds, ds_over, s, models)
    if not cells:
        raise NarError(f"sweep spec {spec.path}: the grid is empty; check data:, models:, searches: and seeds:")
    names = [c.name for c in cells]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise NarError(f"sweep spec {spec.path}: two cells resolve to the same settings ({dup}); "
                       "remove the duplicate entry")
    return cells

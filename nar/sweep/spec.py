"""The sweep spec: a YAML file naming a grid of runs, read into dataclasses.

    name: ranking201                 # default: the file's stem
    out: runs/sweeps/ranking201      # default: runs/sweeps/<name>
    data:                            # name: store (.h5) or NAR JSON (give bench: for JSON)
      nb201: {path: cache/nb201_table.json, bench: 201}   # bench: a registered space (101, graph, ...)
    datasets: [cifar10, cifar100]    # network_type of spaces with several (NB201); or
                                     # {cifar100: [strategy=test_acc]}; one-dataset spaces ignore it
                                     # (a data entry may hold its own train_sizes: and set:)
    models:                          # name: preset | {preset|config|arch, set, train_sizes}
      nar_cpu: nar_cpu
      improved: {config: config/improved201.yml, set: [n_ensemble=1]}
      lgb_rank: {arch: lightgbm, set: [baseline_target=rank]}
    train_sizes: [[1000, 256]]       # [train, val] pairs, train sizes (val from the config) or
                                     # {train: N, val: V, seeds: [0, 1, 2]} (its own seeds)
    seeds: [0, 1, 2]
    set: [target=test_acc]           # --set overrides of every cell
    sample: true                     # NAR search with each trained NAR ranker (search.json)
    milestones: [25, 50, 64, 100, 150, 200, 500]   # query counts of the report's search tables
    searches:                        # query-budget searches (their own cells, no training)
      - {mode: iterative, surrogate: lightgbm, budget: 500}
      - {mode: evolution, budget: 500}
      - {mode: iterative, surrogate: nar, config: config/improved201.yml, budget: 200}

Relative paths are relative to the current directory, like every ``nar-cli`` path. Unknown
keys, missing files, unknown presets and an empty grid are :class:`NarError` here or in
:func:`nar.sweep.grid.expand`, before anything runs.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from nar.presets import preset_names
from nar.sweep.report_search import DEFAULT_MILESTONES
from pipeline.errors import NarError

SEARCH_MODES = ("random", "evolution", "iterative")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
TOP_KEYS = ("name", "out", "data", "datasets", "models", "train_sizes", "seeds", "set", "sample", "searches",
            "milestones")


@dataclass
class DataSpec:
    name: str
    path: Path                  # absolute
    bench: str | None = None    # store id of a space ("101", "201", "graph", ...); required for a NAR JSON
    overrides: list[str] = field(default_factory=list)
    train_sizes: list | None = None  # overrides the spec's train_sizes for this data


@dataclass
class ModelSpec:
    name: str
    preset: str | None = None           # a nar.presets name
    configs: dict = field(default_factory=dict)  # bench (None: the file's own) -> config file (absolute)
    arch: str | None = None             # a baseline arch on the config the space ships
    overrides: list[str] = field(default_factory=list)
    train_sizes: list | None = None     # overrides the spec's train_sizes


@dataclass
class SampleSpec:
    iterations: int | None = None
    overrides: list[str] = field(default_factory=list)


@dataclass
class SearchSpec:
    name: str
    mode: str
    budget: int
    surrogate: str = "lightgbm"         # iterative mode: a nar.baselines name, or nar (needs model)
    model: str | None = None            # config source (a models entry) for sampler keys / nar surrogate
    config: Path | None = None          # ... or a config file of its own
    overrides: list[str] = field(default_factory=list)


@dataclass
class SweepSpec:
    path: Path
    name: str
    out: Path
    data: list[DataSpec]
    datasets: dict                      # dataset -> overrides
    models: list[ModelSpec]
    train_sizes: list                   # (train, val | None, seeds | None) tuples; [None] = the config's
    seeds: list[int]
    overrides: list[str] = field(default_factory=list)
    sample: SampleSpec | None = None
    searches: list[SearchSpec] = field(default_factory=list)
    milestones: list[int] = field(default_factory=lambda: list(DEFAULT_MILESTONES))  # report only


def _err(spec_path, where: str, msg: str) -> NarError:
    return NarError(f"sweep spec {spec_path}: {where}: {msg}")


def _keys(obj, allowed, spec_path, where):
    if not isinstance(obj, dict):
        raise _err(spec_path, where, f"expected a mapping, got {obj!r}")
    unknown = [k for k in obj if k not in allowed]
    if unknown:
        raise _err(spec_path, where, f"unknown key {unknown[0]!r}; known keys: {', '.join(allowed)}")
    return obj


def _name(value, spec_path, where) -> str:
    value = str(value)
    if not _NAME.match(value):
        raise _err(spec_path, where, f"name {value!r} may hold only letters, digits and _ . + -")
    return value


def _overrides(value, spec_path, where) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and "=" in v for v in value):
        raise _err(spec_path, where, f"expected a list of KEY=VALUE strings (like --set), got {value!r}")
    return list(value)


def _int(value, spec_path, where, minimum=0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _err(spec_path, where, f"expected an integer >= {minimum}, got {value!r}")
    return value


def _existing(path, spec_path, where, what) -> Path:
    p = Path(str(path)).expanduser()
    if not p.exists():
        raise _err(spec_path, where, f"{what} not found: {p}; fix the path (relative paths are from "
                                     f"the current directory, {Path.cwd()})")
    return p.resolve()


def _bench(value, spec_path, where) -> str:
    """The store id ("101", "201", "graph", ...) of a registered space name or alias."""
    from pipeline.spaces import bench_of, space_choices
    try:
        return bench_of(value)
    except NarError:
        raise _err(spec_path, where, f"bench {value!r}; use a registered space: "
                                     f"{', '.join(space_choices())}") from None


def _data(raw, spec_path) -> list[DataSpec]:
    if not isinstance(raw, dict) or not raw:
        raise _err(spec_path, "data", "give at least one entry NAME: PATH (a store .h5 or a NAR JSON)")
    out = []
    for name, v in raw.items():
        where = f"data.{name}"
        v = {"path": v} if isinstance(v, str) else _keys(v, ("path", "bench", "set", "train_sizes"), spec_path, where)
        if "path" not in v:
            raise _err(spec_path, where, "missing key 'path'")
        path = _existing(v["path"], spec_path, where, "data file")
        bench = _bench(v["bench"], spec_path, where) if "bench" in v else None
        if path.suffix.lower() == ".json" and bench is None:
            raise _err(spec_path, where, "a NAR JSON needs bench: (101, 201, graph, ...: a registered space) "
                                         "or give the encoded .h5 store")
        sizes = _train_sizes(v["train_sizes"], spec_path, f"{where}.train_sizes") if "train_sizes" in v else None
        out.append(DataSpec(_name(name, spec_path, where), path, bench, _overrides(v.get("set"), spec_path, where),
                            sizes))
    return out


def _datasets(raw, spec_path) -> dict:
    if raw is None:
        return {"cifar10": []}
    if isinstance(raw, str):
        raw = [raw]
    if isinstance(raw, list):
        raw = {d: [] for d in raw}
    if not isinstance(raw, dict) or not raw:
        raise _err(spec_path, "datasets", f"expected a list of dataset names or a mapping, got {raw!r}")
    return {str(d): _overrides(o, spec_path, f"datasets.{d}") for d, o in raw.items()}


def _seeds(raw, spec_path, where) -> list[int]:
    if not isinstance(raw, list):
        raise _err(spec_path, where, f"expected a list of integers, got {raw!r}")
    seeds = [_int(s, spec_path, where) for s in raw]
    if len(set(seeds)) != len(seeds):
        raise _err(spec_path, where, f"repeated seed in {seeds}")
    return seeds


def _train_sizes(raw, spec_path, where) -> list:
    """(train, val | None, seeds | None) tuples of a train_sizes list: N, [N, VAL] or
    {train: N, val: VAL, seeds: [...]} (seeds of this size instead of the spec's)."""
    if raw is None:
        return [None]
    if not isinstance(raw, list) or not raw:
        raise _err(spec_path, where, f"expected a non-empty list of sizes, [train, val] pairs or "
                                     f"{{train, val, seeds}}, got {raw!r}")
    out = []
    for v in raw:
        if isinstance(v, dict):
            _keys(v, ("train", "val", "seeds"), spec_path, where)
            if "train" not in v:
                raise _err(spec_path, where, f"missing key 'train' in {v!r}")
            out.append((_int(v["train"], spec_path, where, 1),
                        _int(v["val"], spec_path, where, 0) if "val" in v else None,
                        _seeds(v["seeds"], spec_path, f"{where} seeds") if "seeds" in v else None))
        elif isinstance(v, list) and len(v) == 2:
            out.append((_int(v[0], spec_path, where, 1), _int(v[1], spec_path, where, 0), None))
        else:
            out.append((_int(v, spec_path, where, 1), None, None))
    return out


def _model(name, v, spec_path) -> ModelSpec:
    where = f"models.{name}"
    m = ModelSpec(_name(name, spec_path, where))
    if v is None or isinstance(v, str):
        v = {"preset": v or name}
    _keys(v, ("preset", "config", "arch", "set", "train_sizes"), spec_path, where)
    given = [k for k in ("preset", "config", "arch") if k in v]
    if len(given) != 1:
        raise _err(spec_path, where, "give exactly one of preset, config (a file or {BENCH: FILE, ...}, e.g. "
                                     "{101: FILE, 201: FILE}) or arch (a baseline on the space's config)")
    if "preset" in v:
        if v["preset"] not in preset_names():
            raise _err(spec_path, where, f"unknown model {v['preset']!r}; presets: {', '.join(preset_names())} "
                                         "(or give config: FILE)")
        m.preset = v["preset"]
    elif "config" in v:
        files = v["config"] if isinstance(v["config"], dict) else {None: v["config"]}
        m.configs = {(None if b is None else _bench(b, spec_path, where)):
                     _existing(f, spec_path, where, "config file") for b, f in files.items()}
    else:
        from nar.baselines import list_baselines
        if v["arch"] not in list_baselines():
            raise _err(spec_path, where, f"unknown arch {v['arch']!r}; use one of {', '.join(list_baselines())}")
        m.arch = v["arch"]
    m.overrides = _overrides(v.get("set"), spec_path, where)
    if "train_sizes" in v:
        m.train_sizes = _train_sizes(v["train_sizes"], spec_path, f"{where}.train_sizes")
    return m


def _models(raw, spec_path) -> list[ModelSpec]:
    if raw is None:
        return []
    if isinstance(raw, list):
        raw = {str(n): None for n in raw}
    if not isinstance(raw, dict):
        raise _err(spec_path, "models", f"expected a mapping NAME: preset|{{...}} or a list of presets, got {raw!r}")
    return [_model(n, v, spec_path) for n, v in raw.items()]


def _search(i, v, spec_path, model_names) -> SearchSpec:
    where = f"searches[{i}]"
    _keys(v, ("name", "mode", "budget", "surrogate", "model", "config", "set"), spec_path, where)
    mode = v.get("mode")
    if mode not in SEARCH_MODES:
        raise _err(spec_path, where, f"mode {mode!r}; use one of {', '.join(SEARCH_MODES)} "
                                     "(NAR search of a trained ranker is `sample: true`)")
    if "budget" not in v:
        raise _err(spec_path, where, "missing key 'budget' (the number of accuracy look-ups)")
    surrogate = str(v.get("surrogate", "lightgbm"))
    model = v.get("model")
    if model is not None and model not in model_names:
        raise _err(spec_path, where, f"model {model!r} is not in models ({', '.join(model_names) or 'none'})")
    if model is not None and "config" in v:
        raise _err(spec_path, where, "give model: or config:, not both")
    config = _existing(v["config"], spec_path, where, "config file") if "config" in v else None
    if mode == "iterative" and surrogate == "nar" and model is None and config is None:
        raise _err(spec_path, where, "surrogate nar needs model: NAME (a models entry) or config: FILE")
    default = mode + (f"-{surrogate}" if mode == "iterative" else "")
    return SearchSpec(_name(v.get("name", default), spec_path, where), mode, _int(v["budget"], spec_path, where, 1),
                      surrogate, model, config, _overrides(v.get("set"), spec_path, where))


def _milestones(raw, spec_path) -> list[int]:
    """The query counts of the report's search tables (each shown up to a search's budget)."""
    if raw is None:
        return list(DEFAULT_MILESTONES)
    if not isinstance(raw, list) or not raw:
        raise _err(spec_path, "milestones", f"expected a non-empty list of query counts, got {raw!r}")
    return sorted({_int(m, spec_path, "milestones", 1) for m in raw})


def load_spec(path) -> SweepSpec:
    """Read and check the spec at ``path`` (structure, names, files that must exist)."""
    from pipeline.yaml_file import read_yaml

    spec_path = Path(path)
    raw = read_yaml(spec_path, "sweep spec", "pass a YAML file (see docs/sweeps.md)")
    _keys(raw, TOP_KEYS, spec_path, "top level")
    name = _name(raw.get("name", spec_path.stem), spec_path, "name")
    out = Path(str(raw.get("out", Path("runs") / "sweeps" / name))).expanduser().resolve()
    if "seeds" not in raw:
        raise _err(spec_path, "seeds", "missing key 'seeds' (a list of integers)")
    seeds = _seeds(raw["seeds"], spec_path, "seeds")
    models = _models(raw.get("models"), spec_path)
    if len({m.name for m in models}) != len(models):
        raise _err(spec_path, "models", "repeated model name")
    sample = raw.get("sample")
    if sample in (None, False):
        sample = None
    elif sample is True:
        sample = SampleSpec()
    else:
        _keys(sample, ("iterations", "set"), spec_path, "sample")
        it = sample.get("iterations")
        sample = SampleSpec(None if it is None else _int(it, spec_path, "sample.iterations", 1),
                            _overrides(sample.get("set"), spec_path, "sample"))
    searches = raw.get("searches") or []
    if not isinstance(searches, list):
        raise _err(spec_path, "searches", f"expected a list of {{mode, budget, ...}}, got {searches!r}")
    searches = [_search(i, s, spec_path, [m.name for m in models]) for i, s in enumerate(searches)]
    if len({s.name for s in searches}) != len(searches):
        raise _err(spec_path, "searches", "two searches share a name; give each a distinct name:")
    spec = SweepSpec(spec_path.resolve(), name, out, _data(raw.get("data"), spec_path),
                     _datasets(raw.get("datasets"), spec_path), models,
                     _train_sizes(raw.get("train_sizes"), spec_path, "train_sizes"), seeds,
                     _overrides(raw.get("set"), spec_path, "set"), sample, searches,
                     _milestones(raw.get("milestones"), spec_path))
    if not seeds or (not models and not searches):
        raise _err(spec_path, "grid", "the grid is empty; give seeds and at least one of models or searches")
    return spec

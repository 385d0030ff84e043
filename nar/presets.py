"""Named models shared by ``nar-cli sweep`` and ``bench/bench_ranking.py``.

A preset is a config file per space plus ``--set`` overrides: the NAR presets are the YAML
files of ``config/``; a baseline preset is the space's own config (``paper_config_file`` of its
:class:`~pipeline.spaces.SearchSpace`: ``config/config.yml``, ``config201.yml``, ``graph.yml``,
...) with ``arch`` set to the baseline (and ``baseline_target: rank`` for the ``*_rank``
variants, which fit the rank share of each training cell instead of its raw accuracy).

NB101 and NB201 have a file per NAR preset (:data:`NAR_PRESETS`). Any other space ships one
config, its ``paper_config_file`` (NAS-Bench-Graph: ``config/graph.yml``, the gated graph
ranker); ``nar_default`` and ``nar_paper`` resolve to it there, and the CPU / improved presets
have no config for it (:func:`preset_available` is False).
"""
from __future__ import annotations

from pathlib import Path

from nar.config import CONFIG_DIR
from pipeline.errors import NarError
from pipeline.spaces import bench_of, space_class

# model name -> config file (in config/) per bench
NAR_PRESETS = {
    "nar_paper": {"101": "config.yml", "201": "config201.yml"},
    "nar_cpu": {"101": "cpu101.yml", "201": "cpu201.yml"},
    "nar_improved": {"101": "improved101.yml", "201": "improved201.yml"},  # ours, not the paper's
    "nar_default": {"101": "default101.yml", "201": "default201.yml"},  # ours: the gated graph ranker
}
# NAR presets that resolve to the space's own config on spaces without a file in NAR_PRESETS
SPACE_CONFIG_PRESETS = ("nar_default", "nar_paper")
# model name -> (baseline name of nar.baselines, keyword options of create_baseline)
BASELINE_PRESETS = {
    "lightgbm": ("lightgbm", {}),
    "lightgbm_rank": ("lightgbm", {"target": "rank"}),
    "xgboost": ("xgboost", {}),
    "mlp": ("mlp", {}),
    "mlp_rank": ("mlp", {"target": "rank"}),
}


def preset_names() -> list[str]:
    return sorted([*NAR_PRESETS, *BASELINE_PRESETS])


def space_config(bench) -> Path:
    """The config file a space ships (its ``paper_config_file``), for any registered space name,
    alias or store id."""
    return CONFIG_DIR.parent / space_class(bench).paper_config_file


def _nar_file(name: str, bench: str) -> Path | None:
    files = NAR_PRESETS[name]
    if bench in files:
        return CONFIG_DIR / files[bench]
    if bench not in ("101", "201") and name in SPACE_CONFIG_PRESETS:
        return space_config(bench)
    return None


def preset_available(name: str, bench) -> bool:
    """Whether preset ``name`` has a config for the space ``bench``."""
    if name in BASELINE_PRESETS:
        return True
    if name not in NAR_PRESETS:
        raise NarError(f"unknown model preset {name!r}; choose one of {', '.join(preset_names())}")
    return _nar_file(name, bench_of(bench)) is not None


def preset_config(name: str, bench) -> tuple[Path, list[str]]:
    """(config file, overrides) of preset ``name`` on the space ``bench`` (a registered space
    name, alias or store id: "101", "201", "graph", ...)."""
    bench = bench_of(bench)  # NarError for an unknown space
    if name in NAR_PRESETS:
        path = _nar_file(name, bench)
        if path is None:
            raise NarError(f"model preset {name!r} has no config for {space_class(bench).title}; use one of "
                           f"{', '.join(n for n in preset_names() if preset_available(n, bench))} there")
        return path, []
    if name in BASELINE_PRESETS:
        arch, kw = BASELINE_PRESETS[name]
        return space_config(bench), [f"arch={arch}", f"baseline_target={kw.get('target', 'raw')}"]
    raise NarError(f"unknown model preset {name!r}; choose one of {', '.join(preset_names())}")

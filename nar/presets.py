"""Named models shared by ``nar-cli sweep`` and ``bench/bench_ranking.py``.

A preset is a config file per bench plus ``--set`` overrides: the NAR presets are the YAML
files of ``config/``; a baseline preset is the paper config of the bench with ``arch`` set to
the baseline (and ``baseline_target: rank`` for the ``*_rank`` variants, which fit the rank
share of each training cell instead of its raw accuracy).
"""
from __future__ import annotations

from pathlib import Path

from nar.config import CONFIG_DIR
from pipeline.errors import NarError

# model name -> config file (in config/) per bench
NAR_PRESETS = {
    "nar_paper": {"101": "config.yml", "201": "config201.yml"},
    "nar_cpu": {"101": "cpu101.yml", "201": "cpu201.yml"},
    "nar_improved": {"101": "improved101.yml", "201": "improved201.yml"},  # ours, not the paper's
    "nar_default": {"101": "default101.yml", "201": "default201.yml"},  # ours: the gated graph ranker
}
# model name -> (baseline name of nar.baselines, keyword options of create_baseline)
BASELINE_PRESETS = {
    "lightgbm": ("lightgbm", {}),
    "lightgbm_rank": ("lightgbm", {"target": "rank"}),
    "xgboost": ("xgboost", {}),
    "mlp": ("mlp", {}),
    "mlp_rank": ("mlp", {"target": "rank"}),
}
PAPER_CONFIGS = {"101": "config.yml", "201": "config201.yml"}


def preset_names() -> list[str]:
    return sorted([*NAR_PRESETS, *BASELINE_PRESETS])


def preset_config(name: str, bench: str) -> tuple[Path, list[str]]:
    """(config file, overrides) of preset ``name`` on bench "101" or "201"."""
    bench = str(bench)
    if bench not in PAPER_CONFIGS:
        raise NarError(f"unknown bench {bench!r}: use 101 or 201")
    if name in NAR_PRESETS:
        return CONFIG_DIR / NAR_PRESETS[name][bench], []
    if name in BASELINE_PRESETS:
        arch, kw = BASELINE_PRESETS[name]
        return CONFIG_DIR / PAPER_CONFIGS[bench], [f"arch={arch}", f"baseline_target={kw.get('target', 'raw')}"]
    raise NarError(f"unknown model preset {name!r}; choose one of {', '.join(preset_names())}")

"""Click command ``sample`` (search by sampling, baselines, query-efficient mode); ``cli.py``
registers everything in ``COMMANDS``. The work is :func:`nar.search_run.run_sample`."""
from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from nar.search_run import MODES, run_sample  # noqa: F401  (run_sample: kept for old imports)


def _finite(ctx, param, value):
    if value is not None and not np.isfinite(value):
        raise click.BadParameter(f"{value} is not a finite number")
    return value


@click.command("sample")
@click.option("--config_file", type=click.Path(), default=None, help="Config YAML (sampler.* keys).")
@click.option("--data_path", required=True, type=click.Path(), help="Store (.h5) or NAR JSON.")
@click.option("--save_dir", required=True, type=click.Path(), help="Run directory for search.json/png.")
@click.option("--checkpoint", default=None, help="Checkpoint file in --save_dir, or a path.")
@click.option("--seed", type=click.IntRange(0, 2 ** 32 - 1), default=None)
@click.option("--iterations", type=click.IntRange(min=1), default=None,
              help="Default: the config's sampler.iterations, else sampler_epochs - ranker_epochs.")
@click.option("--mode", type=click.Choice(MODES), default="nar", show_default=True)
@click.option("--budget", type=click.IntRange(min=1), default=None, help="Query budget (accuracy look-ups).")
@click.option("--max_flops", type=click.FloatRange(min=0, min_open=True), default=None, callback=_finite,
              help="Hard limit on FLOPs.")
@click.option("--max_params", type=click.FloatRange(min=0, min_open=True), default=None, callback=_finite,
              help="Hard limit on parameters.")
@click.option("--max_latency", type=click.FloatRange(min=0, min_open=True), default=None, callback=_finite,
              help="Hard limit on latency (data with latency).")
@click.option("--dataset", default=None, help="Image dataset of the data (default: the checkpoint's).")
@click.option("--surrogate", default="nar", show_default=True,
              help="Iterative mode model: nar (the space's default ranker unless --config_file), or a "
                   "nar.baselines name (lightgbm, xgboost, mlp).")
@click.option("--top_k", type=click.IntRange(min=1), default=None, help="Candidates reported per iteration.")
@click.option("--sha256", default=None, help="Expected SHA256 of a NAR JSON input.")
@click.option("--skip-sha256", "skip_sha256", is_flag=True, help="Do not verify a NAR JSON input's checksum.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config key, e.g. --set sampler.strict_lookups=100 (value parsed as YAML).")
def sample(**kw):
    """Search by sampling with a trained ranker (or a baseline / the query-efficient mode)."""
    report = run_sample(**kw)
    s = report["strict_protocol"]
    t = report["target"]
    if "paper_protocol" in report and "best" in report["paper_protocol"]:
        p = report["paper_protocol"]
        click.echo(f"paper protocol (oracle): best {t} {p['best'][t]} rank {p['best'].get('rank')} "
                   f"queries {p['queries']}")
    if "pick" in s:
        click.echo(f"strict protocol: pick {t} {s['pick'][t]} rank {s['pick'].get('rank')} queries {s['queries']}")
    click.echo(f"wrote {Path(kw['save_dir']) / 'search.json'}")


COMMANDS = [sample]

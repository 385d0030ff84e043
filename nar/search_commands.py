"""Click command ``sample`` (search by sampling, baselines, query-efficient mode); ``cli.py``
registers everything in ``COMMANDS``. The shared options are declared in :mod:`cli_options`;
the work is :func:`nar.search_run.run_sample`."""
from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from cli_options import (checkpoint_option, config_file_option, data_options, overrides_option, save_dir_option,
                         seed_option)
from nar.search_run import MODES, run_sample  # noqa: F401  (run_sample: kept for old imports)


def _finite(ctx, param, value):
    if value is not None and not np.isfinite(value):
        raise click.BadParameter(f"{value} is not a finite number")
    return value


def _limit_option(name: str, help: str):
    return click.option(name, type=click.FloatRange(min=0, min_open=True), default=None, callback=_finite, help=help)


@click.command("sample")
@config_file_option(help="Config YAML (sampler.* keys); default: the checkpoint's own config.")
@data_options()
@save_dir_option(help="Run directory for search.json/png (a `nar-cli train` run when --checkpoint names a file in it).")
@checkpoint_option()
@seed_option(help="Overrides the config's seed (sampling, initial queries, surrogate fits).")
@click.option("--iterations", type=click.IntRange(min=1), default=None,
              help="Default: the config's sampler.iterations, else sampler_epochs - ranker_epochs.")
@click.option("--mode", type=click.Choice(MODES), default="nar", show_default=True)
@click.option("--budget", type=click.IntRange(min=1), default=None, help="Query budget (accuracy look-ups).")
@_limit_option("--max_flops", "Hard limit on FLOPs.")
@_limit_option("--max_params", "Hard limit on parameters.")
@_limit_option("--max_latency", "Hard limit on latency (data with latency).")
@click.option("--dataset", default=None, help="Image dataset of the data (default: the checkpoint's).")
@click.option("--surrogate", default="nar", show_default=True,
              help="Iterative mode model: nar (the space's default ranker unless --config_file), or a "
                   "nar.baselines name (lightgbm, xgboost, mlp).")
@click.option("--top_k", type=click.IntRange(min=1), default=None, help="Candidates reported per iteration.")
@overrides_option(example="sampler.strict_lookups=100")
def sample(**kw):
    """Search by sampling with a trained ranker (or a baseline / the query-efficient mode)."""
    from nar.console import progress_shown

    with progress_shown():
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

"""Click command ``sample`` (search by sampling, baselines, query-efficient mode); ``cli.py``
registers everything in ``COMMANDS``. :func:`run_sample` does the work without click."""
from __future__ import annotations

import logging
from pathlib import Path

import click
import numpy as np

from pipeline.errors import NarError

log = logging.getLogger(__name__)

MODES = ("nar", "random", "evolution", "iterative")


def _resolve_checkpoint(save_dir, name):
    if name is None:
        return None
    for p in (Path(save_dir) / name, Path(name)):
        if p.is_file():
            return p
    raise NarError(f"checkpoint not found: {name} (looked in {save_dir} and as a path); "
                   "give a file in --save_dir or a path")


def _random_reference(ctx, queries: int, seed: int, n_seeds: int = 100) -> dict:
    """Random search with the same number of queries over ``n_seeds`` seeds: the strict pick's
    mean/std (best validation accuracy), and the best target among the queried (an oracle
    figure, the one METHOD.md quotes as "expected best of N random cells")."""
    from nar.search_baselines import query_run_summary, random_search

    queries = int(min(queries, ctx.pool.allowed.sum()))
    seqs = [random_search(ctx, queries, seed=10_000 + seed * n_seeds + s) for s in range(n_seeds)]
    runs = [query_run_summary(ctx, rows, milestones=()) for rows in seqs]
    vals = np.array([r["pick"].get(ctx.target_name) for r in runs], float)
    vals, one = vals[np.isfinite(vals)], runs[0]
    ranks = np.array([r["pick"].get("rank", 0) for r in runs], float)
    best = np.array([np.nanmax(ctx.target[rows]) if np.isfinite(ctx.target[rows]).any() else np.nan
                     for rows in seqs])
    best = best[np.isfinite(best)]
    t = ctx.target_name
    return {"queries": queries, "n_seeds": n_seeds, "mean_pick_" + t: round(float(vals.mean()), 4),
            "std": round(float(vals.std()), 4),
            "mean_pick_rank": round(float(ranks[ranks > 0].mean()), 2) if (ranks > 0).any() else None,
            "median_pick_rank": float(np.median(ranks[ranks > 0])) if (ranks > 0).any() else None,
            "mean_best_queried_" + t: round(float(best.mean()), 4) if len(best) else None,
            "curve": one["curve"]}


def run_sample(data_path, save_dir, checkpoint=None, config_file=None, seed=None, iterations=None,
               mode="nar", budget=None, max_flops=None, max_params=None, max_latency=None, dataset=None,
               surrogate="nar", top_k=None, overrides=(), sha256=None, skip_sha256=False) -> dict:
    """Validate everything, run the search, then write ``search.json`` and ``search.png`` into
    ``save_dir``; returns the report."""
    from nar.search import (final_top_k, iteration_records, open_context, paper_protocol, pool_note,
                            search_nar, strict_protocol)
    from pipeline.atomic import write_json_atomic

    from pipeline.atomic import check_output_dir, check_output_file

    if mode not in MODES:
        raise NarError(f"unknown --mode {mode!r}; choose one of {', '.join(MODES)}")
    check_output_dir(save_dir, "--save_dir")
    for name in ("search.json", "search.png"):
        check_output_file(Path(save_dir) / name, "--save_dir")
    ckpt = _resolve_checkpoint(save_dir, checkpoint)
    if mode == "nar" and ckpt is None:
        raise NarError("--mode nar needs --checkpoint (a trained ranker); train one with `nar-cli train`")
    ranker = None
    if ckpt is not None:
        from nar.api import load_ranker
        ranker = load_ranker(ckpt)
    from nar.data import open_store
    store = open_store(data_path, bench=ranker.bench if ranker else None, sha256=sha256,
                       skip_sha256=skip_sha256)
    cfg = None
    if config_file is not None:
        from nar.config import load_config
        cfg = load_config(config_file, overrides, bench=store.bench)
    elif ranker is not None:
        from nar.config import config_from_dict, load_config
        cfg = config_from_dict(ranker.config.to_dict()) if not overrides else \
            load_config(None, [ranker.config.to_dict(), *overrides], bench=store.bench)
    elif overrides:
        raise NarError("--set needs --config_file or --checkpoint (a config to override)")
    if ranker is not None:
        if str(ranker.bench) != store.bench:
            raise NarError(f"checkpoint {ckpt} is for NAS-Bench-{ranker.bench} but {data_path} holds "
                           f"NAS-Bench-{store.bench}; use a matching checkpoint or data")
        if ranker.dataset not in store.datasets:
            raise NarError(f"checkpoint {ckpt} was trained on {ranker.dataset!r} but {data_path} has "
                           f"{', '.join(store.datasets)}; use a matching checkpoint or data")
        dataset = dataset or ranker.dataset
        if dataset != ranker.dataset:
            raise NarError(f"--dataset {dataset} does not match the checkpoint's dataset {ranker.dataset}")
    if dataset is None:
        dataset = cfg.dataset if cfg is not None and cfg.dataset in store.datasets else store.datasets[0]
    if dataset not in store.datasets:
        raise NarError(f"{data_path} has no dataset {dataset!r} (it has {', '.join(store.datasets)})")
    from nar.search_config import SamplerConfig
    scfg = cfg.sampler if cfg is not None else SamplerConfig()
    seed = int(seed if seed is not None else (cfg.seed if cfg is not None else 0))
    if max_latency is not None:
        lat = f"data/{dataset}/latency"
        if not store.has(lat) or not np.isfinite(np.asarray(store.array(lat), np.float64)).any():
            raise NarError(f"--max_latency: {data_path} has no latency for {dataset}; drop --max_latency "
                           "or use data with latency (NB201 tables with a latency column)")
    ctx = open_context(store, dataset, max_flops, max_params, max_latency)
    if ctx.target_name == "none":
        raise NarError(f"{data_path} has no accuracy for {dataset}: search results could not be judged")
    report = {"mode": mode, "bench": store.bench, "dataset": dataset, "data_path": str(data_path),
              "checkpoint": str(ckpt) if ckpt else None, "seed": seed, "target": ctx.target_name,
              "selection_label": ctx.select_name, "pool": pool_note(ctx),
              "constraints": {"max_flops": max_flops, "max_params": max_params, "max_latency": max_latency}}
    if mode == "nar":
        n_train = len(ranker.train_keys)
        val_keys = ranker.meta.get("val_keys")  # the checkpoint's own split, not --config_file's
        n_known_q = n_train + (len(val_keys) if val_keys is not None else int(getattr(cfg, "val_size", 0) or 0))
        if budget is not None and budget < n_known_q:
            raise NarError(f"--budget {budget} is below the ranker's training size ({n_train} training + "
                           f"{n_known_q - n_train} validation architectures); give --budget >= {n_known_q}")
        queried_keys = list(ranker.train_keys) + list(val_keys or [])
        known = [r for r in (ctx.pool.row_of_key(str(k)) for k in queried_keys) if r is not None]
        n_iter = _search_iterations(cfg, scfg, iterations)
        size = int(scfg.search_size)
        k = int(top_k or scfg.top_k)
        iters = search_nar(ranker, ctx, scfg, n_iter, size, int(cfg.ranker.n_tier), int(cfg.bins), seed, k)
        known_scores = ranker.predict(ctx.features(known))[1] if known else np.zeros(0)
        known_set = {r for r in (ctx.pool.row_of_key(str(k)) for k in ranker.train_keys) if r is not None}
        report.update(iterations=n_iter, search_size=size, top_k=k, n_train=n_train,
                      paper_protocol=paper_protocol(ctx, iters, n_train),
                      strict_protocol=strict_protocol(ctx, iters, known, n_known_q, scfg.strict_iterations,
                                                      scfg.strict_lookups, budget, scfg.strict_val_margin,
                                                      known_scores),
                      final_top_k=final_top_k(ctx, iters, scfg.top_tier, k, known_set),
                      per_iteration=iteration_records(ctx, iters, known_set))
        report["random_search_reference"] = _random_reference(ctx, report["strict_protocol"]["queries"], seed)
    else:
        from nar.search_baselines import query_run_summary, random_search, regularized_evolution
        if budget is None:
            raise NarError(f"--mode {mode} needs --budget N (the number of accuracy look-ups)")
        if mode == "random":
            rows = random_search(ctx, budget, seed)
        elif mode == "evolution":
            rows = regularized_evolution(ctx, budget, seed, scfg.population, scfg.tournament)
        else:
            rows = _iterative(ctx, cfg, scfg, budget, seed, surrogate, report)
        report["strict_protocol"] = query_run_summary(ctx, rows)
        report["strict_protocol"]["description"] = (
            "every looked-up architecture is a query; the pick is the best validation accuracy seen")
        report["random_search_reference"] = _random_reference(ctx, len(rows), seed)
    from pipeline.atomic import make_dirs

    save_dir = make_dirs(save_dir, "--save_dir")
    write_json_atomic(save_dir / "search.json", report)
    from nar.plot import plot_search
    plot_search(report, save_dir / "search.png")
    _log_summary(report)
    return report


def _search_iterations(cfg, scfg, iterations) -> int:
    """--iterations, else the config's ``sampler.iterations``, else the release's rule
    ``sampler_epochs - ranker_epochs`` (logged)."""
    if iterations is not None:
        return int(iterations)
    if scfg.iterations > 0:
        return int(scfg.iterations)
    if cfg.sampler_epochs <= cfg.ranker_epochs:
        raise NarError(f"the config gives no sampler iterations (sampler_epochs {cfg.sampler_epochs} <= "
                       f"ranker_epochs {cfg.ranker_epochs}); set sampler.iterations N (or sampler_epochs to "
                       f"ranker_epochs + N), or pass --iterations N")
    n = int(cfg.sampler_epochs - cfg.ranker_epochs)
    log.info("search iterations: %d = sampler_epochs %d - ranker_epochs %d (the release's rule; set "
             "sampler.iterations to choose)", n, cfg.sampler_epochs, cfg.ranker_epochs)
    return n


def _iterative(ctx, cfg, scfg, budget, seed, surrogate, report):
    from nar.iterative import BaselineFitter, NarFitter, iterative_search
    if budget < scfg.init_size:
        raise NarError(f"--budget {budget} is below the initial training size of the iterative mode "
                       f"(sampler.init_size {scfg.init_size}); give --budget >= {scfg.init_size}")
    if surrogate == "nar":
        if cfg is None:
            raise NarError("--mode iterative with --surrogate nar needs --config_file or --checkpoint")
        fitter = NarFitter(ctx, cfg, scfg.finetune_epochs)
    else:
        fitter = BaselineFitter(ctx, surrogate, seed)
    rows, rounds = iterative_search(ctx, fitter, budget, scfg.init_size, scfg.query_step, seed)
    report.update(surrogate=surrogate, init_size=scfg.init_size, query_step=scfg.query_step, rounds=rounds)
    return rows


def _log_summary(report):
    t = report["target"]
    if "paper_protocol" in report and "best" in report["paper_protocol"]:
        b = report["paper_protocol"]["best"]
        log.info("paper protocol: best %s %.2f (rank %s), %d queries", t, b[t], b.get("rank"),
                 report["paper_protocol"]["queries"])
    s = report["strict_protocol"]
    if "pick" in s:
        log.info("strict protocol: pick %s %.2f (rank %s), %d queries", t, s["pick"][t], s["pick"].get("rank"),
                 s["queries"])


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
              help="Iterative mode model: nar, or a nar.baselines name (lightgbm, xgboost, mlp).")
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

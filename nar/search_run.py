"""Run one search without click (``nar-cli sample`` calls :func:`run_sample`): validate the
inputs, open the data, run the mode (NAR sampling with a checkpoint, random, evolution or the
query-efficient mode), write ``search.json`` (a :class:`~nar.search_records.SearchReport`)
and ``search.png``. Every accuracy look-up goes through one
:class:`~nar.search_oracle.QueryOracle` whose count is the reported number of queries.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from nar.search_records import SearchReport
from pipeline.errors import NarError

log = logging.getLogger(__name__)

MODES = ("nar", "random", "evolution", "iterative")


def _resolve_checkpoint(save_dir, name):
    """``--checkpoint`` as every command reads it (nar.checkpoint.resolve_checkpoint); the
    sampling search needs a NAR checkpoint (tiers and scores), not a baseline's."""
    if name is None:
        return None
    from nar.checkpoint import resolve_checkpoint

    path = resolve_checkpoint(save_dir, name)
    if path.suffix == ".joblib":
        raise NarError(f"checkpoint {path} is a baseline's; the sampling search needs a NAR checkpoint "
                       "(.pth); for a baseline surrogate use --mode iterative --surrogate lightgbm")
    return path


def random_reference(ctx, queries: int, seed: int, n_seeds: int = 100) -> dict:
    """Random search with the same number of queries over ``n_seeds`` seeds: the strict pick's
    mean/std (best validation accuracy), and the best target among the queried (an oracle
    figure, the one METHOD.md quotes as "expected best of N random cells")."""
    from nar.search_baselines import query_run_summary, random_search

    queries = int(min(queries, ctx.pool.allowed.sum()))
    seqs = [random_search(ctx, queries, seed=10_000 + seed * n_seeds + s) for s in range(n_seeds)]
    runs = [query_run_summary(ctx, rows, milestones=()) for rows in seqs]
    vals = np.array([r.pick.get(ctx.target_name) for r in runs], float)
    vals, one = vals[np.isfinite(vals)], runs[0]
    ranks = np.array([r.pick.get("rank", 0) for r in runs], float)
    best = np.array([np.nanmax(ctx.target[rows]) if np.isfinite(ctx.target[rows]).any() else np.nan
                     for rows in seqs])
    best = best[np.isfinite(best)]
    t = ctx.target_name
    return {"queries": queries, "n_seeds": n_seeds, "mean_pick_" + t: round(float(vals.mean()), 4),
            "std": round(float(vals.std()), 4),
            "mean_pick_rank": round(float(ranks[ranks > 0].mean()), 2) if (ranks > 0).any() else None,
            "median_pick_rank": float(np.median(ranks[ranks > 0])) if (ranks > 0).any() else None,
            "mean_best_queried_" + t: round(float(best.mean()), 4) if len(best) else None,
            "curve": one.curve}


def _load_inputs(data_path, save_dir, checkpoint, config_file, overrides, mode, sha256, skip_sha256):
    from nar.data import open_store
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
    store = open_store(data_path, bench=ranker.bench if ranker else None, sha256=sha256, skip_sha256=skip_sha256)
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
    return ckpt, ranker, store, cfg


def _check_dataset(ranker, ckpt, store, data_path, cfg, dataset):
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
    return dataset


def run_sample(data_path, save_dir, checkpoint=None, config_file=None, seed=None, iterations=None,
               mode="nar", budget=None, max_flops=None, max_params=None, max_latency=None, dataset=None,
               surrogate="nar", top_k=None, overrides=(), sha256=None, skip_sha256=False) -> dict:
    """Validate everything, run the search, then write ``search.json`` and ``search.png`` into
    ``save_dir``; returns the report (``SearchReport.to_dict()``)."""
    from nar.search import open_context, pool_note
    from nar.search_config import SamplerConfig
    from pipeline.atomic import make_dirs, write_json_atomic

    t0 = time.perf_counter()
    ckpt, ranker, store, cfg = _load_inputs(data_path, save_dir, checkpoint, config_file, overrides, mode,
                                            sha256, skip_sha256)
    dataset = _check_dataset(ranker, ckpt, store, data_path, cfg, dataset)
    scfg = cfg.sampler if cfg is not None else SamplerConfig()
    from nar.search import PICK_RULES
    if scfg.strict_pick_rule not in PICK_RULES:
        raise NarError(f"config key 'sampler.strict_pick_rule': {scfg.strict_pick_rule!r}; use one of "
                       f"{', '.join(PICK_RULES)}")
    seed = int(seed if seed is not None else (cfg.seed if cfg is not None else 0))
    if max_latency is not None:
        lat = f"data/{dataset}/latency"
        if not store.has(lat) or not np.isfinite(np.asarray(store.array(lat), np.float64)).any():
            raise NarError(f"--max_latency: {data_path} has no latency for {dataset}; drop --max_latency "
                           "or use data with latency (NB201 tables with a latency column)")
    ctx = open_context(store, dataset, max_flops, max_params, max_latency)
    if ctx.target_name == "none":
        raise NarError(f"{data_path} has no accuracy for {dataset}: search results could not be judged")
    report = SearchReport(mode=mode, bench=store.bench, dataset=dataset, data_path=str(data_path),
                          checkpoint=str(ckpt) if ckpt else None, seed=seed, target=ctx.target_name,
                          selection_label=ctx.select_name, pool=pool_note(ctx),
                          constraints={"max_flops": max_flops, "max_params": max_params,
                                       "max_latency": max_latency})
    if mode == "nar":
        _run_nar(ctx, ranker, cfg, scfg, report, budget, iterations, top_k, seed)
    else:
        _run_budgeted(ctx, cfg, scfg, report, mode, budget, seed, surrogate, config_file)
    pick = report.strict_protocol.pick
    report.best_feasible = _best_feasible(ctx, None if pick is None else pick["row"])
    report.wall_seconds = round(time.perf_counter() - t0, 2)
    report.random_search_reference = random_reference(ctx, report.strict_protocol.queries, seed)
    out = report.to_dict()
    save_dir = make_dirs(save_dir, "--save_dir")
    write_json_atomic(save_dir / "search.json", out)
    from nar.plot import plot_search
    plot_search(out, save_dir / "search.png")
    _log_summary(out)
    return out


def _best_feasible(ctx, pick_row=None) -> dict | None:
    """The best cell within the hard limits, how many labelled cells are feasible, and the
    strict pick's rank among them (1 = the best feasible; ties share)."""
    ok = ctx.pool.allowed & np.isfinite(ctx.target)
    if not ok.any():
        return None
    t = np.where(ok, ctx.target, -np.inf)
    from nar.search import arch_record
    out = {"n_feasible_labelled": int(ok.sum()), "best": arch_record(ctx, int(np.argmax(t)))}
    if pick_row is not None and np.isfinite(ctx.target[pick_row]):
        out["pick_feasible_rank"] = int((t > ctx.target[pick_row]).sum()) + 1
    return out


def _run_nar(ctx, ranker, cfg, scfg, report, budget, iterations, top_k, seed):
    from nar.search import final_top_k, iteration_records, paper_protocol, search_nar, strict_protocol
    from nar.search_baselines import new_oracle

    n_train = len(ranker.train_keys)
    val_keys = ranker.meta.get("val_keys")  # the checkpoint's own split, not --config_file's
    n_known_q = n_train + (len(val_keys) if val_keys is not None else int(getattr(cfg, "val_size", 0) or 0))
    if budget is not None and budget < n_known_q:
        raise NarError(f"--budget {budget} is below the ranker's training size ({n_train} training + "
                       f"{n_known_q - n_train} validation architectures); give --budget >= {n_known_q}")
    queried_keys = list(ranker.train_keys) + list(val_keys or [])
    known = [r for r in (ctx.pool.row_of_key(str(k)) for k in queried_keys) if r is not None]
    known = list(dict.fromkeys(known))
    oracle = new_oracle(ctx, budget)
    oracle.pay_known(known, n_known_q)
    n_iter = search_iterations(cfg, scfg, iterations)
    size = int(scfg.search_size)
    k = int(top_k or scfg.top_k)
    iters = search_nar(ranker, ctx, scfg, n_iter, size, int(cfg.ranker.n_tier), int(cfg.bins), seed, k)
    known_scores = ranker.predict(ctx.features(known))[1] if known else np.zeros(0)
    known_set = {r for r in (ctx.pool.row_of_key(str(k)) for k in ranker.train_keys) if r is not None}
    report.iterations, report.search_size, report.top_k, report.n_train = n_iter, size, k, n_train
    report.paper_protocol = paper_protocol(ctx, iters, n_train)
    report.strict_protocol = strict_protocol(ctx, iters, oracle, scfg.strict_iterations, scfg.strict_lookups,
                                             scfg.strict_val_margin, known_scores, scfg.strict_pick_rule,
                                             heldout_scorer(ctx, cfg, oracle)
                                             if scfg.strict_pick_rule == "heldout_margin" else None)
    report.final_top_k = final_top_k(ctx, iters, scfg.top_tier, k, known_set)
    report.per_iteration = iteration_records(ctx, iters, known_set)


def heldout_scorer(ctx, cfg, oracle):
    """``heldout_scores(excluded, rows)`` for the ``heldout_margin`` rule: the ranker's config
    refitted (ensemble members as configured, no validation split) on the known cells minus
    ``excluded``, scoring ``rows``; one refit per distinct excluded set (logged)."""
    from nar.iterative import nar_surrogate, surrogate_scores

    models = {}
    known = oracle.known_rows
    known = known[np.isfinite(oracle.value(known))]

    def scores(excluded, rows):
        if excluded not in models:
            keep = known[~np.isin(known, excluded)]
            log.info("strict pick: refitting the ranker without %d tied training cells (%d cells)", len(excluded),
                     len(keep))
            models[excluded] = nar_surrogate(ctx, cfg).fit(ctx.store, keep, oracle.value(keep))
        return surrogate_scores(models[excluded], ctx.store, np.asarray(rows))[0]
    return scores


def _run_budgeted(ctx, cfg, scfg, report, mode, budget, seed, surrogate, config_file=None):
    from nar.search_baselines import new_oracle, query_run_summary, random_search, regularized_evolution

    if budget is None:
        raise NarError(f"--mode {mode} needs --budget N (the number of accuracy look-ups)")
    if mode == "iterative" and budget < scfg.init_size:
        raise NarError(f"--budget {budget} is below the initial training size of the iterative mode "
                       f"(sampler.init_size {scfg.init_size}); give --budget >= {scfg.init_size}")
    oracle = new_oracle(ctx, min(int(budget), int(ctx.pool.allowed.sum())))
    if mode == "random":
        random_search(ctx, budget, seed, oracle=oracle)
    elif mode == "evolution":
        regularized_evolution(ctx, budget, seed, scfg.population, scfg.tournament, oracle=oracle)
    else:
        _iterative(ctx, cfg, scfg, budget, seed, surrogate, report, oracle, config_file)
    report.strict_protocol = query_run_summary(ctx, oracle)


def search_iterations(cfg, scfg, iterations) -> int:
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


def surrogate_config(cfg, scfg):
    """The NAR surrogate's training config in the query-efficient mode: the ranker config with
    the ``sampler.surrogate_*`` sizes (epochs, weight-average epochs, batch, ensemble), never
    distilled (as every surrogate of :func:`nar.iterative.nar_surrogate`: its members'
    disagreement is the acquisition's uncertainty)."""
    import dataclasses
    return dataclasses.replace(cfg, distill=dataclasses.replace(cfg.distill, cells=0),
                               ranker_epochs=scfg.surrogate_epochs,
                               swa_epochs=min(cfg.swa_epochs, scfg.surrogate_swa_epochs),
                               batch_size=scfg.surrogate_batch_size, train_batch_size=scfg.surrogate_batch_size,
                               n_ensemble=scfg.surrogate_ensemble,
                               batches_per_epoch=scfg.surrogate_batches_per_epoch)


def surrogate_ranker_config(cfg, bench, config_file=None):
    """(config, where it came from) of the iterative mode's NAR surrogate: ``cfg`` (from
    ``--config_file`` or the checkpoint), else the space's default ranker, the ``nar_default``
    preset of :mod:`nar.presets` (``config/default101.yml``, ``default201.yml``, the space's own
    config such as ``config/graph.yml``); labels come from the search, not ``network_type``."""
    if cfg is not None:
        return cfg, f"--config_file {config_file}" if config_file is not None else "--checkpoint"
    from nar.config import load_config
    from nar.presets import preset_config

    path = preset_config("nar_default", bench)[0]
    return load_config(path, [], bench=bench), f"preset nar_default ({path.parent.name}/{path.name})"


def _iterative(ctx, cfg, scfg, budget, seed, surrogate, report, oracle, config_file=None):
    from nar.iterative import baseline_surrogate, iterative_search, nar_surrogate
    if surrogate == "nar":
        cfg, source = surrogate_ranker_config(cfg, ctx.store.bench, config_file)
        report.surrogate_config = {"from": source, "encoder": cfg.ranker.encoder}
        import dataclasses  # the search's seed also seeds the surrogate's training (as bench_search does)
        model = nar_surrogate(ctx, surrogate_config(dataclasses.replace(cfg, seed=seed), scfg), scfg.finetune_epochs)
    else:
        model = baseline_surrogate(surrogate, ctx.pool.bench, seed)
    _, rounds = iterative_search(ctx, model, budget, scfg.init_size, scfg.query_step, seed,
                                 kappa=scfg.acquisition_kappa, growth=scfg.query_step_growth, oracle=oracle,
                                 skip_equivalent=scfg.skip_equivalent)
    report.surrogate, report.init_size, report.query_step, report.rounds = surrogate, scfg.init_size, \
        scfg.query_step, rounds
    report.acquisition = {"kappa": scfg.acquisition_kappa, "skip_equivalent": scfg.skip_equivalent,
                          "rule": "z(score) + kappa * z(ensemble disagreement)" if scfg.acquisition_kappa
                          else "best predicted score"}


def _log_summary(report: dict):
    t = report["target"]
    if "paper_protocol" in report and "best" in report["paper_protocol"]:
        b = report["paper_protocol"]["best"]
        log.info("paper protocol: best %s %.2f (rank %s), %d queries", t, b[t], b.get("rank"),
                 report["paper_protocol"]["queries"])
    s = report["strict_protocol"]
    if "pick" in s:
        log.info("strict protocol: pick %s %.2f (rank %s), %d queries", t, s["pick"][t], s["pick"].get("rank"),
                 s["queries"])

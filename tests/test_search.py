"""Search loop, paper/strict protocols, baselines, iterative mode and the ``sample`` command."""
import json

import numpy as np
import pytest

from cache.store import Store
from nar.config import CONFIG_DIR
from nar.search import open_context, paper_protocol, running_pick, search_nar, strict_protocol
from nar.search_baselines import (mutants, new_oracle, query_run_summary, random_search, regularized_evolution)
from nar.search_config import SamplerConfig
from nar.search_oracle import QueryBudgetExceeded, QueryOracle
from nar.search_run import run_sample
from pipeline.errors import NarError
from tests.conftest import shared_data
from tests.fakes import fake_store_201


class NoisyRanker:
    """Stand-in ranker: score = true validation accuracy + noise, tiers = score quintiles."""

    def __init__(self, ctx, noise=1.0, seed=0):
        self.ctx, self.noise = ctx, noise
        self.rng = np.random.default_rng(seed)
        self.lookup = {ctx.features(np.array([r]))[0].tobytes(): r for r in range(ctx.pool.n)}

    def predict(self, x):
        rows = np.array([self.lookup[f.tobytes()] for f in x])
        s = self.ctx.select[rows] + self.rng.normal(0, self.noise, len(rows))
        return 1 + np.argsort(np.argsort(-s)) * 5 // len(s), s


@pytest.fixture(scope="module")
def path201(tmp_path_factory):
    return fake_store_201(tmp_path_factory.mktemp("s") / "s201.h5", n=1500)


@pytest.fixture(scope="module")
def ctx201(path201):
    return open_context(Store(path201), "cifar10")


def test_running_pick_is_the_best_so_far():
    sel = np.array([3.0, np.nan, 5.0, 1.0, 5.0, 7.0])
    rows = np.array([3, 0, 1, 2, 4, 5])
    picks = running_pick(sel, rows)
    for i in range(len(rows)):
        vals = np.where(np.isfinite(sel[rows[:i + 1]]), sel[rows[:i + 1]], -np.inf)
        assert picks[i] == rows[:i + 1][np.argmax(vals)]


def test_search_and_both_protocols(ctx201):
    cfg = SamplerConfig(top_k=4)
    iters = search_nar(NoisyRanker(ctx201), ctx201, cfg, 6, 64, 5, 5, seed=0)
    assert len(iters) == 6 and all(len(np.unique(it.rows)) == 64 for it in iters)
    for it in iters:  # the top-k are predicted tier 1, best score first
        assert (it.tiers[it.top] == 1).all() and (np.diff(it.scores[it.top]) <= 0).all()
    paper = paper_protocol(ctx201, iters, n_train=100)
    tops = np.concatenate([it.rows[it.top] for it in iters])
    assert paper["best"]["test_acc"] == pytest.approx(ctx201.target[tops].max(), abs=1e-3)
    assert paper["queries"] == 100
    known = list(range(10))

    def oracle(budget=None):
        o = QueryOracle(ctx201.select, budget)
        o.pay_known(known, 150)  # 150 paid: some training cells are not in the store
        return o

    strict = strict_protocol(ctx201, iters, oracle(), strict_iterations=3, lookups=12)
    best = {}  # each row's best (tier, -score) over the last 3 iterations
    for it in iters[-3:]:
        for r, t, sc in zip(it.rows, it.tiers, it.scores):
            best[int(r)] = min(best.get(int(r), (99, 0.0)), (int(t), -float(sc)))
    order = [r for r, _ in sorted(best.items(), key=lambda kv: kv[1]) if r not in known][:12]
    assert strict["n_lookups"] == 12 and strict["queries"] == 162
    cands = np.array(sorted(set(known) | set(order)))
    assert strict["pick"]["row"] == cands[np.argmax(ctx201.select[cands])]
    assert strict["pick"]["row"] in set(known) | set(order)
    capped_oracle = oracle(budget=152)
    capped = strict_protocol(ctx201, iters, capped_oracle, 3, lookups=12)
    assert capped["n_lookups"] == 2 and capped["queries"] == 152 == capped_oracle.n_queries
    with pytest.raises(QueryBudgetExceeded):  # the oracle enforces the budget itself
        capped_oracle.query([r for r in range(ctx201.pool.n) if not capped_oracle.is_queried(r)][:1])
    known_scores = np.random.default_rng(0).normal(size=len(known))
    tied = strict_protocol(ctx201, iters, oracle(), 3, lookups=12, margin=2.0, known_scores=known_scores,
                           rule="margin_score")
    score_of = dict(zip(known, known_scores))
    for it in iters:
        score_of.update(zip(it.rows.tolist(), it.scores.tolist()))
    near = cands[ctx201.select[cands] >= ctx201.select[cands].max() - 2.0]
    assert tied["pick"]["row"] == near[np.argmax([score_of[r] for r in near])]
    assert tied["val_margin"] == 2.0 and tied["curve"][-1][0] == tied["queries"]
    robust = strict_protocol(ctx201, iters, oracle(), 3, lookups=12, margin=2.0, known_scores=known_scores,
                             rule="search_margin")
    looked = np.array(order)
    if ctx201.select[known].max() > ctx201.select[looked].max():
        assert robust["pick"]["row"] == known[int(np.argmax(ctx201.select[known]))]
    else:  # near-ties broken by score among the searched cells only
        near = looked[ctx201.select[looked] >= ctx201.select[looked].max() - 2.0]
        assert robust["pick"]["row"] == near[np.argmax([score_of[r] for r in near])]
    assert robust["pick_rule"] == "search_margin" and "margin_score_pick" in robust
    calls = []

    def heldout(excluded, rows):  # stand-in refit: records what it was asked, prefers low row ids
        calls.append((excluded, rows))
        return -np.asarray(rows, float)

    near_all = cands[ctx201.select[cands] >= ctx201.select[cands].max() - 2.0]
    tied_known = [r for r in known if r in set(near_all.tolist())]
    held = strict_protocol(ctx201, iters, oracle(), 3, lookups=12, margin=2.0, known_scores=known_scores,
                           rule="heldout_margin", heldout_scores=heldout)
    if tied_known:  # training cells tied: every tied cell scored by the refit, the lowest row wins
        assert calls[-1][0] == tuple(sorted(tied_known)) and held["pick"]["row"] == near_all.min()
    else:
        assert not calls and held["pick"]["row"] == tied["pick"]["row"]
    assert set(held["rule_picks"]) == {"heldout_margin", "search_margin", "search_first", "val", "margin_score"}


def test_query_oracle_counts_each_row_once_and_enforces_the_budget():
    sel = np.array([1.0, 2.0, np.nan, 4.0, 5.0, 6.0])
    o = QueryOracle(sel, budget=6)
    assert o.pay_known([0, 1], n_paid=3).tolist() == [1.0, 2.0] and o.n_queries == 3
    assert o.query([3, 3, 0]).tolist() == [4.0, 4.0, 1.0] and o.n_queries == 4  # 0 known, 3 once
    assert o.query(3) == 4.0 and o.n_queries == 4 and o.rows.tolist() == [3] and o.remaining == 2
    with pytest.raises(ValueError, match="never queried"):
        o.value([4])
    with pytest.raises(QueryBudgetExceeded, match="budget 6"):
        o.query([4, 2, 5])  # three new rows, two left: nothing is charged
    assert o.n_queries == 4 and not o.is_queried([4, 2, 5]).any()
    o.query([4, 2, 4, 1])
    assert o.n_queries == 6 and o.rows.tolist() == [3, 4, 2] and np.isnan(o.value(2)) and o.remaining == 0
    assert o.query([0, 1, 2, 3]).shape == (4,)  # revisits stay free at the budget


def test_random_search_and_evolution_respect_the_budget(ctx201):
    r = random_search(ctx201, 120, seed=1)
    assert len(r) == 120 == len(np.unique(r))
    e = regularized_evolution(ctx201, 120, seed=1, population=20, tournament=5)
    assert len(e) == 120 == len(np.unique(e)) and ctx201.pool.allowed[e].all()
    s = query_run_summary(ctx201, e, milestones=(50, 100))
    assert s["queries"] == 120 and set(s["at_queries"]) == {"50", "100"}
    assert s["pick"]["row"] == e[np.nanargmax(ctx201.select[e])]
    with pytest.raises(NarError, match="budget"):
        random_search(ctx201, 0)


def test_nb201_mutants_differ_in_one_edge(ctx201):
    pool = ctx201.pool
    for row in range(20):
        for m in mutants(pool, row):
            assert (pool.structure[m] != pool.structure[row]).sum() == 1


def test_nb101_mutants_are_pool_neighbours(tmp_path):
    from pipeline.nb101_space import module_hash
    from tests.test_sampler import table_store_101

    ctx = open_context(Store(table_store_101(shared_data("nb101/nb101_20k.csv.gz"), tmp_path / "t.h5")))
    pool, found = ctx.pool, 0
    for row in range(0, 400, 8):
        for m in mutants(pool, row):
            found += 1
            nv = int(pool.structure[m])
            ops = [{1: "input", 2: "conv1x1-bn-relu", 3: "conv3x3-bn-relu", 4: "maxpool3x3", 5: "output"}[int(o)]
                   for o in pool.ops[m, :nv]]
            assert module_hash(pool.adjacency[m, :nv, :nv].astype(int), ops) == pool.keys[m] != pool.keys[row]
    assert found > 0
    assert ctx.target_name == "val_acc" and ctx.select_name == "val_acc"
    # the 20k table's keys are module hashes of pruned cells, isomorphism-canonical: one row per
    # network, so the default equivalence (each row its own class) is the right one for NB101
    assert len(np.unique(pool.keys)) == pool.n == len(np.unique(pool.space.row_codes(pool)))
    np.testing.assert_array_equal(pool.space.equivalence_codes(pool), np.arange(pool.n))


def test_iterative_mode_with_a_stand_in_fitter(ctx201):
    from nar.iterative import iterative_search

    class Oracle:  # a predictor of noisy truth: the loop must keep querying the predicted best
        def fit(self, store, rows, labels):
            self.n = len(rows)
            return self

        def predict(self, store, rows):
            return ctx201.select[rows] + np.random.default_rng(self.n).normal(0, 0.5, len(rows))

    rows, rounds = iterative_search(ctx201, Oracle(), budget=60, init_size=20, query_step=8, seed=0)
    assert len(rows) == 60 == len(np.unique(rows)) and rounds[-1].queries == 60
    assert [r.queries for r in rounds] == [28, 36, 44, 52, 60]
    rnd = random_search(ctx201, 60, seed=0)
    assert np.nanmax(ctx201.select[rows]) > np.nanmax(ctx201.select[rnd])
    with pytest.raises(NarError, match="budget"):
        iterative_search(ctx201, Oracle(), budget=10, init_size=20)


@pytest.mark.parametrize("mode", ["random", "evolution"])
def test_sample_command_baselines_write_report_and_plot(tmp_path, path201, mode):
    rep = run_sample(path201, tmp_path / "run", mode=mode, budget=80, seed=0, dataset="cifar100")
    saved = json.loads((tmp_path / "run" / "search.json").read_text())
    assert saved["mode"] == mode and saved["strict_protocol"]["queries"] == 80 == rep["strict_protocol"]["queries"]
    assert saved["dataset"] == "cifar100" and saved["pool"]["whole_space"] is False
    assert (tmp_path / "run" / "search.png").read_bytes()[:4] == b"\x89PNG"


def test_sample_command_errors_leave_nothing(tmp_path, path201):
    run = tmp_path / "run"
    with pytest.raises(NarError, match="max_flops"):
        run_sample(path201, run, mode="random", budget=50, max_flops=-1)
    with pytest.raises(NarError, match="budget"):
        run_sample(path201, run, mode="random")
    with pytest.raises(NarError, match="budget"):
        run_sample(path201, run, mode="iterative", budget=5, surrogate="lightgbm")
    with pytest.raises(NarError, match="checkpoint"):
        run_sample(path201, run, mode="nar")
    assert not run.exists()


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory, path201):
    from nar.api import fit

    ranker = fit(str(path201), train_size=200, val_size=50, ranker_epochs=2, sampler_epochs=4,
                 ranker={"d_patch_vec": 16, "d_model": 16, "d_ffn_inner": 16, "d_tier_prj_inner": 16,
                         "n_layers": 1, "n_head": 2, "d_k": 8, "d_v": 8, "d_val_acc_prj_inner": 16})
    path = tmp_path_factory.mktemp("ck") / "ckp_best.pth"
    ranker.save(path)
    return path


def test_sample_command_with_a_trained_ranker(tmp_path, path201, tiny_checkpoint):
    from click.testing import CliRunner

    from cli import cli

    run = tmp_path / "run"
    res = CliRunner().invoke(cli, ["sample", "--data_path", str(path201), "--save_dir", str(run),
                                   "--checkpoint", str(tiny_checkpoint), "--seed", "1"])
    assert res.exit_code == 0, res.output
    rep = json.loads((run / "search.json").read_text())
    assert rep["iterations"] == 2 and len(rep["per_iteration"]) == 2  # sampler_epochs - ranker_epochs
    assert rep["paper_protocol"]["queries"] == 200 == rep["n_train"]
    assert rep["strict_protocol"]["queries"] == 250 + rep["strict_protocol"]["n_lookups"]
    assert rep["final_top_k"] and "rank" in rep["final_top_k"][0]
    strict, ref = rep["strict_protocol"], rep["random_search_reference"]
    assert ref["queries"] == strict["queries"] and ref["mean_best_queried_test_acc"] >= ref["mean_pick_test_acc"]
    assert 1 <= ref["median_pick_rank"] and 1 <= ref["mean_pick_rank"]
    res = CliRunner().invoke(cli, ["sample", "--data_path", str(path201), "--save_dir", str(run),
                                   "--checkpoint", str(tiny_checkpoint), "--budget", "100"])
    assert res.exit_code == 2 and "budget" in res.output
    res = CliRunner().invoke(cli, ["sample", "--data_path", str(path201), "--save_dir", str(run), "--checkpoint",
                                   str(tiny_checkpoint), "--set", "sampler.strict_lookups=3",
                                   "--config_file", str(CONFIG_DIR / "cpu201.yml")])  # val_size 256 there, 50 in the run
    assert res.exit_code == 0, res.output
    strict = json.loads((run / "search.json").read_text())["strict_protocol"]
    assert strict["n_lookups"] == 3 and strict["queries"] == 200 + 50 + 3
    res = CliRunner().invoke(cli, ["sample", "--data_path", str(path201), "--save_dir", str(run), "--checkpoint",
                                   str(tiny_checkpoint), "--set", "sampler.no_such_key=3"])
    assert res.exit_code == 2 and "no_such_key" in res.output
    res = CliRunner().invoke(cli, ["sample", "--data_path", str(path201), "--save_dir", str(tmp_path / "none"),
                                   "--checkpoint", str(tiny_checkpoint), "--set", "sampler_epochs=2"])
    assert res.exit_code == 2 and "no sampler iterations" in res.output and not (tmp_path / "none").exists()
    res = CliRunner().invoke(cli, ["sample", "--data_path", str(path201), "--save_dir", str(run), "--checkpoint",
                                   str(tiny_checkpoint), "--set", "sampler_epochs=2", "--set", "sampler.iterations=3"])
    assert res.exit_code == 0, res.output  # the explicit key wins over the release's rule
    assert json.loads((run / "search.json").read_text())["iterations"] == 3


def test_checkpoint_of_another_bench_is_refused(tmp_path, tiny_checkpoint):
    from tests.fakes import fake_store_101

    p = fake_store_101(tmp_path / "f101.h5", n=50)
    with pytest.raises(NarError, match="NAS-Bench"):
        run_sample(p, tmp_path / "run", checkpoint=str(tiny_checkpoint))
    assert not (tmp_path / "run").exists()


def test_strict_pick_obeys_hard_limits(path201):
    store = Store(path201)
    limit = float(np.quantile(np.asarray(store.data("cifar10", "params")), 0.4))
    ctx = open_context(store, "cifar10", max_params=limit)
    iters = search_nar(NoisyRanker(ctx), ctx, SamplerConfig(), 2, 32, 5, 5, seed=0)
    best_known = np.argsort(-np.nan_to_num(ctx.select, nan=-1))[:50]  # includes rows over the limit
    assert (ctx.pool.params[best_known] > limit).any()
    o = new_oracle(ctx)
    o.pay_known(best_known, 300)
    strict = strict_protocol(ctx, iters, o, 2)
    assert strict["pick"]["params"] <= limit
    from nar.search_run import _best_feasible
    feas = _best_feasible(ctx, strict["pick"]["row"])
    ok = (ctx.pool.params <= limit) & np.isfinite(ctx.target)
    assert feas["best"]["test_acc"] == pytest.approx(ctx.target[ok].max(), abs=1e-3)
    assert feas["pick_feasible_rank"] == 1 + (ctx.target[ok] > ctx.target[strict["pick"]["row"]]).sum()
    assert all(ctx.pool.params[it.rows].max() <= limit for it in iters)


def test_tied_accuracies_share_a_rank(path201):
    store = Store(path201)
    ctx = open_context(store, "cifar10")
    t = ctx.target
    r = ctx.rank
    lab = np.isfinite(t)
    better = (t[lab][None, :] > t[lab][:, None]).sum(1)  # strictly better cells, per cell
    assert (r[lab] == better + 1).all() and (r[~lab] == 0).all()


def test_sample_without_checkpoint_takes_a_nar_json(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from cli import cli
    from tests.fakes import fake_table_201

    monkeypatch.setenv("NAR_CACHE_DIR", str(tmp_path / "cache"))
    fake_table_201(tmp_path / "t.csv", n=200, seed=3)
    res = CliRunner().invoke(cli, ["build", "--bench", "201", "--source", str(tmp_path / "t.csv"),
                                   "--out", str(tmp_path / "t.json")])
    assert res.exit_code == 0, res.output
    for mode in ("evolution", "iterative"):  # iterative: the space's default ranker as the surrogate
        run = tmp_path / mode
        res = CliRunner().invoke(cli, ["sample", "--data_path", str(tmp_path / "t.json"), "--save_dir", str(run),
                                       "--mode", mode, "--budget", "40", "--seed", "1"])
        assert res.exit_code == 0, res.output
        rep = json.loads((run / "search.json").read_text())
        assert rep["schema_version"] == 2 and rep["strict_protocol"]["queries"] == 40
        assert rep["best_feasible"]["best"]["rank"] == 1 and rep["wall_seconds"] > 0
        assert rep["best_feasible"]["pick_feasible_rank"] == rep["strict_protocol"]["pick"]["rank"]  # no limits
    assert [r["queries"] for r in rep["rounds"]] == [32, 40] and rep["surrogate"] == "nar"
    assert rep["surrogate_config"] == {"from": "preset nar_default (config/default201.yml)", "encoder": "gated_graph"}


def test_nar_surrogate_ensemble_finetune_and_acquisition(ctx201):
    from nar.config import load_config
    from nar.iterative import acquire, nar_surrogate, surrogate_scores
    from nar.search_run import surrogate_config
    from nar.train import predict_batched

    cfg = load_config(CONFIG_DIR / "default201.yml", ["ranker.d_model=16", "distill.cells=100"], bench="201")
    scfg = SamplerConfig(surrogate_epochs=4, surrogate_swa_epochs=2, surrogate_ensemble=2)
    assert surrogate_config(cfg, scfg).distill.cells == 0  # a surrogate keeps its members (disagreement)
    model = nar_surrogate(ctx201, surrogate_config(cfg, scfg), finetune_epochs=2)
    rows = np.random.default_rng(0).choice(ctx201.pool.n, 40, replace=False)
    assert model.fit(ctx201.store, rows, ctx201.select[rows]) is model
    members = list(model.members)
    assert len(members) == 2
    cand = np.arange(200)
    score, spread = surrogate_scores(model, ctx201.store, cand)
    assert score.shape == spread.shape == (200,) and (spread >= 0).all() and spread.max() > 0
    before = model.member_scores(ctx201.store, cand)
    model.fit(ctx201.store, rows, ctx201.select[rows])  # fine-tunes copies, not the members
    assert len(model.members) == 2 and model.members[0] is not members[0]
    again = np.stack([predict_batched([m], ctx201.features(cand))[1] for m in members])
    assert np.allclose(again, before)
    plain, mixed = acquire((score, spread)), acquire((score, spread), kappa=5.0)
    z = lambda a: (a - a.mean()) / a.std()  # noqa: E731
    assert np.array_equal(plain, score) and np.allclose(mixed, z(score) + 5.0 * z(spread))


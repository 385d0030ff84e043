"""Query-budgeted baselines: random search and regularised evolution (strict protocol).

Both look accuracies up only through a :class:`~nar.search_oracle.QueryOracle` (given, or
made with the budget) and return the queried rows in query order; :func:`query_run_summary`
turns an oracle's (or a row sequence's) queries into the strict report: after every query the
pick is the best VALIDATION accuracy so far, and its TEST accuracy is what is reported. A row
is queried (and counted) once; revisits are free.
"""
from __future__ import annotations

import logging

import numpy as np

from nar.sampler import SearchPool
from nar.search import SearchContext, _num, arch_record, running_pick
from nar.search_oracle import QueryOracle
from nar.search_records import StrictResult
from pipeline.errors import NarError

log = logging.getLogger(__name__)

# the query counts of the tables and targets (25 / 50 / 100 / 200 / 500; 64 and 150)
MILESTONES = (25, 50, 64, 100, 150, 200, 500, 1000)


def check_budget(ctx: SearchContext, budget: int, minimum: int = 1, what: str = "the search") -> int:
    n = int(ctx.pool.allowed.sum())
    if budget is None or budget < minimum:
        raise NarError(f"--budget {budget} is below what {what} needs ({minimum} queries); "
                       f"give --budget >= {minimum}")
    if budget > n:
        log.warning("budget %d exceeds the %d allowed architectures; using %d", budget, n, n)
    return int(min(budget, n))


def new_oracle(ctx: SearchContext, budget: int | None = None) -> QueryOracle:
    return QueryOracle(ctx.select, budget, ctx.select_name)


def random_search(ctx: SearchContext, budget: int, seed: int = 0, oracle: QueryOracle | None = None) -> np.ndarray:
    """``budget`` distinct allowed rows drawn uniformly, each queried, in query order."""
    budget = check_budget(ctx, budget)
    oracle = oracle or new_oracle(ctx, budget)
    rng = np.random.default_rng(seed)
    rows = rng.choice(np.flatnonzero(ctx.pool.allowed), size=budget, replace=False).astype(np.int64)
    oracle.query(rows)
    return rows


def mutants(pool: SearchPool, row: int) -> np.ndarray:
    """Allowed rows one mutation away from ``row`` (the space's: NB201 one edge op; NB101 one
    edge of the adjacency matrix or one interior op; cells not in the store are dropped)."""
    return pool.space.mutants(pool, row)


def regularized_evolution(ctx: SearchContext, budget: int, seed: int = 0, population: int = 64,
                          tournament: int = 16, oracle: QueryOracle | None = None) -> np.ndarray:
    """Aging evolution: a random population, then repeatedly mutate the best (by validation
    accuracy) of a random tournament and replace the oldest. Returns rows in query order."""
    budget = check_budget(ctx, budget)
    oracle = oracle or new_oracle(ctx, budget)
    rng = np.random.default_rng(seed)
    pool = ctx.pool
    allowed = np.flatnonzero(pool.allowed)
    population = min(population, budget)
    queried = list(rng.choice(allowed, size=population, replace=False))
    sel = dict(zip(queried, np.nan_to_num(oracle.query(queried), nan=-np.inf).tolist()))
    seen = set(int(r) for r in queried)
    pop = list(queried)
    cycles = 0
    while len(queried) < budget and cycles < 50 * budget:
        cycles += 1
        contest = rng.choice(len(pop), size=min(tournament, len(pop)), replace=False)
        parent = pop[max(contest, key=lambda i: sel[pop[i]])]
        kids = mutants(pool, parent)
        fresh = [k for k in kids.tolist() if k not in seen]
        if fresh:
            child = int(rng.choice(fresh))
        elif len(kids) and rng.random() < 0.5:
            child = int(rng.choice(kids))  # a known neighbour: free, keeps the population aging
        else:  # sparse pool: every neighbour already queried -> a fresh random architecture
            child = int(rng.choice(allowed))
        if child not in seen:
            seen.add(child)
            queried.append(child)
            sel[child] = float(np.nan_to_num(oracle.query(child), nan=-np.inf))
        pop.append(child)
        pop.pop(0)
    return np.array(queried, np.int64)


QUERY_TEXT = "every looked-up architecture is a query; the pick is the best validation accuracy seen"


def query_run_summary(ctx: SearchContext, queried, milestones=MILESTONES) -> StrictResult:
    """Strict report of a search's queries (a :class:`QueryOracle`, or rows already looked up
    in query order): the final pick (best validation accuracy), its target accuracy, rank and
    percentile; the pick's target at each milestone; the best target among the queried rows (an
    oracle figure, for context); whether the optimum was queried/picked."""
    if isinstance(queried, QueryOracle):
        oracle = queried
    else:
        oracle = new_oracle(ctx)
        oracle.query(queried)
    rows, extra = oracle.rows, oracle.n_known_queries
    picks = running_pick(_selected(oracle, ctx.pool.n), rows)
    best_seen = np.maximum.accumulate(np.where(np.isfinite(ctx.target[rows]), ctx.target[rows], -np.inf))
    rank = ctx.rank[rows]
    best_rank = np.minimum.accumulate(np.where(rank > 0, rank, np.iinfo(np.int64).max))  # 0 = unlabelled
    q = extra + np.arange(1, len(rows) + 1)
    res = StrictResult(QUERY_TEXT, ctx.select_name, oracle.n_queries, pick_rule="val",
                       pick=arch_record(ctx, int(picks[-1])),
                       optimum_queried=bool((ctx.rank[rows] == 1).any()),
                       optimum_picked=bool(ctx.rank[picks[-1]] == 1), at_queries={})
    for m in milestones:
        i = np.searchsorted(q, m, side="right") - 1
        if 0 <= i and m <= q[-1]:
            res.at_queries[str(m)] = {"pick_" + ctx.target_name: _num(ctx.target[picks[i]]),
                                      "pick_rank": int(ctx.rank[picks[i]]),
                                      "best_queried_" + ctx.target_name: _num(best_seen[i]),
                                      "best_queried_rank": int(best_rank[i]) if rank[:i + 1].any() else None}
    step = max(1, len(rows) // 200)
    res.curve = [[int(q[i]), _num(ctx.target[picks[i]])] for i in range(0, len(rows), step)]
    if len(rows):
        res.curve.append([int(q[-1]), _num(ctx.target[picks[-1]])])
    return res


def _selected(oracle: QueryOracle, n: int) -> np.ndarray:
    """The selection accuracy of every queried row (NaN elsewhere): free look-ups."""
    out = np.full(n, np.nan)
    rows = oracle.rows
    out[rows] = oracle.value(rows)
    return out


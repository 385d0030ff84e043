"""The query-budgeted searches of a sweep report: the strict pick at each query milestone.

Per search cell and milestone ``m`` (up to the search's queries): the pick's accuracy
(``pick_<target>``), its rank (``pick_rank``), whether it is an optimum (``optimum_picked``) and
whether an optimum was among the queried cells (``optimum_queried``); the table prints, per
method, ``mean ± std [#picked / #queried] r<mean rank>`` and the wall seconds per search.

The figures come from ``strict_protocol.at_queries`` of ``search.json`` (``query_run_summary``
records every milestone of ``nar.search_baselines.MILESTONES``). A milestone that a search.json
does not record (written before that list grew, or a spec milestone outside it) is derived,
only where that is exact:

- the pick's accuracy from the strict curve: a point at ``m``, or the two sampled points around
  ``m`` with the same accuracy (the pick, the best selection accuracy so far, did not change);
- its rank from the accuracy: within one table the rank is a function of the accuracy (1 + the
  number of strictly better cells), so an (accuracy, rank) pair recorded by any search.json of
  the same data and dataset gives it;
- an optimum queried: an optimum picked was queried; where selection and target are the same
  accuracy (NB201 CIFAR-100, NB101) the pick is the best queried cell; else bounded by the
  recorded milestones (queried by an earlier one, or not by a later one).

What stays unknown is left out of the rows; the table marks it (``?``) and says so.
"""
from __future__ import annotations

import bisect
from collections import defaultdict

import numpy as np

DEFAULT_MILESTONES = (25, 50, 64, 100, 150, 200, 500)
_EPS = 1e-6


def _key(acc) -> float:
    return round(float(acc), 4)


def _records(rep: dict, t: str):
    """(accuracy, rank) pairs a search.json records."""
    s = rep.get("strict_protocol", {})
    recs = [s.get("pick"), (rep.get("best_feasible") or {}).get("best")]
    recs += [{t: v.get(f"pick_{t}"), "rank": v.get("pick_rank")} for v in (s.get("at_queries") or {}).values()]
    recs += [{t: v.get(f"best_queried_{t}"), "rank": v.get("best_queried_rank")}
             for v in (s.get("at_queries") or {}).values()]
    for r in recs:
        if r and r.get(t) is not None and r.get("rank"):
            yield _key(r[t]), int(r["rank"])


def rank_books(reps) -> dict:
    """{(data, dataset): {accuracy: rank}} from ``reps`` = [(labels, search.json), ...]."""
    books = defaultdict(dict)
    for labels, rep in reps:
        book = books[(labels.get("data"), labels.get("dataset"))]
        for acc, rank in _records(rep, rep.get("target", "test_acc")):
            book[acc] = rank
    return books


def _curve_at(curve, m):
    """The pick's accuracy after ``m`` queries if the curve fixes it, else None."""
    qs = [int(p[0]) for p in curve]
    i = bisect.bisect_left(qs, m)
    if i < len(qs) and qs[i] == m:
        return curve[i][1]
    if 0 < i < len(qs) and curve[i - 1][1] is not None and curve[i][1] is not None \
            and abs(curve[i - 1][1] - curve[i][1]) < _EPS:
        return curve[i - 1][1]
    return None


def milestone(rep: dict, m: int, book: dict) -> dict | None:
    """{"acc", "rank", "picked", "queried"} (None where unknown) after ``m`` queries, or None
    when the search made fewer queries."""
    t = rep.get("target", "test_acc")
    s = rep.get("strict_protocol", {})
    if not s or m > int(s.get("queries", 0)):
        return None
    at = s.get("at_queries") or {}
    opt = next((a for a, r in book.items() if r == 1), None)
    if str(m) in at:
        v = at[str(m)]
        acc, rank = v.get(f"pick_{t}"), v.get("pick_rank")
        queried = None
        if v.get("best_queried_rank") is not None:
            queried = int(v["best_queried_rank"]) == 1
        elif opt is not None and v.get(f"best_queried_{t}") is not None:
            queried = v[f"best_queried_{t}"] >= opt - _EPS
    else:
        acc = s["pick"].get(t) if m == int(s["queries"]) and s.get("pick") else _curve_at(s.get("curve") or [], m)
        rank = None if acc is None else book.get(_key(acc))
        queried = None
    picked = None if rank is None else int(rank) == 1
    if picked is None and acc is not None and opt is not None:
        picked = acc >= opt - _EPS  # below the optimum's accuracy: not an optimum, whatever its rank
    if queried is None:
        queried = _queried_bound(at, m, t, opt)
    if picked:
        queried = True
    elif picked is False and s.get("selection_label") == t:
        queried = False  # the pick is the best queried cell
    return {"acc": acc, "rank": rank, "picked": picked, "queried": queried}


def _queried_bound(at: dict, m: int, t: str, opt) -> bool | None:
    for q, v in at.items():
        hit = v.get("best_queried_rank")
        hit = (int(hit) == 1) if hit is not None else \
            (None if opt is None or v.get(f"best_queried_{t}") is None else v[f"best_queried_{t}"] >= opt - _EPS)
        if hit and int(q) <= m:
            return True
        if hit is False and int(q) >= m:
            return False
    return None


def milestone_rows(rep: dict, milestones, book: dict) -> list[tuple]:
    """(queries, metric, value) rows of a query-budgeted search's search.json: the milestone
    figures that are known, and the wall seconds of the search."""
    t = rep.get("target", "test_acc")
    rows = [(None, "wall_seconds", rep.get("wall_seconds"))]
    q_final = int(rep.get("strict_protocol", {}).get("queries", 0))
    for m in sorted(set(milestones) | {q_final}):
        f = milestone(rep, m, book)
        if f is None:
            continue
        rows += [(m, f"pick_{t}", f["acc"]), (m, "pick_rank", f["rank"])]
        rows += [(m, k, None if f[k2] is None else int(f[k2])) for k, k2 in
                 (("optimum_picked", "picked"), ("optimum_queried", "queried"))]
    return rows


def _fmt_cell(vals: dict, n_seeds: int) -> str:
    acc = [float(v) for v in vals.get("acc", [])]
    if not acc:
        return "–"
    cell = f"{np.mean(acc):.2f}" + (f" ± {np.std(acc):.2f}" if len(acc) > 1 else "")
    picked, queried, ranks = vals.get("optimum_picked", []), vals.get("optimum_queried", []), vals.get("pick_rank", [])
    a = f"{int(sum(picked))}" + ("?" if len(picked) < len(acc) else "")
    b = f"{int(sum(queried))}" + ("?" if len(queried) < len(acc) else "")
    r = f"r{np.mean(ranks):.0f}" if len(ranks) == len(acc) else "r?"
    return cell + f" [{a}/{b}] {r}" + (f" (n={len(acc)})" if len(acc) < n_seeds else "")


def search_tables(rows, milestones) -> list[str]:
    """Markdown: per data and dataset, methods x milestones (up to the largest budget)."""
    groups = defaultdict(list)
    for r in rows:
        groups[(str(r["data"]), str(r["dataset"]))].append(r)
    lines = []
    unknown = False
    for (data, ds), rs in sorted(groups.items()):
        top = max((r["queries"] for r in rs if r["queries"] is not None), default=0)
        qs = [m for m in sorted(set(milestones)) if m <= top]
        lines += [f"## Search, {data} {ds}: the strict pick after N queries", "",
                  "| method | seeds | " + " | ".join(f"@{q}" for q in qs) + " | s/search |",
                  "|---|---|" + "---|" * (len(qs) + 1)]
        for model in dict.fromkeys(r["model"] for r in rs):
            mine = [r for r in rs if r["model"] == model]
            seeds = len({r["seed"] for r in mine})
            by_q = defaultdict(lambda: defaultdict(list))
            for r in mine:
                metric = "acc" if str(r["metric"]).startswith("pick_") and r["metric"] != "pick_rank" else r["metric"]
                by_q[r["queries"]][metric].append(r["value"])
            cells = [_fmt_cell(by_q[q], seeds) if q in by_q else "–" for q in qs]
            unknown |= any("?" in c for c in cells)
            secs = by_q[None].get("wall_seconds", [])
            lines.append(f"| {model} | {seeds} | " + " | ".join(cells) + " | " +
                         (f"{np.mean([float(x) for x in secs]):.1f}" if secs else "–") + " |")
        lines.append("")
    if lines:
        lines += ["Cells: mean ± std of the strict pick's accuracy [#seeds whose pick is an optimum / #seeds "
                  "that queried an optimum] r<mean rank of the pick>; (n=k): only k seeds fix the pick there; "
                  "– : beyond the search's budget; s/search: wall seconds of one search."]
        if unknown:
            lines += ["?: some search.json files (written before they recorded this milestone) do not fix the "
                      "figure; counts with ? are lower bounds, r? a mean that cannot be given."]
        lines.append("")
    return lines

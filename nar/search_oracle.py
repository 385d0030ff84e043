"""The one gate to accuracy look-ups during a search, and the query count it keeps.

Every search (NAR sampling, random, evolution, the query-efficient mode) reads the accuracy a
pick may use (validation accuracy, see ``SearchContext.select``) only through a
:class:`QueryOracle`. A row costs one query the first time it is looked up; later look-ups of
the same row are free, as with the NAS-Bench-101 API, which counts each architecture's
training once. Architectures labelled before the search (the ranker's training and validation
sets) are paid with :meth:`QueryOracle.pay_known`. With a budget, a look-up that would exceed
it raises :class:`QueryBudgetExceeded`; callers that stop at the budget ask
:attr:`QueryOracle.remaining` first. The reported (test) accuracy is not a look-up: it judges
the result and never enters a decision.
"""
from __future__ import annotations

import numpy as np

from pipeline.errors import NarError


class QueryBudgetExceeded(NarError):
    """A look-up would exceed the query budget."""


class QueryOracle:
    """Counted look-ups of ``select`` (one value per store row; NaN = unlabelled)."""

    def __init__(self, select: np.ndarray, budget: int | None = None, name: str = "val_acc"):
        self._select = np.asarray(select, np.float64)
        self.budget = None if budget is None else int(budget)
        self.name = name
        self._queried = np.zeros(len(self._select), bool)
        self._order: list[int] = []
        self._n_known = 0        # queries paid before the search (may exceed the rows in the store)
        self._known: list[int] = []

    # --- counts ---
    @property
    def n_queries(self) -> int:
        """Every query so far: the known set's payment plus each distinct looked-up row."""
        return self._n_known + len(self._order)

    @property
    def remaining(self) -> int | None:
        return None if self.budget is None else max(0, self.budget - self.n_queries)

    @property
    def n_known_queries(self) -> int:
        return self._n_known

    @property
    def known_rows(self) -> np.ndarray:
        """Rows of the store paid with :meth:`pay_known`, in the order given."""
        return np.array(self._known, np.int64)

    @property
    def rows(self) -> np.ndarray:
        """Rows looked up during the search (not the known set), in query order."""
        return np.array(self._order, np.int64)

    def is_queried(self, rows) -> np.ndarray:
        return self._queried[np.asarray(rows, np.int64)]

    # --- look-ups ---
    def pay_known(self, rows, n_paid: int | None = None) -> np.ndarray:
        """Register architectures labelled before the search (a ranker's training and validation
        sets): ``n_paid`` queries (default ``len(rows)``; more when some of them are not in the
        store). Returns their values."""
        rows = np.asarray(rows, np.int64)
        fresh = [int(r) for r in rows if not self._queried[r]]
        n_paid = len(fresh) if n_paid is None else int(n_paid)
        if n_paid < len(fresh):
            raise ValueError(f"pay_known: {len(fresh)} new rows but only {n_paid} queries paid")
        self._check(n_paid)
        self._queried[fresh] = True
        self._known.extend(fresh)
        self._n_known += n_paid
        return self._select[rows]

    def query(self, rows) -> np.ndarray:
        """Values of ``rows`` (a sequence, or one row); each not yet queried row costs one
        query, in the order given. Raises :class:`QueryBudgetExceeded` (and charges nothing)
        when the new rows do not fit the budget."""
        scalar = np.ndim(rows) == 0
        rows = np.atleast_1d(np.asarray(rows, np.int64))
        fresh = list(dict.fromkeys(int(r) for r in rows if not self._queried[r]))
        self._check(len(fresh))
        self._queried[fresh] = True
        self._order.extend(fresh)
        vals = self._select[rows]
        return vals[0] if scalar else vals

    def value(self, rows) -> np.ndarray:
        """Values of rows already queried (free); a row never queried is an error."""
        rows = np.asarray(rows, np.int64)
        if not self._queried[rows].all():
            bad = np.atleast_1d(rows)[~self._queried[np.atleast_1d(rows)]][0]
            raise ValueError(f"row {bad} was never queried; use query()")
        return self._select[rows]

    def _check(self, n_new: int) -> None:
        if self.budget is not None and self.n_queries + n_new > self.budget:
            raise QueryBudgetExceeded(f"query budget {self.budget} exceeded: {self.n_queries} used, "
                                      f"{n_new} more asked; raise --budget")

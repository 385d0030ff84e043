"""Typed records of a search: one iteration of the sampling loop, one round of the
query-efficient mode, a strict-protocol result and the whole report (``search.json``).

``SearchReport.to_dict()`` is what ``search.json`` holds; ``schema_version`` 2 adds the key
itself, ``strict_protocol.pick_rule`` and the iterative mode's ``rounds`` records; the keys of
version 1 keep their meaning. ``surrogate_config`` (optional, the iterative mode with a NAR
surrogate) says where the surrogate's config came from and its encoder.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

import numpy as np

SCHEMA_VERSION = 2


@dataclass
class SearchIteration:
    """One sample -> rank round: the candidate rows, their predicted tiers and scores, the
    indices (into ``rows``) of the reported top-k, and the sampler's info."""
    rows: np.ndarray
    tiers: np.ndarray
    scores: np.ndarray
    top: np.ndarray
    info: dict
    n_top_tier: int

    @property
    def guided(self) -> dict:
        return self.info["guided"]


@dataclass
class QueryRound:
    """One round of the query-efficient mode: queries so far, the best selection accuracy so
    far, how many rows were queried and the fit's wall time."""
    queries: int
    best_select: float
    n_new: int = 0
    fit_seconds: float = 0.0


def _clean(d: dict) -> dict:
    return {k: v for k, v in d.items() if v is not None}


@dataclass
class StrictResult:
    """The strict protocol's report: one final pick from validation data (and predictions),
    every look-up counted. ``curve``: [queries, target accuracy of the pick then] pairs."""
    description: str
    selection_label: str
    queries: int
    pick: dict | None = None
    curve: list = field(default_factory=list)
    pick_rule: str | None = None
    val_margin: float | None = None
    n_lookups: int | None = None
    n_known_labelled_in_store: int | None = None
    picked_from: str | None = None
    search_only_pick: dict | None = None
    margin_score_pick: dict | None = None   # the version-1 rule's pick, for comparison
    rule_picks: dict | None = None          # the final pick of each strict pick rule
    optimum_queried: bool | None = None
    optimum_picked: bool | None = None
    at_queries: dict | None = None

    def to_dict(self) -> dict:
        return _clean({f.name: getattr(self, f.name) for f in fields(self)})

    def __getitem__(self, key):  # read like the version-1 dict
        v = getattr(self, key, None)
        if v is None:
            raise KeyError(key)
        return v

    def __contains__(self, key) -> bool:
        return getattr(self, key, None) is not None


@dataclass
class SearchReport:
    """Everything ``search.json`` holds. Mode-specific sections are None when absent."""
    mode: str
    bench: str
    dataset: str
    data_path: str
    checkpoint: str | None
    seed: int
    target: str
    selection_label: str
    pool: dict
    constraints: dict
    strict_protocol: StrictResult | None = None
    random_search_reference: dict | None = None
    # mode nar
    iterations: int | None = None
    search_size: int | None = None
    top_k: int | None = None
    n_train: int | None = None
    paper_protocol: dict | None = None
    final_top_k: list | None = None
    per_iteration: list | None = None
    # mode iterative
    surrogate: str | None = None
    surrogate_config: dict | None = None  # NAR surrogate: {"from": config file / preset, "encoder"}
    init_size: int | None = None
    query_step: int | None = None
    acquisition: dict | None = None
    rounds: list | None = None
    best_feasible: dict | None = None
    wall_seconds: float | None = None
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict:
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, StrictResult):
                v = v.to_dict()
            elif f.name == "rounds" and v is not None:
                v = [asdict(r) if isinstance(r, QueryRound) else r for r in v]
            if v is not None or f.name == "checkpoint":
                out[f.name] = v
        return out

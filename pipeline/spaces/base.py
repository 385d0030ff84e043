"""The interface every search space implements (:class:`SearchSpace`).

A space owns everything specific to one cell space, so the rest of NAR never branches on
which space it handles: its constants (vertex and edge limits, op vocabulary, image datasets,
feature-tensor shape) as class data; its source readers and the record encoder of its NAR
JSON (``pipeline``); its paper config and augmentations (``nar.config``); and, for search, how
store rows become cells, how cells are drawn, mutated, fingerprinted and looked up, which cells are the same
network, and the one-hot features of the baselines (``nar.sampler``, ``nar.search_baselines``,
``nar.baselines``).

Cells travel through search as *pool arrays*: ``structure`` (one row per architecture, what
the sampler's statistics count), and optionally ``adjacency`` and ``ops``; the space says what
they hold. A space is stateless apart from its description, so one instance serves any store.
"""
from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from pipeline.errors import NarError


class SearchSpace(ABC):
    """One cell search space. Subclasses set the class data and implement the methods."""

    # --- identity ---
    name: str = ""                 # registry name (``nar-cli --bench NAME``)
    aliases: tuple = ()            # other names accepted for it (e.g. "101")
    bench: str = ""                # short id recorded in stores and checkpoints
    title: str = ""                # human name used in messages
    config_names: tuple = ()       # values of the config key ``space`` (first = canonical)
    paper_config_file: str = ""    # the shipped config that fits this space
    paper_overrides: dict = {}     # config keys of the paper settings that differ from the defaults
    # --- constants ---
    max_vertices: int = 0
    max_edges: int = 0
    ops: tuple = ()                # op vocabulary
    size: int | None = None        # cells in the whole space (None: unknown)
    datasets: tuple = ()           # image datasets a store of this space may hold
    feature_shape: tuple = ()      # (C, P, P) of the ReNAS tensor
    key_bytes: int = 32            # width of the store's key column
    key_field: str = "key"         # what the key is called in messages
    augments: tuple = ("none",)    # training augmentations this space supports
    # --- NAR JSON ---
    json_keyed: bool = False       # an object keyed by index (True) or a list of records
    json_marker: bytes = b""       # a field name that occurs once per record
    unique_index: bool = False     # the record index must be unique (keyed files)
    published_sha256: str | None = None  # digest of NAR's released file of this space
    published_names: tuple = ()    # file names that must carry the published digest
    source_keywords: tuple = ()    # sources that are keywords, not paths

    # ------------------------------------------------------------------ data preparation
    @property
    def json_top(self) -> bytes:
        return b"{" if self.json_keyed else b"["

    @property
    def json_shape(self) -> str:
        return "an object keyed by architecture index" if self.json_keyed else "a list of records"

    def source_kinds(self) -> tuple:
        """Kinds of source :meth:`read_source` takes (``csv``, ``tfrecord``, keywords, ...)."""
        return tuple(self.readers())

    @abstractmethod
    def readers(self) -> dict:
        """{source kind: reader(source, limit, epochs) -> rows for :meth:`json_records`}."""

    def read_source(self, source: str, kind: str, limit=None, epochs: int = 108, dataset=None):
        """Rows of ``source``; ``dataset`` picks one table of a source that holds several
        (NAS-Bench-Graph), other spaces take none."""
        if dataset is not None:
            raise NarError(f"--dataset is for sources that hold several tables (--bench graph), not {self.title}")
        return self.readers()[kind](source, limit, epochs)

    @abstractmethod
    def json_records(self, rows):
        """(records iterator, keyed) of source rows, for ``pipeline.nar_json.write_json``."""

    @abstractmethod
    def encode_chunk(self, records: list, start: int) -> dict:
        """Validate and encode a chunk of NAR JSON records into store arrays."""

    def store_attrs(self) -> dict:
        """Extra store attributes that describe the space (a configured space's spec)."""
        return {}

    # ------------------------------------------------------------------ config
    @classmethod
    def dataset_of(cls, network_type: str) -> str:
        """The image dataset a config's ``network_type`` selects in this space."""
        return network_type if network_type in cls.datasets else cls.datasets[0]

    def augment(self, x, mode: str, generator):
        """Apply a training augmentation ``mode`` of :attr:`augments` to a feature batch."""
        from nar.augment import augment_batch
        return augment_batch(x, mode, generator)

    # ------------------------------------------------------------------ cells
    @abstractmethod
    def key(self, cell) -> str:
        """Canonical key of a cell (what the store's ``key`` column holds)."""

    @abstractmethod
    def cell(self, pool, row: int):
        """The cell of pool row ``row`` (the argument :meth:`key` takes)."""

    # ------------------------------------------------------------------ search
    @abstractmethod
    def pool_arrays(self, store) -> dict:
        """{"structure": ..., "adjacency": ..., "ops": ...} of every store row (None if unused)."""

    @abstractmethod
    def codes(self, pool, cells) -> np.ndarray:
        """(uint64 codes, valid mask) of drawn ``cells``: equal codes = the same cell."""

    def row_codes(self, pool) -> np.ndarray:
        """Codes of the pool's own rows (lookup table)."""
        codes, _ = self.codes(pool, self.pool_cells(pool))
        return codes

    @abstractmethod
    def pool_cells(self, pool):
        """All pool rows in the cell-batch form :meth:`codes` and :meth:`draw` use."""

    def lookup(self, pool, cells) -> np.ndarray:
        """Pool rows of a batch of drawn cells; -1 where invalid or not in the pool."""
        codes, ok = self.codes(pool, cells)
        return np.where(ok, pool.lookup_codes(codes), -1)

    def equivalence_codes(self, pool) -> np.ndarray:
        """(N,) int64 class of every pool row: rows with equal codes are the same network
        (one query tells the accuracy of all, up to training noise), so a search need not
        query more than one of them. Default: every row its own class."""
        return np.arange(pool.n, dtype=np.int64)

    @abstractmethod
    def structure_counts(self, structure: np.ndarray, tiers: np.ndarray, n_tier: int) -> np.ndarray:
        """(n_tier, ...) histograms of the structure of ranked rows, per predicted tier."""

    def sampler_prior(self, pool):
        """What unguided draws follow (e.g. the pool's vertex-count distribution), or None."""
        return None

    @abstractmethod
    def draw(self, rng, n: int, guide, prior, kl_eps: float):
        """``n`` random cells (a batch for :meth:`lookup`); ``guide`` is the top tier's
        :meth:`structure_counts` row when the structure guides, else None."""

    @abstractmethod
    def mutants(self, pool, row: int) -> np.ndarray:
        """Allowed pool rows one mutation away from ``row`` (sorted, ``row`` excluded)."""

    @abstractmethod
    def describe(self, pool, row: int) -> dict:
        """JSON-ready fields that show the cell of ``row`` in reports."""

    @abstractmethod
    def flat_features(self, store, idx: np.ndarray) -> np.ndarray:
        """(len(idx), F) float32 structure-only features for the baselines."""

    # ------------------------------------------------------------------ helpers
    def check_store(self, store) -> None:
        if store.bench != self.bench:
            raise NarError(f"store {store.path} holds {store.bench} cells, not {self.title}")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"

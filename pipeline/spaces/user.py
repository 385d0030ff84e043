"""A user's own cell space, configured by a small description file: no code change needed.

Description (YAML)::

    name: my-cells              # optional label
    max_vertices: 6             # cells have 2..max_vertices vertices (input and output included)
    ops: [conv3x3, conv1x1, maxpool]   # the interior op vocabulary
    max_edges: 9                # optional (default: no limit beyond the DAG)

Table (CSV, or a JSON list of objects, one architecture per row): ``adjacency`` (a row-major
0/1 string such as ``0110001000010000``, or a nested list), ``ops`` (comma-separated names,
``input`` first, ``output`` last, the others from the vocabulary); optional ``node_flops`` and
``node_params`` (comma-separated per-vertex numbers, default 0), ``val_acc`` and ``test_acc``
(percent; empty = unknown). A cell may list its vertices in any order: it is re-ordered
topologically (input first, output last); it must be acyclic and every vertex must lie on an
input -> output path. Its key is the NAS-Bench-101-style isomorphism-invariant hash over the
vocabulary, so isomorphic rows are reported as duplicates.

The search-side operations are NAS-Bench-101's, with this space's limits and vocabulary
(:class:`pipeline.spaces.nb101.NB101Space`); the feature tensor is (3, V, V): channel 0 the
adjacency times the vertex type code (input 1, the ops 2.., output last), channels 1 and 2 the
adjacency times the FLOPs and params of the target vertex, output at position V - 1.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pipeline.errors import NarError
from pipeline.spaces.nb101 import NB101Space
from pipeline.spaces.registry import register_space
from pipeline.spaces.user_cells import FIELDS, UserRows, canonical_cell, encode_records, read_table
from pipeline.yaml_file import read_yaml

MAX_VERTICES_LIMIT = 16
_SPEC_KEYS = {"name", "max_vertices", "ops", "max_edges"}


def load_spec(path) -> dict:
    """The space description at ``path`` (YAML), checked; NarError naming the problem."""
    spec = read_yaml(path, "space description", "pass --space-file SPACE.yaml")
    return check_spec(spec, str(Path(path)))


def check_spec(spec, where: str = "the space description") -> dict:
    if not isinstance(spec, dict):
        raise NarError(f"{where} must be a mapping with max_vertices and ops")
    unknown = set(spec) - _SPEC_KEYS
    if unknown:
        raise NarError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(_SPEC_KEYS))}")
    missing = [k for k in ("max_vertices", "ops") if k not in spec]
    if missing:
        raise NarError(f"{where}: missing key(s) {', '.join(missing)}")
    v = spec["max_vertices"]
    if not isinstance(v, int) or isinstance(v, bool) or not 3 <= v <= MAX_VERTICES_LIMIT:
        raise NarError(f"{where}: max_vertices {v!r} must be an integer 3..{MAX_VERTICES_LIMIT}")
    ops = spec["ops"]
    if (not isinstance(ops, list) or not ops or not all(isinstance(o, str) and o.strip() for o in ops)
            or len(set(ops)) != len(ops)):
        raise NarError(f"{where}: ops must be a list of distinct op names, got {ops!r}")
    bad = [o for o in ops if o in ("input", "output") or o in FIELDS or "," in o]
    if bad:
        raise NarError(f"{where}: op name {bad[0]!r} is reserved or has a comma; rename it")
    dag_edges = v * (v - 1) // 2
    e = spec.get("max_edges", dag_edges)
    if not isinstance(e, int) or isinstance(e, bool) or not 1 <= e <= dag_edges:
        raise NarError(f"{where}: max_edges {e!r} must be an integer 1..{dag_edges}")
    return {"name": str(spec.get("name", "user")), "max_vertices": v, "ops": list(ops), "max_edges": e}


@register_space
class UserSpace(NB101Space):
    """A cell-DAG space described by data (see the module docstring)."""

    name = "user"
    aliases = ()
    bench = "user"
    title = "user cell space"
    config_names = ("user",)
    paper_config_file = "config/user.yml"
    paper_overrides = {"exp_name": "nar_user", "space": "user", "ranker": {"n_arch_patch": 3}}
    needs_spec = True
    size = None
    datasets = ("default",)
    augments = ("none",)
    max_edges = 0  # set per instance from the description
    key_field = "key"
    json_keyed = False
    json_marker = b'"node_params"'
    published_sha256 = None
    published_names = ()
    source_keywords = ()

    def __init__(self, spec: dict):
        spec = check_spec(spec)
        self.spec = spec
        self.max_vertices = spec["max_vertices"]
        self.max_edges = spec["max_edges"]
        self.ops = ("input", *spec["ops"], "output")
        self.feature_shape = (3, self.max_vertices, self.max_vertices)
        k = len(spec["ops"])
        self.code_of_op = {name: c for c, name in enumerate(self.ops, start=1)}
        self.op_names = {c: name for name, c in self.code_of_op.items()}
        self.interior_codes = tuple(range(2, k + 2))
        self.label_of_code = np.array([0, -1, *range(k), -2], np.int64)
        self.radix = max(self.max_vertices, k + 2) + 1
        self.title = f"user cell space {spec['name']!r}"

    # ------------------------------------------------------------------ data preparation
    def readers(self) -> dict:
        return {"csv": lambda s, limit, epochs: read_table(self, s, limit),
                "json": lambda s, limit, epochs: read_table(self, s, limit)}

    def json_records(self, rows: UserRows):
        return rows.records(), False

    def encode_chunk(self, records, start=0):
        return encode_records(self, records, start)

    def store_attrs(self) -> dict:
        return {"space_spec": json.dumps(self.spec)}

    # ------------------------------------------------------------------ cells
    def key(self, cell) -> str:
        matrix, ops = cell
        return canonical_cell(self, np.asarray(matrix), list(ops), "cell")[2]

    def cell(self, pool, row):
        row = int(row)
        nv = int(pool.structure[row])
        return pool.adjacency[row, :nv, :nv], [self.op_names[int(c)] for c in pool.ops[row, :nv]]

    def __repr__(self) -> str:
        return f"<UserSpace {self.spec['name']} V={self.max_vertices} ops={len(self.spec['ops'])}>"

"""Property-based tests (hypothesis) of the readers: for a mutated or hostile input each
reader returns a correct result or raises NarError - never another exception, never partial
output. Plus the valid edge cases that must be accepted (smallest NB101 cell, BOM/CRLF)."""
import base64
import copy
import json
import shutil
import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cache.store import Store
from pipeline.errors import NarError
from pipeline.ingest import ingest
from pipeline.nb101_space import module_hash
from pipeline.sources import read_source, tfrecord
from pipeline.sources.crc32c import crc32c, mask
from tests.conftest import shared_data
from tests.fakes import fake_store_201
from tests.test_ingest import nb201_items
from tests.test_sources import ARCHS, _save_pth

FUZZ = settings(max_examples=30, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6)


def _only_files(folder: Path, allowed: set) -> None:
    left = {p.name for p in folder.iterdir()} - allowed
    assert left == set(), f"left behind: {left}"


# ------------------------------------------------------------------ JSON -> store
def _mutate_record(rec: dict, path: list, value):
    node = rec
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value


def _leaf_paths(obj, prefix=()):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _leaf_paths(v, (*prefix, k))
    elif isinstance(obj, list) and obj and isinstance(obj[0], list):
        for i, v in enumerate(obj):
            yield from _leaf_paths(v, (*prefix, i))
    else:
        yield prefix


def _check_store(path: Path) -> None:
    with Store(path) as s:
        s.verify()
        for ds in s.datasets:
            for name in ("val_acc", "test_acc"):
                v = np.asarray(s.data(ds, name))
                assert ((v >= 0) & (v <= 100) | np.isnan(v)).all()
            assert (np.asarray(s.data(ds, "flops")) >= 0).all()


@FUZZ
@given(data=st.data())
def test_json_mutations_give_store_or_nar_error(data):
    items = dict(nb201_items(3))
    key = data.draw(st.sampled_from(sorted(items)))
    kind = data.draw(st.sampled_from(["value", "bytes", "duplicate", "deep", "truncate", "long"]))
    text, must_fail = None, kind in ("duplicate", "deep")
    if kind == "value":
        paths = sorted(_leaf_paths(items[key]), key=str)
        _mutate_record(items[key], list(data.draw(st.sampled_from(paths))), data.draw(JSON_VALUES))
    raw = json.dumps(items).encode() if text is None else text
    if kind == "bytes":
        at = data.draw(st.integers(0, len(raw) - 1))
        raw = raw[:at] + data.draw(st.binary(min_size=1, max_size=6)) + raw[at + 1:]
    elif kind == "duplicate":
        field = data.draw(st.sampled_from(sorted(items[key])))
        raw = raw.replace(f'"{key}": {{'.encode(),
                          f'"{key}": {{"{field}": {json.dumps(data.draw(JSON_VALUES))}, '.encode(), 1)
    elif kind == "deep":
        depth = data.draw(st.integers(60, 50_000))
        raw = raw.replace(b'"arch_str"', b'"x": ' + b"[" * depth + b"]" * depth + b', "arch_str"', 1)
    elif kind == "long":  # a huge literal: ijson's C backend must never see one (it can crash)
        field = b'"cifar10-valid_total_flops": '
        filler, n = data.draw(st.sampled_from([b"7", b"a", b" "])), data.draw(st.integers(20, 200_000))
        raw = raw.replace(field, field + (b'"' if filler == b"a" else b"") + filler * n, 1)
        must_fail = filler != b" " or n > 3 << 10  # blanks are valid JSON, up to the bracket-gap bound
    elif kind == "truncate":
        raw = raw[:data.draw(st.integers(0, len(raw) - 1))]
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        src, out = folder / "in.json", folder / "s.h5"
        src.write_bytes(raw)
        try:
            ingest(src, "201", out=out, skip_sha256=True, n_jobs=1)
        except NarError:
            _only_files(folder, {"in.json"})
            return
        assert not must_fail, f"a {kind} mutation was accepted"
        _check_store(out)
        _only_files(folder, {"in.json", "s.h5"})


def test_unmutated_json_and_smallest_nb101_cell_are_accepted(tmp_path):
    from tests.test_encode import fixture

    src = tmp_path / "in.json"
    src.write_text(json.dumps(dict(nb201_items(3))))
    _check_store(ingest(src, "201", out=tmp_path / "a.h5", skip_sha256=True, n_jobs=1))
    rec = copy.deepcopy(fixture("101")[0])  # the smallest cell: input -> output, one edge
    rec["module_adjacency"], rec["module_operations"] = [[0, 1], [0, 0]], ["input", "output"]
    for f in ("vertex_flops", "vertex_params"):
        rec[f] = {m: [v[0], v[-1]] for m, v in rec[f].items()}
    rec["unique_hash"] = module_hash([[0, 1], [0, 0]], ["input", "output"])
    src.write_text(json.dumps([rec]))
    with Store(ingest(src, "101", out=tmp_path / "b.h5", skip_sha256=True, n_jobs=1)) as s:
        assert s.n == 1 and int(s.array("n_vertices")[0]) == 2
    rec["unique_hash"] = "0" * 32
    src.write_text(json.dumps([rec]))
    with pytest.raises(NarError, match="unique_hash 0{32} does not belong to its cell"):
        ingest(src, "101", out=tmp_path / "c.h5", skip_sha256=True, n_jobs=1)


# ------------------------------------------------------------------ CSV tables
CSV_HEAD = "arch_index,arch_str,cifar10_valid_acc,cifar10_test_acc"
CSV_ROWS = [f"{i},{a},{60 + i}.5,{61 + i}.25" for i, a in enumerate(ARCHS)]


def _read_csv(folder: Path, text: bytes):
    p = folder / "t.csv"
    p.write_bytes(text)
    return read_source("201", str(p))


@FUZZ
@given(row=st.integers(0, len(ARCHS) - 1), col=st.integers(0, 3),
       value=st.sampled_from(["inf", "-inf", "1e999", "nan", "true", "-5", "101", "", "x", "1e308",
                              "99999999999999999999", "0x10", " 7 ", "٣"]) | st.text(max_size=6),
       bom=st.booleans(), crlf=st.booleans())
def test_csv_cells_give_rows_or_nar_error(row, col, value, bom, crlf):
    cells = [r.split(",") for r in CSV_ROWS]
    cells[row][col] = value.replace(",", ";").replace("\n", " ").replace("\r", " ").replace('"', "'")
    nl = "\r\n" if crlf else "\n"
    text = (("\ufeff" if bom else "") + nl.join([CSV_HEAD, *(",".join(c) for c in cells)]) + nl).encode()
    with tempfile.TemporaryDirectory() as d:
        try:
            rows = _read_csv(Path(d), text)
        except NarError:
            return
    for name, v in rows.metrics.items():
        assert ((v >= 0) & (v <= 100) | np.isnan(v)).all(), name


@pytest.mark.parametrize("bom, nl", [(False, "\n"), (True, "\n"), (False, "\r\n"), (True, "\r\n")])
def test_csv_bom_and_crlf_are_accepted_alike(tmp_path, bom, nl):
    text = (("\ufeff" if bom else "") + nl.join([CSV_HEAD, *CSV_ROWS]) + nl).encode()
    rows = _read_csv(tmp_path, text)
    assert rows.arch_index.tolist() == [0, 1, 2, 3]
    assert rows.metrics["cifar10_test_acc"].tolist() == [61.25, 62.25, 63.25, 64.25]


# ------------------------------------------------------------------ NB101 tfrecord payloads
def _frame(data: bytes) -> bytes:
    head = struct.pack("<Q", len(data))
    return head + struct.pack("<I", mask(crc32c(head))) + data + struct.pack("<I", mask(crc32c(data)))


@pytest.fixture(scope="module")
def payloads():
    return [bytes(d) for _, d in tfrecord.iter_frames(shared_data("fixtures/ecnas_energy_4V9E.tfrecord"))][:6]


@FUZZ
@given(data=st.data())
def test_tfrecord_payloads_with_good_crcs_give_rows_or_nar_error(payloads, data):
    recs = list(payloads)
    i = data.draw(st.integers(0, len(recs) - 1))
    kind = data.draw(st.sampled_from(["json", "element", "protobuf"]))
    if kind == "json":
        at = data.draw(st.integers(0, len(recs[i]) - 1))
        recs[i] = recs[i][:at] + data.draw(st.binary(min_size=1, max_size=4)) + recs[i][at + 1:]
    else:
        item = json.loads(recs[i])
        if kind == "element":
            item[data.draw(st.integers(0, 4))] = data.draw(JSON_VALUES)
        else:
            blob = bytearray(base64.b64decode(item[4]))
            at = data.draw(st.integers(0, len(blob) - 1))
            blob[at:at + 1] = data.draw(st.binary(min_size=0, max_size=3))
            item[4] = base64.b64encode(bytes(blob)).decode()
        recs[i] = json.dumps(item).encode()
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "x.tfrecord"
        p.write_bytes(b"".join(_frame(r) for r in recs))
        try:
            rows = read_source("101", str(p), epochs=4)
        except NarError:
            return
    assert len(rows) >= 1 and all(np.isnan(v) | np.isfinite(v) for v in rows.metrics.values())


# ------------------------------------------------------------------ NB201 .pth structure
def _nodes(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _nodes(v, (*prefix, k))


@FUZZ
@given(data=st.data())
def test_pth_structure_mutations_give_rows_or_nar_error(data):
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "b.pth"
        _save_pth(p, ARCHS[:2])
        blob = torch.load(p, weights_only=False)
        paths = [q for q in _nodes(blob) if q]
        where = data.draw(st.sampled_from(sorted(paths, key=str)))
        node = blob
        for k in where[:-1]:
            node = node[k]
        node[where[-1]] = data.draw(JSON_VALUES)
        torch.save(blob, p)
        try:
            rows = read_source("201", str(p))
        except NarError:
            return
    assert all(((v >= 0) | np.isnan(v)).all() for v in rows.metrics.values())


# ------------------------------------------------------------------ the store
@pytest.fixture(scope="module")
def store_bytes(tmp_path_factory):
    return fake_store_201(tmp_path_factory.mktemp("st") / "s.h5", n=40, datasets=("cifar10",)).read_bytes()


@FUZZ
@given(data=st.data())
def test_damaged_store_is_nar_error_or_intact(store_bytes, data):
    raw = bytearray(store_bytes)
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(raw) - 1))
        raw[at] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        raw = raw[:data.draw(st.integers(0, len(raw)))]
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "s.h5"
        p.write_bytes(bytes(raw))
        try:
            with Store(p) as s:
                s.verify()
                feats = np.array(s.data("cifar10", "features"))
        except NarError:
            return
        shutil.copy(p, Path(d) / "ok.h5")
    with tempfile.TemporaryDirectory() as d:
        good = Path(d) / "g.h5"
        good.write_bytes(store_bytes)
        with Store(good) as s:
            assert np.array_equal(feats, np.array(s.data("cifar10", "features")))  # verified = intact

"""Streaming ingest: store round trip, cache, checksums, bad inputs, the `encode` command."""
import copy
import hashlib
import itertools
import json
import logging

import numpy as np
import pytest
from click.testing import CliRunner

import pipeline.ingest as ingest_mod
from cache.store import Store
from cli import cli
from pipeline import checksum
from pipeline.encode import encode_chunk_101, encode_chunk_201
from pipeline.errors import NarError
from pipeline.nb101_space import module_hash
from pipeline.ingest import ingest, store_path_for
from tests.test_encode import fixture, five_vertex_record


def nb101_records(n=23):
    """Perturbed copies of the fixture: other interior ops (so other cells, each with its own
    module hash), scaled FLOPs, every third a 5-vertex cell."""
    base = fixture("101")[0]
    interior = list(itertools.product(["conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3"], repeat=3))
    recs = []
    for i in range(n):
        r = five_vertex_record(base) if i % 3 == 0 else copy.deepcopy(base)
        ops = r["module_operations"]
        ops[1:4] = interior[i]
        r["unique_hash"] = module_hash(r["module_adjacency"], ops)
        r["vertex_flops"] = {m: [v * (i + 1) for v in vals] for m, vals in r["vertex_flops"].items()}
        r["avg_validation_accuracy"] = 0.5 + i / 100
        r["avg_test_accuracy"] = None if i == 5 else 0.4 + i / 100
        recs.append(r)
    return recs


def nb201_items(n=5):
    key, base = next(iter(fixture("201").items()))
    items = []
    ops = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]
    for i in range(n):
        r = copy.deepcopy(base)
        r["cell_adjacency"][0][1] = i % 5
        a = r["cell_adjacency"]
        r["arch_str"] = "|{}~0|+|{}~0|{}~1|+|{}~0|{}~1|{}~2|".format(
            *[ops[a[i_][j_]] for i_, j_ in ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))])
        r["cifar100_val_acc"] = None
        items.append((str(i * 100), r))
    return items


def write_json(path, data, sidecar=True):
    text = json.dumps(data, indent=1)
    path.write_text(text)
    if sidecar:
        checksum.sidecar_path(path).write_text(hashlib.sha256(text.encode()).hexdigest() + "  " + path.name)
    return path


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("NAR_CACHE_DIR", str(d))
    return d


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_nb101_store_round_trip(tmp_path, cache_dir, caplog, n_jobs):
    recs = nb101_records()
    src = write_json(tmp_path / "nb101.json", recs)
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    scan = ingest_mod.scan_source(src, "101")
    assert scan.sha256 == digest and scan.markers == 23
    text = src.read_bytes()
    assert len(scan.ends) == 23 and all(text[e - 1:e] == b"}" for e in scan.ends)  # splittable
    with caplog.at_level(logging.WARNING, logger="pipeline.ingest"):
        path = ingest(src, "101", n_jobs=n_jobs, chunk_records=5)
    assert "parallel parse failed" not in caplog.text
    assert path == cache_dir / f"101_{digest[:12]}.h5" == store_path_for(src, 101)
    want = encode_chunk_101(recs, 0)
    with Store(path) as s:
        assert s.n == 23 and s.datasets == ["cifar10"]
        assert s.attrs["source_sha256"] == digest and s.attrs["sha256_verified"] is True
        assert s.attrs["source_path"] == str(src.resolve()) and s.attrs["encoder_version"] == 1
        assert json.loads(s.attrs["counts"]) == {"records": 23, "cifar10/val_acc": 23, "cifar10/test_acc": 22}
        assert isinstance(s.data("cifar10", "features"), np.memmap)
        for name, values in want.items():
            np.testing.assert_array_equal(s.array(name), values, err_msg=name)
        assert s.array("key").dtype == np.dtype("S32")
    assert list(cache_dir.iterdir()) == [path]  # no temporary file left


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_nb201_store_round_trip(tmp_path, n_jobs):
    items = nb201_items()
    src = write_json(tmp_path / "nb201.json", dict(items))
    path = ingest(src, "201", out=tmp_path / "s.h5", n_jobs=n_jobs, chunk_records=2)
    want = encode_chunk_201(items)
    with Store(path) as s:
        assert s.datasets == ["cifar10", "cifar100", "imagenet16"]
        np.testing.assert_array_equal(s.array("index"), [0, 100, 200, 300, 400])
        for name, values in want.items():
            np.testing.assert_array_equal(s.array(name), values, err_msg=name)
        assert np.isnan(s.data("cifar100", "val_acc")).all()
        assert len(s.array("key")[0]) > 80  # arch strings of up to 95 characters are kept whole


def test_cache_hit_does_no_work(tmp_path, cache_dir, caplog, monkeypatch):
    src = write_json(tmp_path / "nb101.json", nb101_records(4))
    path = ingest(src, "101", n_jobs=1)
    mtime = path.stat().st_mtime_ns
    monkeypatch.setattr(ingest_mod, "_write_store", lambda *a, **k: pytest.fail("re-encoded"))
    with caplog.at_level(logging.INFO, logger="pipeline.ingest"):
        assert ingest(src, "101", n_jobs=1) == path
    assert "cache hit" in caplog.text and path.stat().st_mtime_ns == mtime


def test_unverified_store_is_rebuilt_when_verification_is_asked(tmp_path):
    src = write_json(tmp_path / "nb101.json", nb101_records(4))
    out = tmp_path / "s.h5"
    ingest(src, "101", out=out, skip_sha256=True, n_jobs=1)
    with Store(out) as s:
        assert s.attrs["sha256_verified"] is False
    ingest(src, "101", out=out, n_jobs=1)
    with Store(out) as s:
        assert s.attrs["sha256_verified"] is True


def test_published_digest_needs_no_sidecar(tmp_path, monkeypatch):
    src = write_json(tmp_path / "nb201.json", dict(nb201_items()), sidecar=False)
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    monkeypatch.setitem(checksum.PUBLISHED_SHA256, "201", digest)
    with Store(ingest(src, "201", out=tmp_path / "s.h5", n_jobs=1)) as s:
        assert s.attrs["sha256_verified"] is True
    with pytest.raises(NarError, match="is NAR's published NB201 file, not NB101; use --bench 201"):
        ingest(src, "101", out=tmp_path / "t.h5", n_jobs=1)


def test_sha256_option_and_mismatch(tmp_path):
    src = write_json(tmp_path / "nb101.json", nb101_records(4), sidecar=False)
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    ingest(src, "101", out=tmp_path / "ok.h5", sha256=digest.upper(), n_jobs=1)
    wrong = "0" * 64
    with pytest.raises(NarError) as e:
        ingest(src, "101", out=tmp_path / "bad.h5", sha256=wrong, n_jobs=1)
    assert str(src) in str(e.value) and wrong in str(e.value) and digest in str(e.value)
    assert not (tmp_path / "bad.h5").exists()


def bad_inputs(tmp_path):
    """(description, callable) pairs that must each raise NarError matching the description."""
    recs = nb101_records(12)
    good = json.dumps(recs)
    broken = copy.deepcopy(recs)
    broken[9]["module_adjacency"][0][0] = 1

    def src(name, text):
        p = tmp_path / name
        p.write_text(text)
        return p

    yield "NB101 record 9: module_adjacency is not strictly upper", \
        lambda: ingest(src("bad.json", json.dumps(broken)), "101", skip_sha256=True, n_jobs=2, chunk_records=4)
    yield "NB101 record 2: expected a JSON object, got 5", \
        lambda: ingest(src("scalar.json", json.dumps(recs[:2] + [5] + recs[2:])), "101", skip_sha256=True,
                       n_jobs=2, chunk_records=4)  # the split cannot see it: the serial stream does
    yield f"truncated or not JSON at byte {len(good) // 2}; re-download", \
        lambda: ingest(src("cut.json", good[:len(good) // 2]), "101", skip_sha256=True, n_jobs=2)
    yield "truncated or not JSON at byte 0", \
        lambda: ingest(src("text.json", "hello, world"), "101", skip_sha256=True, n_jobs=1)
    yield "truncated or not JSON at byte 1", \
        lambda: ingest(src("half.json", "[x]"), "101", skip_sha256=True, n_jobs=1)
    yield "SHA256 mismatch for .*mm.json: expected 1{64}, got [0-9a-f]{64}", \
        lambda: ingest(src("mm.json", good), "101", sha256="1" * 64)
    yield "no SHA256 known for .*nosum.json: pass --sha256 HEX, or write .*nosum.json.sha256", \
        lambda: ingest(src("nosum.json", good), "101")
    yield "NAR JSON file not found: .*missing.json", \
        lambda: ingest(tmp_path / "missing.json", "101", skip_sha256=True)
    yield "unknown bench '102'", lambda: ingest(src("b.json", good), "102", skip_sha256=True)
    yield "not NB201 data .*use --bench 101", lambda: ingest(src("c.json", good), "201", skip_sha256=True)
    yield "records 0 and 12 have the same unique_hash", \
        lambda: ingest(src("dup.json", json.dumps(recs + recs[:1])), "101", skip_sha256=True, n_jobs=1)
    yield "NB201 record 'x1': keys must be architecture indices", \
        lambda: ingest(src("k.json", json.dumps({"x1": nb201_items()[0][1]})), "201", skip_sha256=True, n_jobs=1)


def test_bad_inputs_raise_and_leave_no_file(tmp_path, cache_dir):
    for message, call in bad_inputs(tmp_path):
        with pytest.raises(NarError, match=message):
            call()
        left = [p for p in tmp_path.rglob("*") if p.is_file() and ".h5" in p.name]
        assert left == [], message  # neither a store nor its temporary file


def test_cli_encode_success_and_error(tmp_path):
    src = write_json(tmp_path / "nb201.json", dict(nb201_items()))
    out = tmp_path / "s.h5"
    runner = CliRunner()
    ok = runner.invoke(cli, ["encode", "--bench", "201", "--data_path", str(src), "--out", str(out),
                             "--n_jobs", "1"])
    assert ok.exit_code == 0, ok.output
    assert ok.stdout.strip() == str(out) and out.exists()
    bad = runner.invoke(cli, ["encode", "--bench", "201", "--data_path", str(tmp_path / "none.json"),
                              "--out", str(tmp_path / "t.h5")])
    assert bad.exit_code == 2
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: NAR JSON file not found")
    assert not (tmp_path / "t.h5").exists()

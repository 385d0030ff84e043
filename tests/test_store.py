"""The store contract: atomic writes, memory-mapped reads, clear errors."""
import numpy as np
import pytest

from cache.store import Store, StoreWriter
from pipeline.errors import NarError
from tests.fakes import fake_store_101, fake_store_201


def test_fake_stores_roundtrip_and_memmap(tmp_path):
    p = fake_store_201(tmp_path / "s201.h5", n=50)
    with Store(p) as s:
        assert s.bench == "201" and s.n == 50
        assert s.datasets == ["cifar10", "cifar100"]
        f = s.data("cifar10", "features")
        assert isinstance(f, np.memmap) and f.shape == (50, 31, 4, 4)
        assert np.array_equal(f[:, 0], s.array("adjacency"))
    p = fake_store_101(tmp_path / "s101.h5", n=30)
    with Store(p) as s:
        assert s.data("cifar10", "features").shape == (30, 19, 7, 7)
        with pytest.raises(NarError, match="no data for dataset 'cifar100'"):
            s.data("cifar100", "features")


def test_failed_write_leaves_nothing(tmp_path):
    target = tmp_path / "x.h5"
    with pytest.raises(RuntimeError):
        with StoreWriter(target, 3, "101") as w:
            w.put("key", np.array([b"a", b"b", b"c"]))
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_missing_and_corrupt_store(tmp_path):
    with pytest.raises(NarError, match="store not found"):
        Store(tmp_path / "nope.h5")
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not an hdf5 file")
    with pytest.raises(NarError, match="cannot open store"):
        Store(bad)

"""pipeline.atomic: the target is either the old file or the whole new one; no temp left."""
import json

import numpy as np
import pytest

from pipeline.atomic import atomic_path, temp_path, write_json_atomic, write_text_atomic
from pipeline.errors import NarError


def test_failed_write_keeps_old_file_and_removes_temp(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("writer failed")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_writes_replace_and_create_folders(tmp_path):
    target = tmp_path / "a" / "b" / "r.json"
    write_json_atomic(target, {"x": 1.5}, indent=2, mkdir=True)
    assert json.loads(target.read_text()) == {"x": 1.5}
    write_text_atomic(target, "new")
    assert target.read_text() == "new"
    assert [p.name for p in target.parent.iterdir()] == ["r.json"]


def test_missing_folder_without_mkdir_raises(tmp_path):
    with pytest.raises(NarError, match="does not exist"):
        write_text_atomic(tmp_path / "nope" / "x.txt", "text")


def test_temp_name_keeps_suffix_for_numpy(tmp_path):
    target = tmp_path / "space.npz"
    assert temp_path(target).suffix == ".npz" and temp_path(target).parent == tmp_path
    with atomic_path(target) as tmp:
        np.savez(tmp, a=np.arange(3))
    assert np.load(target)["a"].tolist() == [0, 1, 2]
    assert [p.name for p in tmp_path.iterdir()] == ["space.npz"]

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


def test_output_checks_name_the_path_and_the_fix(tmp_path, monkeypatch):
    import errno
    import os

    from pipeline.atomic import check_output_dir, check_output_file, output_error

    (tmp_path / "f").write_text("x")
    with pytest.raises(NarError, match=r"--out .* is a directory; give a file path"):
        check_output_file(tmp_path, "--out")
    with pytest.raises(NarError, match=r"--out .*f/x.csv: .*f is a file, not a folder"):
        check_output_file(tmp_path / "f" / "x.csv", "--out")
    with pytest.raises(NarError, match=r"--save_dir .*f is a file, not a folder"):
        check_output_dir(tmp_path / "f", "--save_dir")
    monkeypatch.setattr(os, "access", lambda *a, **k: False)  # a read-only folder (tests may run as root)
    with pytest.raises(NarError, match=r"--out .*new.csv: folder .* is not writable"):
        check_output_file(tmp_path / "sub" / "new.csv", "--out")
    e = output_error(tmp_path / "x", PermissionError(errno.EACCES, "Permission denied"))
    assert isinstance(e, NarError) and isinstance(e, OSError) and "writable folder" in str(e)


def test_stale_temporaries_of_dead_writers_are_removed(tmp_path):
    from pipeline.atomic import remove_stale_temps

    target = tmp_path / "run"
    stale_dir = tmp_path / "run.tmp999999999"
    stale_dir.mkdir()
    (stale_dir / "ckp_last.pth").write_text("partial")
    mine = tmp_path / f"run.tmp{__import__('os').getpid()}"
    mine.mkdir()
    other = tmp_path / "runner.tmp999999999"
    other.write_text("not ours")
    assert remove_stale_temps(target) == [stale_dir]
    assert mine.exists() and other.exists()

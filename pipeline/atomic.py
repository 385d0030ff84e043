"""Atomic file writes: write a temporary file in the same folder, ``os.replace`` it onto the
target at the end, remove it on any failure. Readers see the old file or the whole new one."""
from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def temp_path(path: Path) -> Path:
    """The temporary name for ``path``: same folder, ``STEM.tmpPID.SUFFIX`` (the suffix is kept
    because some writers, e.g. ``np.savez``, append their own otherwise)."""
    return path.with_name(f"{path.stem}.tmp{os.getpid()}{path.suffix}")


@contextmanager
def atomic_path(path, mkdir: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block ends without an exception it is
    moved onto ``path``, otherwise removed. ``mkdir`` creates the parent folder first."""
    path = Path(path)
    if mkdir:
        path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path, text: str, mkdir: bool = False) -> Path:
    """Write ``text`` to ``path`` atomically; returns the path."""
    path = Path(path)
    with atomic_path(path, mkdir) as tmp:
        tmp.write_text(text)
    return path


def write_json_atomic(path, obj, indent: int = 1, mkdir: bool = False, **dump_kw) -> Path:
    """Write ``obj`` as JSON to ``path`` atomically; returns the path."""
    path = Path(path)
    with atomic_path(path, mkdir) as tmp, open(tmp, "w") as f:
        json.dump(obj, f, indent=indent, **dump_kw)
    return path

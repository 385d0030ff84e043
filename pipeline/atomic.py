"""Atomic file writes: write a temporary file in the same folder, ``os.replace`` it onto the
target at the end, remove it on any failure. Readers see the old file or the whole new one.

Temporary names carry the writer's pid (``STEM.tmpPID.SUFFIX``), so the temporary files of a
killed writer are recognised and removed by the next writer of the same target
(:func:`remove_stale_temps`). OS errors on an output become one :class:`NarError` naming the
path (:func:`output_error`); :func:`check_output_file` / :func:`check_output_dir` check an
output path up front, before any work is done.
"""
from __future__ import annotations

import errno
import json
import logging
import os
import re
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from pipeline.errors import NarError

log = logging.getLogger(__name__)


def temp_path(path: Path) -> Path:
    """The temporary name for ``path``: same folder, ``STEM.tmpPID.SUFFIX`` (the suffix is kept
    because some writers, e.g. ``np.savez``, append their own otherwise)."""
    path = Path(path)
    return path.with_name(f"{path.stem}.tmp{os.getpid()}{path.suffix}")


def pid_alive(pid: int) -> bool:
    """True when a process ``pid`` exists (it may belong to another user)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def remove_stale_temps(path) -> list[Path]:
    """Remove the temporary files (or folders) of ``path`` left by writers that no longer run
    (their pid is dead); returns what was removed. Errors are logged, never raised."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    pattern = re.compile(rf"^{re.escape(path.stem)}\.tmp(\d+){re.escape(path.suffix)}$")
    removed = []
    try:
        entries = list(folder.iterdir()) if folder.is_dir() else []
    except OSError:
        return removed
    for p in entries:
        m = pattern.match(p.name)
        if not m or int(m.group(1)) == os.getpid() or pid_alive(int(m.group(1))):
            continue
        try:
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
            removed.append(p)
            log.info("removed %s, left by a writer that no longer runs", p)
        except OSError as e:
            log.warning("cannot remove stale temporary %s: %s", p, e)
    return removed


class OutputError(NarError, OSError):
    """An output could not be written: a NarError (one line for users) that is also an OSError
    (so callers that tolerate unwritable caches keep doing so)."""


def output_error(path, err: OSError, what: str = "output") -> NarError:
    """One clear error for an OS error while writing ``path``."""
    reason = err.strerror or str(err)
    if err.errno == errno.EISDIR or Path(path).is_dir():
        fix = f"{path} is a directory: give a file path"
    elif err.errno == errno.ENOTDIR:
        fix = "a part of the path is a file, not a folder: choose another path"
    elif err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        fix = "choose a writable folder or fix its permissions"
    elif err.errno == errno.ENOSPC:
        fix = "free disk space or write elsewhere"
    else:
        fix = "check the path and that its folder is writable"
    return OutputError(f"cannot write {what} {path}: {reason}; {fix}")


def _nearest_existing(p: Path) -> Path:
    for q in (p, *p.parents):
        if q.exists():
            return q
    return Path(".")


def _check_parent(p: Path, option: str) -> None:
    for parent in p.parents:
        if parent.exists() and not parent.is_dir():
            raise NarError(f"{option} {p}: {parent} is a file, not a folder; choose another path")
    base = _nearest_existing(p.parent if str(p.parent) else Path("."))
    if base.is_dir() and not os.access(base, os.W_OK | os.X_OK):
        raise NarError(f"{option} {p}: folder {base} is not writable; choose a writable folder")


def check_output_file(path, option: str = "output") -> Path:
    """NarError unless ``path`` can be written as a file: not a directory, no file where a
    folder must be, the nearest existing folder writable. Returns the path."""
    p = Path(path)
    if p.is_dir():
        raise NarError(f"{option} {p} is a directory; give a file path (e.g. {p / 'out'}{p.suffix or ''})")
    _check_parent(p, option)
    return p


def check_output_dir(path, option: str = "output folder") -> Path:
    """NarError unless ``path`` is (or can become) a writable directory. Returns the path."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise NarError(f"{option} {p} is a file, not a folder; give a folder path")
    _check_parent(p, option)
    if p.is_dir() and not os.access(p, os.W_OK | os.X_OK):
        raise NarError(f"{option} {p} is not writable; choose a writable folder")
    return p


def make_dirs(path, what: str = "folder") -> Path:
    """``mkdir -p`` with OS errors turned into one NarError naming the path."""
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise output_error(p, e, what) from None
    return p


def _is_about(err: OSError, *paths: Path) -> bool:
    names = {str(p) for p in paths}
    return err.filename in names or err.filename2 in names or err.filename is None


@contextmanager
def atomic_path(path, mkdir: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block ends without an exception it is
    moved onto ``path``, otherwise removed. ``mkdir`` creates the parent folder first. OS errors
    on the temporary file or the target become a NarError naming ``path``."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"cannot write {path}: it is a directory; give a file path")
    if mkdir:
        make_dirs(path.parent)
    elif str(path.parent) and not path.parent.is_dir():
        raise OutputError(f"cannot write {path}: folder {path.parent} does not exist; create it first")
    remove_stale_temps(path)
    tmp = temp_path(path)
    try:
        try:
            yield tmp
            os.replace(tmp, path)
        except OSError as e:
            if _is_about(e, tmp, path):
                raise output_error(path, e) from e
            raise
    finally:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass


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

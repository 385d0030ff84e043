"""Reading a YAML file the user names (a space description, a sweep spec, a config): one
clear NarError line for a missing, unreadable, non-UTF-8 or invalid file."""
from __future__ import annotations

from pathlib import Path

import yaml

from pipeline.errors import NarError


def read_yaml(path, what: str, hint: str):
    """The YAML document at ``path`` (any type: the caller checks its structure). ``what`` names
    the file in messages ("space description"); ``hint`` says what to pass instead
    ("pass --space-file SPACE.yaml")."""
    p = Path(path)
    if not p.exists():
        raise NarError(f"{what} not found: {p}; {hint}")
    if not p.is_file():
        raise NarError(f"{what} {p} is not a file; {hint}")
    try:
        text = p.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise NarError(f"{what} {p} is not UTF-8 text (byte {e.start}); save it as UTF-8") from None
    except OSError as e:
        raise NarError(f"cannot read {what} {p}: {e.strerror or e}") from None
    try:
        return yaml.safe_load(text)
    except (yaml.YAMLError, ValueError, RecursionError) as e:
        raise NarError(f"{what} {p} is not valid YAML: {' '.join(str(e).split())}") from None

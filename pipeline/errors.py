"""The one exception type that reaches users as a single clear error line.

Library code raises :class:`NarError` with a message that names the problem and what to do;
``cli.py`` turns it into ``error: <message>`` on stderr and exit status 2.
"""


class NarError(Exception):
    """A user-facing error: bad input, a missing path, a checksum mismatch, an unknown key."""


def other_bench_hint(other: str) -> str:
    """How to switch to NAS-Bench-``other``, in words true for every command."""
    space = "nasbench201" if str(other) == "201" else "nasbench"
    return f"use --bench {other} with `nar-cli encode`, or a config with space {space} for train/test/sample"


def require_path(path, what="file", hint="check the path"):
    """Raise NarError unless ``path`` exists; returns it as a ``pathlib.Path``."""
    from pathlib import Path

    p = Path(path)
    if not p.exists():
        raise NarError(f"{what} not found: {p} ({hint})")
    return p

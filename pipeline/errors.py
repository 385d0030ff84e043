"""The one exception type that reaches users as a single clear error line.

Library code raises :class:`NarError` with a message that names the problem and what to do;
``cli.py`` turns it into ``error: <message>`` on stderr and exit status 2.
"""


class NarError(Exception):
    """A user-facing error: bad input, a missing path, a checksum mismatch, an unknown key."""


def require_path(path, what="file", hint="check the path"):
    """Raise NarError unless ``path`` exists; returns it as a ``pathlib.Path``."""
    from pathlib import Path

    p = Path(path)
    if not p.exists():
        raise NarError(f"{what} not found: {p} ({hint})")
    return p

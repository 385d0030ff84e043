"""What long work shows on a terminal: one progress bar per stage and a short summary, while
the details (one line per epoch, per ensemble member, per search iteration) go to the run's log
file. Details are logged at the :data:`DETAIL` level, between DEBUG and INFO: the run's
``train.log`` records them (:mod:`nar.harness` attaches it at that level), ``nar-cli`` prints
INFO and above on stderr, and ``nar-cli -v`` prints everything.

Library code that runs long loops asks for a bar with ``progress_bar(..., enabled=None)``: it is
shown only inside :func:`progress_shown`, which the command layer enters (``nar-cli sample``),
so the same loop called from Python or a test stays silent."""
from __future__ import annotations

import contextlib
import contextvars
import logging
import sys

DETAIL = 15
logging.addLevelName(DETAIL, "DETAIL")


class _NoBar:
    """Stands in for a progress bar when none is shown."""

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, s: str, refresh: bool = True) -> None:
        pass

    def close(self) -> None:
        pass


_SHOWN = contextvars.ContextVar("nar_progress_shown", default=False)


@contextlib.contextmanager
def progress_shown(shown: bool = True):
    """Within this block, ``progress_bar(..., enabled=None)`` shows its bar."""
    token = _SHOWN.set(bool(shown))
    try:
        yield
    finally:
        _SHOWN.reset(token)


def progress_bar(total: int, desc: str, unit: str, enabled: bool | None = True):
    """A tqdm bar on stderr counting ``total`` ``unit``s (or a no-op object when not ``enabled``;
    None: shown inside :func:`progress_shown` only); close it when the stage ends."""
    if enabled is None:
        enabled = _SHOWN.get()
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, mininterval=0.5, dynamic_ncols=True)

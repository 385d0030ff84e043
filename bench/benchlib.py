"""What the benchmark scripts share: their peak memory and the exit of a script's ``main``."""
from __future__ import annotations

import resource
import sys

from pipeline.errors import NarError


def peak_rss_mib(who=resource.RUSAGE_SELF) -> float:
    """Peak resident memory of this process (or of its children, ``RUSAGE_CHILDREN``) in MiB;
    Linux reports ``ru_maxrss`` in KiB."""
    return resource.getrusage(who).ru_maxrss / 1024


def run_script(main) -> None:
    """Exit with ``main()``'s return code; a NarError is one ``error: ...`` line and exit code 2."""
    try:
        sys.exit(main())
    except NarError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)

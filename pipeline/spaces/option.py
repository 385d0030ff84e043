"""``--bench``: a click choice of the registered space names and aliases whose bad value is a
:class:`NarError` (one ``error:`` line from ``nar-cli``, like every other input error)."""
from __future__ import annotations

import click

from pipeline.spaces.registry import canonical_name, space_choices


class SpaceChoice(click.Choice):
    """Accepts every name :func:`space_choices` lists; returns the value as given."""

    def __init__(self):
        super().__init__(space_choices())

    def convert(self, value, param, ctx):
        canonical_name(str(value))  # NarError naming the choices for an unknown space
        return str(value)


def bench_option(**kw):
    """The shared ``--bench`` option of the commands that take a space."""
    return click.option("--bench", type=SpaceChoice(), required=True,
                        help="The search space: a registered name or alias (101 = NAS-Bench-101, "
                             "201 = NAS-Bench-201).", **kw)

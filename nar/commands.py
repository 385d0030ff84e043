"""Click commands of this package; ``cli.py`` registers everything in ``COMMANDS``."""
import click  # noqa: F401

COMMANDS = []

"""Click commands of the data pipeline; ``cli.py`` registers everything in ``COMMANDS``."""
from pipeline.build_cli import COMMANDS as _BUILD
from pipeline.encode_cli import COMMANDS as _ENCODE

COMMANDS = [*_BUILD, *_ENCODE]

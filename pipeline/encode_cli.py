"""Click command(s) of this stage; ``pipeline/commands.py`` collects ``COMMANDS``."""
COMMANDS = []

"""``nar-cli``: the command-line entry point. Each command lives beside the code it drives;
this file only assembles the group and turns user-facing errors into one line and exit 2."""
import logging
import os
import sys

import click

from pipeline.errors import NarError


class _Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except NarError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(2)


@click.group(cls=_Group)
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
@click.option("--cache-dir", "cache", default=None, type=click.Path(file_okay=False),
              help="Folder of the stores every command writes or reuses (sets $NAR_CACHE_DIR; "
                   "default ./cache of the working directory).")
def cli(verbose, cache):
    """Neural Architecture Ranker: prepare NAS-Bench data, train the ranker, search by sampling."""
    if cache is not None:
        os.environ["NAR_CACHE_DIR"] = str(cache)
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def _register():
    from pipeline import commands as pipeline_commands
    from nar import commands as nar_commands
    from nar import search_commands

    for module in (pipeline_commands, nar_commands, search_commands):
        for command in module.COMMANDS:
            cli.add_command(command)


_register()


def main():
    cli(prog_name="nar-cli")


if __name__ == "__main__":
    main()

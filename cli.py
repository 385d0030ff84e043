"""``nar-cli``: the command-line entry point. Each command lives beside the code it drives;
this file only assembles the group and turns user-facing errors into one line and exit 2."""
import logging
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
def cli(verbose):
    """Neural Architecture Ranker: prepare NAS-Bench data, train the ranker, search by sampling."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def _register():
    from pipeline import commands as pipeline_commands
    from nar import commands as nar_commands
    from nar import search_commands
    from nar.sweep import commands as sweep_commands

    for module in (pipeline_commands, nar_commands, search_commands, sweep_commands):
        for command in module.COMMANDS:
            cli.add_command(command)


_register()


def main():
    cli(prog_name="nar-cli")


if __name__ == "__main__":
    main()

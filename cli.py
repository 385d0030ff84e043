"""``nar-cli``: the command-line entry point. Each command lives beside the code it drives;
this file only assembles the group and turns every failure into one line on stderr:
``error: ...`` and exit 2 for user-facing errors (bad input, unwritable outputs), exit 130 /
143 on SIGINT / SIGTERM (after the temporary files are removed), and for anything unexpected
one ``error: internal error`` line (exit 1; ``-v`` prints the traceback)."""
import logging
import os
import signal
import sys
import traceback

import click

from cli_options import cache_dir_option
from pipeline.errors import NarError

EXIT_USER, EXIT_INTERNAL = 2, 1


class Interrupted(KeyboardInterrupt):
    """SIGTERM delivered as an exception, so that ``finally`` blocks remove temporary files."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _on_signal(signum, frame):
    raise Interrupted(signum)


def install_signal_handlers() -> None:
    """SIGTERM (and SIGHUP) unwind the stack like Ctrl-C, running every cleanup."""
    for name in ("SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is not None:
            try:
                signal.signal(sig, _on_signal)
            except ValueError:  # not the main thread (e.g. a test runner's worker thread)
                pass


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _os_error_line(e: OSError) -> str:
    where = " -> ".join(str(p) for p in (e.filename, e.filename2) if p is not None)
    reason = e.strerror or str(e)
    return f"{where}: {reason}; check the path and its permissions" if where else \
        f"{reason}; check the paths given and their permissions"


class _Group(click.Group):
    def invoke(self, ctx):
        verbose = bool(ctx.params.get("verbose"))
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except NarError as e:
            click.echo(f"error: {_one_line(e)}", err=True)
            sys.exit(EXIT_USER)
        except KeyboardInterrupt as e:
            signum = getattr(e, "signum", signal.SIGINT)
            name = signal.Signals(signum).name if signum in iter(signal.Signals) else str(signum)
            click.echo(f"error: interrupted by {name}; temporary files were removed, "
                       "earlier outputs are unchanged", err=True)
            sys.exit(128 + int(signum))
        except OSError as e:
            if verbose:
                traceback.print_exc()
            click.echo(f"error: {_one_line(_os_error_line(e))}", err=True)
            sys.exit(EXIT_USER)
        except UnicodeDecodeError as e:
            if verbose:
                traceback.print_exc()
            click.echo(f"error: an input is not UTF-8 text ({_one_line(e)}); convert it to UTF-8",
                       err=True)
            sys.exit(EXIT_USER)
        except MemoryError:
            click.echo("error: out of memory; use smaller inputs or sizes", err=True)
            sys.exit(EXIT_USER)
        except Exception as e:  # noqa: BLE001 - last resort: one line, never a traceback
            if verbose:
                traceback.print_exc()
            click.echo(f"error: internal error: {type(e).__name__}: {_one_line(e)[:300]}; "
                       "rerun with -v for the traceback", err=True)
            sys.exit(EXIT_INTERNAL)


@click.group(cls=_Group)
@click.option("-v", "--verbose", is_flag=True,
              help="Print every log line: one per epoch (otherwise only in the run's train.log), debug "
                   "messages, and tracebacks of internal errors.")
@cache_dir_option()
def cli(verbose, cache):
    """Neural Architecture Ranker: prepare NAS-Bench data, train the ranker, search by sampling."""
    if cache is not None:
        os.environ["NAR_CACHE_DIR"] = str(cache)
    setup_logging(verbose)


def setup_logging(verbose: bool) -> None:
    """stderr shows INFO and above (a few lines per command, next to the progress bars); ``-v``
    shows everything, including the DETAIL lines (one per epoch) that otherwise go only to the
    run's train.log. Does nothing when logging is configured already (a test runner, a caller)."""
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.DEBUG if verbose else logging.INFO)
    console.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[console])
    if not verbose:  # torch's own INFO lines (e.g. FakeTensor cache stats at exit) are not ours
        logging.getLogger("torch").setLevel(logging.WARNING)


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
    install_signal_handlers()
    cli(prog_name="nar-cli")


if __name__ == "__main__":
    main()

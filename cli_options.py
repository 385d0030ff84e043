"""The options that several ``nar-cli`` commands share, declared once. Each function returns a
click decorator, so a command lists its options as ``@data_path_option()``, ``@seed_option()``
... and every command spells, types and explains a flag the same way. The release's flags keep
their names (``--config_file``, ``--data_path``, ``--save_dir``, ``--checkpoint``, ``--seed``,
``--save_file_name``); ``--bench`` comes from the space registry (:mod:`pipeline.spaces.option`).

``--checkpoint`` has one meaning everywhere: a file written by ``nar-cli train``, given either
as a name inside ``--save_dir`` (``ckp_best.pth``, as the release passes it) or as a path; the
command resolves it with :func:`nar.checkpoint.resolve_checkpoint`."""
from __future__ import annotations

import click

from pipeline.spaces.option import bench_option  # noqa: F401 - re-exported: one place for options

SEED = click.IntRange(0, 2 ** 32 - 1)

CHECKPOINT_HELP = ("Checkpoint written by `nar-cli train`: a file name in --save_dir (ckp_best.pth, "
                   "ckp_last.pth; a baseline's .joblib twin is found too) or a path to such a file.")


def compose(*decorators):
    """One decorator applying ``decorators`` in the order they are listed (as if stacked)."""
    def apply(f):
        for d in reversed(decorators):
            f = d(f)
        return f
    return apply


# Paths are plain ``click.Path()``: the commands check them and raise NarError (one ``error:`` line).

def config_file_option(required: bool = False, help: str | None = None):
    return click.option("--config_file", required=required, default=None, type=click.Path(),
                        help=help or ("YAML config (config/config201.yml, config/default201.yml, ...)"
                                      + ("." if required else "; default: the checkpoint's own config.")))


def data_path_option(help: str | None = None):
    return click.option("--data_path", required=True, type=click.Path(),
                        help=help or "Store (.h5 of `nar-cli encode`) or NAR cell-information JSON "
                                     "(encoded on first use).")


def save_dir_option(required: bool = True, help: str | None = None):
    return click.option("--save_dir", required=required, default=None, type=click.Path(),
                        help=help or "Run directory (as `nar-cli train` writes it).")


def checkpoint_option(required: bool = False, default: str | None = None):
    return click.option("--checkpoint", required=required, default=default, show_default=default is not None,
                        type=click.Path(), help=CHECKPOINT_HELP)


def seed_option(help: str | None = None):
    return click.option("--seed", type=SEED, default=None,
                        help=help or "Overrides the config's seed (data split, initialisation, sampling).")


def save_file_name_option(default: str = "test.log"):
    return click.option("--save_file_name", default=default, show_default=True,
                        help="Log file written in --save_dir.")


def overrides_option(example: str = "ranker.d_model=64"):
    return click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                        help=f"Override a config key, e.g. --set {example} (value parsed as YAML); repeatable.")


def sha256_options():
    """``--sha256`` and ``--skip-sha256``: the checksum of a NAR JSON input."""
    return compose(
        click.option("--sha256", default=None,
                     help="Expected SHA256 of a NAR JSON input (default: FILE.sha256 or the published one)."),
        click.option("--skip-sha256", "skip_sha256", is_flag=True,
                     help="Do not verify a NAR JSON input's checksum (the store records that)."))


def data_options(help: str | None = None):
    """``--data_path`` with its checksum options, as every command that reads data takes them."""
    return compose(data_path_option(help), sha256_options())


def out_file_option(help: str, required: bool = True, type: click.ParamType | None = None):
    """``--out``: the file a command writes (its meaning is the command's, so ``help`` is required).
    Path checks are left to the command (one ``error:`` line) unless ``type`` asks click for them."""
    return click.option("--out", required=required, default=None, type=type or click.Path(), help=help)


def cache_dir_option():
    return click.option("--cache-dir", "cache", default=None, type=click.Path(file_okay=False),
                        help="Folder of the stores (default $NAR_CACHE_DIR, else ./cache of the working "
                             "directory).")


def space_file_option(help: str):
    return click.option("--space-file", "space_file", default=None, type=click.Path(dir_okay=False), help=help)


def overwrite_option():
    return click.option("--overwrite", is_flag=True,
                        help="Replace an existing, non-empty --save_dir (by default that is refused).")


def progress_option():
    return click.option("--progress/--no-progress", default=True, show_default=True,
                        help="Progress bar on stderr.")

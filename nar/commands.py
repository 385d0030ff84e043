"""Click commands of this package; ``cli.py`` registers everything in ``COMMANDS``. The shared
options (and the one meaning of ``--checkpoint``) are declared in :mod:`cli_options`."""
import click

from cli_options import (checkpoint_option, config_file_option, data_options, out_file_option,
                         overrides_option, overwrite_option, save_dir_option, save_file_name_option,
                         seed_option)


@click.command()
@config_file_option(required=True)
@data_options()
@save_dir_option(help="Run directory to write (config.yaml, train.log, metrics.csv, ckp_best/ckp_last).")
@seed_option()
@overrides_option()
@overwrite_option()
def train(config_file, data_path, save_dir, seed, overrides, sha256, skip_sha256, overwrite):
    """Train the ranker (or a baseline, by `arch`) and write a run directory."""
    from nar.harness import run_training

    out = run_training(config_file, data_path, save_dir, seed=seed, overrides=overrides,
                       sha256=sha256, skip_sha256=skip_sha256, progress=True, overwrite=overwrite)
    click.echo(f"run written to {out}")


@click.command()
@config_file_option()
@data_options()
@save_dir_option(help="Run directory of `nar-cli train` (results.json and the log are written there).")
@checkpoint_option(default="ckp_best.pth")
@seed_option()
@save_file_name_option()
@overrides_option()
def test(config_file, data_path, save_dir, checkpoint, seed, save_file_name, overrides, sha256, skip_sha256):
    """Rank the architectures of DATA with a checkpoint; write results.json in the run dir."""
    from nar.evaluate import run_test

    res = run_test(config_file, data_path, save_dir, checkpoint, seed=seed,
                   save_file_name=save_file_name, overrides=overrides, sha256=sha256,
                   skip_sha256=skip_sha256)
    h = res["heldout"]
    click.echo(f"heldout n={h['n']} kendalltau={h['kendalltau']:.4f} spearman={h['spearman']:.4f} "
               f"(target {res['target']}); results in {save_dir}/results.json")


@click.command()
@checkpoint_option(required=True)
@save_dir_option(required=False, help="Run directory that --checkpoint names a file of (optional).")
@data_options()
@out_file_option("CSV to write: key, tier, score, rank.")
def predict(checkpoint, save_dir, data_path, out, sha256, skip_sha256):
    """Score every architecture of a store with a trained checkpoint."""
    from nar.evaluate import run_predict
    from pipeline.atomic import check_output_file

    check_output_file(out, "--out")
    path = run_predict(checkpoint, data_path, out, sha256=sha256, skip_sha256=skip_sha256, run_dir=save_dir)
    click.echo(f"wrote {path}")


COMMANDS = [train, test, predict]

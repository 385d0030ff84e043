"""Click commands of this package; ``cli.py`` registers everything in ``COMMANDS``."""
import click

SEED = click.IntRange(0, 2 ** 32 - 1)


@click.command()
@click.option("--config_file", required=True, type=click.Path(), help="YAML config (config/config201.yml, ...).")
@click.option("--data_path", required=True, type=click.Path(), help="Store (.h5) or NAR JSON file.")
@click.option("--save_dir", required=True, type=click.Path(), help="Run directory to write.")
@click.option("--seed", type=SEED, default=None, help="Overrides the config's seed (split and init).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config key, e.g. --set ranker.d_model=64 (value parsed as YAML).")
@click.option("--sha256", default=None, help="Expected SHA256 of a NAR JSON input.")
@click.option("--skip-sha256", "skip_sha256", is_flag=True, help="Do not verify a NAR JSON input's checksum.")
@click.option("--overwrite", is_flag=True,
              help="Replace an existing, non-empty --save_dir (by default that is refused).")
def train(config_file, data_path, save_dir, seed, overrides, sha256, skip_sha256, overwrite):
    """Train the ranker (or a baseline, by `arch`) and write a run directory."""
    from nar.harness import run_training

    out = run_training(config_file, data_path, save_dir, seed=seed, overrides=overrides,
                       sha256=sha256, skip_sha256=skip_sha256, progress=True, overwrite=overwrite)
    click.echo(f"run written to {out}")


@click.command()
@click.option("--config_file", default=None, type=click.Path(), help="Config YAML (default: the checkpoint's).")
@click.option("--data_path", required=True, type=click.Path(), help="Store (.h5) or NAR JSON file.")
@click.option("--save_dir", required=True, type=click.Path(), help="Run directory of `nar-cli train`.")
@click.option("--checkpoint", default="ckp_best.pth", show_default=True, help="Checkpoint name in the run dir.")
@click.option("--seed", type=SEED, default=None)
@click.option("--save_file_name", default="test.log", show_default=True, help="Log file written in the run dir.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE")
@click.option("--sha256", default=None, help="Expected SHA256 of a NAR JSON input.")
@click.option("--skip-sha256", "skip_sha256", is_flag=True, help="Do not verify a NAR JSON input's checksum.")
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
@click.option("--checkpoint", required=True, type=click.Path(), help="ckp_*.pth (or baseline .joblib).")
@click.option("--data_path", required=True, type=click.Path(), help="Store (.h5) or NAR JSON file.")
@click.option("--out", required=True, type=click.Path(), help="CSV to write: key, tier, score, rank.")
@click.option("--sha256", default=None, help="Expected SHA256 of a NAR JSON input.")
@click.option("--skip-sha256", "skip_sha256", is_flag=True, help="Do not verify a NAR JSON input's checksum.")
def predict(checkpoint, data_path, out, sha256, skip_sha256):
    """Score every architecture of a store with a trained checkpoint."""
    from nar.evaluate import run_predict
    from pipeline.atomic import check_output_file

    check_output_file(out, "--out")
    click.echo(f"wrote {run_predict(checkpoint, data_path, out, sha256=sha256, skip_sha256=skip_sha256)}")


COMMANDS = [train, test, predict]

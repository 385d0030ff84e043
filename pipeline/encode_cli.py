"""``nar-cli encode``: a NAR cell-information JSON -> the HDF5 tensor store (cached by SHA256)."""
import click

from cli_options import (bench_option, cache_dir_option, data_path_option, out_file_option,
                         sha256_options, space_file_option)
from pipeline.ingest import ingest


@click.command("encode")
@bench_option()
@data_path_option("NAR cell-information JSON (as `nar-cli build` writes or NAR released).")
@sha256_options()
@out_file_option("Store path (default CACHE/{bench}_{sha256[:12]}.h5).", required=False)
@cache_dir_option()
@click.option("--n_jobs", default=2, show_default=True, type=click.IntRange(min=1, max=256),
              help="Worker processes that encode chunks of records.")
@space_file_option("Description of a space described by a file (default: FILE.space.yaml beside the data).")
def encode(bench, data_path, sha256, skip_sha256, out, cache, n_jobs, space_file):
    """Validate and encode every record into ReNAS tensors; print the store path."""
    if out is not None:
        from pipeline.atomic import check_output_file

        check_output_file(out, "--out")
    path = ingest(data_path, bench, out=out, sha256=sha256, skip_sha256=skip_sha256,
                  n_jobs=n_jobs, progress=True, cache=cache, space_file=space_file)
    click.echo(str(path))


@click.command("verify")
@click.argument("store", type=click.Path())
def verify(store):
    """Check a store: every dataset's length and its content checksum (written at encode)."""
    from cache.store import Store

    with Store(store) as s:
        s.verify()
        n, bench, datasets = s.n, s.bench, ", ".join(s.datasets)
    click.echo(f"{store}: OK (NB{bench}, {n} architectures, datasets {datasets}; contents match their checksums)")


COMMANDS = [encode, verify]

"""``nar-cli encode``: a NAR cell-information JSON -> the HDF5 tensor store (cached by SHA256)."""
import click

from pipeline.ingest import ingest
from pipeline.spaces.option import bench_option


@click.command("encode")
@bench_option()
@click.option("--data_path", required=True,
              help="NAR cell-information JSON (as `nar-cli build` writes or NAR released).")
@click.option("--sha256", default=None, help="Expected SHA256 of the file (else FILE.sha256 or the published one).")
@click.option("--skip-sha256", "skip_sha256", is_flag=True, help="Do not verify the file; the store records it.")
@click.option("--out", default=None,
              help="Store path (default CACHE/{bench}_{sha256[:12]}.h5).")
@click.option("--cache-dir", "cache", default=None, type=click.Path(file_okay=False),
              help="Folder of the stores (default $NAR_CACHE_DIR, else ./cache).")
@click.option("--n_jobs", default=2, show_default=True, type=click.IntRange(min=1, max=256),
              help="Worker processes that encode chunks of records.")
@click.option("--space-file", "space_file", default=None, type=click.Path(dir_okay=False),
              help="Description of a space described by a file (default: FILE.space.yaml beside the data).")
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

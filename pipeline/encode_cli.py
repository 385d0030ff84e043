"""``nar-cli encode``: a NAR cell-information JSON -> the HDF5 tensor store (cached by SHA256)."""
import click

from pipeline.ingest import ingest


@click.command("encode")
@click.option("--bench", required=True, type=click.Choice(["101", "201"]), help="NAS-Bench-101 or -201.")
@click.option("--data_path", required=True,
              help="NAR cell-information JSON (as `nar-cli build` writes or NAR released).")
@click.option("--sha256", default=None, help="Expected SHA256 of the file (else FILE.sha256 or the published one).")
@click.option("--skip-sha256", "skip_sha256", is_flag=True, help="Do not verify the file; the store records it.")
@click.option("--out", default=None,
              help="Store path (default cache/{bench}_{sha256[:12]}.h5).")
@click.option("--n_jobs", default=2, show_default=True, type=click.IntRange(min=1, max=256),
              help="Worker processes that encode chunks of records.")
def encode(bench, data_path, sha256, skip_sha256, out, n_jobs):
    """Validate and encode every record into ReNAS tensors; print the store path."""
    if out is not None:
        from pipeline.atomic import check_output_file

        check_output_file(out, "--out")
    path = ingest(data_path, bench, out=out, sha256=sha256, skip_sha256=skip_sha256,
                  n_jobs=n_jobs, progress=True)
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

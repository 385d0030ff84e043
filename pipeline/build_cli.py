"""``nar-cli build``: write a NAR cell-information JSON from a benchmark source."""
from __future__ import annotations

import sys

import click


@click.command("build")
@click.option("--bench", required=True, help="101 (NAS-Bench-101) or 201 (NAS-Bench-201).")
@click.option("--source", required=True,
              help="A .csv/.csv.gz table, a NAS-Bench-101 .tfrecord, a NAS-Bench-201 .pth, "
                   "'analognas' (201, CIFAR-10) or 'space' (101, no metrics).")
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="Output JSON (written atomically).")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Keep only the first N records.")
@click.option("--epochs", type=click.IntRange(min=1), default=108, show_default=True,
              help="NAS-Bench-101 tfrecord: the training budget to keep.")
@click.option("--progress/--no-progress", default=True, show_default=True,
              help="Progress bar on stderr.")
def build(bench, source, out, limit, epochs, progress):
    """Build NAR-schema JSON (NAR's released field names, nesting and order) from SOURCE."""
    from tqdm import tqdm

    from pipeline.atomic import check_output_file
    from pipeline.checksum import write_sidecar
    from pipeline.nar_json import records, write_json
    from pipeline.sources import read_source

    check_output_file(out, "--out")
    check_output_file(f"{out}.sha256", "--out's checksum file")
    rows = read_source(str(bench), source, limit=limit, epochs=epochs)
    items, keyed = records(rows)
    bar = tqdm(items, total=len(rows), file=sys.stderr, unit="rec", mininterval=0.5,
               disable=not progress, desc=f"NB{bench} JSON")
    n = write_json(out, bar, keyed=keyed)
    digest = write_sidecar(out)
    click.echo(f"wrote {out}: {n} NAS-Bench-{bench} records (sha256 {digest[:12]}..., "
               f"recorded in {out}.sha256 for `nar-cli encode`)", err=True)


COMMANDS = [build]

"""``nar-cli build``: write a NAR cell-information JSON from a benchmark source."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from cli_options import bench_option, out_file_option, progress_option, space_file_option
from pipeline.errors import NarError
from pipeline.spaces import space_class


@click.command("build")
@bench_option()
@click.option("--source", required=True,
              help="A .csv/.csv.gz table, a NAS-Bench-101 .tfrecord, a NAS-Bench-201 .pth, "
                   "'analognas' (201, CIFAR-10), 'space' (101, no metrics), 'nasbenchgraph' (graph, with "
                   "--dataset) or a NAS-Bench-Graph .bench table.")
@out_file_option("Output JSON (written atomically).", type=click.Path(dir_okay=False))
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Keep only the first N records.")
@click.option("--epochs", type=click.IntRange(min=1), default=108, show_default=True,
              help="NAS-Bench-101 tfrecord: the training budget to keep.")
@click.option("--dataset", default=None,
              help="The table of a source that holds several: NAS-Bench-Graph's cora, citeseer, pubmed, cs, "
                   "physics, photo, computers, arxiv or proteins (--bench graph --source nasbenchgraph).")
@progress_option()
@space_file_option("Description (YAML) of a space described by a file (--bench user); copied beside --out.")
def build(bench, source, out, limit, epochs, dataset, progress, space_file):
    """Build NAR-schema JSON (NAR's released field names, nesting and order) from SOURCE."""
    from tqdm import tqdm

    from pipeline.atomic import check_output_file
    from pipeline.checksum import write_sidecar
    from pipeline.nar_json import write_json
    from pipeline.sources import read_source
    from pipeline.atomic import write_text_atomic
    from pipeline.spaces import space_for_data
    from pipeline.spaces.registry import spec_sidecar

    if getattr(space_class(bench), "needs_spec", False) and space_file is None:
        raise NarError(f"--bench {bench} needs --space-file SPACE.yaml (vertex limit, op names)")
    check_output_file(out, "--out")
    check_output_file(f"{out}.sha256", "--out's checksum file")
    space = space_for_data(bench, None, space_file)
    rows = read_source(space, source, limit=limit, epochs=epochs, dataset=dataset)
    items, keyed = space.json_records(rows)
    bar = tqdm(items, total=len(rows), file=sys.stderr, unit="rec", mininterval=0.5,
               disable=not progress, desc=f"NB{space.bench} JSON")
    n = write_json(out, bar, keyed=keyed)
    if space_file is not None:  # `encode`, `train` ... find the description beside the file
        write_text_atomic(spec_sidecar(out), Path(space_file).read_text())
    digest = write_sidecar(out)
    click.echo(f"wrote {out}: {n} {space.title} records (sha256 {digest[:12]}..., "
               f"recorded in {out}.sha256 for `nar-cli encode`)", err=True)


COMMANDS = [build]

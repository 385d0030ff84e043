"""``nar-cli sweep SPEC.yaml``; ``cli.py`` registers everything in ``COMMANDS``.
:func:`run_sweep` does the work without click."""
from __future__ import annotations

import logging
from pathlib import Path

import click

log = logging.getLogger(__name__)


def run_sweep(spec_path, backend="local", jobs=None, address=None, gpus_per_cell=0.0, retry_failed=False,
              report_only=False, progress=False, with_report=True) -> dict:
    """Check the spec, run the missing cells (unless ``report_only``), write the report (unless
    not ``with_report``). Returns {"spec", "out", "cells", "result" (a SweepResult or None), "report"}."""
    from nar.sweep.runner import check_ray_address, run_cells, start_workers
    from nar.sweep.spec import load_spec

    spec = load_spec(spec_path)
    if backend == "ray":
        check_ray_address(address)  # before the stores are opened or encoded
    workers = None if report_only else start_workers(backend, jobs)
    try:
        from nar.sweep.grid import expand

        cells = expand(spec)
    finally:
        if workers is not None:
            workers.wait()
    result = None
    if not report_only:
        result = run_cells(cells, spec.out, backend=backend, jobs=jobs, address=address,
                           gpus_per_cell=gpus_per_cell, retry_failed=retry_failed, progress=progress)
    elif not spec.out.is_dir():
        from pipeline.errors import NarError
        raise NarError(f"sweep output {spec.out} does not exist; run `nar-cli sweep {spec_path}` first")
    report = None
    if with_report:
        from nar.sweep.report import write_report

        report = write_report(cells, spec.out, spec.name, spec.milestones)
    return {"spec": spec, "out": spec.out, "cells": cells, "result": result, "report": report}


@click.command("sweep")
@click.argument("spec", type=click.Path())
@click.option("--report", "report_only", is_flag=True, help="Only rebuild the report from the run directories.")
@click.option("--jobs", type=int, default=None, help="Cells at a time (default: the number of cores).")
@click.option("--backend", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local worker processes (joblib loky), or Ray tasks.")
@click.option("--address", default=None, help="Ray cluster address (HOST:PORT of `ray start --head`); "
                                               "default: a local Ray started and stopped with the sweep.")
@click.option("--gpus-per-cell", "gpus_per_cell", type=float, default=0.0, show_default=True,
              help="GPU fraction each Ray task requests (CUDA machines).")
@click.option("--retry-failed", "retry_failed", is_flag=True, help="Run the failed cells again.")
def sweep(spec, report_only, jobs, backend, address, gpus_per_cell, retry_failed):
    """Run the grid of SPEC (YAML; see docs/sweeps.md): one run directory per cell, finished
    cells skipped, then results.csv, summary.md and plots in OUT/report."""
    root = logging.getLogger()
    if root.level > logging.DEBUG:  # keep the console for the progress bar unless -v
        for h in root.handlers:
            h.setLevel(logging.WARNING)
    out = run_sweep(spec, backend=backend, jobs=jobs, address=address, gpus_per_cell=gpus_per_cell,
                    retry_failed=retry_failed, report_only=report_only, progress=True)
    res, rep = out["result"], out["report"]
    if res is not None:
        click.echo(f"{res.total} cells: {res.done} complete ({res.ran} run now), {len(res.failed)} failed "
                   f"in {res.seconds:.1f}s")
        for name, err in res.failed:
            click.echo(f"  failed {name}: {err}")
        if res.failed:
            click.echo("  (rerun with --retry-failed after fixing the cause)")
    c = rep["counts"]
    click.echo(f"report of {c['done']} complete cells ({c['failed']} failed, {c['missing']} not run): "
               + ", ".join(str(Path(p)) for p in rep["paths"].values()))


COMMANDS = [sweep]

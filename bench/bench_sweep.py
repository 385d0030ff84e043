"""Overhead of `nar-cli sweep`: the same tiny cells (a small NAR on a fake NB201 store, train +
test) run (1) one after another in one process by calling the train/test code directly,
(2) through the sweep in-process (``--jobs 1``: spec, grid, temporary folders, markers) and
(3) through the sweep on worker processes (``--jobs 2``, joblib loky, one thread each, started
while the grid is checked). (2), (3) and (5) are `nar-cli sweep` without the report.
Prints the three times, the sweep's overhead in percent (wall clock, and CPU time of the
process, which other jobs on a shared machine disturb less) and the jobs-2 / sequential ratio
(targets: overhead < 5 %, ratio < 0.6 on 2 idle cores). Results of (1)-(3) must agree.

(1)-(3) run in this process after a warm-up, so (1) pays no import or first-call cost while
the workers of (3) pay theirs. All five runs are repeated in ``--rounds`` interleaved rounds
and each ratio is that of the sums: the speed of a shared VM drifts by 10-20 % over minutes,
which would otherwise favour whichever run happens to land in a fast stretch. The cold pair (4) / (5) measures both sides as a user meets
them: a fresh Python process that imports the code and runs the cells one after another,
against a fresh process that runs them through the sweep with ``--jobs`` workers; each timed
from the process start to its exit. Last, the floor of any ``--jobs`` ratio on this machine:
the same ratio for plain CPU-bound processes, no sweep at all.

    python bench/bench_sweep.py [--cells 20] [--epochs 30] [--jobs 2] [--rounds 2]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nar.evaluate import run_test  # noqa: E402
from nar.harness import run_training  # noqa: E402
from nar.sweep.cell import one_thread  # noqa: E402
from nar.sweep.commands import run_sweep  # noqa: E402
from nar.sweep.grid import expand  # noqa: E402
from nar.sweep.spec import load_spec  # noqa: E402
from tests.fakes import fake_store_201  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
TINY = ["ranker.d_model=16", "ranker.d_patch_vec=16", "ranker.n_layers=1", "ranker.d_ffn_inner=32",
        "ranker.d_tier_prj_inner=32", "ranker.d_val_acc_prj_inner=32", "ranker.d_k=8", "ranker.d_v=8",
        "ranker.n_head=2", "train_batch_size=32", "lr_scheduler.n_warmup_steps=5"]


def _sweep(spec_path, jobs):
    """(wall s, CPU s of this process) of what `nar-cli sweep` does but the report: spec, pool
    start, grid, running every cell."""
    t, c = time.perf_counter(), time.process_time()
    res = run_sweep(spec_path, jobs=jobs, with_report=False)["result"]
    assert res.done == res.total and not res.failed, res.failed
    times = time.perf_counter() - t, time.process_time() - c
    if jobs > 1:  # the next round starts its workers afresh, as a new `nar-cli sweep` does
        from joblib.externals.loky import get_reusable_executor
        get_reusable_executor(max_workers=1).shutdown(wait=True)
    return times


def _sequential(cells, out: Path):
    """(wall s, CPU s) of the cells one after another, no sweep machinery, into ``out``."""
    with one_thread():
        t, cpu = time.perf_counter(), time.process_time()
        for c in cells:
            d = out / c.name
            run_training(c.config_file, c.store, d, seed=c.seed, overrides=c.overrides)
            run_test(c.config_file, c.store, d, "ckp_best.pth", seed=c.seed, overrides=c.overrides)
        return time.perf_counter() - t, time.process_time() - cpu


COLD_SEQ = """
import sys, time
from nar.evaluate import run_test
from nar.harness import run_training
from nar.sweep.cell import one_thread
from nar.sweep.grid import expand
from nar.sweep.spec import load_spec
from pathlib import Path
spec = load_spec(sys.argv[1])
with one_thread():
    for c in expand(spec):
        d = Path(spec.out) / c.name
        run_training(c.config_file, c.store, d, seed=c.seed, overrides=c.overrides)
        run_test(c.config_file, c.store, d, "ckp_best.pth", seed=c.seed, overrides=c.overrides)
"""
COLD_SWEEP = """
import sys
from nar.sweep.commands import run_sweep
res = run_sweep(sys.argv[1], jobs=int(sys.argv[2]), with_report=False)["result"]
assert res.done == res.total and not res.failed, res.failed
"""


def _cold(code: str, *args) -> float:
    """Wall seconds of a fresh Python process running ``code`` (from the repository root)."""
    import subprocess

    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd=REPO, check=True,
                   env={**os.environ, "OMP_NUM_THREADS": "1"})
    return time.perf_counter() - t


SPIN = "s = 0\nfor i in range(25_000_000):\n    s += i\n"


def machine_ratio(jobs: int) -> float:
    """Wall time of ``jobs`` CPU-bound Python processes at once over ``jobs`` times that of one
    alone: the best ratio any ``--jobs`` run can reach on this machine (0.5 for 2 ideal cores;
    cores that slow down when all are busy give more)."""
    import subprocess

    def run(k):
        t = time.perf_counter()
        procs = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(k)]
        for p in procs:
            p.wait()
        return time.perf_counter() - t
    alone = min(run(1) for _ in range(2))
    together = min(run(jobs) for _ in range(2))
    return together / (jobs * alone)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=20)
    ap.add_argument("--epochs", type=int, default=30, help="ranker epochs per cell (cell length)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2, help="rounds of all five runs, interleaved")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_sweep_"))
    store = fake_store_201(tmp / "s201.h5", n=400)
    jn = f"j{a.jobs}"
    kinds = ("seq", "j1", jn, "seqc", f"{jn}c")

    def spec_file(tag):
        spec = {"out": str(tmp / tag), "data": {"fake": str(store)}, "datasets": ["cifar10"],
                "models": {"tiny": {"config": str(REPO / "config" / "config201.yml"),
                                    "set": [*TINY, f"ranker_epochs={a.epochs}"]}},
                "train_sizes": [[120, 40]], "seeds": list(range(a.cells))}
        (tmp / f"{tag}.yaml").write_text(yaml.safe_dump(spec))
        return tmp / f"{tag}.yaml"

    cells = expand(load_spec(spec_file("warm")))
    with one_thread():  # warm-up: imports and first-call costs, not timed
        run_training(cells[0].config_file, cells[0].store, tmp / "warm", seed=0, overrides=cells[0].overrides)
    wall = {k: [] for k in kinds}
    cpu = {"seq": [], "j1": []}
    for r in range(a.rounds):  # interleaved, so that the machine's drift hits every kind alike
        t, c = _sequential(cells, tmp / f"seq{r}")
        wall["seq"].append(t), cpu["seq"].append(c)
        t, c = _sweep(spec_file(f"j1_{r}"), 1)
        wall["j1"].append(t), cpu["j1"].append(c)
        wall[jn].append(_sweep(spec_file(f"{jn}_{r}"), a.jobs)[0])
        wall["seqc"].append(_cold(COLD_SEQ, spec_file(f"seqc{r}")))
        wall[f"{jn}c"].append(_cold(COLD_SWEEP, spec_file(f"{jn}c{r}"), a.jobs))
    runs = sorted(p for p in tmp.iterdir() if p.is_dir() and p.name != "warm")
    for c in cells:
        ref = json.loads((runs[0] / c.name / "results.json").read_text())["heldout"]
        for run in runs[1:]:
            got = json.loads((run / c.name / "results.json").read_text())["heldout"]
            assert got == ref, f"{run.name} {c.name}: results differ from {runs[0].name}"
    tot = {k: sum(v) for k, v in wall.items()}
    each = {k: " / ".join(f"{x:.1f}" for x in v) for k, v in wall.items()}
    load = os.getloadavg()
    print(f"{len(cells)} cells (tiny NAR, {a.epochs} epochs, 120 train / 40 val, fake NB201 store of 400), "
          f"{os.cpu_count()} cores, {a.rounds} interleaved rounds, load average {load[0]:.1f} / {load[1]:.1f} / "
          f"{load[2]:.1f}; seconds of each round, then the ratio of the sums")
    print(f"sequential in one process      {each['seq']} s  ({tot['seq'] / a.rounds / len(cells):.2f} s per cell)")
    print(f"sweep --jobs 1 (in-process)    {each['j1']} s  overhead {100 * (tot['j1'] / tot['seq'] - 1):+.1f} % "
          f"wall, {100 * (sum(cpu['j1']) / sum(cpu['seq']) - 1):+.1f} % CPU")
    print(f"sweep --jobs {a.jobs} (loky workers)  {each[jn]} s  ratio {tot[jn] / tot['seq']:.2f}x of sequential "
          f"(per round {' / '.join(f'{x / y:.2f}' for x, y in zip(wall[jn], wall['seq']))})")
    print(f"cold: sequential, fresh process  {each['seqc']} s (imports included)")
    print(f"cold: sweep --jobs {a.jobs}, fresh process {each[jn + 'c']} s  ratio {tot[jn + 'c'] / tot['seqc']:.2f}x "
          "of the cold sequential")
    print(f"this machine: {a.jobs} CPU-bound processes at once take {machine_ratio(a.jobs):.2f}x the time of "
          f"running them one after another (the floor for the ratios above; 0.50 on ideal cores)")
    print(f"results of all {len(runs)} runs are identical")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Overhead of `nar-cli sweep`: the same tiny cells (a small NAR on a fake NB201 store, train +
test) run (1) one after another in one process by calling the train/test code directly,
(2) through the sweep in-process (``--jobs 1``: spec, grid, temporary folders, markers) and
(3) through the sweep on worker processes (``--jobs 2``, joblib loky, one thread each).
Prints the three times, the sweep's overhead in percent (wall clock, and CPU time of the
process, which other jobs on a shared machine disturb less) and the jobs-2 / sequential ratio
(targets: overhead < 5 %, ratio < 0.6 on 2 idle cores). Results of (1)-(3) must agree.

(1)-(3) run in this process after a warm-up, so (1) pays no import or first-call cost while
the workers of (3) pay theirs. The cold pair (4) / (5) measures both sides as a user meets
them: a fresh Python process that imports the code and runs the cells one after another,
against a fresh process that runs them through the sweep with ``--jobs`` workers; each timed
from the process start to its exit. Last, the floor of any ``--jobs`` ratio on this machine:
the same ratio for plain CPU-bound processes, no sweep at all.

    python bench/bench_sweep.py [--cells 20] [--epochs 30] [--jobs 2]
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
from nar.sweep.grid import expand  # noqa: E402
from nar.sweep.runner import run_cells  # noqa: E402
from nar.sweep.spec import load_spec  # noqa: E402
from tests.fakes import fake_store_201  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
TINY = ["ranker.d_model=16", "ranker.d_patch_vec=16", "ranker.n_layers=1", "ranker.d_ffn_inner=32",
        "ranker.d_tier_prj_inner=32", "ranker.d_val_acc_prj_inner=32", "ranker.d_k=8", "ranker.d_v=8",
        "ranker.n_head=2", "train_batch_size=32", "lr_scheduler.n_warmup_steps=5"]


def _sweep(spec_path, jobs):
    """(wall s, CPU s of this process) of spec + grid + running every cell."""
    t, c = time.perf_counter(), time.process_time()
    cells = expand(load_spec(spec_path))
    res = run_cells(cells, load_spec(spec_path).out, jobs=jobs, progress=False)
    assert res.done == len(cells) and not res.failed, res.failed
    return time.perf_counter() - t, time.process_time() - c


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
from nar.sweep.grid import expand
from nar.sweep.runner import run_cells
from nar.sweep.spec import load_spec
spec = load_spec(sys.argv[1])
res = run_cells(expand(spec), spec.out, jobs=int(sys.argv[2]), progress=False)
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
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_sweep_"))
    store = fake_store_201(tmp / "s201.h5", n=400)
    specs = {}
    for tag in ("seq", "j1", f"j{a.jobs}", "seqc", f"j{a.jobs}c"):
        spec = {"out": str(tmp / tag), "data": {"fake": str(store)}, "datasets": ["cifar10"],
                "models": {"tiny": {"config": str(REPO / "config" / "config201.yml"),
                                    "set": [*TINY, f"ranker_epochs={a.epochs}"]}},
                "train_sizes": [[120, 40]], "seeds": list(range(a.cells))}
        specs[tag] = tmp / f"{tag}.yaml"
        specs[tag].write_text(yaml.safe_dump(spec))

    cells = expand(load_spec(specs["seq"]))
    with one_thread():  # warm-up: imports and first-call costs, not timed
        run_training(cells[0].config_file, cells[0].store, tmp / "warm", seed=0, overrides=cells[0].overrides)
        t, cpu = time.perf_counter(), time.process_time()
        for c in cells:  # (1) the same cells, one after another, no sweep machinery
            d = tmp / "seq" / c.name
            run_training(c.config_file, c.store, d, seed=c.seed, overrides=c.overrides)
            run_test(c.config_file, c.store, d, "ckp_best.pth", seed=c.seed, overrides=c.overrides)
        t_seq, cpu_seq = time.perf_counter() - t, time.process_time() - cpu
    t_j1, cpu_j1 = _sweep(specs["j1"], 1)
    t_jn, _ = _sweep(specs[f"j{a.jobs}"], a.jobs)
    t_seqc = _cold(COLD_SEQ, specs["seqc"])
    t_jnc = _cold(COLD_SWEEP, specs[f"j{a.jobs}c"], a.jobs)
    for c in cells:
        ref = json.loads((tmp / "seq" / c.name / "results.json").read_text())["heldout"]
        for tag in ("j1", f"j{a.jobs}", "seqc", f"j{a.jobs}c"):
            got = json.loads((tmp / tag / c.name / "results.json").read_text())["heldout"]
            assert got == ref, f"{tag} {c.name}: results differ from the sequential run"
    load = os.getloadavg()
    print(f"{len(cells)} cells (tiny NAR, {a.epochs} epochs, 120 train / 40 val, fake NB201 store of 400), "
          f"{os.cpu_count()} cores, load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}")
    print(f"sequential in one process      {t_seq:7.1f} s wall, {cpu_seq:7.1f} s CPU  "
          f"({t_seq / len(cells):.2f} s per cell)")
    print(f"sweep --jobs 1 (in-process)    {t_j1:7.1f} s wall, {cpu_j1:7.1f} s CPU  overhead "
          f"{100 * (t_j1 / t_seq - 1):+.1f} % wall, {100 * (cpu_j1 / cpu_seq - 1):+.1f} % CPU")
    print(f"sweep --jobs {a.jobs} (loky workers)  {t_jn:7.1f} s  ratio {t_jn / t_seq:.2f}x of sequential")
    print(f"cold: sequential, fresh process  {t_seqc:7.1f} s wall (imports included)")
    print(f"cold: sweep --jobs {a.jobs}, fresh process {t_jnc:7.1f} s  ratio {t_jnc / t_seqc:.2f}x of the cold sequential")
    print(f"this machine: {a.jobs} CPU-bound processes at once take {machine_ratio(a.jobs):.2f}x the time of "
          f"running them one after another (the floor for the ratios above; 0.50 on ideal cores)")
    print("results of the five runs are identical")
    return 0


if __name__ == "__main__":
    sys.exit(main())

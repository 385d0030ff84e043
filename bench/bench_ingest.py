"""Time and peak RSS of `nar-cli encode` (NAR JSON -> store) and of a memory-mapped read of
all features; optionally of `nar-cli build` first.

    python bench/bench_ingest.py                       # synthetic 423,624-record NB101 JSON
    python bench/bench_ingest.py --json FILE.json --bench 101
    python bench/bench_ingest.py --source space --bench 101   # build, then encode its output
    python bench/bench_ingest.py --n_jobs 1 2 --chunk 2048 4096  # compare splits of work

Each phase runs in its own process; peak RSS is that process's ru_maxrss (from wait4), and for
encode also the largest joblib worker's (VmHWM read from /proc before the workers exit).
The synthetic file repeats the fixture record with perturbed numbers, unique hashes and a mix
of 5-, 6- and 7-vertex cells; it is written once into --workdir and reused.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from tests.conftest import shared_data_dir  # noqa: E402

FIXTURE_101 = "fixtures/nar_nasbench101_vertice_example.json"
N_SPACE_101 = 423_624
# (adjacency, interior ops) of smaller valid cells mixed into the synthetic file
_SMALL = [([[0, 1, 0, 0, 1], [0, 0, 1, 0, 0], [0, 0, 0, 1, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]],
           ["conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3"]),
          ([[0, 1, 1, 0, 0, 0], [0, 0, 0, 1, 0, 0], [0, 0, 0, 0, 1, 0], [0, 0, 0, 0, 0, 1],
            [0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0]],
           ["conv3x3-bn-relu", "conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3"])]

_ENCODE = """
import os, resource, sys, time, logging
logging.basicConfig(level=logging.WARNING)
from pipeline import ingest as ing
worker_hwm = [0]
orig = ing._encoded
def watched(*a, **k):  # sample the joblib workers' peak RSS while they are alive
    for out in orig(*a, **k):
        for pid in os.listdir('/proc'):
            if not pid.isdigit():
                continue
            try:
                st = open(f'/proc/{pid}/status').read()
            except OSError:
                continue
            if f'PPid:\\t{os.getpid()}\\n' in st and 'VmHWM' in st:
                kb = int(st.split('VmHWM:')[1].split()[0])
                worker_hwm[0] = max(worker_hwm[0], kb)
        yield out
ing._encoded = watched
t = time.perf_counter()
ing.ingest(sys.argv[1], sys.argv[2], out=sys.argv[3], skip_sha256=True, n_jobs=int(sys.argv[4]),
           chunk_records=int(sys.argv[5]))
print(time.perf_counter() - t, worker_hwm[0] / 1024)
"""

_READ = """
import sys, time
import numpy as np
from cache.store import Store
t = time.perf_counter()
with Store(sys.argv[1]) as s:
    total = 0.0
    for ds in s.datasets:
        f = s.data(ds, 'features')
        for i in range(0, len(f), 65536):
            total += float(np.asarray(f[i:i + 65536], np.float64).sum())
print(time.perf_counter() - t, total)
"""


def synthesize_101(path: Path, n: int, seed: int = 0) -> None:
    """Write an n-record NB101 JSON by perturbing the fixture record."""
    rng = random.Random(seed)
    base = json.loads((shared_data_dir() / FIXTURE_101).read_text())[0]
    with open(path, "w") as f:
        f.write("[")
        for i in range(n):
            rec = dict(base)
            s = rng.uniform(0.5, 1.5)
            kind = i % 10
            if kind < 2:  # a 5- or 6-vertex cell
                adj, interior = _SMALL[kind]
                nv = len(adj)
                rec["module_adjacency"] = adj
                rec["module_operations"] = ["input", *interior, "output"]
                cut = lambda v: v[:nv - 1] + [0]  # noqa: E731
            else:
                cut = lambda v: v  # noqa: E731
            rec["vertex_flops"] = {m: cut([int(x * s) for x in v]) for m, v in base["vertex_flops"].items()}
            rec["vertex_params"] = {m: cut([int(x * s) for x in v]) for m, v in base["vertex_params"].items()}
            rec["unique_hash"] = f"{i:032x}"
            rec["avg_validation_accuracy"] = rng.uniform(0.1, 0.95)
            rec["avg_test_accuracy"] = rng.uniform(0.1, 0.95)
            rec["flops"] = int(base["flops"] * s)
            rec["trainable_parameters"] = int(base["trainable_parameters"] * s)
            f.write((",\n" if i else "") + json.dumps(rec))
        f.write("]\n")


def run_phase(args: list[str]) -> tuple[float, float, str]:
    """Run a child process; (wall seconds, its peak RSS in MB, its stdout)."""
    t = time.perf_counter()
    p = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, text=True)
    out = p.stdout.read()
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise SystemExit(f"phase failed ({p.returncode}): {' '.join(args)}")
    return time.perf_counter() - t, usage.ru_maxrss / 1024, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, help="NAR JSON to encode (default: synthetic NB101)")
    ap.add_argument("--bench", default="101", choices=["101", "201"])
    ap.add_argument("--source", help="run `nar-cli build --source SOURCE` first (a CSV or 'space')")
    ap.add_argument("--n", type=int, default=N_SPACE_101, help="records in the synthetic file")
    ap.add_argument("--n_jobs", type=int, nargs="+", default=[2])
    ap.add_argument("--chunk", type=int, nargs="+", default=[4096])
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "nar_bench_ingest")
    a = ap.parse_args()
    a.workdir.mkdir(parents=True, exist_ok=True)
    src = a.json
    if a.source:
        src = a.workdir / f"built_{a.bench}.json"
        wall, rss, _ = run_phase(["nar-cli", "build", "--bench", a.bench, "--source", a.source,
                                  "--out", str(src)])
        print(f"build   source={a.source}: {wall:7.1f} s, peak RSS {rss:7.0f} MB")
    elif src is None:
        if a.bench != "101":
            raise SystemExit("the synthetic file is NB101: give --json for NB201")
        src = a.workdir / f"synthetic_101_{a.n}.json"
        if not src.exists():
            t = time.perf_counter()
            synthesize_101(src, a.n)
            print(f"synthesised {src} ({src.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t:.0f} s")
    print(f"source {src}: {src.stat().st_size / 1e6:.0f} MB, {os.cpu_count()} CPUs")
    store = a.workdir / f"bench_{a.bench}.h5"
    for n_jobs in a.n_jobs:
        for chunk in a.chunk:
            store.unlink(missing_ok=True)
            wall, rss, out = run_phase([sys.executable, "-c", _ENCODE, str(src), a.bench, str(store),
                                        str(n_jobs), str(chunk)])
            inner, worker = map(float, out.split())
            print(f"encode  n_jobs={n_jobs} chunk={chunk}: {wall:7.1f} s (ingest {inner:.1f} s), "
                  f"peak RSS main {rss:7.0f} MB, largest worker {worker:5.0f} MB")
    wall, rss, _ = run_phase([sys.executable, "-c", _READ, str(store)])
    print(f"read    memory-mapped features, all datasets: {wall:7.1f} s, peak RSS {rss:7.0f} MB")


if __name__ == "__main__":
    main()

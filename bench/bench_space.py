"""Time the NAS-Bench-101 space enumeration and its cache; prints figures, asserts nothing.

Usage: python bench/bench_space.py [--n-jobs 2]
"""
import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.benchlib import peak_rss_mib  # noqa: E402
from pipeline import nb101_space  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-jobs", type=int, default=2, help="processes for the MD5 phase")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        space = nb101_space.load_space(tmp, n_jobs=args.n_jobs)   # enumerate + write cache
        t_build = time.perf_counter() - t0
        t0 = time.perf_counter()
        again = nb101_space.load_space(tmp)                       # read + validate cache
        t_read = time.perf_counter() - t0
        size = (Path(tmp) / "nb101_space.npz").stat().st_size
    assert len(again) == len(space)
    try:  # reap the joblib workers so their peak memory shows up under RUSAGE_CHILDREN
        from joblib.externals.loky import get_reusable_executor
        get_reusable_executor().shutdown(wait=True)
    except Exception:
        pass
    print(f"enumerate_space(n_jobs={args.n_jobs}): {len(space)} cells in {t_build:.1f} s "
          "(incl. cache write)")
    print(f"load_space from cache: {t_read:.2f} s, cache file {size / 2**20:.1f} MiB")
    print(f"peak RSS: main {peak_rss_mib(resource.RUSAGE_SELF):.0f} MiB, "
          f"worker processes <= {peak_rss_mib(resource.RUSAGE_CHILDREN):.0f} MiB each (ru_maxrss of children "
          "counts the pages shared at fork, an upper bound)")


if __name__ == "__main__":
    main()

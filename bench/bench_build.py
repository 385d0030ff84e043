"""Time ``nar-cli build --source space`` (423,624 NB101 records) and the tfrecord reader.

Prints wall time per stage and peak RSS (``resource.getrusage``). The space is loaded through
``nb101_space.load_space`` (its cache is built first if absent; that time is printed apart).

    python bench/bench_build.py                    # full space -> /tmp/nar_space.json
    python bench/bench_build.py --limit 50000
    python bench/bench_build.py --tfrecord-mb 500  # CRC + decode of a ~500 MB tfrecord made
                                                   # by repeating the EC-NAS fixture
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.benchlib import peak_rss_mib  # noqa: E402


def bench_space(out: str, limit: int | None):
    from pipeline.nar_json import records, write_json
    from pipeline.nb101_space import load_space
    from pipeline.sources import read_source

    t0 = time.perf_counter()
    load_space()
    t1 = time.perf_counter()
    rows = read_source("101", "space", limit=limit)
    t2 = time.perf_counter()
    items, keyed = records(rows)
    n = write_json(out, items, keyed=keyed)
    t3 = time.perf_counter()
    size = os.path.getsize(out) / 2**20
    print(f"space: load_space {t1 - t0:.1f} s (includes building its cache if absent)")
    print(f"space: read {t2 - t1:.1f} s; build+write {n} records {t3 - t2:.1f} s "
          f"({n / (t3 - t2):.0f} rec/s), {size:.0f} MiB -> {out}")
    print(f"space: peak RSS {peak_rss_mib():.0f} MiB")


def bench_tfrecord(mb: int, fixture: Path):
    from pipeline.sources import tfrecord

    blob = fixture.read_bytes()
    reps = max(1, int(mb * 2**20 / len(blob)))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.tfrecord"
        with open(path, "wb") as fh:
            for _ in range(reps):
                fh.write(blob)
        size = path.stat().st_size / 2**20
        t0 = time.perf_counter()
        n = sum(1 for _ in tfrecord.iter_frames(path))
        t1 = time.perf_counter()
        print(f"tfrecord: framing + both CRC32Cs of {n} records, {size:.0f} MiB: "
              f"{t1 - t0:.1f} s ({size / (t1 - t0):.0f} MiB/s)")
        runs = sum(1 for _ in tfrecord.iter_runs(path))
        t2 = time.perf_counter()
        print(f"tfrecord: + JSON/base64/protobuf decode of {runs} runs: {t2 - t1:.1f} s "
              f"({runs / (t2 - t1):.0f} runs/s)")
    print(f"tfrecord: peak RSS {peak_rss_mib():.0f} MiB")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(tempfile.gettempdir(), "nar_space.json"))
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--tfrecord-mb", type=int, default=0,
                    help="instead: time the tfrecord reader on a file of about this size")
    ap.add_argument("--data", default=os.environ.get("NAR_DATA_DIR", "../shared/data"))
    args = ap.parse_args()
    if args.tfrecord_mb:
        bench_tfrecord(args.tfrecord_mb, Path(args.data) / "fixtures/ecnas_energy_4V9E.tfrecord")
    else:
        bench_space(args.out, args.limit)


if __name__ == "__main__":
    main()

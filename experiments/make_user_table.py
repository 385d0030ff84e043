"""Write the README's worked example of a user's own cell space: OUT/space.yaml and
OUT/table.csv (200 toy cells of up to 6 vertices with per-vertex FLOPs/params and accuracies).

    python experiments/make_user_table.py runs/user_example [--n 200] [--seed 0]
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.fakes import fake_user_table  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    space, table = fake_user_table(a.out, n=a.n, seed=a.seed)
    print(f"wrote {space} and {table}")


if __name__ == "__main__":
    main()

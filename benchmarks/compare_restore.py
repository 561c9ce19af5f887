"""Did a change move restoration? Compare the "latent MAP" rows of two `bench_restore.py` runs on
the same images, per task and setting: the means, the mean change, on how many images it is
better and the worst and best image, and the new run's margin over the best classical method.

    OMP_NUM_THREADS=1 python benchmarks/bench_restore.py evalsets/packages -o out/sr-now --tasks sr
    python benchmarks/compare_restore.py docs/results/restore-packages-0.19 out/sr-now
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

OURS = "latent MAP"


def read(folder: Path) -> dict:
    """{(task, setting): {method: {image: PSNR}}} of a run's restore.csv."""
    rows = {}
    with open(folder / "restore.csv", newline="") as f:
        for r in csv.DictReader(f):
            rows.setdefault((r["task"], r["setting"]), {}).setdefault(r["method"], {})[r["image"]] = float(r["psnr"])
    return rows


def best_classical(methods: dict, images: list) -> str:
    """The classical method (not vqpress, its ablations or variants) with the best mean PSNR."""
    classical = [m for m in methods if m != OURS and not m.startswith(("ablation", "latent MAP"))]
    return max(classical, key=lambda m: np.mean([methods[m][i] for i in images]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path, help="a bench_restore.py output folder")
    parser.add_argument("after", type=Path, help="another, on the same images")
    args = parser.parse_args()
    before, after = read(args.before), read(args.after)
    print("| task | setting | before | after | change | better | worst | best | margin over the best classical |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for key, methods in after.items():
        if OURS not in methods or OURS not in before.get(key, {}):
            continue
        images = sorted(methods[OURS])
        if set(images) != set(before[key][OURS]):
            raise SystemExit(f"{key}: the two runs measured different images")
        new = np.array([methods[OURS][i] for i in images])
        old = np.array([before[key][OURS][i] for i in images])
        change = new - old
        best = np.mean([methods[best_classical(methods, images)][i] for i in images])
        print(f"| {key[0]} | {key[1]} | {old.mean():.2f} | {new.mean():.2f} | {change.mean():+.3f} | "
              f"{int((change > 0).sum())} of {len(images)} | {change.min():+.3f} | {change.max():+.3f} | "
              f"{new.mean() - best:+.2f} |")


if __name__ == "__main__":
    main()

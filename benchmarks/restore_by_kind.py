"""Where does restoration's margin come from? For each task and setting of a `bench_restore.py`
run, the margin of vqpress ("latent MAP") over the best classical method (the one with the best
mean over all images, as in `compare_restore.py`), in all and per kind of image, the kinds as an
evaluation set's SOURCES.md lists them (photo, texture, render, astro).

    python benchmarks/restore_by_kind.py docs/results/restore-packages-sr-0.26 evalsets/packages/SOURCES.md
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np
from compare_restore import OURS, read

KINDS = ("photo", "texture", "render", "astro")


def kinds(sources: Path) -> dict:
    """{image file name: kind} from the table rows of a SOURCES.md (`| name | kind | ...`)."""
    rows = re.findall(rf"^\| ([\w.-]+) \| ({'|'.join(KINDS)}) \|", sources.read_text(), re.M)
    if not rows:
        raise SystemExit(f"{sources}: no table rows of the form '| name | kind |'")
    return {f"{name}.png": kind for name, kind in rows}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a bench_restore.py output folder")
    parser.add_argument("sources", type=Path, help="the evaluation set's SOURCES.md")
    args = parser.parse_args()
    kind_of = kinds(args.sources)
    present = [k for k in KINDS if k in kind_of.values()]
    print("| task | setting | best classical | all | " + " | ".join(present) + " |")
    print("|---|---|---|---:|" + "---:|" * len(present))
    for (task, setting), methods in read(args.run).items():
        if OURS not in methods:
            continue
        images = sorted(methods[OURS])
        missing = [i for i in images if i not in kind_of]
        if missing:
            raise SystemExit(f"{args.sources} gives no kind for {', '.join(missing)}")
        classical = [m for m in methods if m != OURS and not m.startswith(("ablation", "latent MAP"))]
        best = max(classical, key=lambda m: np.mean([methods[m][i] for i in images]))
        margin = {i: methods[OURS][i] - methods[best][i] for i in images}
        cells = []
        for kind in ["all", *present]:
            of_kind = [margin[i] for i in images if kind in ("all", kind_of[i])]
            cells.append(f"{np.mean(of_kind):+.2f} ({len(of_kind)})" if of_kind else "")
        print(f"| {task} | {setting} | {best} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()

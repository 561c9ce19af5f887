"""Where does restoration's margin come from? For each task and setting of a `bench_restore.py`
run, the margin of vqpress ("latent MAP") over the best classical method (the one with the best
mean over all images, as in `compare_restore.py`), in all and per kind of image, the kinds as an
evaluation set's SOURCES.md lists them (photo, texture, render, astro). With --plot, the same as
bars beside the 1 dB line. Of several runs, a later run's task and setting replace an earlier one's.

    python benchmarks/restore_by_kind.py evalsets/packages/SOURCES.md docs/results/restore-packages-sr-0.26
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np
from compare_restore import OURS, best_classical, read

KINDS = ("photo", "texture", "render", "astro")


def kinds(sources: Path) -> dict:
    """{image file name: kind} from the table rows of a SOURCES.md (`| name | kind | ...`)."""
    rows = re.findall(rf"^\| ([\w.-]+) \| ({'|'.join(KINDS)}) \|", sources.read_text(), re.M)
    if not rows:
        raise SystemExit(f"{sources}: no table rows of the form '| name | kind |'")
    return {f"{name}.png": kind for name, kind in rows}


def margins(run: Path, kind_of: dict, groups: list[str]):
    """Per task and setting of a run: the best classical method and {group: (mean margin, images)}
    for the groups "all" and each kind."""
    for (task, setting), methods in read(run).items():
        if OURS not in methods:
            continue
        images = sorted(methods[OURS])
        missing = [i for i in images if i not in kind_of]
        if missing:
            raise SystemExit(f"the SOURCES.md gives no kind for {', '.join(missing)}")
        best = best_classical(methods, images)
        margin = {i: methods[OURS][i] - methods[best][i] for i in images}
        by_group = {}
        for group in groups:
            of_group = [margin[i] for i in images if group in ("all", kind_of[i])]
            if of_group:
                by_group[group] = (float(np.mean(of_group)), len(of_group))
        yield task, setting, best, by_group


def plot(rows: list, groups: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(rows)), 3.6))
    width = 0.8 / len(groups)
    for g, group in enumerate(groups):
        xs = [r + (g - (len(groups) - 1) / 2) * width for r in range(len(rows))]
        values = [row[3].get(group, (np.nan, 0))[0] for row in rows]
        ax.bar(xs, values, width, label=group if group != "all" else "all images")
    ax.axhline(1.0, color="black", linewidth=1, linestyle="--", label="1 dB")
    ax.set_xticks(range(len(rows)), [f"{task}\n{setting}" for task, setting, *_ in rows], fontsize=8)
    ax.set_ylabel("dB over the best classical method")
    ax.legend(fontsize=8, ncol=len(groups) + 1, loc="upper center", bbox_to_anchor=(0.5, -0.16))
    fig.savefig(path, dpi=120, bbox_inches="tight")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sources", type=Path, help="the evaluation set's SOURCES.md")
    parser.add_argument("runs", type=Path, nargs="+", help="bench_restore.py output folders")
    parser.add_argument("--plot", type=Path, help="also draw the margins as bars into this PNG")
    args = parser.parse_args()
    kind_of = kinds(args.sources)
    groups = ["all", *(k for k in KINDS if k in kind_of.values())]
    latest = {}  # (task, setting) -> row; dicts keep the order of the first
    for run in args.runs:
        latest.update({(row[0], row[1]): row for row in margins(run, kind_of, groups)})
    rows = list(latest.values())
    print("| task | setting | best classical | " + " | ".join(groups) + " |")
    print("|---|---|---|" + "---:|" * len(groups))
    for task, setting, best, by_group in rows:
        cells = [f"{by_group[g][0]:+.2f} ({by_group[g][1]})" if g in by_group else "" for g in groups]
        print(f"| {task} | {setting} | {best} | " + " | ".join(cells) + " |")
    if args.plot:
        plot(rows, groups, args.plot)


if __name__ == "__main__":
    main()

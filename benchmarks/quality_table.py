"""The README's per-quality table of a `vqpress rd` run: vqpress's bpp and PSNR at each quality,
and each peer's PSNR at the same bpp (linear in log bpp along the peer's best points; "-" where
its curve does not reach that rate), with vqpress minus the peer in brackets.

    python benchmarks/quality_table.py docs/results/codec-valid
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from vqpress.measure.metrics import frontier
from vqpress.measure.rd import curves, read_rows


def peer_psnr_at(rate: np.ndarray, quality: np.ndarray, bpp: float) -> float | None:
    """PSNR along a frontier (`frontier`) at a bpp, or None outside it."""
    if not rate[0] <= bpp <= rate[-1]:
        return None
    return float(np.interp(np.log(bpp), np.log(rate), quality))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a `vqpress rd` output folder")
    args = parser.parse_args()
    curve = curves(read_rows(args.folder))
    ours = curve.pop("vqpress")
    print("| quality | " + " | ".join(str(q) for q in ours["quality"]) + " |")
    print("|---" * (len(ours["quality"]) + 1) + "|")
    print("| bpp | " + " | ".join(f"{b:.3f}" for b in ours["bpp"]) + " |")
    print("| PSNR (dB) | " + " | ".join(f"{p:.2f}" for p in ours["psnr"]) + " |")
    for name, peer in curve.items():
        rate, quality = frontier(peer["bpp"], peer["psnr"])
        cells = []
        for bpp, psnr in zip(ours["bpp"], ours["psnr"]):
            theirs = peer_psnr_at(rate, quality, bpp)
            cells.append("-" if theirs is None else f"{theirs:.2f} ({psnr - theirs:+.2f})")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()

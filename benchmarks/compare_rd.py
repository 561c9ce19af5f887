"""Did a change move vqpress's rate-distortion? Compare a new `vqpress rd --codec vqpress` run
with a published one on the same images, and recompute the BD-rates against the published
peers with the new rows.

    vqpress rd ../shared/corpus/valid --codec vqpress -o out/rd-valid-now
    python benchmarks/compare_rd.py docs/results/codec-valid out/rd-valid-now
"""

from __future__ import annotations

import argparse
from pathlib import Path

from vqpress.measure.rd import bd_table, curves, read_rows

NEW = "vqpress (new)"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("published", type=Path, help="a `vqpress rd` output folder with vqpress and its peers")
    parser.add_argument("new", type=Path, help="a `vqpress rd --codec vqpress` output folder, same images")
    args = parser.parse_args()
    published = read_rows(args.published)
    new = [dict(r, codec=NEW) for r in read_rows(args.new) if r["codec"] == "vqpress"]
    images = {r["image"] for r in new}
    if images != {r["image"] for r in published if r["codec"] == "vqpress"}:
        raise SystemExit("the two runs measured different images")
    curve = curves(published + new)
    table = {(r["test"], r["reference"]): r for r in bd_table(curve)}
    old, now = curve["vqpress"], curve[NEW]
    print(f"{len(images)} images of {args.published}\n")
    print("| quality | bpp published | bpp new | PSNR published | PSNR new | change (dB) |\n|---:|---:|---:|---:|---:|---:|")
    before = {q: (b, p) for q, b, p in zip(old["quality"], old["bpp"], old["psnr"])}
    after = {q: (b, p) for q, b, p in zip(now["quality"], now["bpp"], now["psnr"])}
    for q in sorted(before | after):  # a quality only one model has gets "-" in the other's columns
        (b0, p0), (b1, p1) = before.get(q, (None, None)), after.get(q, (None, None))
        cells = [f"{b0:.4f}" if b0 else "-", f"{b1:.4f}" if b1 else "-", f"{p0:.4f}" if p0 else "-",
                 f"{p1:.4f}" if p1 else "-", f"{p1 - p0:+.4f}" if p0 and p1 else "-"]
        print(f"| {q} | " + " | ".join(cells) + " |")
    same = table[(NEW, "vqpress")]
    print(f"\nBD-rate of the new rows against the published ones: PSNR {same['bd_rate_psnr']:+.2f}%, "
          f"MS-SSIM {same['bd_rate_ms_ssim']:+.2f}%\n")
    print("| against | BD-rate PSNR, published / new | BD-rate MS-SSIM, published / new |\n|---|---:|---:|")
    for peer in (c for c in curve if c not in ("vqpress", NEW)):
        a, b = table[("vqpress", peer)], table[(NEW, peer)]
        print(f"| {peer} | {a['bd_rate_psnr']:+.1f}% / {b['bd_rate_psnr']:+.1f}% | "
              f"{a['bd_rate_ms_ssim']:+.1f}% / {b['bd_rate_ms_ssim']:+.1f}% |")


if __name__ == "__main__":
    main()

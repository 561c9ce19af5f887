"""Restoration speed and memory: every task at 768x512 in process, and a 4000x3000 inpainting
from the command line.

    python benchmarks/bench_restore_speed.py [--image PHOTO] [--repeat 3] [--threads 2] [--skip-big]
                                             [--skip-small] [--big-mask strokes|scattered]

- In process, a 768x512 photo: the median time of each task and setting of bench_restore.py
  (inpainting masks, denoising at sigma 15/25/50, super-resolution x2/x4 to 768x512, Gaussian
  deblurring), after one warm-up that loads the models; and without the refiner (the learned
  last step), to show its cost. Then the refiner alone at 768x512 and at 4000x3000.
- `vqpress inpaint` of a 4000x3000 photo (the same photo resized) with 40 strokes 16 px wide
  (`--big-mask scattered`: half the pixels missing at random, which the inpainting refiner
  runs on), in a fresh process: wall time from process start to file written, and peak memory
  (VmHWM, Linux).

Without --image the bundled sample is used. Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vqpress import restore
from vqpress.restore.damage import strokes
from vqpress.restore.refine import condition, refined, refiner_for

sys.path.insert(0, str(Path(__file__).parent))
from bench_codec import timed  # noqa: E402
from bench_restore import blur, masks  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

# The child reports its own peak (VmHWM starts afresh at exec; ru_maxrss is inherited).
INPAINT_JOB = """
import sys
from vqpress.cli.main import main
try:
    main(sys.argv[1:])
finally:
    print(next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM")))
"""


def cases(rgb: np.ndarray):
    """(task, setting, function) of every case bench_restore.py measures."""
    h, w = rgb.shape[:2]
    for name, missing in masks((h, w), 0).items():
        damaged = np.where(missing[..., None], 255, rgb).astype(np.uint8)
        yield "inpaint", name, lambda d=damaged, m=missing, **kw: restore.inpaint(d, m, device="cpu", **kw)
    for sigma in (15, 25, 50):
        noisy = np.clip(rgb + np.random.default_rng(0).normal(0, sigma, rgb.shape), 0, 255).round().astype(np.uint8)
        yield "denoise", f"sigma {sigma}", lambda y=noisy, s=sigma, **kw: restore.restore(y, "denoise", sigma=s, device="cpu", **kw)
    for scale in (2, 4):
        low = np.asarray(Image.fromarray(rgb).resize((w // scale, h // scale), Image.BICUBIC))
        yield "sr", f"x{scale}", lambda y=low, s=scale, **kw: restore.restore(y, "sr", scale=s, device="cpu", **kw)
    blurred = blur(rgb, 2.0)
    yield "deblur", "gaussian 2", lambda **kw: restore.restore(blurred, "deblur", blur_sigma=2.0, device="cpu", **kw)


def refiner_alone(width: int, height: int, repeat: int) -> float:
    """Median seconds of the refiner on a random image of that size (its cost does not depend
    on the content)."""
    net = refiner_for("sr")
    x, known = torch.rand(1, 3, height, width), torch.ones(1, 1, height, width)
    return timed(repeat, refined, net, x, x, known, condition("sr", {"scale": 4}))[0]


BIG_MASKS = {"strokes": ("40 strokes 16 px wide", lambda rng: strokes((3000, 4000), 40, 16, rng)),
             "scattered": ("50% of the pixels missing at random", lambda rng: rng.random((3000, 4000)) < 0.5)}


def big_inpaint(photo: Image.Image, mask: str) -> tuple[float, float]:
    """(wall seconds, peak memory in GB) of `vqpress inpaint` on a 4000x3000 photo with a
    BIG_MASKS mask."""
    with tempfile.TemporaryDirectory() as tmp:
        image, mask_file, out = (Path(tmp) / name for name in ("big.png", "mask.png", "out.png"))
        photo.resize((4000, 3000), Image.LANCZOS).save(image)
        Image.fromarray(BIG_MASKS[mask][1](np.random.default_rng(0))).save(mask_file)
        t0 = time.perf_counter()
        result = subprocess.run([sys.executable, "-c", INPAINT_JOB, "inpaint", str(image), "--mask", str(mask_file),
                                 "-o", str(out)], capture_output=True, text=True, check=True)
        seconds = time.perf_counter() - t0
        if not out.is_file():
            raise RuntimeError(f"no output: {result.stderr[-500:]}")
    return seconds, int(result.stdout.split()[-1]) / 2**20


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default=str(ROOT / "samples" / "coffee.png"))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-big", action="store_true")
    parser.add_argument("--skip-small", action="store_true", help="only the 4000x3000 inpainting")
    parser.add_argument("--big-mask", choices=BIG_MASKS, default="strokes")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    photo = Image.open(args.image).convert("RGB")
    rgb = np.asarray(photo.resize((768, 512), Image.LANCZOS))
    if not args.skip_small:
        small(rgb, args)
    if not args.skip_big:
        seconds, peak = big_inpaint(photo, args.big_mask)
        print(f"\n4000x3000 `vqpress inpaint`, {BIG_MASKS[args.big_mask][0]}, fresh process: {seconds:.1f} s, "
              f"peak memory (VmHWM) {peak:.2f} GB")


def small(rgb: np.ndarray, args) -> None:
    """The 768x512 table and the refiner alone."""
    restore.restore(rgb[:64, :64], "sr", scale=2, device="cpu")  # warm-up: loads the VAE and refiner
    print(f"768x512, {args.threads} threads, median of {args.repeat}\n")
    print("| task | setting | seconds | without the refiner |\n|---|---|---:|---:|")
    for task, setting, fn in cases(rgb):
        on, off = timed(args.repeat, fn)[0], timed(args.repeat, lambda: fn(refine=False))[0]
        print(f"| {task} | {setting} | {on:.2f} | {off:.2f} |", flush=True)
    for w, h in ((768, 512), (4000, 3000)):
        print(f"\nthe refiner alone at {w}x{h}: {refiner_alone(w, h, args.repeat):.2f} s", flush=True)


if __name__ == "__main__":
    main()

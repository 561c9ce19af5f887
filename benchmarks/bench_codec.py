"""Codec speed and memory: median encode/decode time of a 768x512 photo, and the peak memory
(max RSS of a fresh process) of compressing and decompressing a 4000x3000 photo.

    python benchmarks/bench_codec.py [--image PHOTO] [--repeat 5] [--quality Q] [--threads 2]

Without --image the bundled sample is resized (Lanczos) to each size.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

MEMORY_JOB = """
import sys, resource
import numpy as np
from PIL import Image
from vqpress import codec
image = Image.open(sys.argv[1]).convert("RGB").resize((4000, 3000), Image.LANCZOS)
model = codec.load(device="cpu")
data = model.compress(image, int(sys.argv[2]))
out = model.decompress(data)
assert out.size == (4000, 3000)
print(len(data))
"""


def timed(repeat, fn, *args):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn(*args)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default=str(ROOT / "samples" / "coffee.png"))
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--quality", type=int, help="default: the model's best (slowest) level")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()

    import torch
    from PIL import Image

    from vqpress import codec

    torch.set_num_threads(args.threads)
    image = Image.open(args.image).convert("RGB").resize((768, 512), Image.LANCZOS)
    model = codec.load(device="cpu")
    args.quality = args.quality or model.qualities[-1]
    model.compress(image, args.quality)  # warm-up
    print(f"768x512, quality {args.quality}, {args.threads} torch threads, median of {args.repeat}")
    for q in sorted({1, args.quality}):
        enc, data = timed(args.repeat, model.compress, image, q)
        dec, _ = timed(args.repeat, model.decompress, data)
        print(f"  quality {q}: encode {enc:.3f} s, decode {dec:.3f} s, "
              f"{len(data) * 8 / (768 * 512):.3f} bpp")

    if not args.skip_memory:
        subprocess.run([sys.executable, "-c", MEMORY_JOB, args.image, str(args.quality)],
                       check=True, capture_output=True)
        peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
        print(f"4000x3000, quality {args.quality}: peak memory (max RSS) {peak_gb:.2f} GB")


if __name__ == "__main__":
    main()

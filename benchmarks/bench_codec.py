"""Codec speed and memory, with the peers measured in the same run.

    python benchmarks/bench_codec.py [--image PHOTO] [--repeat 5] [--threads 2] [--skip-memory] [--model ID]

- In process, a 768x512 photo: median encode and decode time at every quality of the default
  model, over --repeat rounds that each take every quality once (a slow spell of a shared
  machine then falls on all qualities, not on a few); in the same run, compressai's
  bmshj2018-hyperprior and mbt2018 (random weights: the time does not depend on them) and
  Pillow's WebP (method 6) and AVIF (speed 4), as ratios.
- From the command line, each in a fresh process: `vqpress compress` and `vqpress decompress`
  of that photo (process start to file written), and two errors (a missing file, a bad
  quality), medians of --repeat runs.
- A 4000x3000 photo (the sample resized): peak memory (VmHWM, Linux) of a fresh process that
  decompresses it, and its decode time.

Without --image the bundled sample is resized (Lanczos) to each size. Medians, so a busy
moment does not decide a number; run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import io
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# The child reports its own peak: VmHWM, which starts afresh at exec. (ru_maxrss does not: a
# child inherits its parent's, so after the bench's own 4000x3000 encode it read 3.47 GB.)
DECODE_JOB = """
import sys, time
from vqpress import codec
data = open(sys.argv[1], "rb").read()
t0 = time.perf_counter()
image = codec.decompress(data)
peak = next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(time.perf_counter() - t0, peak)
"""


def timed(repeat, fn, *args):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn(*args)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def vqpress_times(image, repeat, threads, int8_analysis=True, model_id=None):
    from vqpress.codec.api import Codec
    from vqpress.codec.ladder import DEFAULT_MODEL

    model = Codec(model_id or DEFAULT_MODEL, device="cpu", threads=threads, int8_analysis=int8_analysis)
    model.decompress(model.compress(image, 1))  # warm-up: every session made (the filter's too)
    model.compress(image, model.qualities[-1])
    encodes, decodes = ({q: [] for q in model.qualities} for _ in range(2))
    sizes = {}
    for _ in range(repeat):  # rounds over every quality: a slow spell of the machine is shared out
        for q in model.qualities:
            seconds, data = timed(1, model.compress, image, q)
            encodes[q].append(seconds)
            decodes[q].append(timed(1, model.decompress, data)[0])
            sizes[q] = len(data)
    return [(q, statistics.median(encodes[q]), statistics.median(decodes[q]),
             sizes[q] * 8 / (image.width * image.height)) for q in model.qualities]


def peer_times(image, repeat, threads):
    """(name, encode s, decode s) of the learned peers and Pillow's WebP and AVIF."""
    import numpy as np
    import torch
    from compressai.zoo import bmshj2018_hyperprior, mbt2018
    from PIL import Image

    torch.set_num_threads(threads)
    x = torch.from_numpy(np.asarray(image)).permute(2, 0, 1)[None].float() / 255
    rows = []
    for name, make in (("compressai bmshj2018-hyperprior", bmshj2018_hyperprior), ("compressai mbt2018", mbt2018)):
        net = make(quality=4, pretrained=False).eval()
        net.update(force=True)
        with torch.no_grad():
            enc, out = timed(repeat, net.compress, x)
            dec, _ = timed(repeat, net.decompress, out["strings"], out["shape"])
        rows.append((name, enc, dec))
    for name, fmt, options in (("Pillow WebP (method 6)", "WEBP", {"quality": 75, "method": 6}),
                               ("Pillow AVIF (speed 4)", "AVIF", {"quality": 60, "speed": 4})):
        def encode():
            buf = io.BytesIO()
            image.save(buf, fmt, **options)
            return buf.getvalue()
        enc, data = timed(repeat, encode)
        dec, _ = timed(repeat, lambda: Image.open(io.BytesIO(data)).load())
        rows.append((name, enc, dec))
    return rows


def compile_bytecode() -> None:
    """Compile the package's modules, as `pip install` does: an editable install on a machine
    that sets PYTHONDONTWRITEBYTECODE would otherwise compile them in every fresh process."""
    import compileall

    import vqpress.cli
    import vqpress.codec
    import vqpress.weights

    for package in (vqpress, vqpress.cli, vqpress.codec, vqpress.weights):
        compileall.compile_dir(Path(package.__file__).parent, quiet=1, maxlevels=0)


def command_times(photo: Path, repeat: int) -> dict[str, float]:
    """Medians of fresh `vqpress` processes, process start to exit."""
    compile_bytecode()
    vqpress = str(Path(sys.executable).with_name("vqpress"))
    with tempfile.TemporaryDirectory() as tmp:
        vqp, png = Path(tmp) / "p.vqp", Path(tmp) / "p.png"
        runs = {"compress": [vqpress, "compress", str(photo), "-o", str(vqp), "--force"],
                "decompress": [vqpress, "decompress", str(vqp), "-o", str(png), "--force"],
                "error: no such file": [vqpress, "compress", str(Path(tmp) / "missing.png")],
                "error: quality 99": [vqpress, "compress", str(photo), "-q", "99", "-o", str(vqp), "--force"],
                "error: output exists": [vqpress, "compress", str(photo), "-o", str(vqp)],
                "error: not a .vqp file": [vqpress, "decompress", str(photo), "-o", str(png), "--force"]}
        out = {}
        for name, cmd in runs.items():
            times = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                subprocess.run(cmd, capture_output=True, check=not name.startswith("error"))
                times.append(time.perf_counter() - t0)
            out[name] = statistics.median(times)
    return out


def big_decode(photo: Path) -> tuple[float, float]:
    """(peak memory in GB, decode seconds) of a fresh process decoding a 4000x3000 photo."""
    from PIL import Image

    from vqpress import codec

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.vqp"
        big = Image.open(photo).convert("RGB").resize((4000, 3000), Image.LANCZOS)
        path.write_bytes(codec.compress(big, 6))
        result = subprocess.run([sys.executable, "-c", DECODE_JOB, str(path)], capture_output=True,
                                text=True, check=True)
    seconds, peak_kb = result.stdout.split()
    return int(peak_kb) / 2**20, float(seconds)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default=str(ROOT / "samples" / "coffee.png"))
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-peers", action="store_true")
    parser.add_argument("--float-analysis", action="store_true",
                        help="In process, encode with the float analysis graph, not the model's 8-bit one.")
    parser.add_argument("--model", help="The shipped codec model of the in-process table (default: the default "
                                        "model, which the command lines and the 4000x3000 decode always use).")
    args = parser.parse_args()
    from PIL import Image

    image = Image.open(args.image).convert("RGB").resize((768, 512), Image.LANCZOS)
    ours = vqpress_times(image, args.repeat, args.threads, not args.float_analysis, args.model)
    print(f"768x512, {args.threads} threads, median of {args.repeat}{f', {args.model}' if args.model else ''}"
          f"{', float analysis' if args.float_analysis else ''}\n")
    print("| vqpress quality | bpp | encode (s) | decode (s) |\n|---:|---:|---:|---:|")
    for q, enc, dec, bpp in ours:
        print(f"| {q} | {bpp:.3f} | {enc:.3f} | {dec:.3f} |")
    if not args.skip_peers:
        worst_enc, worst_dec = max(r[1] for r in ours), max(r[2] for r in ours)
        print("\n| codec | encode (s) | decode (s) | vqpress's slowest quality, encode / decode |")
        print("|---|---:|---:|---:|")
        for name, enc, dec in peer_times(image, args.repeat, args.threads):
            print(f"| {name} | {enc:.3f} | {dec:.3f} | {worst_enc / enc:.1f}x / {worst_dec / dec:.1f}x |")
    with tempfile.TemporaryDirectory() as tmp:
        photo = Path(tmp) / "photo.png"
        image.save(photo)
        print("\n| command, fresh process | median (s) |\n|---|---:|")
        for name, seconds in command_times(photo, args.repeat).items():
            print(f"| {name} | {seconds:.3f} |")
    if not args.skip_memory:
        peak, seconds = big_decode(Path(args.image))
        print(f"\n4000x3000 at quality 6: decode {seconds:.2f} s, peak memory (VmHWM) {peak:.2f} GB")


if __name__ == "__main__":
    main()

"""Where an encode and a decode spend their time: each stage alone, one after the other.

    python benchmarks/codec_stages.py [--image PHOTO] [--qualities 1,3,6,9] [--repeat 5] [--threads 2]

On a 768x512 photo (the bundled sample, resized), the median time of each stage of the default
model run on its own (in `Codec.compress` and `Codec.decompress` some of them overlap in two
threads), and the multiply-accumulates of the two transforms as the torch networks define them,
with the rate ONNX Runtime reaches on them: what the transforms alone cost, whatever the rest of
the codec does. (The run time's synthesis graph computes the 3-output transposed convolution in
sub-pixel form, `training.graphs.SubPixelDeconv`, whose zero taps add 44% to its products; the
96-output ones per phase, `PhaseDeconv`, with no zero taps. The analysis is the model's 8-bit
graph where it ships one, `training.quantise`: three of its convolutions, 66% of its products,
run on 8-bit integers.)
"""

from __future__ import annotations

import argparse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench_codec import timed

ROOT = Path(__file__).resolve().parents[1]


def median_ms(repeat: int, fn, *args):
    """(median milliseconds, result) of `bench_codec.timed`."""
    seconds, result = timed(repeat, fn, *args)
    return 1000 * seconds, result


def transform_macs(config: dict, height: int, width: int) -> dict[str, float]:
    """Multiply-accumulates of the analysis and synthesis transforms on an image, counted by
    torch's FlopCounterMode (two flops each)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from vqpress.nets.vqvae import VQVAE, VQVAEConfig

    net = VQVAE(VQVAEConfig(**config)).eval()
    counts, x = {}, torch.zeros(1, 3, height, width)
    with torch.no_grad():
        for name, part in (("analysis", net.encoder), ("synthesis", net.decoder)):
            with FlopCounterMode(display=False) as counter:
                x = part(x)
            counts[name] = counter.get_total_flops() / 2
    return counts


def stage_times(codec, repeat: int, rgb, q: int, map, stages: list[str]) -> list[float | None]:
    """Median milliseconds of each stage at quality q (None where it does not run), chunked
    work through `map`."""
    from vqpress.codec import ecvq, payload
    from vqpress.codec.api import ECVQ_LAMBDA

    h, w = rgb.shape[:2]
    rung = codec.ladder[q - 1]
    row = {}
    row["analysis"], z = median_ms(repeat, codec.transforms.latents, rgb)
    row["nearest codes"], nearest = median_ms(repeat, codec.transforms.quantise, z, rung.stages)
    row["ECVQ"], indices = median_ms(repeat, lambda: ecvq.choose(z, nearest, codec.transforms.codebooks,
                                                                codec.prior, ECVQ_LAMBDA, map=map))
    row["synthesis"], base = median_ms(repeat, codec.pixels, indices, h, w)
    levels = modes = None
    if rung.step is not None:
        row["detail levels"], (levels, modes) = median_ms(repeat, codec.detail_levels, rgb, base, q, map)
    out = base
    if levels is not None:
        row["base + detail"], out = median_ms(repeat, codec.with_detail, q, base, levels, modes, map)
    choose = None
    if codec.model.strength_tile(q) is not None:
        row["filter strengths"], choose = median_ms(repeat, codec.filter_strengths, rgb, out, q)
    row["payload encode"], (data, _) = median_ms(repeat, payload.encode, codec.model, q, indices,
                                                 levels, None, modes, choose)
    row["payload decode"], decoded = median_ms(repeat, payload.decode, codec.model, q, data, h, w)
    if codec.postfilter is not None and codec.postfilter.applies(q):
        row["filter"], _ = median_ms(repeat, codec.postfilter, out, q, None, decoded[3])
    return [row.get(s) for s in stages]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default=str(ROOT / "samples" / "coffee.png"))
    parser.add_argument("--qualities", default="1,3,6,9")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    from PIL import Image

    from vqpress.codec.api import Codec
    from vqpress.codec.imageio import to_planes
    from vqpress.codec.parallel import one_blas_thread

    image = Image.open(args.image).convert("RGB").resize((768, 512), Image.LANCZOS)
    rgb = to_planes(image)[0]
    h, w = rgb.shape[:2]
    codec = Codec(device="cpu", threads=args.threads)
    codec.compress(image, codec.qualities[-1])  # warm-up
    stages = ["analysis", "nearest codes", "ECVQ", "synthesis", "detail levels", "base + detail",
              "filter strengths", "payload encode", "payload decode", "filter"]
    print(f"768x512, {args.threads} threads, median of {args.repeat}, milliseconds\n")
    print("| quality | " + " | ".join(stages) + " |\n|---:|" + "---:|" * len(stages))
    # as compress and decompress run them: one BLAS thread, chunked work on the codec's pool
    with one_blas_thread(), ThreadPoolExecutor(codec.workers) as pool:
        for q in (int(x) for x in args.qualities.split(",")):
            print(f"| {q} | " + " | ".join(f"{ms:.0f}" if ms is not None else "-" for ms in
                                          stage_times(codec, args.repeat, rgb, q, pool.map, stages)) + " |")
    macs = transform_macs(codec.model.vqvae_config, h, w)
    indices = codec.symbols(rgb, codec.ladder[-1].stages)  # the synthesis's time does not depend on them
    print()
    for name, fn, arg in (("analysis", codec.transforms.latents, rgb), ("synthesis", codec.pixels, indices)):
        ms, _ = median_ms(args.repeat, fn, *((arg,) if name == "analysis" else (arg, h, w)))
        print(f"{name}: {macs[name] / 1e9:.2f} G multiply-accumulates in {ms:.0f} ms = "
              f"{macs[name] / ms / 1e6:.0f} G/s")


if __name__ == "__main__":
    main()

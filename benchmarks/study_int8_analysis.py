"""Which of the analysis transform's convolutions to run on 8-bit integers: for each choice,
the analysis's time at 768x512, its latent's RMS error relative to the float latent's RMS (on
4 of the photos), and the BD-rate of whole encodes against
the float analysis on held-out training photos.

    python benchmarks/study_int8_analysis.py ../shared/corpus/train [--photos 16] [--calibrate 64]
        [--variants "/2/Conv;/2/Conv,/6/conv1/Conv,/6/conv2/Conv;..."]

Calibration: the centre crops of `--calibrate` photos evenly spread over the folder (as `vqpress
train quantise-analysis` takes them); the test photos are `--photos` others, evenly spread over
the rest. The encodes run at qualities 1-7, 9, 11 and 13 with the default model.
"""

from __future__ import annotations

import argparse

import numpy as np
from bench_codec import timed

DEFAULT_VARIANTS = ";".join([
    "/2/Conv",
    "/2/Conv,/6/conv1/Conv,/6/conv2/Conv",  # shipped (training.quantise.INT8_LAYERS)
    "/2/Conv,/4/Conv",
    "/0/Conv,/1/Conv,/2/Conv,/3/Conv,/4/Conv,/5/Conv,/6/conv1/Conv,/6/conv2/Conv,/7/Conv",  # every one
])
QUALITIES = (1, 2, 3, 4, 5, 6, 7, 9, 11, 13)


def analysis_ms(session, x: np.ndarray, repeat: int = 9) -> float:
    session.run(None, {"x": x})  # warm-up
    return 1000 * timed(repeat, session.run, None, {"x": x})[0]


def rd_curve(codec, images: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(bpp, PSNR) per quality, pooled over the images (total bits, total squared error)."""
    bpp, psnr = [], []
    for q in QUALITIES:
        bits = error = pixels = 0
        for rgb in images:
            data = codec.compress(rgb, q)
            out = np.asarray(codec.decompress(data)).astype(np.float64)
            bits, error, pixels = bits + 8 * len(data), error + np.square(out - rgb).sum(), pixels + rgb.size
        bpp.append(3 * bits / pixels)
        psnr.append(10 * np.log10(255**2 * pixels / error))
    return np.array(bpp), np.array(psnr)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("--photos", type=int, default=16)
    parser.add_argument("--calibrate", type=int, default=64)
    parser.add_argument("--variants", default=DEFAULT_VARIANTS, help="';'-separated lists of ','-separated layers")
    args = parser.parse_args()
    import onnxruntime as ort

    from vqpress.codec.api import Codec
    from vqpress.codec.imageio import image_paths, open_image, to_rgb8
    from vqpress.measure.metrics import bd_rate
    from vqpress.training.data import evenly_spread
    from vqpress.training.data import center_crops
    from vqpress.training.quantise import CROP, quantised_analysis

    paths = image_paths(args.folder)
    calibration = evenly_spread(paths, args.calibrate)
    taken = set(calibration)
    tests = evenly_spread([p for p in paths if p not in taken], args.photos)
    if not tests:
        raise SystemExit(f"{args.folder} has no photos left for testing after {len(calibration)} for calibration")
    crops = center_crops([to_rgb8(open_image(p))[0] for p in calibration], CROP)
    images = [to_rgb8(open_image(p))[0] for p in tests]
    codec = Codec(device="cpu", threads=2, int8_analysis=False)
    x = np.random.default_rng(0).random((1, 3, 512, 768), dtype=np.float32)
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.log_severity_level = 2, 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    reference = rd_curve(codec, images)
    print(f"{len(images)} photos of {args.folder} (calibration: {len(crops)} others), qualities {QUALITIES}\n")
    print("| 8-bit layers | analysis at 768x512 (ms) | latent RMS error | BD-rate against float |")
    print("|---|---:|---:|---:|")
    print(f"| none (float) | {analysis_ms(codec.transforms.analysis_session.session, x):.0f} | 0 | 0 |")
    some = images[:4]
    latents = [codec.transforms.latents(rgb) for rgb in some]
    for variant in args.variants.split(";"):
        session = ort.InferenceSession(quantised_analysis(codec.model, crops, variant.split(",")), options)
        codec.transforms.analysis = lambda x, s=session: s.run(None, {"x": x})[0]  # what the encoder runs
        errors = [np.sqrt(np.mean((codec.transforms.latents(rgb) - z) ** 2) / np.mean(z**2))
                  for rgb, z in zip(some, latents)]
        bd = bd_rate(*reference, *rd_curve(codec, images))
        del codec.transforms.analysis  # the float graph's method again
        print(f"| {variant} | {analysis_ms(session, x):.0f} | {100 * np.mean(errors):.2f}% | {bd:+.2f}% |", flush=True)


if __name__ == "__main__":
    main()

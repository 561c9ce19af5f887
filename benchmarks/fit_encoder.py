"""Choose the encoder's settings on training photos: encoder-only choices, so every variant
makes files the shipped decoder reads.

    python benchmarks/fit_encoder.py ../shared/corpus/train --photos 16 \
        --variants default,rdo=0.15,rdo=0.1+tilt=0.5 -o out/fit-encoder.json

A variant is `default` (the shipped settings) or settings joined by `+`, each `name=value`:
deadzone (`codec.detail.DEADZONE`), rdo (`codec.api.RDO_LAMBDA`), ecvq (`ECVQ_LAMBDA`), tilt
(`RDO_TILT`), price (`codec.modes.MODE_PRICE`), rate (`codec.modes.RATE_LAMBDA`); the others
keep their shipped values. The photos are spread evenly over the sorted corpus (every source is
in) and scaled down to at most 768x512. At every quality, each variant's payload is really
coded (its size plus a 40-byte header is the rate) and the decoder's reconstruction, filter
included, is compared with the photo. Prints each variant's BD-rate (PSNR and MS-SSIM) against
the first one, over all those qualities and over the low and high halves, and per quality the
rate change at equal PSNR on the first variant's local slope.

Earlier records (`docs/results/ablation.md`) write a variant as DEADZONE:RDO_LAMBDA[:ECVQ_LAMBDA
[:MODE_PRICE[:RATE_LAMBDA]]], a missing ECVQ_LAMBDA meaning nearest codes; now `0.25:0.1:0.3:2`
is `deadzone=0.25+rdo=0.1+ecvq=0.3+price=2+tilt=0`, and `+rate=0` for the runs made before
the modes' second choice (RATE_LAMBDA) existed; those runs used `--model rvq-dct-v9`. Earlier
choices, with rvq-dct-v9: RDO_LAMBDA 0.1 -0.71%; with
ECVQ_LAMBDA 0.1 / 0.3 / 1 on top -1.10% / -1.36% / -0.93%. MODE_PRICE 1 instead of 2 moved
qualities 2-13 by -0.52..+0.22%, 3 by -0.13..+0.97%, 4 by -0.19..+2.17%; ECVQ_LAMBDA 0.15 by
-0.16..+0.25%, 0.6 by -0.15..+1.22%. No setting per quality gains more than about half a
percent at any quality, so both stay global.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

from vqpress.codec import api, detail, modes as block_modes
from vqpress.codec.imageio import image_paths, open_image, to_rgb8
from vqpress.measure.metrics import bd_rate, ms_ssim, ms_ssim_db, psnr
from vqpress.training.data import evenly_spread

HEADER_BYTES = 40
MAX_PIXELS = 768 * 512
SETTINGS = {"deadzone": (detail, "DEADZONE"), "rdo": (api, "RDO_LAMBDA"), "ecvq": (api, "ECVQ_LAMBDA"),
            "tilt": (api, "RDO_TILT"), "price": (block_modes, "MODE_PRICE"), "rate": (block_modes, "RATE_LAMBDA")}


def photo(path: Path) -> np.ndarray:
    image = open_image(path).convert("RGB")
    if image.width * image.height > MAX_PIXELS:
        s = (MAX_PIXELS / (image.width * image.height)) ** 0.5
        image = image.resize((max(8, int(image.width * s)), max(8, int(image.height * s))), Image.LANCZOS)
    return to_rgb8(image)[0]


def parse_variant(text: str) -> dict[str, float]:
    """Every setting's value in a variant: the shipped ones, overridden by those it names."""
    values = {name: getattr(module, attr) for name, (module, attr) in SETTINGS.items()}
    for item in [] if text == "default" else text.split("+"):
        name, value = item.split("=")
        if name not in SETTINGS:
            raise SystemExit(f"unknown setting {name!r} in variant {text!r} (known: {', '.join(SETTINGS)})")
        values[name] = float(value)
    return values


def measure(codec: api.Codec, rgb: np.ndarray, variants: dict[str, dict[str, float]]) -> list[dict]:
    """(variant, quality, bpp, psnr, ms_ssim) rows of one photo; the VQ base is made once per
    stage count and ECVQ lambda."""
    h, w = rgb.shape[:2]
    bases, rows = {}, []
    for q in codec.qualities:
        rung = codec.ladder[q - 1]
        for name, values in variants.items():
            for setting, (module, attr) in SETTINGS.items():
                setattr(module, attr, values[setting])
            if (rung.stages, api.ECVQ_LAMBDA) not in bases:
                indices = codec.symbols(rgb, rung.stages, lam=api.ECVQ_LAMBDA)
                bases[rung.stages, api.ECVQ_LAMBDA] = indices, codec.pixels(indices, h, w)
            indices, base = bases[rung.stages, api.ECVQ_LAMBDA]
            levels = modes = None
            if rung.step is not None:
                levels, modes = codec.detail_levels(rgb, base, q)
            out = base if levels is None else codec.with_detail(q, base, levels, modes)
            choose = codec.filter_strengths(rgb, out, q) if codec.model.strength_tile(q) else None
            data, _ = codec.encode_payload(q, indices, levels, modes=modes, strengths=choose)
            if codec.postfilter is not None and codec.postfilter.applies(q):
                out = codec.postfilter(out, q, None, codec.decode_payload(q, data, h, w)[3])
            rows.append({"variant": name, "quality": q, "bpp": (len(data) + HEADER_BYTES) * 8 / (w * h),
                         "psnr": psnr(out, rgb), "ms_ssim": ms_ssim_db(ms_ssim(out, rgb))})
    return rows


def report(rows: list[dict]) -> None:
    """Each variant's BD-rate against the first, on the mean curve over the photos."""
    points = defaultdict(lambda: defaultdict(list))
    for r in rows:
        points[r["variant"]][r["quality"]].append((r["bpp"], r["psnr"], r["ms_ssim"]))
    qualities = sorted(next(iter(points.values())))
    halves = {"all": qualities, "low": qualities[:len(qualities) // 2 + 1],
              "high": qualities[len(qualities) // 2:]}
    mean = {v: {q: np.mean(p[q], axis=0) for q in qualities} for v, p in points.items()}
    first = next(iter(mean))
    print(f"{len(next(iter(points.values()))[qualities[0]])} photos; BD-rate against {first}, PSNR / MS-SSIM")
    for v, curve in mean.items():
        cells = []
        for name, qs in halves.items():
            ref, test = np.array([mean[first][q] for q in qs]), np.array([curve[q] for q in qs])
            cells.append(f"{name} " + " / ".join(f"{bd_rate(ref[:, 0], ref[:, m], test[:, 0], test[:, m]):+.2f}%"
                                                 for m in (1, 2)))
        print(f"  {v:>16}: " + ", ".join(cells))
    print("per quality: rate change at equal PSNR (%), on the first variant's local slope")
    ref = np.array([mean[first][q] for q in qualities])
    slope = np.gradient(ref[:, 1], np.log(ref[:, 0]))  # dB per unit of log rate
    for v, curve in mean.items():
        test = np.array([curve[q] for q in qualities])
        change = np.log(test[:, 0] / ref[:, 0]) - (test[:, 1] - ref[:, 1]) / slope
        print(f"  {v:>16}: " + " ".join(f"{100 * (np.exp(c) - 1):+.2f}" for c in change))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--photos", type=int, default=16)
    parser.add_argument("--shard", default="0/1", help="K/N: every Nth of the photos from the Kth (parallel runs)")
    parser.add_argument("--model", default=api.DEFAULT_MODEL, help="a shipped model, or a codec file's path")
    parser.add_argument("--variants", default="default,rdo=0",
                        help="comma-separated variants (see above); the first is the reference")
    parser.add_argument("-o", "--out", type=Path, default=Path("out/fit-encoder.json"))
    parser.add_argument("--report", action="store_true", help="only report the rows already in --out (a glob: shards' files together)")
    args = parser.parse_args()
    if args.report:
        return report([r for f in args.out.parent.glob(args.out.name) for r in json.loads(f.read_text())])
    variants = {v: parse_variant(v) for v in args.variants.split(",")}
    file = args.model.endswith(".safetensors")
    codec = api.Codec(path=args.model, threads=1) if file else api.Codec(args.model, threads=1)
    rows = []
    k, n = (int(x) for x in args.shard.split("/"))
    for path in evenly_spread(image_paths(args.folder), args.photos)[k::n]:
        rows += measure(codec, photo(path), variants)
        print(path.name, flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(rows))
    report(rows)


if __name__ == "__main__":
    main()

"""Restoration benchmark: latent MAP against the classical methods a user would reach for.

    python benchmarks/bench_restore.py DIR -o OUT [--limit N] [--steps 40] [--tasks inpaint,denoise,sr,deblur]
                                                  [--size WxH] [--no-ablation] [--compare-refiner]
                                                  [--compare-ensemble] [--settings 'random 50%,random 90%']

For each image of DIR (deterministic damage, seeded per image): inpainting with thin strokes,
thick strokes, a 128x128 box and 50/90% random missing pixels (OpenCV Telea and Navier-Stokes,
scikit-image biharmonic); denoising at sigma 15/25/50 (scikit-image non-local means and TV);
super-resolution x2/x4 (bicubic, Lanczos); Gaussian deblurring at sigma 2 (Richardson-Lucy,
Wiener). Ablation rows run latent MAP's last step (`restore.local_wiener`, with the data fit
that ends super-resolution and deblurring) on the best classical output instead (biharmonic,
NL-means, Lanczos, Wiener): their gap to latent MAP is what the learned prior adds
(`--no-ablation` leaves them out: they take about a third of the time); `--compare-refiner`
adds latent MAP without its learned last step, to show what the refiner adds;
`--compare-ensemble` adds it with the refiner run once, on the image as given (no
self-ensemble); `--settings` runs only the settings named (as in the tables). Writes
OUT/restore.csv (per image), OUT/restore.md (means), OUT/<task>.png side-by-side figures and
OUT/<task>-crops.png, their most detailed 128-px windows at 2x (PSNR of the window).
OpenCV is optional: pip install -e ".[bench]".
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from PIL import Image

from vqpress import restore
from vqpress.codec.imageio import image_paths, open_image, to_rgb8
from vqpress.measure.metrics import ms_ssim, psnr
from vqpress.restore import local_wiener, refine
from vqpress.restore.damage import strokes
from vqpress.restore.operators import Downsample, gaussian_kernel


def masks(shape, seed):
    rng = np.random.default_rng(seed)
    box = np.zeros(shape, bool)
    side = min(128, min(shape) // 2)  # 128x128 on real photos; smaller on tiny test images
    y, x = (shape[0] - side) // 2, (shape[1] - side) // 2
    box[y:y + side, x:x + side] = True
    return {"thin strokes": strokes(shape, 12, 4, np.random.default_rng(seed)),
            "thick strokes": strokes(shape, 12, 16, np.random.default_rng(seed)),
            "box 128": box, "random 50%": rng.random(shape) < 0.5,
            "random 90%": rng.random(shape) < 0.9}


def classical_inpaint(rgb, missing):
    out = {}
    try:
        import cv2

        m = missing.astype(np.uint8) * 255
        out["OpenCV Telea"] = timed(cv2.inpaint, rgb, m, 3, cv2.INPAINT_TELEA)
        out["OpenCV Navier-Stokes"] = timed(cv2.inpaint, rgb, m, 3, cv2.INPAINT_NS)
    except ImportError:
        pass
    from skimage.restoration import inpaint_biharmonic

    out["skimage biharmonic"] = timed(inpaint_biharmonic, rgb, missing, channel_axis=-1)
    return out


def classical_denoise(noisy, sigma):
    from skimage.restoration import denoise_nl_means, denoise_tv_chambolle

    f = noisy / 255.0
    s = sigma / 255  # every method is told the true noise level
    nlm = timed(denoise_nl_means, f, h=0.8 * s, sigma=s, fast_mode=True, patch_size=5,
                patch_distance=6, channel_axis=-1)
    tv = timed(denoise_tv_chambolle, f, weight=sigma / 255 * 0.8, channel_axis=-1)
    return {"skimage NL-means": nlm, "skimage TV": tv}


def tensor(a) -> torch.Tensor:
    a = np.asarray(a, np.float32) / (255 if np.asarray(a).dtype == np.uint8 else 1)
    return torch.tensor(a.clip(0, 1)).permute(2, 0, 1)[None]


def local_wiener_ablation(classical, step):
    """Not a baseline but an ablation: latent MAP's last step (`restore.local_wiener`) run on a
    classical method's output instead of on the latent MAP estimate. Its gap to latent MAP is
    what the learned prior adds. Time: the classical method plus the step."""
    pilot, classical_seconds = classical
    out, seconds = timed(step, tensor(pilot))
    return out[0].transpose(1, 2, 0), classical_seconds + seconds


def classical_sr(low, scale):
    size = (low.shape[1] * scale, low.shape[0] * scale)
    im = Image.fromarray(low)
    return {"bicubic": timed(im.resize, size, Image.BICUBIC),
            "Lanczos": timed(im.resize, size, Image.LANCZOS)}


def classical_deblur(blurred, sigma):
    """Richardson-Lucy and Wiener with the true PSF. Both assume circular or zero boundaries, so
    the image is reflect-padded first and cropped after; the settings (100 RL iterations, Wiener
    balance 1e-3) were picked on scikit-image's astronaut, not on the benchmark photos."""
    from skimage.restoration import richardson_lucy, wiener

    psf = gaussian_kernel(sigma).numpy()
    psf /= psf.sum()
    p = 4 * psf.shape[0]
    f = np.pad(blurred / 255.0, ((p, p), (p, p), (0, 0)), mode="reflect")
    def per_channel(method, **kwargs):
        return np.stack([method(f[..., c], psf, **kwargs) for c in range(3)], -1)[p:-p, p:-p]

    return {"Richardson-Lucy": timed(per_channel, richardson_lucy, num_iter=100),
            "Wiener": timed(per_channel, wiener, balance=1e-3)}


def as8(x):
    x = np.asarray(x)
    return x if x.dtype == np.uint8 else np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)


def blur(rgb, sigma):
    from vqpress.restore.operators import gaussian_blur

    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
    return as8(gaussian_blur(sigma)(x)[0].permute(1, 2, 0).numpy())


def timed(fn, *args, **kwargs):
    """(output as an array, seconds) of one restoration."""
    t0 = time.perf_counter()
    out = np.asarray(fn(*args, **kwargs))
    return out, time.perf_counter() - t0


def size_arg(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: use WxH, e.g. 768x512") from None
    if w < 16 or h < 16:
        raise argparse.ArgumentTypeError(f"{text!r}: sides must be at least 16 px")
    return w, h


def wanted(args, setting: str) -> bool:
    return not args.settings or setting in args.settings.split(",")


def inpaint_cases(rgb, k, args):
    for name, missing in masks(rgb.shape[:2], k).items():
        if not wanted(args, name):
            continue
        damaged = np.where(missing[..., None], 255, rgb).astype(np.uint8)
        results = classical_inpaint(damaged, missing)
        known = torch.from_numpy(~missing)[None, None].float()
        if args.ablation:
            results["ablation: biharmonic + local Wiener"] = local_wiener_ablation(
                results["skimage biharmonic"],
                lambda pilot, y=tensor(damaged), k=known: local_wiener.inpaint(y, k, pilot))
        ours(results, args, lambda steps, d=damaged, m=missing, **kw: restore.inpaint(d, m, steps=steps, device="cpu", **kw))
        yield "inpaint", name, damaged, results, missing


def denoise_cases(rgb, k, args):
    for sigma in (15, 25, 50):
        if not wanted(args, f"sigma {sigma}"):
            continue
        noisy = as8((rgb + np.random.default_rng(k).normal(0, sigma, rgb.shape)) / 255)
        results = classical_denoise(noisy, sigma)
        if args.ablation:
            results["ablation: NL-means + local Wiener"] = local_wiener_ablation(
                results["skimage NL-means"],
                lambda pilot, y=tensor(noisy), s=sigma: local_wiener.denoise(y, pilot, s / 255))
        ours(results, args, lambda steps, y=noisy, s=sigma, **kw: restore.restore(
            y, "denoise", sigma=s, steps=steps, device="cpu", **kw))
        yield "denoise", f"sigma {sigma}", noisy, results, None


def sr_cases(rgb, k, args):
    for scale in (2, 4):
        if not wanted(args, f"x{scale}"):
            continue
        h, w = rgb.shape[0] // scale * scale, rgb.shape[1] // scale * scale
        hr = rgb[:h, :w]
        low = np.asarray(Image.fromarray(hr).resize((w // scale, h // scale), Image.BICUBIC))
        results = classical_sr(low, scale)
        if args.ablation:
            y, op = tensor(low), Downsample(scale)
            results["ablation: Lanczos + local Wiener"] = local_wiener_ablation(
                results["Lanczos"], lambda pilot: local_wiener.fit_downscaled(
                    y, op, local_wiener.super_resolve(y, op, pilot, 1 / 255), 1 / 255))
        ours(results, args, lambda steps, y=low, s=scale, **kw: restore.restore(
            y, "sr", scale=s, steps=steps, device="cpu", **kw))
        yield "sr", f"x{scale}", low, results, hr


def deblur_cases(rgb, k, args):
    if not wanted(args, "gaussian 2"):
        return
    blurred = blur(rgb, 2.0)
    results = classical_deblur(blurred, 2.0)
    if args.ablation:
        y, kernel = tensor(blurred), gaussian_kernel(2.0)
        results["ablation: Wiener + local Wiener"] = local_wiener_ablation(
            results["Wiener"], lambda pilot: local_wiener.fit_blurred(
                y, kernel, local_wiener.deblur(y, kernel, pilot, 1 / 255), 1 / 255))
    ours(results, args, lambda steps, y=blurred, **kw: restore.restore(
        y, "deblur", blur_sigma=2.0, steps=steps, device="cpu", **kw))
    yield "deblur", "gaussian 2", blurred, results, None


CASES = {"inpaint": inpaint_cases, "denoise": denoise_cases, "sr": sr_cases, "deblur": deblur_cases}


def ours(results, args, run):
    """latent MAP with the default (or --steps) steps, and with --compare-steps; without the
    refiner with --compare-refiner, and with the refiner's self-ensemble off with
    --compare-ensemble."""
    results["latent MAP"] = timed(run, args.steps)
    if args.compare_refiner:
        results["latent MAP, no refiner"] = timed(run, args.steps, refine=False)
    if args.compare_ensemble:
        with mock.patch.object(refine, "ENSEMBLE", 1):
            results["latent MAP, refiner without self-ensemble"] = timed(run, args.steps)
    if args.compare_steps is not None:
        results[f"latent MAP, {args.compare_steps} steps"] = timed(run, args.compare_steps)


def score(name, rgb, case) -> list[dict]:
    """Rows of one case: every method's PSNR, MS-SSIM and time."""
    task, setting, _, results, extra = case
    truth = extra if task == "sr" else rgb
    rows = []
    for method, (o, seconds) in results.items():
        o = as8(o)
        row = {"image": name, "task": task, "setting": setting, "method": method,
               "psnr": psnr(truth, o), "ms_ssim": ms_ssim(truth, o), "seconds": seconds}
        if task == "inpaint":
            row["psnr_missing"] = psnr(truth[extra], o[extra])
        rows.append(row)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("-o", "--output", required=True)
    parser.add_argument("--limit", type=int, default=0, help="only the first N images")
    parser.add_argument("--steps", type=int, help="gradient steps [default: each task's, restore.TASKS]")
    parser.add_argument("--compare-steps", type=int, metavar="N",
                        help="also run latent MAP with N steps, as its own row")
    parser.add_argument("--compare-refiner", action="store_true",
                        help="also run latent MAP without its learned last step (the refiner), as its own row")
    parser.add_argument("--compare-ensemble", action="store_true",
                        help="also run latent MAP with the refiner on the image as given only (no "
                             "self-ensemble), as its own row")
    parser.add_argument("--tasks", default="inpaint,denoise,sr,deblur")
    parser.add_argument("--settings", help="only these settings, comma-separated (e.g. 'random 50%%,x4')")
    parser.add_argument("--size", type=size_arg,
                        help="resize every photo to WxH first (e.g. 768x512, for timing)")
    parser.add_argument("--no-ablation", dest="ablation", action="store_false",
                        help="leave out the ablation rows (classical output + local Wiener)")
    args = parser.parse_args()
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    rows, figures = [], {}
    for k, path in enumerate(image_paths(args.folder)[: args.limit or None]):
        rgb = to_rgb8(open_image(path))[0]
        if args.size:
            rgb = np.asarray(Image.fromarray(rgb).resize(args.size, Image.LANCZOS))
        for task in args.tasks.split(","):
            for case in CASES[task](rgb, k, args):
                rows += score(path.name, rgb, case)
                if k == 0:  # the figures show the first image only
                    _, setting, damaged, results, extra = case
                    figures.setdefault(task, []).append((setting, damaged, extra if task == "sr" else rgb, results,
                                                         extra if task == "inpaint" else None))
        if k == 0:
            write_figures(figures, out)
        write_table(rows, out)  # after every image: a long run stopped early keeps its rows


def write_table(rows, out):
    keys = ["image", "task", "setting", "method", "psnr", "psnr_missing", "ms_ssim", "seconds"]
    with open(out / "restore.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, keys)
        writer.writeheader()
        writer.writerows(rows)
    lines = ["| task | setting | method | PSNR | PSNR missing | MS-SSIM | s/image |", "|---|---|---|---:|---:|---:|---:|"]
    groups = dict.fromkeys((r["task"], r["setting"], r["method"]) for r in rows)
    for task, setting, method in groups:
        sel = [r for r in rows if (r["task"], r["setting"], r["method"]) == (task, setting, method)]
        def mean(key, sel=sel):
            return np.mean([r[key] for r in sel]) if sel[0].get(key) is not None else float("nan")
        lines.append(f"| {task} | {setting} | {method} | {mean('psnr'):.2f} | {mean('psnr_missing'):.2f} | "
                     f"{mean('ms_ssim'):.4f} | {mean('seconds'):.2f} |")
    (out / "restore.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def write_figures(figures, out, side=128):
    """OUT/<task>.png, whole images side by side, and OUT/<task>-crops.png, the most detailed
    side-px window of each (for inpainting, among those with the most missing pixels) at 2 screen
    pixels per pixel (nearest neighbour), where sharpening and artefacts show."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for task, cases in figures.items():
        methods = list(cases[0][3])
        for name, crop in ((task, False), (f"{task}-crops", True)):
            columns = 2 + len(methods)
            fig, axes = plt.subplots(len(cases), columns, figsize=(3 * columns, 3.4 * len(cases)), squeeze=False)
            for row, (setting, damaged, truth, results, missing) in zip(axes, cases):
                window = (slice(None), slice(None))
                if crop:
                    y, x = busiest_window(truth, side, missing)
                    window = (slice(y, y + side), slice(x, x + side))
                scale = truth.shape[0] // damaged.shape[0]  # super-resolution's input is smaller
                shown = damaged.repeat(scale, 0).repeat(scale, 1)[window] if crop else damaged
                panels = [("input, " + setting, shown, None), ("original", truth[window], None)] + [
                    (m, as8(results[m][0])[window], truth[window]) for m in methods]
                for ax, (title, img, reference) in zip(row, panels):
                    ax.imshow(img, interpolation="nearest")
                    ax.set_title(title if reference is None else f"{title}\n{psnr(reference, img):.2f} dB", fontsize=8)
                    ax.axis("off")
            fig.tight_layout()
            dpi = side * 2 / 3 if crop else 90  # a crop panel is 3 inches: 2 screen pixels per pixel
            fig.savefig(out / f"{name}.png", dpi=dpi, bbox_inches="tight")
            plt.close(fig)


def busiest_window(rgb: np.ndarray, side: int, missing: np.ndarray | None = None) -> tuple[int, int]:
    """Top-left corner of the side x side window (on a side/2 grid) with the most detail: the
    largest sum of absolute differences between neighbouring pixels; with a mask of missing
    pixels, among the windows holding at least half the most any window holds (so a crop of a
    box shows the box)."""
    grey = rgb.astype(np.float32).mean(2)
    detail = np.abs(np.diff(grey, axis=0))[:, :-1] + np.abs(np.diff(grey, axis=1))[:-1]
    step = side // 2
    corners = [(y, x) for y in range(0, detail.shape[0] - side + 1, step)
               for x in range(0, detail.shape[1] - side + 1, step)]
    if missing is not None and corners:
        holes = {c: missing[c[0]:c[0] + side, c[1]:c[1] + side].sum() for c in corners}
        corners = [c for c in corners if 2 * holes[c] >= max(holes.values())]
    return max(corners, key=lambda c: detail[c[0]:c[0] + side, c[1]:c[1] + side].sum(), default=(0, 0))


if __name__ == "__main__":
    main()

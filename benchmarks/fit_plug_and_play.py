"""Choose the plug-and-play noise levels that end inpainting, deblurring and super-resolution
(`restore.local_wiener`: INPAINT_LEVELS, DEBLUR_LEVELS, SR_LEVELS) on training photos, so the
validation benchmark stays a held-out measurement.

    python benchmarks/fit_plug_and_play.py ../shared/corpus/train [--photos 20] [--threads 1]
                                           [--tasks inpaint,deblur,sr]

Takes `--photos` photos of at least 512x384 spread over the folder (portrait ones transposed),
centre-cropped to 512x384; damages them as bench_restore does (thin and thick strokes, a 128x128
box, 50% and 90% random missing pixels, seeded; a Gaussian blur of std 2 rounded to 8 bits;
Pillow's bicubic downscaling by 2 and 4, with Lanczos upscaling for comparison); restores them
by latent MAP with the step switched off (the pilot), then runs the step with every schedule
and prints the mean PSNR (inpainting: over the missing pixels; deblurring and super-resolution
also after the refiner, which was trained on the shipped schedules' estimates) and the step's
mean seconds per schedule: on the turning stride-4 grids (`local_wiener.PNP_GRIDS`), on
side-by-side 8-pixel windows at each of their 64 shifts in turn (0.16's inpainting), on
inpainting's side-by-side windows 16 and 8 pixels a side in turn (`local_wiener.INPAINT_GRIDS`),
without and with the 32-pixel windows far from known pixels (`local_wiener.FAR_GRIDS`), and, for
comparison, on the dense stride-2 grid of earlier versions. Pass --threads 1 for the timings the
module's comments quote (earlier versions' comments quote --photos 6).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from vqpress import restore
from vqpress.codec.imageio import image_paths, open_image, to_rgb8
from vqpress.measure.metrics import psnr_of_mse
from vqpress.nets.device import to_uint8
from vqpress.restore import local_wiener
from vqpress.restore.damage import as_8bit
from vqpress.restore.operators import Downsample, gaussian_blur, gaussian_kernel
from vqpress.restore.refine import condition, observation, refined, refiner_for

sys.path.insert(0, str(Path(__file__).parent))
from bench_restore import masks  # noqa: E402

INPAINT_SETTINGS = ("thin strokes", "thick strokes", "box 128", "random 50%", "random 90%")
# (noise levels, grids[, inpainting's far grids]): the grids of earlier versions (dense, turning
# stride 4, side by side 8 px), then inpainting's
DENSE, TURNING, INPAINT = (local_wiener.DENSE,), local_wiener.PNP_GRIDS, local_wiener.INPAINT_GRIDS
FAR = local_wiener.FAR_GRIDS
SIDE_BY_SIDE = tuple(local_wiener.Grid(8, shift, 8) for shift in local_wiener.side_by_side_shifts(8))
GRID_NAMES = {DENSE: "dense", TURNING: "turning, stride 4", SIDE_BY_SIDE: "side by side, 8 px",
              INPAINT: "side by side, 16 and 8 px"}
INPAINT_SCHEDULES = (((40, 2, 48), TURNING, ()), ((40, 1, 128), SIDE_BY_SIDE, ()), ((40, 1, 256), SIDE_BY_SIDE, ()),
                     ((40, 1, 128), INPAINT, ()), ((40, 1, 256), INPAINT, ()), ((40, 1, 256), INPAINT, FAR))
DEBLUR_SCHEDULES = (((40, 1, 32), DENSE), ((40, 1, 8), TURNING), ((40, 1, 16), TURNING),
                    ((20, 1, 16), TURNING), ((40, 1, 32), TURNING), ((40, 1, 128), SIDE_BY_SIDE))
SR_SETTINGS = ("x2", "x4")
SR_SCHEDULES = (((40, 2, 16), TURNING), ((40, 1, 32), TURNING), ((40, 2, 32), TURNING), ((40, 2, 48), TURNING),
                ((40, 2, 128), SIDE_BY_SIDE))
CROP = (384, 512)


def tensor(rgb: np.ndarray) -> torch.Tensor:
    return torch.tensor(rgb / 255, dtype=torch.float32).permute(2, 0, 1)[None]


def psnr(a: torch.Tensor, b: torch.Tensor, where: torch.Tensor | None = None) -> float:
    err = (a.clamp(0, 1).mul(255).round() - b.mul(255).round()).square().mean(1)
    return psnr_of_mse(float(err[where].mean() if where is not None else err.mean()))


def crops(folder: str, count: int) -> list[np.ndarray]:
    def big(path):
        with Image.open(path) as im:
            return min(im.size) >= CROP[0] and max(im.size) >= CROP[1]

    paths = [p for p in image_paths(folder) if big(p)]
    out = []
    for i in np.linspace(0, len(paths) - 1, count).round().astype(int):
        rgb = to_rgb8(open_image(paths[i]))[0]
        if rgb.shape[0] > rgb.shape[1]:
            rgb = rgb.transpose(1, 0, 2)
        h, w = rgb.shape[:2]
        top, left = (h - CROP[0]) // 2, (w - CROP[1]) // 2
        out.append(np.ascontiguousarray(rgb[top:top + CROP[0], left:left + CROP[1]]))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("--photos", type=int, default=20)
    parser.add_argument("--tasks", default="inpaint,deblur,sr", help="comma-separated: inpaint, deblur, sr")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    tasks = args.tasks.split(",")
    scores, seconds = {}, {}  # (setting, schedule) -> PSNRs, times; schedule None = the pilot
    refiners = {task: refiner_for(task) for task in ("deblur", "sr")}

    def record(key, step, score, refine=None):
        """Run the step (timed) and score its output under key; with refine (task, damage,
        observation), also the refiner's output of it, under (setting + " + refiner", schedule)."""
        t0 = time.perf_counter()
        out = step()
        seconds.setdefault(key, []).append(time.perf_counter() - t0)
        scores.setdefault(key, []).append(score(out))
        if refine is not None:
            task, damage, observed = refine
            better = refined(refiners[task], out, observed, torch.ones_like(out[:, :1]), condition(task, damage))
            scores.setdefault((key[0] + " + refiner", key[1]), []).append(score(better))

    # without their last step, restore.inpaint / restore.restore give latent MAP alone
    for j, rgb in enumerate(tqdm(crops(args.folder, args.photos), desc="photos")):
        clean = tensor(rgb)
        for name, missing in masks(rgb.shape[:2], 100 + j).items():
            if name not in INPAINT_SETTINGS or "inpaint" not in tasks:
                continue
            pilot = tensor(np.asarray(restore.inpaint(rgb, missing, device="cpu", last_step=False)))
            known = torch.from_numpy(~missing)[None, None].float()
            where = torch.from_numpy(missing)[None]
            scores.setdefault((name, None), []).append(psnr(pilot, clean, where))
            for schedule in INPAINT_SCHEDULES:
                levels, grids, far = schedule
                record((name, schedule),
                       lambda: local_wiener.inpaint(clean * known, known, pilot, levels, grids=grids, far_grids=far),
                       lambda out: psnr(out, clean, where))
        if "deblur" in tasks:
            blurred = as_8bit(gaussian_blur(2.0)(clean))
            as8 = to_uint8(blurred[0])
            pilot = tensor(np.asarray(restore.restore(as8, "deblur", blur_sigma=2.0, device="cpu", last_step=False)))
            scores.setdefault(("deblur", None), []).append(psnr(pilot, clean))
            for levels, grids in DEBLUR_SCHEDULES:
                record(("deblur", (levels, grids)),
                       lambda: local_wiener.deblur(blurred, gaussian_kernel(2.0), pilot, 1 / 255, levels, grids=grids),
                       lambda out: psnr(out, clean), ("deblur", {"blur": 2.0}, blurred))
        for scale in (2, 4) if "sr" in tasks else ():
            small = Image.fromarray(rgb).resize((CROP[1] // scale, CROP[0] // scale), Image.BICUBIC)
            pilot = tensor(np.asarray(restore.restore(small, "sr", scale=scale, device="cpu", last_step=False)))
            lanczos = tensor(np.asarray(small.resize(CROP[::-1], Image.LANCZOS)))
            scores.setdefault((f"x{scale}", "Lanczos"), []).append(psnr(lanczos, clean))
            scores.setdefault((f"x{scale}", None), []).append(psnr(pilot, clean))
            y = tensor(np.asarray(small))
            observed = observation(y, None, scale)  # what the refiner sees: the bicubic upscale
            for levels, grids in SR_SCHEDULES:
                record((f"x{scale}", (levels, grids)),
                       lambda: local_wiener.super_resolve(y, Downsample(scale), pilot, 1 / 255, levels, grids=grids),
                       lambda out: psnr(out, clean), ("sr", {"scale": scale}, observed))
    print(f"mean PSNR (dB) over {args.photos} training crops of {CROP[1]}x{CROP[0]} "
          "(inpainting: over the missing pixels)\n")
    for task, settings, schedules in (("inpaint", INPAINT_SETTINGS, INPAINT_SCHEDULES),
                                      ("deblur", ("deblur", "deblur + refiner"), DEBLUR_SCHEDULES),
                                      ("sr", (*SR_SETTINGS, *(s + " + refiner" for s in SR_SETTINGS)),
                                       ("Lanczos", *SR_SCHEDULES))):
        if task not in tasks:
            continue
        print(f"| {task}: levels (first, last, count), grid | " + " | ".join(settings) + " | mean | seconds |")
        print("|---|" + "---:|" * (len(settings) + 2))
        for schedule in (None, *schedules):  # the mean and seconds are those of the step alone
            means = {s: np.mean(scores[s, schedule]) for s in settings if (s, schedule) in scores}
            alone = [s for s in means if not s.endswith("refiner")]
            if schedule is None or schedule == "Lanczos":
                label, time_taken = schedule or "pilot", ""
            else:
                far = len(schedule) > 2 and schedule[2]  # inpainting's far grids
                label = f"{schedule[0]}, {GRID_NAMES[schedule[1]]}" + (", 32 px far from known pixels" if far else "")
                time_taken = f"{np.mean([seconds[s, schedule] for s in alone]):.2f}"
            print(f"| {label} | " + " | ".join(f"{means[s]:.2f}" if s in means else "-" for s in settings)
                  + f" | {np.mean([means[s] for s in alone]):.2f} | {time_taken} |")
        print()


if __name__ == "__main__":
    main()

"""Rate-distortion study of several codecs on a folder of images.

For every codec, quality and image: a real encode to bytes and a real decode, bpp from the
byte count (container headers included), PSNR (RGB, 8-bit), MS-SSIM and wall times. Writes to
the output folder:

* `<codec>.json` per codec in CompressAI's results layout (`compressai.utils.plot` reads it),
* `per_image.csv`, `bd_rate.csv` / `bd_rate.md` (every codec against every other),
* `rd.png` (PSNR and MS-SSIM against bpp) and `crops.png` (all codecs near 0.25 bpp).
"""

from __future__ import annotations

import csv
import json
import math
import re
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from vqpress.codec.errors import VQPressError
from vqpress.codec.imageio import image_paths, make_folder, open_image, to_rgb8

from .baselines import RDCodec
from .metrics import bd_rate, ms_ssim, ms_ssim_db, points_in_overlap, psnr

FIELDS = ["codec", "quality", "image", "width", "height", "bytes", "bpp", "psnr", "ms_ssim",
          "encoding_time", "decoding_time"]


def measure(codecs: list[RDCodec], grids: dict[str, list], folder: Path,
            earlier: dict | None = None) -> list[dict]:
    """A row per codec, quality and image; `earlier` (`reusable`) rows are taken, not remeasured."""
    images = [(p.name, to_rgb8(open_image(p))[0]) for p in image_paths(folder)]
    jobs = [(c, q) for c in codecs for q in grids.get(c.name, c.qualities)]
    earlier = earlier or {}
    rows = []
    with tqdm(total=len(jobs) * len(images), desc="rate-distortion", unit="encode") as bar:
        for codec, quality in jobs:
            for name, rgb in images:
                key = (codec.description, float(quality), name, rgb.shape[1], rgb.shape[0])
                if key in earlier:
                    rows.append(earlier[key])
                    bar.update(1)
                    continue
                bar.set_postfix_str(f"{codec.name} q={quality}")
                t0 = time.perf_counter()
                data = codec.encode(rgb, quality)
                t1 = time.perf_counter()
                out = codec.decode(data)
                t2 = time.perf_counter()
                if out.shape != rgb.shape:
                    raise RuntimeError(f"{codec.name} changed the size of {name}")
                h, w = rgb.shape[:2]
                rows.append({"codec": codec.name, "quality": quality, "image": name, "width": w,
                             "height": h, "bytes": len(data), "bpp": len(data) * 8 / (h * w),
                             "psnr": psnr(rgb, out), "ms_ssim": ms_ssim(rgb, out),
                             "encoding_time": t1 - t0, "decoding_time": t2 - t1})
                bar.update(1)
    return rows


def read_rows(folder: Path) -> list[dict]:
    """The rows of an earlier run's `per_image.csv`, typed as `measure` makes them."""
    rows = []
    try:
        with open(folder / "per_image.csv", newline="") as f:
            for r in csv.DictReader(f):
                row = {k: (r[k] if k in ("codec", "image") else float(r[k])) for k in FIELDS}
                for k in ("width", "height", "bytes"):
                    row[k] = int(row[k])
                if row["quality"].is_integer():
                    row["quality"] = int(row["quality"])
                rows.append(row)
    except (KeyError, ValueError, TypeError, OverflowError, UnicodeDecodeError, csv.Error) as e:
        raise VQPressError(f"{folder / 'per_image.csv'} is not a vqpress rd table ({type(e).__name__}: {e})") from None
    return rows


def reusable(folder: Path) -> dict:
    """The rows of an earlier run's output folder, keyed by what must match for a row to be
    reused: the codec's description (name, library version, settings, model id), the quality,
    and the image's name and size."""
    descriptions = {}
    for path in folder.glob("*.json"):
        try:
            entry = json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError, OSError) as e:  # JSONDecodeError is a ValueError
            raise VQPressError(f"{path} is not a vqpress rd result ({type(e).__name__}: {e})") from None
        if isinstance(entry, dict) and isinstance(entry.get("name"), str) and "description" in entry:
            descriptions[entry["name"]] = entry["description"]
    return {(descriptions[r["codec"]], float(r["quality"]), r["image"], r["width"], r["height"]): r
            for r in read_rows(folder) if r["codec"] in descriptions}


def curves(rows: list[dict]) -> dict[str, dict]:
    """Per codec, the mean of each metric over the images at each quality, sorted by bpp."""
    out = {}
    for codec in dict.fromkeys(r["codec"] for r in rows):
        points = []
        for quality in dict.fromkeys(r["quality"] for r in rows if r["codec"] == codec):
            sel = [r for r in rows if r["codec"] == codec and r["quality"] == quality]
            points.append({k: float(np.mean([r[k] for r in sel])) for k in
                           ("bpp", "psnr", "ms_ssim", "encoding_time", "decoding_time")}
                          | {"quality": quality})
        points.sort(key=lambda p: p["bpp"])
        out[codec] = {k: [p[k] for p in points] for k in points[0]}
    return out


def compressai_json(name: str, description: str, curve: dict) -> dict:
    return {"name": name, "description": description,
            "results": {"quality": curve["quality"], "bpp": curve["bpp"],
                        "psnr-rgb": curve["psnr"], "ms-ssim-rgb": curve["ms_ssim"],
                        "encoding_time": curve["encoding_time"],
                        "decoding_time": curve["decoding_time"]}}


def bd_table(curve: dict[str, dict]) -> list[dict]:
    """BD-rate (%) of every codec (test) against every other (reference)."""
    rows = []
    for ref, a in curve.items():
        for test, b in curve.items():
            if ref != test:
                n_test, n_ref = points_in_overlap(b["bpp"], b["psnr"], a["bpp"], a["psnr"])
                rows.append({"test": test, "reference": ref, "points_test": n_test, "points_ref": n_ref,
                             "bd_rate_psnr": bd_rate(a["bpp"], a["psnr"], b["bpp"], b["psnr"]),
                             "bd_rate_ms_ssim": bd_rate(a["bpp"], [ms_ssim_db(v) for v in a["ms_ssim"]],
                                                        b["bpp"], [ms_ssim_db(v) for v in b["ms_ssim"]])})
    return rows


def slug(name: str) -> str:
    """The file stem of a codec's JSON (e.g. "JPEG XL" -> jpeg_xl)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_").lower()


def plot_rd(curve: dict[str, dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    for name, c in curve.items():
        style = {"marker": "o", "ms": 3, "lw": 2.2 if name == "vqpress" else 1.2}
        axes[0].plot(c["bpp"], c["psnr"], label=name, **style)
        axes[1].plot(c["bpp"], [ms_ssim_db(v) for v in c["ms_ssim"]], label=name, **style)
    for ax, label in zip(axes, ["PSNR (RGB) [dB]", "MS-SSIM [dB]  (-10 log10(1 - MS-SSIM))"]):
        ax.set_xlabel("bits per pixel (file bytes x 8 / pixels)")
        ax.set_ylabel(label)
        ax.set_xlim(0, min(2.0, max(max(c["bpp"]) for c in curve.values())))
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_crops(codecs: list[RDCodec], rows: list[dict], folder: Path, path: Path,
               target_bpp: float = 0.25, crop: int = 224) -> None:
    """The first image's centre crop, as each codec renders it nearest to target_bpp."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    first = image_paths(folder)[0]
    rgb = to_rgb8(open_image(first))[0]
    h, w = rgb.shape[:2]
    c = min(crop, h, w)
    y, x = (h - c) // 2, (w - c) // 2
    panels = [("original", rgb, "")]
    for codec in codecs:
        sel = [r for r in rows if r["codec"] == codec.name and r["image"] == first.name]
        best = min(sel, key=lambda r: abs(math.log(r["bpp"] / target_bpp)))
        out = codec.decode(codec.encode(rgb, best["quality"]))
        panels.append((codec.name, out, f"{best['bpp']:.3f} bpp, {best['psnr']:.2f} dB"))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.6))
    for ax, (name, img, note) in zip(np.atleast_1d(axes), panels):
        ax.imshow(img[y:y + c, x:x + c], interpolation="nearest")
        ax.set_title(f"{name}\n{note}", fontsize=9)
        ax.axis("off")
    fig.suptitle(f"{first.name}, centre {c}x{c} crop, each codec at its quality nearest {target_bpp} bpp")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def prepare(folder: Path, out: Path, reuse: Path | None = None, force: bool = False) -> dict | None:
    """Check where a run on the images in `folder` may write, and make `out` ready: refused
    inside the image folder (its plots would be measured as images next time), or when it
    holds files (unless force: then an earlier run's results there are removed). Returns the
    rows of `reuse`, an earlier run's folder (`reusable`), read before anything is written."""
    if reuse is not None and not (reuse / "per_image.csv").is_file():
        raise VQPressError(f"--reuse {reuse}: not the output folder of a vqpress rd run (no per_image.csv)")
    if out.resolve() == folder.resolve() or folder.resolve() in out.resolve().parents:
        raise VQPressError(f"{out}: the output folder must not be inside the image folder "
                           "(its plots would be measured as images next time)")
    if reuse is not None and reuse.resolve() == out.resolve():
        raise VQPressError("--reuse and -o must be different folders (the new results replace the old)")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise VQPressError(f"{out} holds files already (use --force to write there, or choose another -o)")
    earlier = reusable(reuse) if reuse is not None else None
    if out.is_dir():
        _remove_results(out)  # an earlier run's codecs that this one does not measure
    make_folder(out)
    return earlier


def _remove_results(out: Path) -> None:
    """Delete what `run` writes from a folder: its tables, plots and per-codec JSON files
    (JSON files in the CompressAI layout only; nothing else there is touched)."""
    for name in ("per_image.csv", "bd_rate.csv", "bd_rate.md", "rd.png", "crops.png"):
        (out / name).unlink(missing_ok=True)
    for path in out.glob("*.json"):
        try:
            if set(json.loads(path.read_text())) == {"name", "description", "results"}:
                path.unlink()
        except (ValueError, TypeError, UnicodeDecodeError, OSError):  # not such a file: kept
            pass


def run(codecs: list[RDCodec], folder: Path, out: Path, grids: dict[str, list] | None = None,
        earlier: dict | None = None) -> dict:
    """Measure, then write the results into the folder `out` (made if needed); `earlier`: an
    earlier run's rows to reuse (`reusable`)."""
    out.mkdir(parents=True, exist_ok=True)
    rows = measure(codecs, grids or {}, folder, earlier)
    with open(out / "per_image.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    curve = curves(rows)
    for codec in codecs:
        (out / f"{slug(codec.name)}.json").write_text(
            json.dumps(compressai_json(codec.name, codec.description, curve[codec.name]), indent=2))
    table = bd_table(curve)
    with open(out / "bd_rate.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, ["test", "reference", "bd_rate_psnr", "bd_rate_ms_ssim",
                                    "points_test", "points_ref"])
        writer.writeheader()
        writer.writerows(table)
    (out / "bd_rate.md").write_text(bd_markdown(table))
    plot_rd(curve, out / "rd.png")
    plot_crops(codecs, rows, folder, out / "crops.png")
    return {"curves": curve, "bd": table}


def bd_markdown(table: list[dict]) -> str:
    lines = ["| test | reference | BD-rate (PSNR) | BD-rate (MS-SSIM) | points in PSNR overlap |",
             "|---|---|---:|---:|---:|"]
    fmt = lambda v: "n/a" if math.isnan(v) else f"{v:+.1f}%"
    for r in table:
        lines.append(f"| {r['test']} | {r['reference']} | {fmt(r['bd_rate_psnr'])} | "
                     f"{fmt(r['bd_rate_ms_ssim'])} | {r['points_test']} / {r['points_ref']} |")
    return "\n".join(lines) + (
        "\n\nNegative: the test codec needs that many percent fewer bits than the reference for "
        "the same quality. Points: how many points of each curve's frontier (test / reference) "
        "lie inside the PSNR range both cover; fewer than 5 makes a BD number rough.\n")

"""`vqpress`: a thin click layer over the codec and restore APIs.

Every VQPressError becomes one line on stderr and exit status 1, a usage error (an unknown
option, a value of the wrong type) one line and exit status 2. Outputs are written to a
temporary file and renamed, so a failed command leaves no partial file, and an existing file
is replaced only with --force.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import click

from vqpress.cli import batch
from vqpress.cli.batch import Done
from vqpress.cli.train import train
from vqpress.codec.errors import VQPressError


def friendly_errors(fn):
    """Turn expected failures into a one-line message and a non-zero exit."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except VQPressError as e:
            raise click.ClickException(str(e)) from None
        except KeyboardInterrupt:
            raise click.ClickException("interrupted") from None
        except MemoryError:
            raise click.ClickException("out of memory") from None

    return wrapper


def check_output(input_path: Path, output: Path, force: bool) -> None:
    """Refuse an output that is the input, lies in no folder, or exists (without --force)."""
    if output.resolve() == input_path.resolve():
        raise VQPressError(f"{output}: refusing to overwrite the input file")
    if not output.parent.is_dir():
        raise VQPressError(f"{output.parent}: no such folder")
    if output.is_dir():
        raise VQPressError(f"{output}: is a folder")
    if output.exists() and not force:
        raise VQPressError(f"{output} exists (use --force to replace it, or -o to choose another name)")


def check_image_output(input_path: Path, output: Path, force: bool) -> None:
    from vqpress.codec.imageio import output_format

    check_output(input_path, output, force)
    output_format(output)


def given(name: str) -> bool:
    """Whether the running command's option `name` was given on the command line."""
    return click.get_current_context().get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE


def image_paths(folder: Path) -> list[Path]:
    from vqpress.codec.imageio import image_paths as listing  # numpy and Pillow: only when needed

    return listing(folder)


def frames_note(image) -> None:
    frames = image.info.get("frames", 1)
    if frames > 1:
        click.echo(f"note: only the first of the image's {frames} frames is used", err=True)


def exif_note(image) -> None:
    if image.info.get("exif_dropped"):
        click.echo("note: the image's EXIF block is damaged and is left out (the pixels are kept)", err=True)


device_option = click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
                             show_default=True, help="Where the neural networks run.")
force_option = click.option("--force", is_flag=True, help="Replace the output file if it exists.")


def set_max_pixels(ctx, param, value):
    from vqpress.codec import limits

    if value == 0:
        limits.MAX_IMAGE_PIXELS = limits.MAX_SIDE = None
    elif value is not None:
        limits.MAX_IMAGE_PIXELS = value
    return value


max_pixels_option = click.option(
    "--max-pixels", type=click.IntRange(min=0), callback=set_max_pixels, expose_value=False,
    help="Largest image to read or write, in pixels [default: codec.limits.MAX_IMAGE_PIXELS, "
         "64000000]; 0 lifts every size limit.")


def restoration_options(fn):
    """The options inpaint and restore share; also makes errors one line."""
    for option in reversed([
        click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False), required=True),
        click.option("--steps", type=click.IntRange(0, 10000),
                     help="Gradient steps on the latent [default: per task, see restore.TASKS]."),
        force_option, max_pixels_option, device_option,
    ]):
        fn = option(fn)
    return friendly_errors(fn)


class OneLineGroup(click.Group):
    """Usage errors as one line (`Error: ...`, exit 2) instead of click's usage block."""

    def main(self, *args, **kwargs):
        try:
            return super().main(*args, standalone_mode=False, **kwargs)
        except click.exceptions.Exit as e:
            sys.exit(e.exit_code)
        except click.exceptions.Abort:
            click.echo("Error: interrupted", err=True)
            sys.exit(1)
        except click.ClickException as e:
            click.echo(f"Error: {e.format_message()}", err=True)
            sys.exit(e.exit_code)


@click.group(cls=OneLineGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="vqpress")
def main():
    """Learned image compression (.vqp) and restoration."""


def compress_file(job, quality, targets, strip, force, device, progress) -> Done:
    """Compress one file (a job of `cli.batch`): the work of `vqpress compress`. A single file
    shows its progress; in a batch, the output folders are made as needed."""
    if not progress:
        from vqpress.codec.imageio import make_folder

        make_folder(job.target.parent)
    check_output(job.source, job.target, force)
    from vqpress.codec import api
    from vqpress.codec.imageio import open_image, write_atomically

    image = open_image(job.source)
    if progress:
        frames_note(image)
        if not strip:
            exif_note(image)
    model = api.load(device=device)
    if any(v is not None for v in targets.values()):
        data, quality = model.compress_to_target(image, strip=strip, **targets)
    else:
        data = model.compress(image, quality, progress=progress, strip=strip)
    write_atomically(job.target, lambda f: f.write(data), replace=force)
    bpp = len(data) * 8 / (image.width * image.height)
    return Done(job.source.stat().st_size, len(data), f"{job.target}: {len(data)} bytes, {bpp:.3f} bpp, quality {quality}")


def decompress_file(job, force, device, progress) -> Done:
    """Decode one file (a job of `cli.batch`): the work of `vqpress decompress`."""
    data = _read(job.source)
    _unpack(job.source, data)  # a file that is not .vqp, or damaged, is said before anything heavy is imported
    if not progress:
        from vqpress.codec.imageio import make_folder

        make_folder(job.target.parent)
    check_image_output(job.source, job.target, force)
    from vqpress.codec import api
    from vqpress.codec.imageio import save_image

    image = api.decompress(data, device, progress=progress)
    save_image(image, job.target, replace=force)
    return Done(len(data), job.target.stat().st_size, f"{job.target}: {image.width}x{image.height} {image.mode}")


def output_path(ctx, param, value):
    """-o as a Path. One written with a trailing slash must be an existing folder: Path drops
    the slash, and the output would have been a file of the folder's name."""
    if value is None:
        return None
    if value.endswith(("/", os.sep)) and not Path(value).is_dir():
        raise click.BadParameter(f"{value}: no such folder")
    return Path(value)


inputs_argument = click.argument("inputs", metavar="IN...", nargs=-1, required=True,
                                 type=click.Path(path_type=Path))
jobs_option = click.option("-j", "--jobs", type=click.IntRange(min=1), default=1, show_default=True,
                           help="Worker processes for many files (each loads the model once).")


@main.command()
@inputs_argument
@click.option("-o", "--output", type=click.Path(), callback=output_path,
              help="Output .vqp file, or for several inputs a folder [default: beside each input].")
@click.option("-q", "--quality", type=int, default=6, show_default=True,
              help="Quality level, 1 (smallest file) to 13 (best picture) with the default model.")
@click.option("--max-bytes", type=click.IntRange(min=1), help="Instead of -q: the best quality that fits.")
@click.option("--target-bpp", type=click.FloatRange(min=0, min_open=True), help="Instead of -q: the best quality at most this many bits per pixel.")
@click.option("--target-psnr", type=float, help="Instead of -q: the smallest file that reaches this PSNR (dB).")
@click.option("--strip", is_flag=True, help="Leave out the ICC profile and EXIF (alpha is always kept).")
@jobs_option
@force_option
@max_pixels_option
@device_option
@friendly_errors
def compress(inputs, output, quality, max_bytes, target_bpp, target_psnr, strip, jobs, force, device):
    """Compress images (any format Pillow reads; files or folders) to .vqp files."""
    from vqpress import weights
    from vqpress.codec.ladder import DEFAULT_MODEL, check_quality, ladder_from_metadata

    targets = {"max_bytes": max_bytes, "bpp": target_bpp, "psnr": target_psnr}
    if sum(v is not None for v in targets.values()) > 1:
        raise VQPressError("give at most one of --max-bytes, --target-bpp, --target-psnr")
    if any(v is not None for v in targets.values()) and given("quality"):
        raise VQPressError("give -q or a target (--max-bytes, --target-bpp, --target-psnr), not both")
    todo = batch.plan(inputs, output, ".vqp", image_paths)
    check_quality(quality, ladder_from_metadata(weights.metadata(weights.verified(DEFAULT_MODEL)[0])))
    work = functools.partial(compress_file, quality=quality, targets=targets, strip=strip, force=force,
                             device=device, progress=len(todo) == 1)
    batch.run(todo, work, jobs)


@main.command()
@inputs_argument
@click.option("-o", "--output", type=click.Path(), callback=output_path,
              help="Output image (the format follows the extension), or for several inputs a "
                   "folder [default: beside each input, .png].")
@jobs_option
@force_option
@max_pixels_option
@device_option
@friendly_errors
def decompress(inputs, output, jobs, force, device):
    """Decode .vqp files (files or folders of them) to images."""
    suffix = output.suffix if output is not None and len(inputs) == 1 and output.suffix else ".png"
    todo = batch.plan(inputs, output, suffix, lambda folder: sorted(folder.rglob("*.vqp")))
    batch.run(todo, functools.partial(decompress_file, force=force, device=device,
                                      progress=len(todo) == 1), jobs)


@main.command()
@click.argument("input_path", metavar="FILE.vqp", type=click.Path(path_type=Path, dir_okay=False))
@friendly_errors
def info(input_path: Path):
    """Show a .vqp file's header (checks its CRC, decodes nothing)."""
    data = _read(input_path)
    from vqpress.codec.container import MODE_NAMES

    header, payload = _unpack(input_path, data)
    pixels = header.width * header.height
    click.echo(f"file:     {input_path} ({len(data)} bytes, {len(data) * 8 / pixels:.4f} bpp)")
    click.echo(f"image:    {header.width}x{header.height}, source {MODE_NAMES[header.mode]}")
    click.echo(f"quality:  {header.quality} ({_quality_meaning(header)})")
    click.echo(f"model:    {header.model_id} (weights sha256 {header.weights_hash.hex()}...)")
    click.echo(f"payload:  {len(payload)} bytes, header and checksum {len(data) - len(payload)} bytes")
    names = {"ALPH": "alpha plane", "ICCP": "ICC profile", "EXIF": "EXIF"}
    extras = [f"{names.get(tag, tag)} {len(value)} bytes" for tag, value in header.extensions.items()]
    click.echo(f"extras:   {', '.join(extras) or 'none'}")


def _quality_meaning(header) -> str:
    """What a quality level codes, from the model's ladder (no network is loaded)."""
    from vqpress import weights
    from vqpress.codec.ladder import ladder_from_metadata

    if not weights.is_shipped(header.model_id):
        return "model not shipped with this vqpress"
    ladder = ladder_from_metadata(weights.metadata(weights.verified(header.model_id)[0]))
    if not 1 <= header.quality <= len(ladder):
        return f"not one of {header.model_id}'s 1..{len(ladder)}"
    rung = ladder[header.quality - 1]
    stages = f"{rung.stages} VQ stage{'s' * (rung.stages > 1)}"
    return stages + (f" + detail layer, step {rung.step:g}" if rung.step else "") + f", of 1..{len(ladder)}"


@main.command()
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--codec", "specs", multiple=True, metavar="NAME",
              help="vqpress, vqpress:MODEL (another shipped codec model, e.g. rvq-dct-v9, or a codec file), jpeg, "
                   "webp, avif, jpeg2000, jxl, compressai:ARCH (the shipped "
                   "peers) or compressai:ARCH:CKPT[,CKPT...]; repeatable [default: vqpress, jpeg, "
                   "webp, avif, jpeg2000 and the shipped peers].")
@click.option("--quality", "grids", multiple=True, metavar="NAME=Q1,Q2,...",
              help="Override a codec's quality grid, e.g. jpeg=10,30,50,70,90.")
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--reuse", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="An earlier run's output folder: its measurements of the same codecs (same "
                   "description: library version, settings, model) on the same images are reused.")
@click.option("--force", is_flag=True, help="Write into an output folder that holds files already "
              "(an earlier vqpress rd run's results there are removed first).")
@device_option
@friendly_errors
def rd(folder: Path, specs: tuple[str, ...], grids: tuple[str, ...], output: Path, reuse: Path | None,
       force: bool, device: str):
    """Rate-distortion of codecs on a folder of images: JSON, CSV, BD-rates and plots."""
    from vqpress.measure import baselines
    from vqpress.measure import rd as study

    specs = specs or tuple(baselines.default_set())
    codecs = {spec: baselines.get(spec, device) for spec in specs}
    overrides = {}
    for item in grids:
        name, _, values = item.partition("=")
        if name not in codecs or not values:
            raise VQPressError(f"--quality {item!r}: use NAME=Q1,Q2,... with NAME one of {', '.join(codecs)}")
        codec = codecs[name]
        try:
            overrides[codec.name] = [_number(v) for v in values.split(",")]
        except ValueError:
            raise VQPressError(f"--quality {item!r}: qualities must be numbers") from None
        if codec.levels_only and not set(overrides[codec.name]) <= set(codec.qualities):
            raise VQPressError(f"--quality {item!r}: {name} has the levels "
                               f"{', '.join(map(str, codec.qualities))}")
        if not all(codec.accepts(q) for q in overrides[codec.name]):
            lo, hi, whole = codec.quality_range
            raise VQPressError(f"--quality {item!r}: {name} takes {'whole numbers' if whole else 'numbers'} "
                               f"from {lo:g} to {hi:g}")
    earlier = study.prepare(folder, output, reuse, force)
    result = study.run(list(codecs.values()), folder, output, overrides, earlier)
    click.echo(study.bd_markdown([r for r in result["bd"] if r["test"].startswith("vqpress")]))
    click.echo(f"wrote {output}/: per-codec JSON, per_image.csv, bd_rate.csv/.md, rd.png, crops.png")


def _number(text: str) -> int | float:
    """A quality setting: an integer where it is one (most codecs), else a float (WebP takes 0.5)."""
    value = float(text)
    return int(value) if value.is_integer() else value


def _box_mask(image, box: str):
    import numpy as np

    try:
        x, y, w, h = (int(v) for v in box.split(","))
    except ValueError:
        raise VQPressError(f"--box {box!r}: use x,y,w,h in pixels") from None
    if w <= 0 or h <= 0 or x < 0 or y < 0 or x + w > image.width or y + h > image.height:
        raise VQPressError(f"--box {box!r} is not inside the {image.width}x{image.height} image")
    mask = np.zeros((image.height, image.width), bool)
    mask[y:y + h, x:x + w] = True
    return mask


@main.command()
@click.argument("input_path", metavar="IMG", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--mask", "mask_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Mask image of the same size: white = missing.")
@click.option("--box", help="Missing rectangle x,y,w,h (instead of --mask).")
@restoration_options
def inpaint(input_path, mask_path, box, output, steps, force, device):
    """Fill the missing pixels of an image; known pixels are kept exactly."""
    from vqpress import restore
    from vqpress.codec.imageio import open_image, save_image

    if (mask_path is None) == (box is None):
        raise VQPressError("give exactly one of --mask or --box")
    image = open_image(input_path)
    mask = open_image(mask_path) if mask_path else _box_mask(image, box)
    check_image_output(input_path, output, force)
    if mask_path is not None and output.resolve() == mask_path.resolve():
        raise VQPressError(f"{output}: refusing to overwrite the mask file")
    frames_note(image)
    save_image(restore.inpaint(image, mask, steps=steps, device=device), output, replace=force)
    click.echo(f"{output}: inpainted")


@main.command(name="restore")
@click.argument("input_path", metavar="IMG", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--task", type=click.Choice(["denoise", "sr", "deblur"]), help="denoise, sr or deblur (required).")
@click.option("--sigma", type=float, default=25.0, show_default=True,
              help="denoise: noise standard deviation in 8-bit units.")
@click.option("--scale", type=int, default=4, show_default=True, help="sr: 2, 3 or 4.")
@click.option("--blur-sigma", type=float, default=2.0, show_default=True,
              help="deblur: Gaussian blur standard deviation in pixels.")
@restoration_options
def restore_command(input_path, task, sigma, scale, blur_sigma, output, steps, force, device):
    """Denoise, super-resolve (the output is SCALE times larger) or deblur an image."""
    if task is None:
        raise VQPressError("give --task: denoise, sr or deblur")
    for option, name, owner in (("--sigma", "sigma", "denoise"), ("--scale", "scale", "sr"),
                                ("--blur-sigma", "blur_sigma", "deblur")):
        if given(name) and task != owner:
            raise VQPressError(f"{option} is for --task {owner}, not {task}")
    from vqpress import restore
    from vqpress.codec.imageio import open_image, save_image

    image = open_image(input_path)
    check_image_output(input_path, output, force)
    frames_note(image)
    out = restore.restore(image, task=task, sigma=sigma, scale=scale, blur_sigma=blur_sigma,
                          steps=steps, device=device)
    save_image(out, output, replace=force)
    click.echo(f"{output}: {out.width}x{out.height}, {task}")


MAX_FILE_BYTES = 2**30  # no .vqp within the size limits comes near (a 64 MP photo is tens of MB)


def _unpack(path: Path, data: bytes):
    """container.unpack, its errors naming the file."""
    from vqpress.codec.container import unpack

    try:
        return unpack(data)
    except VQPressError as e:
        raise VQPressError(f"{path}: {e}") from None


def _read(path: Path) -> bytes:
    """A file's bytes; one over MAX_FILE_BYTES (a device such as /dev/zero never ends) is
    refused unless --max-pixels 0 lifted the size limits."""
    from vqpress.codec import limits

    cap = None if limits.MAX_IMAGE_PIXELS is None else MAX_FILE_BYTES
    try:
        with open(path, "rb") as f:
            data = f.read() if cap is None else f.read(cap + 1)
        if cap is not None and len(data) > cap:
            raise VQPressError(f"{path}: over {cap >> 20} MB, larger than any .vqp within the size limits")
        return data
    except FileNotFoundError:
        raise VQPressError(f"{path}: no such file") from None
    except OSError as e:
        raise VQPressError(f"{path}: cannot read ({e.strerror})") from None


for command in train.commands.values():  # training commands fail in one line too
    command.callback = friendly_errors(command.callback)
main.add_command(train)

if __name__ == "__main__":
    sys.exit(main())

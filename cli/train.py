"""`vqpress train ...`: fit the models on a folder of images and export shipped weights."""

from __future__ import annotations

import json
from pathlib import Path

import click

from vqpress.codec.errors import VQPressError
from vqpress.codec.ladder import DEFAULT_MODEL

folder = click.Path(exists=True, file_okay=False, path_type=Path)
out_option = click.option("--out", type=click.Path(file_okay=False, path_type=Path),
                          default=Path("weights"), show_default=True, help="Where releases go.")


@click.group()
def train():
    """Train the VQ-VAE, then the prior, then export them to weights/."""


def _common(fn):
    for option in reversed([
        click.option("--data", type=folder, required=True, help="Folder of training images."),
        click.option("--valid", type=folder, help="Folder of validation images."),
        click.option("--run", type=click.Path(path_type=Path), required=True,
                     help="Run folder: checkpoints go here; an existing one is resumed."),
        click.option("--steps", type=int, default=20000, show_default=True),
        click.option("--batch", type=int, default=8, show_default=True),
        click.option("--lr", type=float, default=2e-4, show_default=True),
        click.option("--validate-every", type=int, default=500, show_default=True),
        click.option("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)."),
        click.option("--nproc", type=click.IntRange(min=1), default=1, show_default=True,
                     help="Data-parallel processes on this machine (torchrun works as well)."),
        click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
                     show_default=True),
    ]):
        fn = option(fn)
    return fn


def launch(fn, *args, nproc: int) -> None:
    """Run a training function here or in nproc data-parallel processes (torch is imported only
    now, so the other commands start fast)."""
    from vqpress.training.launch import launch as run

    run(fn, *args, nproc=nproc)


def _config(data, valid, run, steps, batch, crop, lr, validate_every, threads, device):
    """The TrainConfig of the common options (min lr a tenth of the peak)."""
    from vqpress.nets.device import resolve_device
    from vqpress.training.loop import TrainConfig

    return TrainConfig(data=str(data), valid=valid and str(valid), run=str(run), steps=steps,
                       batch=batch, crop=crop, lr=lr, min_lr=lr / 10, validate_every=validate_every,
                       threads=threads, device=str(resolve_device(device)))


@train.command()
@_common
@click.option("--crop", type=int, default=128, show_default=True, help="Crop side in pixels.")
@click.option("--channels", type=int, default=96, show_default=True)
@click.option("--latent-dim", type=int, default=32, show_default=True)
@click.option("--codes", type=int, default=256, show_default=True, help="Codebook size per stage.")
@click.option("--stages", type=int, default=8, show_default=True, help="Residual stages = quality levels.")
def vqvae(data, valid, run, steps, batch, lr, validate_every, threads, nproc, device, crop, channels,
          latent_dim, codes, stages):
    """Train the VQ-VAE (reconstruction + commitment, quantiser dropout)."""
    from vqpress.training.codec_models import train_vqvae
    from vqpress.nets.vqvae import VQVAEConfig

    cfg = _config(data, valid, run, steps, batch, crop, lr, validate_every, threads, device)
    launch(train_vqvae, cfg, VQVAEConfig(channels, latent_dim, codes, stages), nproc=nproc)


def _stage_counts(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(s) for s in text.split(","))
    except ValueError:
        raise VQPressError(f"{text!r}: use comma-separated stage counts, e.g. 1,2") from None


@train.command()
@_common
@click.option("--vqvae-run", type=folder, help="Run folder of the trained VQ-VAE.")
@click.option("--base", "base_model", help="Or a shipped codec whose VQ-VAE makes the symbols "
              "(release the prior with export-prior).")
@click.option("--qualities", help="Stage counts to train for, e.g. 1,2 (default: all).")
@click.option("--crop", type=int, default=32, show_default=True, help="Crop side in symbols.")
@click.option("--channels", type=int, default=64, show_default=True)
@click.option("--blocks", type=int, default=2, show_default=True, help="Gated type-B blocks.")
def prior(data, valid, run, steps, batch, lr, validate_every, threads, nproc, device, vqvae_run, base_model,
          qualities, crop, channels, blocks):
    """Train the PixelCNN prior on the VQ-VAE's symbol maps of the training images."""
    from vqpress.codec.prior import PriorConfig
    from vqpress.training.codec_models import codec_vqvae, load_run_vqvae, train_prior

    if (vqvae_run is None) == (base_model is None):
        raise VQPressError("give one of --vqvae-run and --base")
    cfg = _config(data, valid, run, steps, batch, crop, lr, validate_every, threads, device)
    if base_model:
        cfg.extra["init"] = {"codec": base_model}
    model = (load_run_vqvae(vqvae_run) if vqvae_run else codec_vqvae(base_model)).to(cfg.device)
    c = model.config
    launch(train_prior, cfg, model, PriorConfig(c.num_codes, c.num_stages, channels=channels, blocks=blocks),
           qualities and _stage_counts(qualities), nproc=nproc)


@train.command()
@click.option("--vqvae-run", type=folder, required=True)
@click.option("--prior-run", type=folder, required=True)
@click.option("--model-id", required=True, help="File stem, e.g. rvq8-v3 (a new id for new weights).")
@out_option
def export(vqvae_run, prior_run, model_id, out):
    """Write <out>/<model-id>.safetensors, its model card and its SHA256SUMS line."""
    from vqpress.training.codec_models import export_codec

    path = export_codec(vqvae_run, prior_run, model_id, out)
    click.echo(f"wrote {path}")


@train.command()
@_common
@click.option("--base", "base_model", default=DEFAULT_MODEL, show_default=True,
              help="Shipped codec whose decoder to fine-tune (encoder and codebooks stay frozen).")
@click.option("--stages", default="1,2", show_default=True, help="VQ stage counts to train for.")
@click.option("--crop", type=int, default=128, show_default=True, help="Crop side in pixels.")
def decoder(data, valid, run, steps, batch, lr, validate_every, threads, nproc, device, base_model, stages, crop):
    """Fine-tune a codec's decoder for the stage counts its ladder uses (symbols unchanged)."""
    from vqpress.training.codec_models import train_decoder

    cfg = _config(data, valid, run, steps, batch, crop, lr, validate_every, threads, device)
    launch(train_decoder, cfg, base_model, _stage_counts(stages), nproc=nproc)


@train.command(name="export-part")
@click.option("--run", type=folder, required=True, help="A `train decoder` or `train prior --base` run.")
@click.option("--model-id", required=True, help="File stem of the new codec.")
@click.option("--onto", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Codec file to put the part in instead of the run's base (same encoder and codebooks).")
@out_option
def export_part(run, model_id, onto, out):
    """Release a fine-tuned decoder or a new prior as a codec file (the rest of its base kept)."""
    from vqpress.training.codec_models import export_part as export

    click.echo(f"wrote {export(run, model_id, out, onto)}")


@train.command()
@_common
@click.option("--base", "base_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              required=True, help="The codec file whose decoded output the filter learns to correct.")
@click.option("--crop", type=int, default=96, show_default=True, help="Crop side in pixels (even).")
@click.option("--channels", type=int, default=32, show_default=True)
@click.option("--layers", type=click.IntRange(min=2), default=5, show_default=True, help="3x3 convolutions.")
@click.option("--limit", type=click.IntRange(min=1),
              help="Decode only N training photos, evenly spread over the folder.")
@click.option("--init", "init_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Start from this codec file's filter, e.g. to refit it to a new ladder in fewer steps. "
                   "A smaller one (fewer channels, layers or qualities) is grown to this size as the same "
                   "function.")
@click.option("--max-quality", type=click.IntRange(min=1),
              help="Train and validate at qualities 1..N only (default: all); the filter is off above N.")
@click.option("--cache", type=click.Path(file_okay=False, path_type=Path),
              help="Keep the decoded photos here for later runs on the same codec file and vqpress version "
                   "(about 12 MB per 768x512 photo at 10 qualities).")
def postfilter(data, valid, run, steps, batch, lr, validate_every, threads, nproc, device, base_path, crop,
               channels, layers, limit, init_path, max_quality, cache):
    """Train the reconstruction filter on a codec's decoded output."""
    from vqpress.codec.model import load_codec_file
    from vqpress.nets.postfilter import PostFilterConfig
    from vqpress.training.postfilter import train_postfilter

    if crop % 2:
        raise VQPressError(f"--crop {crop}: the filter needs an even crop side")
    cfg = _config(data, valid, run, steps, batch, crop, lr, validate_every, threads, device)
    qualities = len(load_codec_file(base_path).ladder)
    if max_quality and max_quality > qualities:
        raise VQPressError(f"--max-quality {max_quality}: {base_path} has {qualities} qualities")
    launch(train_postfilter, cfg, base_path, PostFilterConfig(qualities, channels, layers), limit, init_path,
           max_quality, cache, nproc=nproc)


@train.command(name="export-postfilter")
@click.option("--run", type=folder, required=True)
@click.option("--model-id", required=True, help="File stem of the new codec.")
@click.option("--base", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A codec file that decodes to the same pixels as the one the filter trained on "
                   "(e.g. the same tables, coded adaptively) [default: that one].")
@out_option
def export_postfilter(run, model_id, base, out):
    """Release a filter run with its codec, and write the filter's ONNX graph."""
    from vqpress.training.graphs import export_postfilter_graph
    from vqpress.training.loop import read_checkpoint
    from vqpress.training.postfilter import export_postfilter as export

    click.echo(f"wrote {export_postfilter_graph(read_checkpoint(run)['model_config'], out)}")
    click.echo(f"wrote {export(run, model_id, out, base)}")


@train.command(name="filter-strengths")
@click.option("--base", "base_model", required=True,
              help="Codec with a reconstruction filter: a shipped model, or a codec file's path.")
@click.option("--model-id", required=True, help="File stem of the new codec, e.g. rvq-dct-v15.")
@click.option("--tile", default=64, show_default=True, help="Side of the tiles that each get a strength, in pixels.")
@out_option
def filter_strengths(base_model, model_id, tile, out):
    """Write a codec whose encoder scales the filter's correction per tile (and codes the
    choices); the rest is the base's."""
    from vqpress.training.postfilter import export_filter_strengths

    click.echo(f"wrote {export_filter_strengths(base_model, model_id, out, tile)}")


@train.command(name="dc-signs")
@click.option("--base", "base_model", required=True,
              help="Codec whose detail layer to code DC signs in context: a shipped model, or a codec file's path.")
@click.option("--model-id", required=True, help="File stem of the new codec, e.g. rvq-dct-v14.")
@out_option
def dc_signs(base_model, model_id, out):
    """Write a codec that codes the detail layer's DC signs in context; the rest is the base's."""
    from vqpress.training.detail import export_dc_signs

    click.echo(f"wrote {export_dc_signs(base_model, model_id, out)}")


@train.command()
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--base", "base_model", required=True, help="The shipped, complete codec model it names as its base.")
@out_option
def repack(source, base_model, out):
    """Rewrite a codec file to hold only the parts that differ from a shipped base model."""
    from vqpress.training.repack import repack as write

    click.echo(f"wrote {write(source, base_model, out)}")


@train.command(name="export-graphs")
@click.option("--model", "model_id", default=DEFAULT_MODEL, show_default=True,
              help="A shipped codec model whose architecture (channels, latent size) to export.")
@out_option
def export_graphs(model_id, out):
    """Write the ONNX graphs of a codec architecture's transforms (what the run time executes)."""
    from vqpress import weights
    from vqpress.training.graphs import export_graphs as export

    config = weights.metadata(weights.verified(model_id)[0]).get("vqvae_config")
    if config is None:
        raise VQPressError(f"model {model_id} is not a codec model")
    for path in export(config, out):
        click.echo(f"wrote {path}")


@train.command(name="quantise-analysis")
@click.option("--model", "model_id", default=DEFAULT_MODEL, show_default=True,
              help="A codec model: <out>/<model>.safetensors if there is one, else the shipped one.")
@click.option("--data", type=folder, required=True, help="Folder of training images to calibrate on.")
@click.option("--limit", type=click.IntRange(min=1), default=64, show_default=True,
              help="Calibrate on N images, evenly spread over the folder (their centre squares, at most 256 px).")
@out_option
def quantise_analysis(model_id, data, limit, out):
    """Write a codec model's 8-bit analysis graph (the encoder's first transform: 68 instead of 108 ms at 768x512)."""
    from vqpress import weights
    from vqpress.codec.imageio import image_paths, open_image, to_rgb8
    from vqpress.training.data import evenly_spread
    from vqpress.training.loop import command_line
    from vqpress.training.quantise import export_quantised_analysis

    model_path = out / f"{model_id}.safetensors"
    if not model_path.is_file():
        model_path = weights.verified(model_id)[0]
    images = [to_rgb8(open_image(p))[0] for p in evenly_spread(image_paths(data), limit)]
    path, card = export_quantised_analysis(model_path, images, out, str(data), command_line())
    click.echo(f"wrote {path}" + (f" and added it to {model_id}'s card" if card else
                                  f" ({out} holds no card of {model_path}: none was updated)"))


@train.command(name="quantise-filter")
@click.option("--base", "base_model", required=True,
              help="Codec with a reconstruction filter: a shipped model, or a codec file's path.")
@click.option("--model-id", required=True, help="File stem of the new codec, e.g. rvq-dct-v16.")
@click.option("--data", type=folder, required=True, help="Folder of training images to calibrate on.")
@click.option("--qualities", required=True,
              help="Qualities whose filter runs in 8 bits: numbers and ranges, comma-separated (2,4-10).")
@out_option
def quantise_filter(base_model, model_id, data, qualities, out):
    """Write a codec whose reconstruction filter runs as an 8-bit graph at some qualities (about
    1.6 times as fast; it costs PSNR); the rest is the base's."""
    from vqpress.training.quantise import export_int8_filter

    chosen = []
    try:
        for part in qualities.split(","):
            first, _, last = part.partition("-")
            chosen += range(int(first), int(last or first) + 1)
    except ValueError:
        raise click.BadParameter(f"{qualities!r}: use numbers and ranges, e.g. 2,4-10", param_hint="--qualities") from None
    if not chosen:
        raise click.BadParameter(f"{qualities!r} names no quality", param_hint="--qualities")
    click.echo(f"wrote {export_int8_filter(base_model, model_id, data, chosen, out)}")


@train.command()
@click.option("--base", "base_model", default=DEFAULT_MODEL, show_default=True,
              help="Codec whose VQ-VAE and prior make the base layer: a shipped model, or a "
                   "codec file's path (e.g. from export-part).")
@click.option("--data", type=folder, required=True, help="Folder of training images.")
@click.option("--valid", type=folder, help="Folder of validation images (numbers for the card).")
@click.option("--model-id", required=True, help="File stem of the new codec, e.g. rvq-dct-v9.")
@click.option("--ladder", help="Quality levels, lowest first: STAGES[+STEP[@OFFSET]] each "
              "[default: vqpress.training.detail.LADDER].")
@click.option("--limit", type=click.IntRange(min=1),
              help="Use only N images of each folder, evenly spread over it.")
@click.option("--adaptive/--static", default=True, show_default=True,
              help="Tables that adapt to each image as it is coded, or fixed ones (the first models').")
@click.option("--block-modes/--no-block-modes", default=True, show_default=True,
              help="Let the encoder predict each block from the VQ base or from its mean.")
@click.option("--soft-from", type=click.IntRange(min=1),
              help="With block modes: from this quality up, the softened VQ base is a third predictor.")
@click.option("--keep-filter", is_flag=True,
              help="Keep the base's reconstruction filter; the ladder must start with the base's "
                   "rungs, and the filter is off at the added ones.")
@click.option("--contexts", type=click.Choice(["neighbours", "modes+passes"]), default="neighbours",
              show_default=True, help="What picks a level's table row: its neighbours (up to "
              "rvq-dct-v9), or also its block's mode and own earlier coefficients (rvq-dct-v10).")
@click.option("--encoded", is_flag=True,
              help="Count the levels and modes the base codec's own encoder codes (its ladder, block "
                   "modes and contexts), instead of the plain quantised residuals.")
@out_option
def detail(base_model, data, valid, model_id, ladder, limit, adaptive, block_modes, soft_from, keep_filter,
           contexts, encoded, out):
    """Fit the detail layer's tables over a codec's VQ base and write the new codec."""
    from vqpress.training.detail import LADDER, export_detail

    path = export_detail(base_model, data, valid, model_id, out, ladder or LADDER, limit, adaptive=adaptive,
                         block_modes=block_modes, soft_from=soft_from, keep_filter=keep_filter,
                         contexts=contexts, encoded=encoded)
    click.echo(f"wrote {path}")


@train.command()
@_common
@click.option("--arch", type=click.Choice(["bmshj2018-factorized", "bmshj2018-hyperprior"]),
              required=True)
@click.option("--lmbda", type=float, required=True, help="Rate-distortion trade-off (e.g. 0.0018 .. 0.0483).")
@click.option("--crop", type=int, default=128, show_default=True)
@click.option("--widths", type=(int, int), default=(96, 128), show_default=True,
              help="Channels N (transforms) and M (latent).")
@click.option("--init", type=folder, help="Start from this run's weights (e.g. another lambda).")
def compressai(data, valid, run, steps, batch, lr, validate_every, threads, nproc, device, arch, lmbda,
               crop, widths, init):
    """Train a compressai peer (learned baseline) for `vqpress rd`."""
    from vqpress.training.peers import train_compressai

    cfg = _config(data, valid, run, steps, batch, crop, lr, validate_every, threads, device)
    launch(train_compressai, cfg, arch, lmbda, widths, init and str(init), nproc=nproc)


@train.command(name="export-peer")
@click.option("--run", type=folder, required=True)
@click.option("--name", required=True, help="e.g. bmshj2018-hyperprior-l0.0067")
@out_option
def export_peer(run, name, out):
    """Write a trained compressai peer to <out>/<name>.safetensors with its model card."""
    from vqpress.training.peers import export_compressai

    click.echo(f"wrote {export_compressai(run, out, name)}")


@train.command()
@_common
@click.option("--crop", type=int, default=128, show_default=True, help="Crop side in pixels.")
@click.option("--kl-weight", type=float, default=5e-5, show_default=True,
              help="loss = MSE + kl_weight * KL (nats per pixel).")
@click.option("--from-codec", help="Start from this shipped codec's autoencoder (e.g. rvq-dct-v9).")
@click.option("--channels", type=int, default=96, show_default=True, help="Without --from-codec.")
@click.option("--latent-dim", type=int, default=32, show_default=True, help="Without --from-codec.")
def vae(data, valid, run, steps, batch, lr, validate_every, threads, nproc, device, crop, kl_weight,
        from_codec, channels, latent_dim):
    """Train the restoration VAE (Gaussian latent map) for `vqpress restore` / `inpaint`."""
    from vqpress.restore.vae import VAE, VAEConfig
    from vqpress.training.codec_models import codec_vqvae
    from vqpress.training.restoration import train_vae

    cfg = _config(data, valid, run, steps, batch, crop, lr, validate_every, threads, device)
    if from_codec:
        cfg.extra["init"] = {"codec": from_codec}
        model = VAE.from_vqvae(codec_vqvae(from_codec), kl_weight)
    else:
        model = VAE(VAEConfig(channels, latent_dim, kl_weight))
    launch(train_vae, cfg, model, nproc=nproc)


@train.command(name="export-vae")
@click.option("--run", type=folder, required=True)
@click.option("--model-id", required=True, help="File stem, e.g. vae-v1.")
@out_option
def export_vae(run, model_id, out):
    """Write a trained VAE to <out>/<model-id>.safetensors with its model card."""
    from vqpress.training.restoration import export_vae as export

    click.echo(f"wrote {export(run, model_id, out)}")


@train.command()
@_common
@click.option("--crop", type=int, default=192, show_default=True,
              help="Crop side in pixels (a multiple of 24 keeps every super-resolution scale).")
@click.option("--from-vae", default="vae-v1", show_default=True,
              help="The shipped VAE whose decoder (frozen) the restoration encoder learns to feed; "
                   "if it has a restoration encoder already, training goes on from it.")
@click.option("--tasks", help="Damage to train on, comma-separated (inpaint, denoise, sr, deblur) "
                              "[default: all, drawn with restore.damage.TASK_WEIGHTS].")
def restorer(data, valid, run, steps, batch, lr, validate_every, threads, nproc, device, crop, from_vae,
             tasks):
    """Train a restoration encoder: damaged image -> the latent of the clean one."""
    from vqpress.restore.damage import TASK_WEIGHTS
    from vqpress.training.restoration import train_restorer
    from vqpress.restore.vae import load_vae

    chosen = tasks.split(",") if tasks else None
    if chosen and not set(chosen) <= set(TASK_WEIGHTS):
        raise VQPressError(f"--tasks {tasks!r}: use some of {', '.join(TASK_WEIGHTS)}")
    cfg = _config(data, valid, run, steps, batch, crop, lr, validate_every, threads, device)
    cfg.extra["init"] = {"vae": from_vae}
    if chosen:
        cfg.extra["tasks"] = chosen
    vae = load_vae(from_vae)[0]
    launch(train_restorer, cfg, vae if vae.config.restorer else vae.add_restorer(), nproc=nproc)


REFINER_TASKS = ("inpaint", "denoise", "sr", "deblur")  # restore.refine.TASK_ORDER, without torch


@train.command(name="refiner-pairs")
@click.option("--data", type=folder, required=True, help="Folder of training photos.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder of shards; shards already there are kept.")
@click.option("--count", type=click.IntRange(min=1), default=2000, show_default=True, help="Crops.")
@click.option("--side", type=click.IntRange(min=16), default=192, show_default=True,
              help="Crop side in pixels (a multiple of 24 keeps every super-resolution scale).")
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True,
              help="Processes, one thread each.")
@click.option("--task", "tasks", multiple=True, type=click.Choice(REFINER_TASKS),
              help="Make pairs of this task only (repeatable; default: every task).")
@click.option("--shrink", type=click.IntRange(min=1), default=1, show_default=True,
              help="Shrink each photo this many times (block means) before cropping: sharper crops "
              "without JPEG artifacts. Photos under --side x --shrink px are left out.")
@click.option("--scattered", is_flag=True,
              help="Inpainting pairs with 40-95%% of the pixels missing at random only (what the "
              "inpainting refiner is trained on); --task is then ignored.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the crops and damage (each shard draws from (seed, shard)).")
def refiner_pairs(data, out, count, side, workers, tasks, shrink, scattered, seed):
    """Damage crops of the training photos and restore them without the refiner: its training pairs."""
    import multiprocessing

    from vqpress.training.loop import command_line
    from vqpress.training.refiner import PAIRS_CARD, make_pairs

    out.mkdir(parents=True, exist_ok=True)
    (out / PAIRS_CARD).write_text(json.dumps({"command": command_line()}) + "\n")
    chosen = tuple(t for t in REFINER_TASKS if t in tasks) or REFINER_TASKS
    with multiprocessing.get_context("spawn").Pool(workers, initializer=_one_thread) as pool:
        pool.starmap(make_pairs, [(str(data), out, count, side, seed, w, workers, chosen, shrink, scattered)
                                 for w in range(workers)])


def _one_thread():
    import torch

    torch.set_num_threads(1)


@train.command()
@_common
@click.option("--crop", type=int, default=96, show_default=True, help="Crop side in pixels (even).")
@click.option("--channels", type=int, default=64, show_default=True)
@click.option("--layers", type=click.IntRange(min=2), default=8, show_default=True, help="3x3 convolutions.")
@click.option("--skip", multiple=True, type=click.Choice(REFINER_TASKS),
              help="A task to leave out of training; the export skips it (repeatable).")
@click.option("--init", help="Start from this shipped refiner's weights (e.g. refiner-v3): as many channels, "
              "as many layers or fewer (identity layers are added).")
def refiner(data, valid, run, steps, batch, lr, validate_every, threads, nproc, device, crop, channels, layers,
            skip, init):
    """Train the restoration refiner on the shards of `train refiner-pairs` (--data); the last
    two shards validate."""
    from vqpress.nets.refiner import RefinerConfig
    from vqpress.training.refiner import train_refiner

    if crop % 2:
        raise VQPressError(f"--crop {crop}: the refiner needs an even crop side")
    if len(set(skip)) == len(REFINER_TASKS):
        raise VQPressError("--skip leaves no task to train")
    cfg = _config(data, valid, run, steps, batch, crop, lr, validate_every, threads, device)
    config = RefinerConfig(channels, layers, tuple(sorted(set(skip))))
    launch(train_refiner, cfg, config, init, nproc=nproc)


@train.command(name="export-refiner")
@click.option("--run", type=folder, required=True)
@click.option("--model-id", required=True, help="File stem, e.g. refiner-v1.")
@out_option
def export_refiner(run, model_id, out):
    """Write a trained refiner to <out>/<model-id>.safetensors with its model card."""
    from vqpress.training.refiner import export_refiner as export

    click.echo(f"wrote {export(run, model_id, out)}")

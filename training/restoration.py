"""Training and release of the restoration VAE and its restoration encoder."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.numpy import save_file

from vqpress.measure.metrics import psnr_of_mse
from vqpress.restore.damage import TASK_WEIGHTS, random_damage
from vqpress.restore.spectra import radial_power
from vqpress.restore.vae import VAE, VAEConfig, kl_divergence, load_vae

from .data import RandomCrops, center_crops, load_folder
from .loop import TrainConfig, fit, prepare, read_checkpoint, resume
from .release import half, release, summary, training_lines


@torch.no_grad()
def validate_vae(vae: VAE, crops: list[torch.Tensor]) -> dict:
    """Mean PSNR of D(posterior mean) on the validation crops, and the mean KL in bits per pixel
    (what the latent costs: the VAE's rate)."""
    vae.eval()
    psnrs, kls = [], []
    device = next(vae.parameters()).device
    for c in crops:
        x = c[None].float().to(device) / 255
        mean, logvar = vae.posterior(x)
        y = vae.decoder(mean).clamp(0, 1)
        psnrs.append(psnr_of_mse(F.mse_loss(y, x).item(), peak=1.0))
        kls.append(kl_divergence(mean, logvar).item() / (x.shape[-2] * x.shape[-1]) / math.log(2))
    vae.train()
    return {"psnr": round(sum(psnrs) / len(psnrs), 3), "kl_bpp": round(sum(kls) / len(kls), 4)}


def train_vae(cfg: TrainConfig, vae: VAE) -> VAE:
    """Fit the VAE (loss = MSE + kl_weight * KL per pixel). `vae` is the starting point: fresh,
    or `VAE.from_vqvae(...)`; a run with a checkpoint resumes from it instead."""
    run = prepare(cfg)
    vae = vae.to(cfg.device)
    optimizer = torch.optim.Adam(vae.parameters(), lr=cfg.lr)
    progress = resume(run, vae, optimizer, cfg)
    crops = RandomCrops(load_folder(cfg.data), cfg.crop, seed=cfg.seed + progress.step)
    cfg.extra["train_images"] = len(crops.images)
    valid = center_crops(load_folder(cfg.valid), 256) if cfg.valid else None
    beta = vae.config.kl_weight

    def batch_loss():
        x = crops.batch(cfg.batch).to(cfg.device)
        x_hat, kl = vae(x)
        mse = F.mse_loss(x_hat, x)
        return mse + beta * kl, {"mse": mse.item(), "kl": kl.item()}

    fit(cfg, run, vae, optimizer, vae.config.to_dict(), "vae", batch_loss,
        valid and (lambda: validate_vae(vae, valid)), progress)
    return vae


@torch.no_grad()
def validate_restorer(vae: VAE, crops: list[torch.Tensor], seed: int = 0) -> dict:
    """Mean PSNR of D(restoration encoder(first guess)) per task, each validation crop damaged
    the same way at every validation (`random_damage` seeded per crop and task)."""
    vae.eval()
    device = next(vae.parameters()).device
    out = {}
    for task in TASK_WEIGHTS:
        psnrs = []
        for i, c in enumerate(crops):
            x = c[None].float() / 255
            d = random_damage(x, np.random.default_rng([seed, i]), task)
            z = vae.restore_mean(d.guess.to(device), d.known.to(device), d.noise.to(device),
                                 d.blur.to(device), d.scale.to(device))
            y = vae.decoder(z).clamp(0, 1).cpu()
            psnrs.append(psnr_of_mse(F.mse_loss(y, x).item(), peak=1.0))
        out[f"psnr_{task}"] = round(sum(psnrs) / len(psnrs), 3)
    vae.train()
    return out


def train_restorer(cfg: TrainConfig, vae: VAE) -> VAE:
    """Fit the restoration encoder of `vae` (`VAE.add_restorer`) with its decoder frozen: loss =
    MSE between the clean crop and D(restoration encoder(random damage of the crop)). So it
    learns the latent whose decoding is closest to the clean image, for latent MAP to start from.
    `cfg.extra["tasks"]`, when set, limits the damage to those tasks (one per batch)."""
    run = prepare(cfg)
    vae = vae.to(cfg.device).requires_grad_(False)
    vae.restorer.requires_grad_(True)
    optimizer = torch.optim.Adam(vae.restorer.parameters(), lr=cfg.lr)
    progress = resume(run, vae, optimizer, cfg)
    crops = RandomCrops(load_folder(cfg.data), cfg.crop, seed=cfg.seed + progress.step)
    cfg.extra["train_images"] = len(crops.images)
    valid = center_crops(load_folder(cfg.valid), 240) if cfg.valid else None
    rng = np.random.default_rng(cfg.seed + progress.step)

    tasks = cfg.extra.get("tasks")

    def batch_loss():
        x = crops.batch(cfg.batch)
        d = random_damage(x, rng, rng.choice(tasks) if tasks else None)
        to = (lambda t: t.to(cfg.device))
        z = vae.restore_mean(to(d.guess), to(d.known), to(d.noise), to(d.blur), to(d.scale))
        mse = F.mse_loss(vae.decoder(z), to(x))
        return mse, {"mse": mse.item()}

    fit(cfg, run, vae, optimizer, vae.config.to_dict(), "restorer", batch_loss,
        valid and (lambda: validate_restorer(vae, valid)), progress)
    return vae


@torch.no_grad()
def measure_spectra(vae: VAE, images: list[np.ndarray], crops: int = 64, size: int = 256,
                    seed: int = 0) -> None:
    """Set the VAE's spectra buffers from random crops of the training images (size x size, or
    the smallest image's side): the power of the decoder's error x - D(mean z) and of the
    images (each crop minus its mean colour)."""
    size = min(size, *(min(im.shape[:2]) // 8 * 8 for im in images))
    batch = RandomCrops(images, size, seed=seed).batch(crops)
    vae.eval()
    errors = torch.cat([x - vae.decoder(vae.encode_mean(x)) for x in batch.split(8)])
    vae.log_residual_power.copy_(radial_power(errors).log10())
    vae.log_image_power.copy_(radial_power(batch - batch.mean((2, 3), keepdim=True)).log10())


def export_vae(run, model_id: str, out: Path) -> Path:
    """Release a VAE run. The spectra the restoration model needs are measured here, on the
    run's training images. A restoration-encoder run's card also carries the card of the VAE
    it started from."""
    ckpt = read_checkpoint(run)
    vae = VAE(VAEConfig(**ckpt["model_config"]))
    vae.load_state_dict({**vae.state_dict(), **ckpt["model"]})  # spectra buffers come next
    measure_spectra(vae, load_folder(ckpt["train_config"]["data"]))
    card = {"model_id": model_id, "vae": summary(ckpt)}
    base = (card["vae"]["init"] or {}).get("vae")
    if base:
        card["base"] = load_vae(base)[1]
    intro = [("The restoration prior of `vqpress restore` / `vqpress inpaint`: a fully convolutional "
              "VAE (fp16) with a Gaussian latent map at 1/8 scale; no pretrained weights were used.")]

    def write(path):
        save_file(half(vae.state_dict()), str(path),
                  metadata={"vae_config": json.dumps(vae.config.to_dict()), "card": json.dumps(card)})

    return release(out, model_id, write, card, intro, vae_sections(card))


def vae_sections(card: dict) -> list[tuple[str, list[str]]]:
    """A card's training sections: a restoration-encoder run, then (recursively) the card of the
    VAE it started from; or the VAE's own training."""
    c, base = card["vae"], card.get("base")
    if base:
        damage = (f"only on {', '.join(c['tasks'])} damage" if c.get("tasks") else
                  "on random damage of every task")
        what = (f"Its networks start from `{base['model_id']}` (below). This run, "
                "`vqpress train restorer`, trained only the restoration encoder, with the decoder "
                "frozen: damaged image -> the latent whose decoding is closest (MSE) to the clean "
                f"image, {damage} (`restore.damage.random_damage`: inpainting masks, noise "
                "of std 3-60, x2-x4 downsampling, Gaussian blur of std 0.5-4). Validation: mean "
                "PSNR of that decoding per task on 240x240 centre crops of the validation photos, "
                "each damaged the same way at every validation.")
        nested = [line for title, body in vae_sections(base) for line in ([f"### {title}", ""] + body + [""])]
        return [("restoration encoder", [what, "", *training_lines(c)]),
                (base["model_id"], nested)]
    lines = [("Trained by `vqpress train vae` with loss MSE + kl_weight * KL. Validation numbers: "
              "mean PSNR of the decoded posterior mean on 256x256 centre crops of the validation "
              "photos, and the mean KL in bits per pixel."), "", *training_lines(c)]
    if (c.get("init") or {}).get("codec"):
        lines.append(f"- started from the autoencoder of codec weights `{c['init']['codec']}`, its "
                     "latent whitened with the codebooks' per-channel Gaussian")
    lines.append("- spectra (buffers `log_residual_power`, `log_image_power`): measured at export on "
                 "64 random 256x256 crops of the training images")
    return [("VAE", lines)]

"""Training the codec's networks: the VQ-VAE, then the PixelCNN prior on its symbol maps, and
their release as a codec weights file (quality k = k VQ stages)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.numpy import save_file
from tqdm import tqdm

from vqpress.codec.blocks import DOWNSCALE
from vqpress.codec.errors import VQPressError
from vqpress.codec.prior import PriorConfig
from vqpress.measure.metrics import psnr_of_mse
from vqpress.nets.pixelcnn import PixelCNNPrior
from vqpress.nets.vqvae import VQVAE, VQVAEConfig

from .cards import CODEC_INTRO, codec_sections, release_codec
from .data import RandomCrops, center_crops, load_folder
from .fixedpoint import export_tables
from .loop import TrainConfig, fit, prepare, read_checkpoint, resume
from .release import exported_summary, half, release, summary


@torch.no_grad()
def validate_vqvae(model: VQVAE, crops: list[torch.Tensor], stage_counts=None) -> dict:
    """Mean PSNR on the validation crops for each number of stages (all, unless given)."""
    model.eval()
    out = {}
    for stages in stage_counts or range(1, model.config.num_stages + 1):
        psnrs = []
        for c in crops:
            x = c[None].float().to(next(model.parameters()).device) / 255
            y = model.decode(model.encode(x, stages)).clamp(0, 1)
            psnrs.append(psnr_of_mse(F.mse_loss(y, x).item(), peak=1.0))
        out[f"psnr@{stages}"] = round(sum(psnrs) / len(psnrs), 3)
    model.train()
    return out


def train_vqvae(cfg: TrainConfig, model_config: VQVAEConfig | None = None) -> VQVAE:
    """Reconstruction + commitment loss, with a random number of stages per image (quantiser
    dropout) so that one decoder serves every quality."""
    model_config = model_config or VQVAEConfig()
    run = prepare(cfg)
    model = VQVAE(model_config).to(cfg.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    progress = resume(run, model, optimizer, cfg)
    crops = RandomCrops(load_folder(cfg.data), cfg.crop, seed=cfg.seed + progress.step)
    cfg.extra["train_images"] = len(crops.images)
    valid = center_crops(load_folder(cfg.valid), 256) if cfg.valid else None

    def batch_loss():
        x = crops.batch(cfg.batch).to(cfg.device)
        keep = torch.randint(1, model_config.num_stages + 1, (cfg.batch,), device=cfg.device)
        x_hat, _, commitment = model(x, keep)
        mse = F.mse_loss(x_hat, x)
        return mse + commitment, {"mse": mse.item(), "commit": commitment.item()}

    fit(cfg, run, model, optimizer, model_config.to_dict(), "vqvae", batch_loss,
        valid and (lambda: validate_vqvae(model, valid)), progress)
    return model


@torch.no_grad()
def symbol_maps(model: VQVAE, images: list[np.ndarray]) -> list[torch.Tensor]:
    """All-stage symbol maps (S, H/8, W/8) of whole images (cropped to multiples of 8)."""
    model.eval()
    maps = []
    for im in tqdm(images, desc="symbol maps", leave=False):
        h, w = (s // DOWNSCALE * DOWNSCALE for s in im.shape[:2])
        x = torch.from_numpy(np.array(im[:h, :w])).permute(2, 0, 1)[None].float() / 255
        x = x.to(next(model.parameters()).device)
        maps.append(model.encode(x, model.config.num_stages)[0].to(torch.uint8).cpu())
    return maps


def _map_batch(maps: list[torch.Tensor], size: int, crop: int, rng: np.random.Generator):
    batch = []
    for i in rng.choice(len(maps), size):
        m = maps[i]
        y = rng.integers(0, m.shape[1] - crop + 1)
        x = rng.integers(0, m.shape[2] - crop + 1)
        batch.append(m[:, y:y + crop, x:x + crop])
    return torch.stack(batch).long()


@torch.no_grad()
def validate_prior(prior: PixelCNNPrior, maps: list[torch.Tensor], qualities=None) -> dict:
    """Bits per pixel of the validation maps at each quality (all, unless given; float model)."""
    prior.eval()
    out = {}
    pixels = sum(m.shape[1] * m.shape[2] for m in maps) * DOWNSCALE**2
    for q in qualities or range(1, prior.config.num_stages + 1):
        device = prior.head.device
        bits = sum(prior.bits(m[None].long().to(device), torch.tensor([q], device=device)).item()
                   for m in maps)
        out[f"bpp@{q}"] = round(bits / pixels, 4)
    prior.train()
    return out


def train_prior(cfg: TrainConfig, vqvae: VQVAE, prior_config: PriorConfig,
                qualities: tuple[int, ...] | None = None) -> PixelCNNPrior:
    """Fit the prior to the symbol maps the (frozen) VQ-VAE makes of the training images.

    cfg.crop is the crop size in symbols. Each crop gets a random quality level (number of
    stages) from `qualities` (default: all), so one network learns every level it will code."""
    run = prepare(cfg)
    prior = PixelCNNPrior(prior_config).to(cfg.device)
    optimizer = torch.optim.Adam(prior.parameters(), lr=cfg.lr)
    progress = resume(run, prior, optimizer, cfg)
    maps = symbol_maps(vqvae, load_folder(cfg.data, min_side=cfg.crop * DOWNSCALE))
    cfg.extra["train_images"] = len(maps)
    valid = symbol_maps(vqvae, load_folder(cfg.valid)) if cfg.valid else None
    rng = np.random.default_rng(cfg.seed + progress.step)
    choices = torch.tensor(qualities or range(1, prior_config.num_stages + 1), device=cfg.device)
    if qualities:
        cfg.extra["qualities"] = list(qualities)

    def batch_loss():
        indices = _map_batch(maps, cfg.batch, cfg.crop, rng).to(cfg.device)
        quality = choices[torch.randint(len(choices), (cfg.batch,), device=cfg.device)]
        loss = (prior.bits(indices, quality) / (quality * cfg.crop**2)).mean()
        return loss, {"bits_per_symbol": loss.item()}

    fit(cfg, run, prior, optimizer, prior_config.to_dict(), "prior", batch_loss,
        valid and (lambda: validate_prior(prior, valid, qualities)), progress)
    return prior


def codec_vqvae(model_id: str) -> VQVAE:
    """The VQ-VAE of a shipped codec model, as a torch module (eval mode, on the CPU)."""
    from vqpress.codec.model import load_codec_file
    from vqpress.weights import verified

    return vqvae_of(load_codec_file(verified(model_id)[0]))


def vqvae_of(model) -> VQVAE:
    """The VQ-VAE of a loaded codec file (`codec.model.CodecModel`), as a torch module (eval
    mode, on the CPU)."""
    vqvae = VQVAE(VQVAEConfig(**model.vqvae_config))
    vqvae.load_state_dict({k: torch.from_numpy(v.astype(np.float32) if v.dtype == np.float16 else v)
                           for k, v in model.vqvae_state.items()})
    return vqvae.eval()


def load_run_vqvae(run) -> VQVAE:
    ckpt = read_checkpoint(run)
    model = VQVAE(VQVAEConfig(**ckpt["model_config"]))
    model.load_state_dict(ckpt["model"])
    return model.eval()


def export_codec(vqvae_run, prior_run, model_id: str, out: Path) -> Path:
    """Release a VQ-VAE run and a prior run as one codec weights file."""
    vq_ckpt, pr_ckpt = read_checkpoint(vqvae_run), read_checkpoint(prior_run)
    vqvae = load_run_vqvae(vqvae_run)
    prior = PixelCNNPrior(PriorConfig(**pr_ckpt["model_config"]))
    prior.load_state_dict(pr_ckpt["model"])
    card = {"model_id": model_id, "vqvae": summary(vq_ckpt), "prior": summary(pr_ckpt)}
    tables = export_tables(prior)
    return release(out, model_id, lambda path: write_codec_file(path, vqvae, tables, card), card,
                   CODEC_INTRO, codec_sections(card))


def write_codec_file(path, vqvae: VQVAE, prior_tables: dict[str, np.ndarray], card: dict) -> None:
    """A codec weights file without a detail layer: fp16 VQ-VAE, int32 prior tables."""
    tensors = {f"vqvae.{k}": v for k, v in half(vqvae.state_dict()).items()}
    tensors.update({f"prior.{k}": v for k, v in prior_tables.items()})
    save_file(tensors, str(path), metadata={"vqvae_config": json.dumps(vqvae.config.to_dict()),
                                            "card": json.dumps(card)})


def _quantised_latent(model: VQVAE, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """The latent of x quantised with keep[i] VQ stages for image i (no codebook update)."""
    with torch.no_grad():
        z = model.encoder(x)
        indices = model.rvq.encode(z, int(keep.max()))
        masked = [model.rvq.decode(indices[i:i + 1, :k]) for i, k in enumerate(keep.tolist())]
    return torch.cat(masked)


def train_decoder(cfg: TrainConfig, base_model: str, stages: tuple[int, ...]) -> VQVAE:
    """Fine-tune a shipped codec's decoder for the numbers of VQ stages its ladder uses most,
    each crop drawing one of `stages`. The encoder and codebooks are frozen, so every symbol,
    and the prior that codes them, stays as it was."""
    run = prepare(cfg)
    model = codec_vqvae(base_model).to(cfg.device)
    model.requires_grad_(False)
    model.decoder.requires_grad_(True)
    optimizer = torch.optim.Adam(model.decoder.parameters(), lr=cfg.lr)
    progress = resume(run, model, optimizer, cfg)
    crops = RandomCrops(load_folder(cfg.data), cfg.crop, seed=cfg.seed + progress.step)
    cfg.extra.update(train_images=len(crops.images), init={"codec": base_model}, stages=list(stages))
    valid = center_crops(load_folder(cfg.valid), 256) if cfg.valid else None
    choices = torch.tensor(stages)

    def batch_loss():
        x = crops.batch(cfg.batch).to(cfg.device)
        keep = choices[torch.randint(len(choices), (cfg.batch,))]
        mse = F.mse_loss(model.decoder(_quantised_latent(model, x, keep)), x)
        return mse, {"mse": mse.item()}

    fit(cfg, run, model, optimizer, model.config.to_dict(), "decoder", batch_loss,
        valid and (lambda: validate_vqvae(model, valid, stages)), progress)
    return model


def export_part(run, model_id: str, out: Path, onto: Path | None = None) -> Path:
    """Release a decoder or prior run as a codec file: its base codec's file (or `onto`, a codec
    file with the same symbols: the same encoder and codebooks) with that part replaced and
    everything else kept. Refit the detail tables and the filter after a new decoder."""
    from vqpress import weights
    from vqpress.codec.model import codec_file

    ckpt = read_checkpoint(run)
    trained_on = weights.verified(ckpt["train_config"]["extra"]["init"]["codec"])[0]
    base_path = onto or trained_on
    meta, tensors = codec_file(base_path)
    if onto is not None:
        before = codec_file(trained_on)[1]
        if any(not np.array_equal(before[k], tensors.get(k)) for k in before
               if k.startswith("vqvae.") and not k.startswith("vqvae.decoder.")):
            raise VQPressError(f"{onto} does not make the symbols the run was trained on ({trained_on.stem})")
    if "stages" in ckpt["train_config"]["extra"]:
        part = "decoder"
        tensors.update({f"vqvae.{k}": v for k, v in half(ckpt["model"]).items() if k.startswith("decoder.")})
    else:
        part = "prior"
        prior = PixelCNNPrior(PriorConfig(**ckpt["model_config"]))
        prior.load_state_dict(ckpt["model"])
        tensors = {k: v for k, v in tensors.items() if not k.startswith("prior.")}
        tensors.update({f"prior.{k}": v for k, v in export_tables(prior).items()})
    card = {**meta["card"], "model_id": model_id, part: exported_summary(ckpt)}

    return release_codec(out, model_id, tensors, meta, card)

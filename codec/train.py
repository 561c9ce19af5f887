"""Training loops for the VQ-VAE and the PixelCNN prior, readable in one sitting.

Both loops checkpoint to `<run>/ckpt.pt` every `checkpoint_every` steps and resume from it, so a
stopped run loses at most that much work. `export_*` writes the shipped weights and a model card.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from .data import RandomCrops, load_folder
from .errors import VQPressError
from .prior import PixelCNNPrior, PriorConfig
from .vqvae import DOWNSCALE, VQVAE, VQVAEConfig


@dataclass
class TrainConfig:
    data: str
    run: str
    valid: str | None = None
    steps: int = 20000
    batch: int = 8
    crop: int = 128
    lr: float = 3e-4
    min_lr: float = 3e-5
    warmup: int = 200
    validate_every: int = 500
    checkpoint_every: int = 250
    threads: int = 0
    device: str = "cpu"
    seed: int = 0
    extra: dict = field(default_factory=dict)


def learning_rate(cfg: TrainConfig, step: int) -> float:
    """Linear warm-up, then cosine decay to min_lr."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * progress))


def read_checkpoint(run) -> dict:
    """The checkpoint of a finished or running training run (on the CPU)."""
    path = Path(run) / "ckpt.pt"
    if not path.is_file():
        raise VQPressError(f"{run}: no checkpoint ({path.name}); is it a training run folder?")
    return torch.load(path, map_location="cpu", weights_only=False)


def _load_checkpoint(run: Path, model, optimizer, cfg: TrainConfig) -> tuple[int, float, list]:
    """Resume from run/ckpt.pt if there is one. Resuming with more steps than the checkpoint's
    run had restarts the cosine schedule; cfg.extra["schedules"] records it for the model card."""
    ckpt_path = run / "ckpt.pt"
    if not ckpt_path.exists():
        return 0, 0.0, []
    ckpt = read_checkpoint(run)
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    before = ckpt["train_config"]
    schedules = before["extra"].get("schedules", [{"from_step": 0, "steps": before["steps"]}])
    if cfg.steps != schedules[-1]["steps"]:
        schedules = [*schedules, {"from_step": ckpt["step"], "steps": cfg.steps}]
    cfg.extra["schedules"] = schedules
    print(f"resuming {run} at step {ckpt['step']}")
    return ckpt["step"], ckpt["seconds"], ckpt["history"]


def _save_checkpoint(run: Path, model, optimizer, step, seconds, history, cfg, model_config) -> None:
    tmp = run / "ckpt.pt.tmp"
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                "seconds": seconds, "history": history, "train_config": cfg.__dict__,
                "model_config": model_config, "hardware": hardware(cfg.device)}, tmp)
    tmp.replace(run / "ckpt.pt")


def center_crops(images: list[np.ndarray], size: int) -> torch.Tensor:
    crops = []
    for im in images:
        h, w = im.shape[:2]
        s = min(size, h, w) // DOWNSCALE * DOWNSCALE
        y, x = (h - s) // 2, (w - s) // 2
        crops.append(torch.from_numpy(np.ascontiguousarray(im[y:y + s, x:x + s])).permute(2, 0, 1))
    return crops


@torch.no_grad()
def validate_vqvae(model: VQVAE, crops: list[torch.Tensor]) -> dict:
    """Mean PSNR on the validation crops for each number of stages."""
    model.eval()
    out = {}
    for stages in range(1, model.config.num_stages + 1):
        psnrs = []
        for c in crops:
            x = c[None].float().to(next(model.parameters()).device) / 255
            y = model.decode(model.encode(x, stages)).clamp(0, 1)
            psnrs.append(-10 * math.log10(F.mse_loss(y, x).item() + 1e-12))
        out[f"psnr@{stages}"] = round(sum(psnrs) / len(psnrs), 3)
    model.train()
    return out


def _prepare(cfg: TrainConfig) -> Path:
    torch.manual_seed(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    run = Path(cfg.run)
    run.mkdir(parents=True, exist_ok=True)
    return run


def _fit(cfg: TrainConfig, run: Path, model, optimizer, model_config: dict, desc: str,
         batch_loss, validate, start: tuple[int, float, list]) -> None:
    """The loop both models share: lr schedule, steps, progress bar, validation, checkpoints.

    batch_loss() draws a batch and returns (loss, {name: value to show})."""
    step, seconds, history = start
    bar = tqdm(total=cfg.steps, initial=step, desc=desc, dynamic_ncols=True)
    while step < cfg.steps:
        t0 = time.time()
        for group in optimizer.param_groups:
            if not group.get("fixed_lr"):
                group["lr"] = learning_rate(cfg, step)
        loss, shown = batch_loss()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        seconds += time.time() - t0
        bar.update(1)
        bar.set_postfix({k: f"{v:.5f}" for k, v in shown.items()})
        if validate is not None and (step % cfg.validate_every == 0 or step == cfg.steps):
            history.append({"step": step, "seconds": round(seconds), **validate()})
            tqdm.write(json.dumps(history[-1]))
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            _save_checkpoint(run, model, optimizer, step, seconds, history, cfg, model_config)
    bar.close()


def train_vqvae(cfg: TrainConfig, model_config: VQVAEConfig | None = None) -> VQVAE:
    model_config = model_config or VQVAEConfig()
    run = _prepare(cfg)
    model = VQVAE(model_config).to(cfg.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    start = _load_checkpoint(run, model, optimizer, cfg)
    crops = RandomCrops(load_folder(cfg.data), cfg.crop, seed=cfg.seed + start[0])
    cfg.extra["train_images"] = len(crops.images)
    valid = center_crops(load_folder(cfg.valid), 256) if cfg.valid else None

    def batch_loss():
        x = crops.batch(cfg.batch).to(cfg.device)
        keep = torch.randint(1, model_config.num_stages + 1, (cfg.batch,), device=cfg.device)
        x_hat, _, commitment = model(x, keep)  # keep: a random number of stages per image
        mse = F.mse_loss(x_hat, x)
        return mse + commitment, {"mse": mse.item(), "commit": commitment.item()}

    _fit(cfg, run, model, optimizer, model_config.to_dict(), "vqvae", batch_loss,
         valid and (lambda: validate_vqvae(model, valid)), start)
    return model


def hardware(device: str = "cpu") -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name()
    cpu = platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [l.split(":", 1)[1].strip() for l in f if l.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"


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
def validate_prior(prior: PixelCNNPrior, maps: list[torch.Tensor]) -> dict:
    """Bits per pixel of the validation maps at every quality (float model)."""
    prior.eval()
    out = {}
    pixels = sum(m.shape[1] * m.shape[2] for m in maps) * DOWNSCALE**2
    for q in range(1, prior.config.num_stages + 1):
        device = prior.head.device
        bits = sum(prior.bits(m[None].long().to(device), torch.tensor([q], device=device)).item()
                   for m in maps)
        out[f"bpp@{q}"] = round(bits / pixels, 4)
    prior.train()
    return out


def train_prior(cfg: TrainConfig, vqvae: VQVAE, prior_config: PriorConfig) -> PixelCNNPrior:
    """Fit the prior to the symbol maps the (frozen) VQ-VAE makes of the training images.

    cfg.crop is the crop size in symbols. Each crop gets a random quality level, so one network
    learns every level."""
    run = _prepare(cfg)
    prior = PixelCNNPrior(prior_config).to(cfg.device)
    optimizer = torch.optim.Adam(prior.parameters(), lr=cfg.lr)
    start = _load_checkpoint(run, prior, optimizer, cfg)
    maps = symbol_maps(vqvae, load_folder(cfg.data, min_side=cfg.crop * DOWNSCALE))
    cfg.extra["train_images"] = len(maps)
    valid = symbol_maps(vqvae, load_folder(cfg.valid)) if cfg.valid else None
    rng = np.random.default_rng(cfg.seed + start[0])

    def batch_loss():
        indices = _map_batch(maps, cfg.batch, cfg.crop, rng).to(cfg.device)
        quality = torch.randint(1, prior_config.num_stages + 1, (cfg.batch,), device=cfg.device)
        loss = (prior.bits(indices, quality) / (quality * cfg.crop**2)).mean()
        return loss, {"bits_per_symbol": loss.item()}

    _fit(cfg, run, prior, optimizer, prior_config.to_dict(), "prior", batch_loss,
         valid and (lambda: validate_prior(prior, valid)), start)
    return prior


def train_compressai(cfg: TrainConfig, arch: str, lmbda: float, widths: tuple[int, int] = (96, 128),
                     init: str | None = None):
    """A learned peer: compressai's `arch` (e.g. bmshj2018-hyperprior) with N, M = `widths`
    channels, trained on the same crops as ours with loss lambda * 255^2 * MSE + bpp.

    `init` names a run whose weights start this one (a fresh optimizer and schedule): the usual
    way to get several lambdas from one base run. Its steps and seconds are recorded so the model
    card gives the whole budget. The entropy models' quantiles (aux loss) get their own parameter
    group at a fixed lr of 1e-3, as in compressai's examples."""
    from compressai.losses import RateDistortionLoss
    from compressai.zoo.image import model_architectures

    run = _prepare(cfg)
    n, m = widths
    net = model_architectures[arch](N=n, M=m).to(cfg.device)
    if init:
        base = read_checkpoint(init)
        cfg.extra["init"] = {"run": str(init), "steps": base["step"],
                             "seconds": round(base["seconds"]), "lmbda": base["model_config"]["lmbda"]}
        if not (run / "ckpt.pt").exists():
            net.load_state_dict(base["model"])
    aux = {n for n, _ in net.named_parameters() if n.endswith(".quantiles")}
    optimizer = torch.optim.Adam([
        {"params": [p for n, p in net.named_parameters() if n not in aux], "lr": cfg.lr},
        {"params": [p for n, p in net.named_parameters() if n in aux], "lr": 1e-3, "fixed_lr": True},
    ])
    start = _load_checkpoint(run, net, optimizer, cfg)
    crops = RandomCrops(load_folder(cfg.data), cfg.crop, seed=cfg.seed + start[0])
    cfg.extra.update(train_images=len(crops.images), arch=arch, lmbda=lmbda)
    criterion = RateDistortionLoss(lmbda=lmbda)

    def batch_loss():
        x = crops.batch(cfg.batch).to(cfg.device)
        out = criterion(net(x), x)
        return out["loss"] + net.aux_loss(), {"bpp": out["bpp_loss"].item(),
                                               "mse": out["mse_loss"].item()}

    _fit(cfg, run, net, optimizer, {"arch": arch, "N": n, "M": m, "lmbda": lmbda},
         f"{arch} lambda={lmbda}", batch_loss, None, start)
    return net


def export_compressai(run, out: Path, name: str) -> Path:
    """Write <out>/<name>.safetensors (fp16 state dict that compressai's from_state_dict reads),
    its model card (.json and .md) and its checksum line."""
    from safetensors.torch import save_file

    from .zoo import CHECKSUMS, sha256_file

    ckpt = read_checkpoint(run)
    path = out / f"{name}.safetensors"
    save_file({k: (v.half() if v.is_floating_point() else v).contiguous()
               for k, v in ckpt["model"].items()}, str(path),
              metadata={"arch": ckpt["model_config"]["arch"]})
    card = {"model_id": name, "peer": _summary(ckpt)}
    (out / f"{name}.json").write_text(json.dumps(card, indent=2) + "\n")
    digest = sha256_file(path)
    _add_checksum(out / CHECKSUMS, path.name, digest)
    (out / f"{name}.md").write_text(peer_card(name, card["peer"], digest))
    return path


def peer_card(name: str, c: dict, digest: str) -> str:
    """A person-readable model card of a compressai peer (the JSON beside it has the same facts)."""
    init = c.get("init")
    lines = [f"# {name}", "", f"File `{name}.safetensors`, sha256 `{digest}`.", "",
             (f"A learned peer for `vqpress rd`: compressai's `{c['model_config']['arch']}` "
             f"(N={c['model_config']['N']}, M={c['model_config']['M']}), fp16, trained by "
             "`vqpress train compressai` with loss lambda * 255^2 * MSE + bpp; no pretrained "
             "weights were used."), "",
             f"- data: `{c['data']}` ({c['train_images']} images)",
             (f"- lambda {c['model_config']['lmbda']}: {c['steps']} steps, batch {c['batch']}, "
             f"crop {c['crop']}, peak lr {c['lr']}, {c['train_seconds'] / 60:.0f} min on {c['hardware']}")]
    if init:
        lines.append(f"- started from `{init['run']}` (lambda {init['lmbda']}, {init['steps']} steps, "
                     f"{init['seconds'] / 60:.0f} min), which the peers of the other lambdas share")
    return "\n".join(lines) + "\n"


def _add_checksum(sums: Path, filename: str, digest: str) -> None:
    lines = [l for l in (sums.read_text().splitlines() if sums.exists() else [])
             if not l.endswith(f"  {filename}")]
    sums.write_text("\n".join(sorted(lines + [f"{digest}  {filename}"])) + "\n")


def load_run_vqvae(run) -> VQVAE:
    ckpt = read_checkpoint(run)
    model = VQVAE(VQVAEConfig(**ckpt["model_config"]))
    model.load_state_dict(ckpt["model"])
    return model.eval()


def _summary(ckpt: dict) -> dict:
    cfg = ckpt["train_config"]
    images = cfg["extra"].get("train_images")
    if images is None and Path(cfg["data"]).is_dir():
        from .data import image_paths

        images = len(image_paths(cfg["data"]))
    return {"data": cfg["data"], "train_images": images,
            "valid": cfg["valid"], "steps": ckpt["step"], "planned_steps": cfg["steps"],
            "batch": cfg["batch"], "crop": cfg["crop"], "lr": cfg["lr"],
            "train_seconds": round(ckpt["seconds"]), "hardware": ckpt.get("hardware", "unknown"),
            "model_config": ckpt["model_config"], "init": cfg["extra"].get("init"),
            "schedules": cfg["extra"].get("schedules"), "tasks": cfg["extra"].get("tasks"),
            "last_validation": ckpt["history"][-1] if ckpt["history"] else None}


def export_codec(vqvae_run, prior_run, model_id: str, out: Path) -> Path:
    """Write the shipped weights file, its model card and its checksum line."""
    from .fixedpoint import export_tables
    from .zoo import CHECKSUMS, save_codec

    vq_ckpt = read_checkpoint(vqvae_run)
    pr_ckpt = read_checkpoint(prior_run)
    vqvae = load_run_vqvae(vqvae_run)
    prior = PixelCNNPrior(PriorConfig(**pr_ckpt["model_config"]))
    prior.load_state_dict(pr_ckpt["model"])
    card = {"model_id": model_id, "vqvae": _summary(vq_ckpt), "prior": _summary(pr_ckpt)}
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{model_id}.safetensors"
    digest = save_codec(path, vqvae, export_tables(prior), card)
    _add_checksum(out / CHECKSUMS, path.name, digest)
    (out / f"{model_id}.json").write_text(json.dumps(card, indent=2) + "\n")
    (out / f"{model_id}.md").write_text(model_card(model_id, card, digest))
    return path


def _schedule_lines(schedules: list | None) -> list[str]:
    """One card line for a run that was resumed with a new number of steps (a restarted cosine)."""
    if not schedules or len(schedules) < 2:
        return []
    parts = [f"steps {s['from_step']}-{s['steps']}" for s in schedules]
    return [(f"- lr schedule: warm-up and cosine over {', then a restarted cosine over '.join(parts)} "
            "(the run was resumed with a new number of steps)")]


def model_card(model_id: str, card: dict, digest: str) -> str:
    """A person-readable model card (the JSON beside it has the same facts)."""
    lines = [f"# {model_id}", "", f"File `{model_id}.safetensors`, sha256 `{digest}`.", "",
             ("VQ-VAE (fp16 weights) + PixelCNN prior (int32 fixed-point tables) of the vqpress "
             "codec. Trained from scratch by `vqpress train`; no pretrained weights were used."),
             ("Validation numbers: the VQ-VAE's mean PSNR on 256x256 centre crops of the validation "
             "photos for each number of stages (psnr@k), and the float prior's bits per pixel of "
             "the whole validation photos at each quality (bpp@k)."), ""]
    for part in ("vqvae", "prior"):
        c = card[part]
        lines += [f"## {part}", "",
                  f"- data: `{c['data']}` ({c['train_images']} images), validation `{c['valid']}`",
                  f"- {c['steps']} steps, batch {c['batch']}, crop {c['crop']}, peak lr {c['lr']}",
                  f"- {c['train_seconds'] / 60:.0f} min of training on {c['hardware']}",
                  *_schedule_lines(c.get("schedules")),
                  f"- config: `{json.dumps(c['model_config'])}`",
                  f"- last validation: `{json.dumps(c['last_validation'])}`", ""]
    return "\n".join(lines)

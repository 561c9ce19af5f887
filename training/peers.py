"""Training the learned peers that `vqpress rd` measures vqpress against: compressai's
scalar-quantised models, on the same crops as ours. (The only place training needs compressai.)"""

from __future__ import annotations

from pathlib import Path

import torch

from .data import RandomCrops, load_folder
from .loop import TrainConfig, fit, prepare, read_checkpoint, resume
from .release import half, release, summary, training_lines


def train_compressai(cfg: TrainConfig, arch: str, lmbda: float, widths: tuple[int, int] = (96, 128),
                     init: str | None = None):
    """compressai's `arch` (e.g. bmshj2018-hyperprior) with N, M = `widths` channels, loss
    lambda * 255^2 * MSE + bpp.

    `init` names a run whose weights start this one (a fresh optimizer and schedule): the usual
    way to get several lambdas from one base run. Its steps and seconds are recorded so the model
    card gives the whole budget. The entropy models' quantiles (aux loss) get their own parameter
    group at a fixed lr of 1e-3, as in compressai's examples."""
    from compressai.losses import RateDistortionLoss
    from compressai.zoo.image import model_architectures

    run = prepare(cfg)
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
    progress = resume(run, net, optimizer, cfg)
    crops = RandomCrops(load_folder(cfg.data), cfg.crop, seed=cfg.seed + progress.step)
    cfg.extra.update(train_images=len(crops.images), arch=arch, lmbda=lmbda)
    criterion = RateDistortionLoss(lmbda=lmbda)

    def batch_loss():
        x = crops.batch(cfg.batch).to(cfg.device)
        out = criterion(net(x), x)
        return out["loss"] + net.aux_loss(), {"bpp": out["bpp_loss"].item(),
                                               "mse": out["mse_loss"].item()}

    fit(cfg, run, net, optimizer, {"arch": arch, "N": n, "M": m, "lmbda": lmbda},
        f"{arch} lambda={lmbda}", batch_loss, None, progress)
    return net


def export_compressai(run, out: Path, name: str) -> Path:
    """Release a peer: an fp16 state dict that compressai's from_state_dict reads."""
    from safetensors.numpy import save_file

    ckpt = read_checkpoint(run)
    c = summary(ckpt)
    card = {"model_id": name, "peer": c}
    mc = c["model_config"]
    intro = [(f"A learned peer for `vqpress rd`: compressai's `{mc['arch']}` (N={mc['N']}, M={mc['M']}), "
              "fp16, trained by `vqpress train compressai` with loss lambda * 255^2 * MSE + bpp; no "
              "pretrained weights were used.")]
    lines = training_lines(c)
    if c.get("init"):
        i = c["init"]
        lines.append(f"- started from `{i['run']}` (lambda {i['lmbda']}, {i['steps']} steps, "
                     f"{i['seconds'] / 60:.0f} min), which the peers of the other lambdas share")

    def write(path):
        save_file(half(ckpt["model"]), str(path), metadata={"arch": mc["arch"]})

    return release(out, name, write, card, intro, [(f"lambda {mc['lmbda']}", lines)])

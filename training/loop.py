"""The training loop every model shares, readable in one sitting.

A run checkpoints to `<run>/ckpt.pt` every `checkpoint_every` steps and resumes from it, so a
stopped run loses at most that much work. Resuming with more steps than the run had restarts
the cosine schedule; the checkpoint records it for the model card.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from vqpress.codec.errors import VQPressError
from vqpress.codec.imageio import write_atomically


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


@dataclass
class Progress:
    """Where a run stands: what a checkpoint restores."""
    step: int = 0
    seconds: float = 0.0
    history: list = field(default_factory=list)


def resume(run: Path, model, optimizer, cfg: TrainConfig) -> Progress:
    """Load run/ckpt.pt into model and optimizer if there is one, and say where it stopped."""
    if not (run / "ckpt.pt").exists():
        return Progress()
    ckpt = read_checkpoint(run)
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    before = ckpt["train_config"]
    schedules = before["extra"].get("schedules", [{"from_step": 0, "steps": before["steps"]}])
    if cfg.steps != schedules[-1]["steps"]:
        schedules = [*schedules, {"from_step": ckpt["step"], "steps": cfg.steps}]
    cfg.extra["schedules"] = schedules
    print(f"resuming {run} at step {ckpt['step']}")
    return Progress(ckpt["step"], ckpt["seconds"], ckpt["history"])


def save_checkpoint(run: Path, model, optimizer, progress: Progress, cfg: TrainConfig,
                    model_config: dict) -> None:
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": progress.step,
             "seconds": progress.seconds, "history": progress.history, "train_config": cfg.__dict__,
             "model_config": model_config, "hardware": hardware(cfg.device)}
    write_atomically(run / "ckpt.pt", lambda f: torch.save(state, f))


def prepare(cfg: TrainConfig) -> Path:
    """Seed, threads and the run folder."""
    torch.manual_seed(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    run = Path(cfg.run)
    run.mkdir(parents=True, exist_ok=True)
    return run


def fit(cfg: TrainConfig, run: Path, model, optimizer, model_config: dict, desc: str,
        batch_loss: Callable[[], tuple[torch.Tensor, dict]], validate: Callable[[], dict] | None,
        progress: Progress) -> None:
    """The loop: lr schedule, steps, progress bar, validation, checkpoints.

    batch_loss() draws a batch and returns (loss, {name: value to show}). Parameter groups
    marked `fixed_lr` keep their own learning rate."""
    bar = tqdm(total=cfg.steps, initial=progress.step, desc=desc, dynamic_ncols=True)
    while progress.step < cfg.steps:
        t0 = time.time()
        for group in optimizer.param_groups:
            if not group.get("fixed_lr"):
                group["lr"] = learning_rate(cfg, progress.step)
        loss, shown = batch_loss()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        progress.step += 1
        progress.seconds += time.time() - t0
        bar.update(1)
        bar.set_postfix({k: f"{v:.5f}" for k, v in shown.items()})
        step = progress.step
        if validate is not None and (step % cfg.validate_every == 0 or step == cfg.steps):
            progress.history.append({"step": step, "seconds": round(progress.seconds), **validate()})
            tqdm.write(json.dumps(progress.history[-1]))
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            save_checkpoint(run, model, optimizer, progress, cfg, model_config)
    bar.close()


def hardware(device: str = "cpu") -> str:
    """What a run trained on, for its model card."""
    if device.startswith("cuda"):
        return torch.cuda.get_device_name()
    cpu = platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"

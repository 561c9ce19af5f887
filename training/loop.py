"""The training loop every model shares, readable in one sitting.

A run checkpoints to `<run>/ckpt.pt` every `checkpoint_every` steps and resumes from it, so a
stopped run loses at most that much work. Resuming with another number of steps takes up the
cosine schedule of a run that long (at this command's --lr) from the step it stopped at; the
checkpoint records it for the model card.

Data-parallel: started by `torchrun --nproc_per_node N` or `vqpress train ... --nproc N`, every
process (rank) starts from the same weights, draws batches from its own shard of the images
(`data.RandomCrops`), and after each backward pass the gradients are averaged over the ranks
(torch.distributed all-reduce: gloo on the CPU, NCCL on GPUs) and the buffers (the codebooks'
moving averages) copied from rank 0, so every replica takes the same step. Rank 0 validates,
checkpoints and shows the progress bar; at the end the ranks check that their weights agree.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
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
    """Load run/ckpt.pt into model and optimizer if there is one, and say where it stopped.
    The command lines that ran the run are kept for its model card."""
    if not (run / "ckpt.pt").exists():
        cfg.extra["commands"] = [command_line()]
        return Progress()
    ckpt = read_checkpoint(run)
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    before = ckpt["train_config"]
    schedules = before["extra"].get("schedules", [{"from_step": 0, "steps": before["steps"]}])
    if cfg.steps != schedules[-1]["steps"]:
        schedules = [*schedules, {"from_step": ckpt["step"], "steps": cfg.steps}]
    cfg.extra["schedules"] = schedules
    cfg.extra["commands"] = [*before["extra"].get("commands", []), command_line()]
    print(f"resuming {run} at step {ckpt['step']}")
    return Progress(ckpt["step"], ckpt["seconds"], ckpt["history"])


def command_line() -> str:
    """This process's command, as a user would type it (`vqpress train ...`)."""
    args = " ".join(shlex.quote(a) for a in sys.argv[1:])
    return f"vqpress {args}" if Path(sys.argv[0]).name in ("vqpress", "main.py") else f"{sys.argv[0]} {args}"


def save_checkpoint(run: Path, model, optimizer, progress: Progress, cfg: TrainConfig,
                    model_config: dict) -> None:
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": progress.step,
             "seconds": progress.seconds, "history": progress.history, "train_config": cfg.__dict__,
             "model_config": model_config, "hardware": hardware(cfg.device)}
    write_atomically(run / "ckpt.pt", lambda f: torch.save(state, f))


def world() -> tuple[int, int]:
    """(rank, number of processes) of a data-parallel run; (0, 1) otherwise."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def prepare(cfg: TrainConfig) -> Path:
    """The process group (when started by torchrun or --nproc), seed, threads, run folder."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if cfg.device.startswith("cuda") else "gloo")
        if cfg.device.startswith("cuda"):
            cfg.device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
    torch.manual_seed(cfg.seed)  # the same initial weights on every rank
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
    rank, size = world()
    _synchronise(model, rank, size, parameters=True)
    bar = tqdm(total=cfg.steps, initial=progress.step, desc=desc, dynamic_ncols=True, disable=rank > 0)
    while progress.step < cfg.steps:
        t0 = time.time()
        for group in optimizer.param_groups:
            if not group.get("fixed_lr"):
                group["lr"] = learning_rate(cfg, progress.step)
        loss, shown = batch_loss()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        _average_gradients(model, size)
        optimizer.step()
        _synchronise(model, rank, size, parameters=False)
        progress.step += 1
        progress.seconds += time.time() - t0
        bar.update(1)
        bar.set_postfix({k: f"{v:.5f}" for k, v in shown.items()})
        step = progress.step
        if rank == 0 and validate is not None and (step % cfg.validate_every == 0 or step == cfg.steps):
            progress.history.append({"step": step, "seconds": round(progress.seconds), **validate()})
            tqdm.write(json.dumps(progress.history[-1]))
        if rank == 0 and (step % cfg.checkpoint_every == 0 or step == cfg.steps):
            save_checkpoint(run, model, optimizer, progress, cfg, model_config)
    bar.close()
    if size > 1:
        check_replicas(model)


def _average_gradients(model, size: int) -> None:
    """All-reduce the gradients, flattened into one buffer, and divide by the ranks."""
    if size == 1:
        return
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= size
    for g, part in zip(grads, flat.split([g.numel() for g in grads])):
        g.copy_(part.view_as(g))


def _synchronise(model, rank: int, size: int, parameters: bool) -> None:
    """Copy rank 0's buffers (and, at the start, its parameters) to every rank."""
    if size == 1:
        return
    tensors = list(model.buffers()) + (list(model.parameters()) if parameters else [])
    with torch.no_grad():
        for t in tensors:
            dist.broadcast(t.data, src=0)


def check_replicas(model) -> None:
    """Raise if the ranks' weights differ: data-parallel steps must keep them identical."""
    with torch.no_grad():
        total = torch.stack([p.double().sum() for p in model.parameters()] +
                            [b.double().sum() for b in model.buffers() if b.is_floating_point()]).sum()
    sums = [torch.zeros_like(total) for _ in range(world()[1])]
    dist.all_gather(sums, total)
    if len({float(s) for s in sums}) != 1:
        raise RuntimeError(f"data-parallel replicas diverged: weight sums {[float(s) for s in sums]}")
    if world()[0] == 0:
        print(f"replicas identical on {len(sums)} ranks (weight sum {float(total):.6f})")


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

"""Training the restoration refiner (`vqpress.nets.refiner`) on what the shipped restoration
really outputs: pairs of (its estimate of a damaged training crop, the crop), made once and kept
in shards, so that a stopped run loses at most one shard."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.numpy import save_file
from tqdm import tqdm

from vqpress import restore, weights
from vqpress.codec.errors import VQPressError
from vqpress.codec.imageio import image_paths, open_image, to_rgb8
from vqpress.measure.metrics import psnr_of_mse
from vqpress.nets.refiner import Refiner, RefinerConfig
from vqpress.restore.api import DEFAULT_VAE
from vqpress.restore.damage import strokes
from vqpress.restore.operators import gaussian_blur
from vqpress.restore.refine import ORIENTATIONS, TASK_ORDER, condition, load_refiner, observation, oriented

from .loop import TrainConfig, fit, prepare, read_checkpoint, resume
from .release import half, release, summary, training_lines

SHARD = 50  # crops per shard file
PAIRS_CARD = "pairs.json"  # beside the shards: the command that made them, for the model card
# `relative_loss` counts a crop whose estimate is better than 37 dB as if it were at 37 dB:
# without a floor, near-perfect flat crops (MSE 2e-6) dominated it.
FLOOR = 2e-4
MIN_GAIN = 0.05  # dB in the last validation, below which a task is skipped: not worth its time
# `gain_db` counts an error as at least 8-bit rounding's: a flat crop whose estimate is exact
# (MSE 0, an infinite PSNR) made a task's mean gain minus infinity, which the export would skip.
ROUNDING_MSE = 1 / 12 / 255**2


TASK_SHARES = {"inpaint": 0.4, "denoise": 0.1, "sr": 0.25, "deblur": 0.25}  # of the drawn pairs


def draw_damage(rng: np.random.Generator, side: int, tasks: tuple[str, ...] = tuple(TASK_SHARES)) -> dict:
    """A task of `tasks` (in proportion to TASK_SHARES) and its setting, spread around the
    benchmark's: strokes, boxes and random pixels; noise of std 10-55; x2/x3/x4 downscaling; a
    Gaussian blur of std 1-3 px."""
    shares = np.array([TASK_SHARES[t] for t in tasks])
    task = str(rng.choice(list(tasks), p=shares / shares.sum()))
    if task == "inpaint":
        kind = int(rng.choice(4, p=[0.3, 0.25, 0.2, 0.25]))
        if kind == 0:  # thin strokes
            missing = strokes((side, side), int(rng.integers(2, 7)), int(rng.integers(2, 7)), rng)
        elif kind == 1:  # thick strokes
            missing = strokes((side, side), int(rng.integers(2, 5)), int(rng.integers(10, 25)), rng)
        elif kind == 2:  # a box
            missing = np.zeros((side, side), bool)
            h, w = (int(rng.integers(24, side * 2 // 3)) for _ in range(2))
            y, x = int(rng.integers(0, side - h + 1)), int(rng.integers(0, side - w + 1))
            missing[y:y + h, x:x + w] = True
        else:
            return scattered_pixels(rng, side)
        return {"task": task, "missing": missing}
    if task == "denoise":
        return {"task": task, "sigma": float(rng.uniform(10, 55))}
    if task == "sr":
        return {"task": task, "scale": int(rng.choice([2, 3, 4], p=[0.4, 0.2, 0.4]))}
    return {"task": task, "blur_sigma": float(rng.uniform(1, 3))}


def scattered_pixels(rng: np.random.Generator, side: int) -> dict:
    """Inpainting with 40-95% of the pixels missing at random."""
    return {"task": "inpaint", "missing": rng.random((side, side)) < rng.uniform(0.4, 0.95)}


def damage(rgb: np.ndarray, setting: dict, rng: np.random.Generator) -> np.ndarray:
    """The damaged image, as a user would have it (8-bit): missing pixels white, noise added,
    downscaled by Pillow's bicubic, or blurred."""
    task = setting["task"]
    if task == "inpaint":
        return np.where(setting["missing"][..., None], 255, rgb).astype(np.uint8)
    if task == "denoise":
        noisy = rgb + rng.normal(0, setting["sigma"], rgb.shape)
        return np.clip(np.round(noisy), 0, 255).astype(np.uint8)
    if task == "sr":
        s = setting["scale"]
        return np.asarray(Image.fromarray(rgb).resize((rgb.shape[1] // s, rgb.shape[0] // s), Image.BICUBIC))
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
    blurred = gaussian_blur(setting["blur_sigma"])(x)[0].permute(1, 2, 0).numpy()
    return np.clip(np.round(blurred * 255), 0, 255).astype(np.uint8)


def restored(damaged: np.ndarray, setting: dict) -> np.ndarray:
    """What the shipped restoration makes of it, without the refiner: what the refiner sees (so
    also without the data fit that follows it)."""
    if setting["task"] == "inpaint":
        out = restore.inpaint(damaged, setting["missing"], device="cpu", refine=False)
    else:
        kwargs = {k: v for k, v in setting.items() if k != "task"}
        out = restore.restore(damaged, setting["task"], device="cpu", refine=False, fit=False, **kwargs)
    return np.asarray(out)


def make_pairs(folder: str, out: Path, count: int, side: int = 192, seed: int = 0,
               worker: int = 0, workers: int = 1, tasks: tuple[str, ...] = tuple(TASK_SHARES),
               shrink: int = 1, scattered: bool = False) -> None:
    """`count` crops of `side` px from the photos of `folder`, each damaged by `draw_damage`
    (a task of `tasks`; with `scattered`, by `scattered_pixels` only) and restored; this worker
    makes shards worker, worker + workers, ... Shards already written are kept (a restarted run
    goes on). shrink > 1: each photo is first shrunk that many times by averaging shrink x
    shrink blocks (`shrunk`)."""
    paths, least = [], side * shrink
    for path in image_paths(folder):
        with Image.open(path) as im:
            if min(im.size) >= least:
                paths.append(path)
    if not paths:
        raise VQPressError(f"{folder}: no image is at least {least}x{least}")
    out.mkdir(parents=True, exist_ok=True)
    shards = range(worker, -(-count // SHARD), workers)
    for shard in tqdm(shards, desc=f"pairs (worker {worker})"):
        file = out / f"pairs-{shard:04d}.npz"
        if file.exists():
            continue
        rng = np.random.default_rng([seed, shard])
        items = {k: [] for k in ("truth", "damaged", "estimate", "setting")}
        while len(items["truth"]) < min(SHARD, count - shard * SHARD):
            rgb = shrunk(to_rgb8(open_image(paths[int(rng.integers(len(paths)))]))[0], shrink)
            y, x = (int(rng.integers(0, n - side + 1)) for n in rgb.shape[:2])
            crop = np.ascontiguousarray(rgb[y:y + side, x:x + side])
            setting = scattered_pixels(rng, side) if scattered else draw_damage(rng, side, tasks)
            damaged = damage(crop, setting, rng)
            items["truth"].append(crop)
            items["damaged"].append(damaged)
            items["estimate"].append(restored(damaged, setting))
            items["setting"].append(setting)
        _save_shard(file, items)


def shrunk(rgb: np.ndarray, factor: int) -> np.ndarray:
    """The 8-bit image shrunk `factor` times, each pixel the mean of a factor x factor block (as
    a sensor with larger pixels would see it): sharper per pixel than the photo, and with its
    JPEG artifacts averaged away, more like the lossless images users also restore."""
    return rgb if factor == 1 else np.asarray(Image.fromarray(rgb).reduce(factor))


def _save_shard(file: Path, items: dict) -> None:
    arrays = {"truth": np.stack(items["truth"]), "estimate": np.stack(items["estimate"])}
    for k, (damaged, setting) in enumerate(zip(items["damaged"], items["setting"])):
        arrays[f"damaged{k}"] = damaged  # super-resolution's are smaller
        if "missing" in setting:
            arrays[f"missing{k}"] = setting["missing"]
    settings = [{k: v for k, v in s.items() if k != "missing"} for s in items["setting"]]
    part = file.with_suffix(".part.npz")
    np.savez(part, settings=np.array(json.dumps(settings)), **arrays)
    part.replace(file)


class RefinerPairs:
    """The pairs of a folder of shards as tensors, served as random aligned crops in random
    orientations (flips and transposes: the refiner is run in all of them)."""

    def __init__(self, shards: list[Path], crop: int, seed: int = 0, skip: tuple[str, ...] = ()):
        self.estimate, self.observed, self.known, self.truth, self.cond, self.tasks = [], [], [], [], [], []
        for file in tqdm(shards, desc="loading pairs", leave=False):
            with np.load(file) as data:
                settings = json.loads(str(data["settings"]))
                kept = [k for k, setting in enumerate(settings) if setting["task"] not in skip]
                for k in kept:
                    setting = settings[k]
                    task, scale = setting["task"], setting.get("scale", 1)
                    y = torch.from_numpy(data[f"damaged{k}"]).permute(2, 0, 1)[None].float() / 255
                    known = torch.ones(1, 1, *data["truth"].shape[1:3])
                    if task == "inpaint":
                        known = torch.from_numpy(~data[f"missing{k}"])[None, None].float()
                    damage = {"noise": setting.get("sigma", 0) / 255, "scale": scale,
                              "blur": setting.get("blur_sigma", 0)}
                    self.observed.append(observation(y, known, scale)[0].half())
                    self.known.append(known[0].bool())
                    self.cond.append(condition(task, damage))
                    self.tasks.append(task)
                self.estimate.append(torch.from_numpy(data["estimate"][kept]).permute(0, 3, 1, 2))
                self.truth.append(torch.from_numpy(data["truth"][kept]).permute(0, 3, 1, 2))
        self.estimate, self.truth = torch.cat(self.estimate), torch.cat(self.truth)
        self.crop, self.rng = crop, np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.tasks)

    def item(self, i: int, window: tuple[slice, slice] = (slice(None), slice(None))) -> tuple:
        """(estimate, observed, known, condition, truth, whether known pixels are kept) of pair i."""
        as_float = lambda t: t[(slice(None), *window)].float()  # noqa: E731
        return (as_float(self.estimate[i]) / 255, as_float(self.observed[i]), as_float(self.known[i]),
                self.cond[i], as_float(self.truth[i]) / 255, self.tasks[i] == "inpaint")

    def batch(self, size: int) -> tuple[torch.Tensor, ...]:
        c, side = self.crop, self.truth.shape[-1]
        items = []
        for i in self.rng.choice(len(self), size):
            y, x = (2 * int(self.rng.integers(0, (side - c) // 2 + 1)) for _ in range(2))
            item = self.item(int(i), (slice(y, y + c), slice(x, x + c)))
            k = int(self.rng.integers(ORIENTATIONS))  # orient the images, not the condition
            item = tuple(oriented(t, k) if t.ndim == 3 else t for t in item[:5]) + item[5:]
            items.append(item)
        return tuple(torch.stack([torch.as_tensor(v) for v in column]) for column in zip(*items))


def refined_mse(net, estimate, observed, known, cond, truth, keeps) -> torch.Tensor:
    """MSE per image of the refined estimate, whose known pixels are the truth where
    inpainting keeps them."""
    out = net(estimate, observed, known, cond)
    kept = known * keeps[:, None, None, None]
    return (out * (1 - kept) + truth * kept - truth).square().mean((1, 2, 3))


def relative_loss(net, estimate, observed, known, cond, truth, keeps) -> torch.Tensor:
    """The refined estimate's MSE over the estimate's, per crop, averaged: every crop weighs
    the same in relative terms (as in a mean PSNR gain), so the crops with large, unpredictable
    errors (big holes, strong noise) do not drown out the rest."""
    before = (estimate - truth).square().mean((1, 2, 3))
    after = refined_mse(net, estimate, observed, known, cond, truth, keeps)
    return (after / (before + FLOOR)).mean()


def gain_db(before: float, after: float) -> float:
    """PSNR gain (dB) of an image whose MSE (in [0, 1] units) went from before to after, each
    counted as at least ROUNDING_MSE."""
    return psnr_of_mse(max(after, ROUNDING_MSE), 1.0) - psnr_of_mse(max(before, ROUNDING_MSE), 1.0)


@torch.no_grad()
def validate_refiner(net, pairs: RefinerPairs) -> dict:
    """Mean PSNR gain (dB) of the refined estimate over the estimate, per task."""
    net.eval()
    gains = {}
    for i in range(len(pairs)):
        estimate, observed, known, cond, truth, keeps = (torch.as_tensor(t)[None] for t in pairs.item(i))
        before = F.mse_loss(estimate, truth).item()
        after = refined_mse(net, estimate, observed, known, cond, truth, keeps).item()
        gains.setdefault(pairs.tasks[i], []).append(gain_db(before, after))
    net.train()
    return {f"gain_{task}": round(float(np.mean(g)), 3) for task, g in sorted(gains.items())}


def grown(start: Refiner, config: RefinerConfig) -> Refiner:
    """A refiner of `config` (as wide as `start`, at least as deep) that computes what `start`
    does: `start`'s layers, with identity convolutions inserted before its last one (they pass
    the ReLU's non-negative output through unchanged), for training to go on from."""
    net = Refiner(config)
    old = start.config.layers
    with torch.no_grad():
        net.condition.weight.copy_(start.condition.weight)
        for k in range(old - 1):
            net.convs[k].load_state_dict(start.convs[k].state_dict())
        for conv in net.convs[old - 1:-1]:
            conv.weight.zero_()
            conv.weight[:, :, 1, 1] = torch.eye(config.channels)
            conv.bias.zero_()
        net.convs[-1].load_state_dict(start.convs[-1].state_dict())
    return net


def train_refiner(cfg: TrainConfig, config: RefinerConfig, init: str | None = None, holdout: int = 2) -> Refiner:
    """Fit the refiner (`relative_loss`) to the pairs in the shards of cfg.data, all but the
    last `holdout` shards, which validate. Pairs of the tasks in config.skip are left out.
    init: a shipped refiner as wide and at most as deep whose weights it starts from (`grown`)."""
    start = None if init is None else load_refiner(init)[0]  # checked before the run folder is made
    if start is not None and (start.config.channels != config.channels or start.config.layers > config.layers):
        raise VQPressError(f"--init {init} has {start.config.channels} channels and {start.config.layers} "
                           f"layers; this run {config.channels} and {config.layers} (it needs as many channels "
                           "and at least as many layers)")
    if start is not None:  # for the model card
        grew = {"layers": start.config.layers} if start.config.layers < config.layers else {}
        cfg.extra["init"] = {"refiner": init, **grew}
    run = prepare(cfg)
    net = Refiner(config) if start is None else grown(start, config)
    net = net.to(cfg.device)
    optimizer = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    progress = resume(run, net, optimizer, cfg)
    shards = sorted(Path(cfg.data).glob("pairs-*.npz"))
    if len(shards) <= holdout:
        raise VQPressError(f"{cfg.data}: {len(shards)} shards of pairs; need more than {holdout}")
    pairs = RefinerPairs(shards[:-holdout], cfg.crop, cfg.seed + progress.step, config.skip)
    valid = RefinerPairs(shards[-holdout:], cfg.crop, skip=config.skip)
    cfg.extra.update(train_images=len(pairs), valid_pairs=len(valid))  # crops, one pair each

    def batch_loss():
        loss = relative_loss(net, *(t.to(cfg.device) for t in pairs.batch(cfg.batch)))
        return loss, {"gain_db": -10 * np.log10(loss.item())}

    fit(cfg, run, net, optimizer, config.to_dict(), "refiner", batch_loss,
        lambda: validate_refiner(net, valid), progress)
    return net


def export_refiner(run, model_id: str, out: Path) -> Path:
    """Release a refiner run with its model card."""
    ckpt = read_checkpoint(run)
    last = ckpt["history"][-1] if ckpt["history"] else {}
    skip = tuple(task for task in TASK_ORDER if last.get(f"gain_{task}", 0) < MIN_GAIN)  # or not trained
    net = Refiner(RefinerConfig.from_dict({**ckpt["model_config"], "skip": skip}))
    net.load_state_dict(ckpt["model"])
    pairs_card = Path(ckpt["train_config"]["data"]) / PAIRS_CARD
    pairs = json.loads(pairs_card.read_text()) if pairs_card.is_file() else {}
    card = {"model_id": model_id, "refiner": summary(ckpt), "pairs": pairs,
            "estimates_from": {"vae": DEFAULT_VAE, "vae_sha256": weights.verified(DEFAULT_VAE)[1]}}
    init = ckpt["train_config"]["extra"].get("init") or {}
    start = init.get("refiner")
    grew = (f", grown from {init['layers']} to {net.config.layers} layers by identity convolutions "
            "inserted before its last one (`training.refiner.grown`)") if "layers" in init else ""
    origin = (f"It started from `{start}`'s weights (trained by us, card in `weights/`){grew}." if start
              else "No pretrained weights were used.")
    intro = ["The learned last step of `vqpress restore` / `vqpress inpaint` (fp16): a CNN that "
             "corrects the restoration's estimate, given the observation, the known-pixel mask and "
             f"the task and its setting (`vqpress.nets.refiner`). {origin}"]
    what = ("Trained by `vqpress train refiner` (the MSE relative to the estimate's, per crop) on "
            "pairs made by `vqpress train refiner-pairs`: crops of the training photos, damaged "
            "(`training.refiner.draw_damage`; with `--scattered`, `scattered_pixels`) and restored "
            "by the shipped restoration without the "
            f"refiner, with `{DEFAULT_VAE}`. Each training crop is drawn in one of the square's 8 "
            "orientations (flips and transposes; commands before vqpress 0.11 flipped crops "
            "horizontally only). Validation: the "
            "mean PSNR gain over the estimate per task on held-out pairs. Tasks it was not trained "
            f"on (`--skip`) or whose last validation gain is under {MIN_GAIN} dB are skipped: "
            f"{', '.join(skip) or 'none'}.")

    def write(path):
        save_file(half(net.state_dict()), str(path),
                  metadata={"refiner_config": json.dumps(net.config.to_dict()), "card": json.dumps(card)})

    lines = [f"- pairs: `{pairs['command']}`" + (f" ({pairs['note']})" if pairs.get("note") else "")] if pairs else []
    return release(out, model_id, write, card, intro,
                   [("training", [what, "", *lines, *training_lines(card["refiner"])])])

"""Training the reconstruction filter (`vqpress.nets.postfilter`) on a codec's own decoded
output: pairs of (what the decoder makes of a training photo at a quality, the photo)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from vqpress import __version__
from vqpress.codec import container
from vqpress.codec.api import Codec
from vqpress.codec.errors import VQPressError
from vqpress.codec.imageio import image_paths, open_image, to_rgb8
from vqpress.codec.model import codec_file
from vqpress.codec.postfilter import float_weights
from vqpress.codec.strength import TILES as STRENGTH_TILES
from vqpress.measure.metrics import psnr, psnr_of_mse
from vqpress.nets.postfilter import PostFilter, PostFilterConfig

from .cards import release_codec
from .data import evenly_spread
from .detail import codec_path
from .loop import TrainConfig, command_line, fit, prepare, read_checkpoint, resume, world
from .release import exported_summary, half


def decoded(codec: Codec, rgb: np.ndarray, qualities: int) -> list[np.ndarray]:
    """What the decoder makes of an image at qualities 1..`qualities`, before any filter: the
    shipped encoder's real bitstream (ECVQ symbols, RD-optimised levels, its mode choices),
    decoded, so the filter learns the artefacts that files really have."""
    h, w = rgb.shape[:2]
    out = []
    for quality in range(1, qualities + 1):
        _, data = container.unpack(codec.compress(rgb, quality))
        out.append(codec.decode_image(quality, data, h, w)[0])
    return out


def decoded_photo(codec: Codec, path: Path, qualities: int, cache: Path | None = None) -> tuple[np.ndarray, list]:
    """(a photo, `decoded` of it), read from `cache` where a run with the same codec file and
    vqpress version decoded it before."""
    rgb, _ = to_rgb8(open_image(path))
    if cache is None:
        return rgb, decoded(codec, rgb, qualities)
    key = f"{codec.weights_hash.hex()} {__version__} {Path(path).resolve()} {qualities}"
    file = cache / f"{hashlib.sha256(key.encode()).hexdigest()[:20]}.npy"
    if file.exists():
        return rgb, list(np.load(file))
    outs = decoded(codec, rgb, qualities)
    cache.mkdir(parents=True, exist_ok=True)
    part = file.with_suffix(f".{os.getpid()}.part")
    with open(part, "wb") as f:
        np.save(f, np.stack(outs))
    part.replace(file)
    return rgb, outs


class Pairs:
    """Random aligned crops of (decoded at a random quality, original), as float tensors."""

    def __init__(self, codec: Codec, paths: list[Path], crop: int, seed: int, qualities: int,
                 cache: Path | None = None):
        self.items = []
        rank, size = world()  # data-parallel runs: each rank decodes and draws from its own shard
        for path in tqdm(paths[rank::size], desc="decoding training photos", disable=rank > 0):
            with Image.open(path) as im:
                small = min(im.size) < crop
            if not small:
                self.items.append(decoded_photo(codec, path, qualities, cache))
        self.crop, self.rng = crop, np.random.default_rng(seed + 1_000_003 * rank)
        areas = np.array([rgb.shape[0] * rgb.shape[1] for rgb, _ in self.items], float)
        self.weights = areas / areas.sum()

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        c = self.crop
        inputs, targets, qualities = [], [], []
        for i in self.rng.choice(len(self.items), size, p=self.weights):
            rgb, outs = self.items[i]
            q = int(self.rng.integers(len(outs)))
            y, x = (int(self.rng.integers(0, n - c + 1)) for n in rgb.shape[:2])
            inputs.append(outs[q][y:y + c, x:x + c])
            targets.append(rgb[y:y + c, x:x + c])
            qualities.append(q + 1)
        as_tensor = lambda a: torch.from_numpy(np.stack(a)).permute(0, 3, 1, 2).float().div_(255)  # noqa: E731
        return as_tensor(inputs), as_tensor(targets), torch.tensor(qualities)


def summed(count: int) -> int:
    """A count added over the ranks of a data-parallel run (itself in one process)."""
    if world()[1] == 1:
        return count
    total = torch.tensor(count)
    torch.distributed.all_reduce(total)
    return int(total)


def same_pixels(a: Path, b: Path) -> bool:
    """Whether two codec files decode every payload to the same pixels (before any filter)."""
    from vqpress.codec.model import load_codec_file

    ma, mb = load_codec_file(a), load_codec_file(b)
    same = lambda x, y: x.keys() == y.keys() and all(np.array_equal(x[k], y[k]) for k in x)  # noqa: E731
    return (ma.ladder == mb.ladder and ma.block_modes == mb.block_modes
            and ma.adaptive_detail == mb.adaptive_detail and ma.detail_layout.spec() == mb.detail_layout.spec()
            and np.array_equal(ma.detail_tables, mb.detail_tables)
            and same(ma.vqvae_state, mb.vqvae_state))


def apply(net: PostFilter, image: np.ndarray, quality: int) -> np.ndarray:
    """The filter on a whole (H, W, 3) uint8 image (edge-padded to even sides), uint8 out."""
    h, w = image.shape[:2]
    x = torch.from_numpy(np.pad(image, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")).permute(2, 0, 1)[None]
    with torch.no_grad():
        y = net(x.float() / 255, net.condition(torch.tensor([quality])))
    return y[0, :, :h, :w].clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy()


def initial_filter(path: Path, config: PostFilterConfig,
                   seed: int = 0) -> tuple[dict[str, torch.Tensor], PostFilterConfig]:
    """The filter of a codec file as float32 tensors for a net of `config`, grown to it if
    smaller, as the same function (see `grown`); and the file's own filter size."""
    from vqpress.codec.model import load_codec_file

    model = load_codec_file(path)
    found = model.postfilter_config or {}
    small = PostFilterConfig(found.get("qualities", 0), found.get("channels", 0), found.get("layers", 0))
    if not (0 < small.qualities <= config.qualities and 0 < small.channels <= config.channels
            and 2 <= small.layers <= config.layers):
        raise VQPressError(f"{path} has no filter of at most {config.channels} channels, {config.layers} layers "
                           f"and {config.qualities} qualities to start from")
    state = {k: torch.from_numpy(v.astype(np.float32)) for k, v in float_weights(model.postfilter_state).items()}
    return grown(state, small, config, torch.Generator().manual_seed(seed)), small


def grown(state: dict[str, torch.Tensor], small: PostFilterConfig, config: PostFilterConfig,
          generator: torch.Generator) -> dict[str, torch.Tensor]:
    """A filter of `config` that computes what the `small` one computes (Net2Net-style growth),
    so that training starts where the small one stopped:
    - new channels get small random input weights and zero weights into the old channels;
    - new layers go before the last one as identities (a 3x3 kernel with a centre tap of 1),
      exact on the non-negative input that a ReLU leaves;
    - new qualities start from the last quality's bias."""
    if small == config:
        return state
    c, k = config.channels, small.channels
    widths = [12] + [c] * (config.layers - 1) + [12]  # as PostFilter's convolutions
    out = {"quality_bias": torch.zeros(config.qualities, c)}
    out["quality_bias"][:small.qualities, :k] = state["quality_bias"]
    out["quality_bias"][small.qualities:, :k] = state["quality_bias"][-1]
    old_layers = list(range(small.layers - 1)) + [None] * (config.layers - small.layers) + [small.layers - 1]
    for i, j in enumerate(old_layers):
        w, b = torch.zeros(widths[i + 1], widths[i], 3, 3), torch.zeros(widths[i + 1])
        last = i == config.layers - 1
        if j is None:  # a new hidden layer: identity on every channel
            w[torch.arange(c), torch.arange(c), 1, 1] = 1
        else:
            ow, ob = state[f"convs.{j}.weight"], state[f"convs.{j}.bias"]
            rows, cols = ow.shape[:2]
            w[:rows, :cols], b[:rows] = ow, ob
            if not last:  # new channels: small random inputs
                w[rows:] = 0.01 * torch.randn(w[rows:].shape, generator=generator)
        out[f"convs.{i}.weight"], out[f"convs.{i}.bias"] = w, b
    return out


def validate_postfilter(net: PostFilter, valid: list[tuple[np.ndarray, list[np.ndarray]]]) -> dict:
    """Mean PSNR gain (dB) of the filter over the decoder's output, per quality decoded."""
    net.eval()
    gains = np.zeros(len(valid[0][1]))
    for rgb, outs in valid:
        for q, out in enumerate(outs, 1):
            gains[q - 1] += (psnr(apply(net, out, q), rgb) - psnr(out, rgb)) / len(valid)
    net.train()
    return {f"gain@{q}": round(float(g), 3) for q, g in enumerate(gains, 1)}


def train_postfilter(cfg: TrainConfig, base_path: Path, config: PostFilterConfig,
                     limit: int | None = None, init: Path | None = None,
                     max_quality: int | None = None, cache: Path | None = None) -> PostFilter:
    """Fit the filter to the decoded output of the codec file `base_path` (MSE), on `limit`
    training photos spread over the folder (all by default), at qualities 1..`max_quality`
    (all by default), starting from the filter of the codec file `init` if given; the decoded
    photos kept in `cache` (`decoded_photo`)."""
    run = prepare(cfg)
    codec = Codec(device="cpu", threads=1, path=base_path)
    max_quality = max_quality or config.qualities
    net = PostFilter(config).to(cfg.device)
    started = {}
    if init is not None:
        state, small = initial_filter(init, config, cfg.seed)
        net.load_state_dict(state)
        started = {"filter": str(init), "filter_config": small.to_dict()}
    elif (run / "ckpt.pt").exists():  # resumed without --init: keep what the run started from
        started = {k: v for k, v in read_checkpoint(run)["train_config"]["extra"].get("init", {}).items()
                   if k.startswith("filter")}
    optimizer = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    progress = resume(run, net, optimizer, cfg)
    pairs = Pairs(codec, evenly_spread(image_paths(cfg.data), limit), cfg.crop, cfg.seed + progress.step, max_quality,
                  cache)
    cfg.extra.update(train_images=summed(len(pairs.items)), init={"codec": str(base_path), **started},
                     max_quality=max_quality)
    valid = None
    if cfg.valid and world()[0] == 0:
        valid = [decoded_photo(codec, p, max_quality, cache) for p in image_paths(cfg.valid)]

    def batch_loss():
        x, target, quality = pairs.batch(cfg.batch)
        mse = F.mse_loss(net(x, net.condition(quality)), target)
        return mse, {"psnr": psnr_of_mse(mse.item(), 1.0)}

    fit(cfg, run, net, optimizer, config.to_dict(), "postfilter", batch_loss,
        valid and (lambda: validate_postfilter(net, valid)), progress)
    return net


def export_postfilter(run, model_id: str, out: Path, base: Path | None = None) -> Path:
    """Release a filter run with the codec file it was trained on (or `base`, a codec file
    that decodes to the same pixels: same networks, ladder and tables), as one codec file."""
    ckpt = read_checkpoint(run)
    trained_on = Path(ckpt["train_config"]["extra"]["init"]["codec"])
    base_path = base or trained_on
    if not same_pixels(trained_on, base_path):
        raise VQPressError(f"{base_path} does not decode to the pixels the filter was trained on ({trained_on})")
    meta, tensors = codec_file(base_path)
    card = {**meta["card"], "model_id": model_id, "postfilter": exported_summary(ckpt)}
    tensors = {k: v for k, v in tensors.items() if not k.startswith("postfilter.")}
    tensors.update({f"postfilter.{k}": v for k, v in half(ckpt["model"]).items()})

    init = ckpt["train_config"]["extra"]["init"]
    if "filter_config" in init:
        card["postfilter"]["started_from"] = {"file": init["filter"], **init["filter_config"]}
    last = ckpt["history"][-1] if ckpt["history"] else {}
    trained = ckpt["train_config"]["extra"].get("max_quality", ckpt["model_config"]["qualities"])
    skip = [q for q in range(1, ckpt["model_config"]["qualities"] + 1)  # off where it lost, or was not trained
            if q > trained or last.get(f"gain@{q}", 1) <= 0]
    card["postfilter"]["skip"] = skip
    if "max_quality" in ckpt["train_config"]["extra"]:
        card["postfilter"]["max_quality"] = trained

    strengths = {k: v for k, v in (meta.get("postfilter_config") or {}).items() if k == "strength_tile"}

    filter_config = {**ckpt["model_config"], "skip": skip, **strengths}
    return release_codec(out, model_id, tensors, {**meta, "postfilter_config": filter_config}, card)


def export_filter_strengths(base_model: str, model_id: str, out: Path, tile: int) -> Path:
    """Release <out>/<model_id>.safetensors: `base_model` (a shipped codec, or a codec file's
    path, with a reconstruction filter) whose encoder scales the filter's correction per tile
    of `tile` pixels and codes the choices (`codec.strength`). Networks, tables and filter
    weights are the base's; nothing is fitted."""
    base_path = codec_path(base_model)
    meta, tensors = codec_file(base_path)
    if meta.get("postfilter_config") is None:
        raise VQPressError(f"{base_path.stem} has no reconstruction filter")
    if tile not in STRENGTH_TILES:
        raise VQPressError(f"tiles of {tile} pixels are not known (known: {', '.join(map(str, STRENGTH_TILES))})")
    card = {**meta["card"], "model_id": model_id}
    card["postfilter"] = {**card["postfilter"], "strength_tile": tile,
                          "strengths_by": {"base_model": base_path.stem, "command": command_line()}}

    return release_codec(out, model_id, tensors,
                         {**meta, "postfilter_config": {**meta["postfilter_config"], "strength_tile": tile}}, card)

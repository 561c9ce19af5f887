"""The codec: image -> symbol maps -> range-coded .vqp bytes, and back."""

from __future__ import annotations

import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from vqpress import weights

from . import container, detail, ecvq, limits, payload, strength
from . import modes as block_modes
from .blocks import BLOCK, DOWNSCALE
from .errors import VQPressError
from . import alpha as alpha_plane
from .container import GRAY_MODES, MODE_LA, MODE_RGBA
from .imageio import as_image, exif_bytes, from_rgb8, to_planes
from .ladder import DEFAULT_MODEL, check_quality
from .model import load_codec_file
from .parallel import one_blas_thread, run_all, workers
from .postfilter import OnnxPostFilter
from .transforms import OnnxTransforms, TorchTransforms, int8_analysis_graph

PROGRESS_DELAY = 1.0  # seconds before a progress bar shows: quick runs stay quiet
BAND_BLOCKS = 16  # block rows the detail layer is chosen and added in at a time (`bands`)
KEPT_BLOCKS = 64  # images of at most this many block rows keep their candidate residuals (36 bytes a pixel)
# Encoder-only choices (any setting makes files every decoder reads), measured with
# `python benchmarks/fit_encoder.py ../shared/corpus/train` (every quality, BD-rate on PSNR /
# MS-SSIM against the settings before; its docstring has the earlier rounds). With
# rvq-dct-v11 on 24 photos: RDO_TILT 1.5 with RDO_LAMBDA 0.2, DEADZONE 0.15 and the mode
# choice weighed the same -0.41% / -2.41%; without the mode choice's weights (a throwaway patch
# of the script) -0.43% / -2.05%; RDO_LAMBDA 0.15 and RDO_TILT 1 -0.56% / -1.42%; RDO_LAMBDA
# 0.25 and RDO_TILT 2 -0.08% / -2.55%; without the tilt, RDO_LAMBDA 0.15 +0.28% / +0.07%.
RDO_LAMBDA = 0.2  # a detail level moves one step to zero where D + lambda step^2 R falls (`detail.rd_optimise`)
ECVQ_LAMBDA = 0.3  # the VQ symbols' bits against their latent error (`codec.ecvq`); 0: nearest codes
RDO_TILT = 1.5  # RDO and the modes' second choice weigh low frequencies' errors up, high ones' down


@dataclass
class CompressResult:
    data: bytes
    cross_entropy_bits: float  # what the prior says the symbols cost; the payload is close to it


class Codec:
    """A loaded model. `compress` and `decompress` are safe to call repeatedly."""

    def __init__(self, model_id: str = DEFAULT_MODEL, device: str = "auto", threads: int = 0,
                 path=None, int8_analysis: bool = True):
        """device: "auto" or "cpu" runs the transforms with ONNX Runtime on the CPU (no torch
        import), "cuda" with torch on a CUDA GPU. threads: ONNX Runtime's (0: its default, the
        physical cores), and those of the pool that runs the codec's numpy work in chunks
        (`codec.parallel`; 0: the CPUs available, at most 4). path: a codec file that is not
        shipped (training's work in progress); its model id is its file name's stem.
        int8_analysis: on the CPU, encode with the model's 8-bit analysis graph where one is
        shipped (at 768x512 the analysis takes 68 ms instead of 108; the files take about 0.1%
        more bits, see the model card); False: the float graph. Decoding never runs the
        analysis."""
        if device not in ("auto", "cpu", "cuda"):
            raise VQPressError(f"unknown device {device!r} (use auto, cpu or cuda)")
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
            raise VQPressError(f"threads must be a whole number, 0 or more, got {threads!r}")
        shipped = path is None
        if shipped:
            path, digest = weights.verified(model_id)
        else:
            path, digest = Path(path), weights.sha256_file(path)
            model_id = path.stem
        self.model = load_codec_file(path)
        self.model_id, self.weights_hash = model_id, bytes.fromhex(self.model.shipped_sha256 or digest)[:4]
        self.workers = workers(threads)
        self.prior, self.ladder = self.model.prior, self.model.ladder
        config, state = self.model.vqvae_config, self.model.vqvae_state
        int8 = int8_analysis_graph(self.model.vqvae_state) if shipped and int8_analysis else None
        self.transforms = (TorchTransforms(config, state, device) if device == "cuda" else OnnxTransforms(
            config, state, threads, int8 if int8 in weights.checksums() else None))
        self.postfilter = None
        if self.model.postfilter_config is not None:
            self.postfilter = OnnxPostFilter(self.model.postfilter_config, self.model.postfilter_state, threads)

    @property
    def qualities(self) -> range:
        return range(1, len(self.ladder) + 1)

    def check_quality(self, quality) -> int:
        """The quality as an int (`ladder.check_quality`)."""
        return check_quality(quality, self.ladder)

    # -- the layers, for tests and tools ----------------------------------------------------------
    def symbols(self, rgb, stages: int, bar=None, lam: float = 0.0):
        """Symbol maps of an image: the nearest codes, or with lam > 0 the entropy-constrained
        choice (`codec.ecvq`)."""
        z = self.transforms.latents(rgb, bar)
        nearest = self.transforms.quantise(z, stages)
        if not lam:
            return nearest
        with one_blas_thread(), ThreadPoolExecutor(self.workers) as pool:
            return ecvq.choose(z, nearest, self.transforms.codebooks, self.prior, lam, map=pool.map)

    def pixels(self, indices, height: int, width: int, bar=None):
        return self.transforms.pixels(indices, height, width, bar)

    def encode_payload(self, quality: int, indices, levels=None, bar=None, modes=None,
                       strengths=None) -> tuple[bytes, float]:
        return payload.encode(self.model, quality, indices, levels, bar, modes, strengths)

    def decode_payload(self, quality: int, data: bytes, height: int, width: int, bar=None):
        return payload.decode(self.model, quality, data, height, width, bar)

    def decode_image(self, quality: int, data: bytes, height: int, width: int, bar=None):
        """((H, W, 3) uint8 image of a payload before the filter, the filter's strengths or
        None). The VQ base is synthesised in a worker thread while the detail layer is still
        being range-decoded (ONNX Runtime releases the GIL; the detail layer never reads the
        base's pixels, only its reconstruction does). The worker first builds the ONNX Runtime
        sessions that a fresh process has not made yet."""
        with one_blas_thread(), ThreadPoolExecutor(1) as pool, ThreadPoolExecutor(self.workers) as helpers:
            prepared = pool.submit(self.prepare_decoder, quality)
            base = []
            indices, levels, modes, strengths = payload.decode(
                self.model, quality, data, height, width, bar,
                on_symbols=lambda idx: base.append(pool.submit(self.pixels, idx, height, width, bar)))
            prepared.result()  # its error (a damaged graph file), if any, before the pixels' own
            return self.with_detail(quality, base[0].result(), levels, modes, helpers.map), strengths

    def prepare_decoder(self, quality: int) -> None:
        """Make the sessions that decoding a quality runs, if not made yet."""
        self.transforms.prepare_synthesis()
        if self.postfilter is not None and self.postfilter.applies(quality):
            self.postfilter.prepare(quality)

    def with_detail(self, quality: int, base, levels, modes, map=map):
        """The VQ base plus the detail layer, if the quality has one; bands of block rows run
        through `map` (a thread pool's: numpy releases the GIL in their products)."""
        rung = self.ladder[quality - 1]
        if levels is None:
            return base
        out = np.empty_like(base)

        def add(band) -> None:
            blocks, pixels = band
            band_modes = None if modes is None else modes[blocks]
            out[pixels] = detail.add_detail(block_modes.predictor(base[pixels], band_modes),
                                            levels[blocks], rung.step, rung.offset)

        run_all(map, add, bands(len(levels)))
        return out

    def detail_levels(self, rgb, base, quality: int, map=map):
        """(levels, modes) the encoder codes at a quality with a detail layer. Bands of block
        rows run through `map`, as in `with_detail`."""
        rung = self.ladder[quality - 1]
        step, offset = rung.step, rung.offset
        table = self.model.detail_table(quality)
        predictors = self.model.predictors(quality)
        error_weights = detail.tilted_weights(RDO_TILT) if RDO_TILT else None
        parts = list(bands(-(-len(rgb) // BLOCK)))
        modes = None
        if not predictors:
            coefficients = np.concatenate(list(map(lambda part: detail.residual_coefficients(
                rgb[part[1]], base[part[1]]), parts)))
        else:  # the modes' prices depend on the whole image: costs of every band, then the choice
            kept = {}  # band -> its candidate residuals, in images small enough to keep them

            def residuals(k: int):
                if k in kept:
                    return kept[k]
                computed = block_modes.candidates(rgb[parts[k][1]], base[parts[k][1]], predictors)
                if len(rgb) <= KEPT_BLOCKS * BLOCK:
                    kept[k] = computed
                return computed

            def each_band(fn, *args):
                return np.concatenate(list(map(fn, range(len(parts)), *args)), axis=1)

            costs = each_band(lambda k: block_modes.costs_of(residuals(k), step, offset))
            modes = block_modes.modes_for(costs, step)
            if block_modes.RATE_LAMBDA:  # again, with the table's bits in the first choice's contexts
                first = np.concatenate(list(map(lambda k: detail.quantise(block_modes.against(
                    residuals(k), modes[parts[k][0]]), step), range(len(parts)))))
                magnitudes = detail.padded_magnitudes(first)
                costs = each_band(lambda k: block_modes.table_costs(
                    residuals(k), magnitudes, parts[k][0].start, step, offset, table, weights=error_weights))
                modes = block_modes.modes_for(costs, step)

            def picked(k: int):
                blocks, pixels = parts[k]
                return block_modes.picked(residuals(k), modes[blocks], rgb[pixels], base[pixels])

            coefficients = np.concatenate(list(map(picked, range(len(parts)))))
        levels = detail.quantise(coefficients, step)
        if RDO_LAMBDA:
            levels = detail.rd_optimise(levels, coefficients, step, offset, table, RDO_LAMBDA, modes, map=map,
                                        weights=error_weights)
        return levels, modes

    def filter_strengths(self, rgb, decoded, quality: int):
        """The encoder's choice of filter strengths (`codec.strength`) for an image whose
        decoded pixels before the filter are `decoded`: a function of the bits coded before
        them, which price them."""
        tile = self.model.strength_tile(quality)
        errors = strength.tile_errors(rgb, decoded, self.postfilter.correction(decoded, quality), tile)
        return lambda bits: strength.choose(errors, strength.price_per_bit(errors, bits))

    # -- bytes ------------------------------------------------------------------------------------
    def compress_detailed(self, image, quality: int, progress: bool = False,
                          strip: bool = False) -> CompressResult:
        """image: a PIL image, an array (HxW or HxWx3/4; uint8, uint16, or float in 0..1) or a
        path. EXIF orientation is applied; alpha is kept losslessly, and so are the ICC profile
        and EXIF unless strip. progress: a bar on stderr if it takes over a second."""
        quality = self.check_quality(quality)
        image = as_image(image)
        rgb, mode, alpha = to_planes(image)
        h, w = rgb.shape[:2]
        limits.check_size(w, h)
        rung = self.ladder[quality - 1]
        has_detail = rung.step is not None
        tile = self.model.strength_tile(quality)
        with progress_bar(progress, "compress", h, w, rung.stages + 1 + 4 * has_detail) as bar, \
                one_blas_thread(), ThreadPoolExecutor(1) as pool, ThreadPoolExecutor(self.workers) as helpers:
            indices = self.symbols(rgb, rung.stages, bar, ECVQ_LAMBDA)

            def later():  # the VQ base's synthesis, the levels and the tiles' errors: in a worker thread
                base = self.pixels(indices, h, w, bar)
                levels = modes = choose = None
                if has_detail:
                    levels, modes = self.detail_levels(rgb, base, quality, helpers.map)
                    if mode in GRAY_MODES:  # decoded as gray: the colour differences are not kept
                        levels[:, :, 1:] = 0
                if tile is not None:
                    decoded = self.with_detail(quality, base, levels, modes, helpers.map)
                    choose = self.filter_strengths(rgb, decoded, quality)
                return levels, modes, choose

            # while the symbol maps are range-coded (ONNX Runtime releases the GIL)
            computed = pool.submit(later) if has_detail or tile is not None else None
            data, bits = payload.encode_later(self.model, quality, indices, computed.result if computed else None, bar)
        header = container.Header(self.model_id, self.weights_hash, w, h, mode, quality,
                                  extensions=extensions(image, alpha, strip))
        return CompressResult(container.pack(header, data), bits)

    def compress(self, image, quality: int, progress: bool = False, strip: bool = False) -> bytes:
        return self.compress_detailed(image, quality, progress, strip).data

    def compress_to_target(self, image, max_bytes: int | None = None, bpp: float | None = None,
                           psnr: float | None = None, strip: bool = False) -> tuple[bytes, int]:
        """(file, quality) of the best quality whose file fits in max_bytes or bpp, or of the
        smallest file whose decoded image reaches `psnr` dB (exactly one target). The sizes and
        the quality rise with the quality level, so it bisects the ladder: about four encodes
        (and, for psnr, decodes) instead of one per level."""
        if sum(t is not None for t in (max_bytes, bpp, psnr)) != 1:
            raise VQPressError("give exactly one target: max_bytes, bpp or psnr")
        for name, value in (("max_bytes", max_bytes), ("bpp", bpp), ("psnr", psnr)):
            if value is not None and not positive_number(value):
                raise VQPressError(f"{name} must be a positive number, got {value!r}")
        image = as_image(image)
        rgb = to_planes(image)[0]
        budget = max_bytes if max_bytes is not None else (bpp * rgb.shape[0] * rgb.shape[1] / 8 if bpp is not None else None)

        def good(q: int, data: bytes) -> bool:
            if budget is not None:
                return len(data) <= budget
            from vqpress.measure.metrics import psnr as measure

            return measure(rgb, to_planes(self.decompress(data))[0]) >= psnr

        lo, hi, best = 1, len(self.ladder), None  # sizes fit below some level; PSNR is met above one
        while lo <= hi:
            q = (lo + hi) // 2
            data = self.compress(image, q, strip=strip)
            if good(q, data):
                best = (data, q)
                lo, hi = (q + 1, hi) if budget is not None else (lo, q - 1)
            else:
                lo, hi = (lo, q - 1) if budget is not None else (q + 1, hi)
        if best is None:
            target = (f"{max_bytes} bytes" if max_bytes is not None else f"{bpp:g} bpp ({budget:.0f} bytes)"
                      if bpp is not None else f"{psnr:g} dB PSNR")
            raise VQPressError(f"no quality of {self.model_id} meets {target}")
        return best

    def decompress(self, data: bytes, progress: bool = False) -> Image.Image:
        return self.decode(*container.unpack(as_bytes(data)), progress=progress)

    def decode(self, header: container.Header, data: bytes, progress: bool = False) -> Image.Image:
        """The image of an unpacked file."""
        if header.model_id != self.model_id or header.weights_hash != self.weights_hash:
            raise VQPressError(
                f"file was made with model {header.model_id} (weights {header.weights_hash.hex()}), "
                f"this vqpress has {self.model_id} (weights {self.weights_hash.hex()})")
        if header.quality not in self.qualities:
            raise container.FormatError(f"corrupted .vqp file (quality {header.quality} is not "
                                        f"one of {self.model_id}'s)")
        h, w = header.height, header.width
        limits.check_size(w, h, "the file's image")
        rung = self.ladder[header.quality - 1]
        filtered = self.postfilter is not None and self.postfilter.applies(header.quality)
        passes = rung.stages + 1 + 3 * (rung.step is not None) + filtered
        with progress_bar(progress, "decompress", h, w, passes) as bar:
            rgb, strengths = self.decode_image(header.quality, data, h, w, bar)
            if filtered:
                rgb = self.postfilter(rgb, header.quality, bar, strengths)
        return with_extensions(from_rgb8(rgb, header.mode), header)


def positive_number(value) -> bool:
    """Whether value is a finite number above 0 (an int of any size; not a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return False
    try:
        return math.isfinite(float(value)) and value > 0
    except OverflowError:  # an int beyond float's range: finite, and positive if above 0
        return value > 0


def as_bytes(data) -> bytes:
    """A file's bytes from bytes, bytearray or memoryview; a path or anything else is an error
    that says what to pass."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    if isinstance(data, (str, Path)):
        raise VQPressError("decompress takes the file's bytes, not its path: open(path, 'rb').read()")
    raise VQPressError(f"decompress takes bytes, got {type(data).__name__}")


def bands(block_rows: int):
    """(block rows, pixel rows) slices of horizontal bands of BAND_BLOCKS block rows: the
    detail layer is added (and chosen) band by band, a band per pool thread, so its float
    temporaries stay small on big photos (each block depends only on its own pixels)."""
    for r0 in range(0, block_rows, BAND_BLOCKS):
        yield slice(r0, r0 + BAND_BLOCKS), slice(r0 * BLOCK, (r0 + BAND_BLOCKS) * BLOCK)


def extensions(image, alpha, strip: bool) -> dict[str, bytes]:
    """The container extensions of a source image: its alpha plane, ICC profile and EXIF."""
    out = {}
    if alpha is not None:
        out["ALPH"] = alpha_plane.encode(alpha)
    if strip or not hasattr(image, "info"):
        return out
    if image.info.get("icc_profile"):
        out["ICCP"] = bytes(image.info["icc_profile"])
    exif = exif_bytes(image)
    if exif:
        out["EXIF"] = exif
    return out


def with_extensions(image: Image.Image, header: container.Header) -> Image.Image:
    """The decoded image with its alpha plane, and its ICC profile and EXIF in `info`."""
    ext = header.extensions
    if header.mode in (MODE_RGBA, MODE_LA):
        if "ALPH" not in ext:
            raise container.FormatError("corrupted .vqp file (the mode has alpha, the file has none)")
        image.putalpha(Image.fromarray(alpha_plane.decode(ext["ALPH"], header.height, header.width), "L"))
    if "ICCP" in ext:
        image.info["icc_profile"] = ext["ICCP"]
    if "EXIF" in ext:
        image.info["exif"] = ext["EXIF"]
    return image


def progress_bar(progress: bool, desc: str, height: int, width: int, passes: int):
    """A progress bar in 8x8 blocks, `passes` over the image (transforms, each VQ stage and
    each colour channel of the detail layer count one), shown only after PROGRESS_DELAY; a
    context manager whose value is the bar, or None without progress."""
    if not progress:
        return nullcontext()
    blocks = -(-height // DOWNSCALE) * -(-width // DOWNSCALE)
    return DelayedBar(total=blocks * passes, desc=desc, unit="block", unit_scale=True, leave=False)


class DelayedBar:
    """A tqdm bar made only once PROGRESS_DELAY has passed, at an update: a quick command never
    imports tqdm (30-34 ms with numpy loaded). Updates may come from two threads."""

    def __init__(self, **options):
        self.options, self.done, self.bar = options, 0, None
        self.start, self.lock = time.monotonic(), threading.Lock()

    def update(self, n: int) -> None:
        with self.lock:
            if self.bar is not None:
                self.bar.update(n)
                return
            self.done += n
            if time.monotonic() - self.start >= PROGRESS_DELAY:
                from tqdm import tqdm

                self.bar = tqdm(initial=self.done, **self.options)

    def __enter__(self) -> DelayedBar:
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()


@lru_cache(maxsize=4)
def load(model_id: str = DEFAULT_MODEL, device: str = "auto", threads: int = 0) -> Codec:
    """A cached Codec."""
    return Codec(model_id, device, threads)


def compress(image, quality: int = 6, device: str = "auto", strip: bool = False) -> bytes:
    """Compress a PIL image, an array (HxW, HxWx3 or HxWx4) or an image file's path to .vqp
    bytes; alpha, the ICC profile and EXIF travel with it (strip=True drops the last two)."""
    return load(device=device).compress(image, quality, strip=strip)


def decompress(data: bytes, device: str = "auto", progress: bool = False) -> Image.Image:
    """Decode .vqp bytes to a PIL image (grayscale sources come back grayscale), with the
    shipped model the file names, so files made by earlier weights still decode."""
    header, data_ = container.unpack(as_bytes(data))
    if not weights.is_shipped(header.model_id):
        raise VQPressError(f"file was made with model {header.model_id}, "
                           "which this vqpress does not ship")
    return load(header.model_id, device).decode(header, data_, progress)

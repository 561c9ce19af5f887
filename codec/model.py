"""A shipped codec model: its networks, its prior's integer tables and its quality ladder.

A codec weights file holds the VQ-VAE (`vqvae.*`, fp16) and the prior's integer tables
(`prior.*`, int32), with the VQ-VAE config in the metadata. Its model id is the file's stem.
A model with a detail layer (`vqpress.codec.detail`) also holds one table per quality that uses
it (`detail.tables`, int32 weights; from rvq-dct-v10 `detail.codes`, uint8, with the layout
of their rows in the metadata: `detail_layout`) and its ladder in the metadata: per quality,
the number of VQ stages, the detail layer's step size (null where the quality has no detail layer) and the
levels' reconstruction offset, whether its tables adapt to each image as it is coded
(`adaptive_detail`, `detail.Probabilities`) and whether the detail layer's predictor is chosen
per block (`block_modes`, `codec.modes`: true for a choice of the first two predictors at every
quality, or per quality how many it chooses from); the first models have neither. A model with
a reconstruction filter (`vqpress.nets.postfilter`) holds its weights (`postfilter.*`, fp16)
and its config in the metadata; from rvq-dct-v15 the config has `strength_tile`: the encoder
scales the filter's correction per tile of that size (`codec.strength`); from rvq-dct-v16 it lists
the qualities whose filter runs as an 8-bit graph (`int8`), each held as `postfilter.int8_q<n>`
(the ONNX bytes, uint8; `vqpress.training.quantise`).

A codec file may instead name a shipped base model (`base_model`, pinned by `base_sha256`) and
hold only the parts (`vqvae`, `prior`, `detail`, `postfilter`) that differ from it, with the
whole metadata: `codec_file` takes the other parts from the base. A shipped model repacked that
way keeps the sha256 it was first shipped under (`shipped_sha256`), whose first 4 bytes its .vqp
files carry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file

from vqpress import weights

from . import detail
from .ladder import Rung, ladder_from_metadata
from .postfilter import int8_graphs
from .prior import FixedPointPrior
from .strength import TILES as STRENGTH_TILES

DELTA_KEYS = ("base_model", "base_sha256", "shipped_sha256")


def codec_file(path) -> tuple[dict, dict[str, np.ndarray]]:
    """A codec file's metadata and tensors as one complete model: a file that names a base model
    completed with the parts it does not hold from the base, its metadata without the keys that
    name the base."""
    meta = weights.metadata(path)
    tensors = load_file(str(path))
    base = meta.get("base_model")
    if base is None:
        return meta, tensors
    base_path, digest = weights.verified(base)
    if digest != meta.get("base_sha256"):
        raise weights.WeightsError(f"{Path(path).stem} was made on another file of its base model {base}")
    if "base_model" in weights.metadata(base_path):
        raise weights.WeightsError(f"{Path(path).stem}'s base model {base} names a base of its own")
    parts = {part(k) for k in tensors}
    if isinstance(meta.get("card"), dict):  # the complete model's card does not describe the packing
        meta["card"] = {k: v for k, v in meta["card"].items() if k != "repacked"}
    return ({k: v for k, v in meta.items() if k not in DELTA_KEYS},
            {**{k: v for k, v in load_file(str(base_path)).items() if part(k) not in parts}, **tensors})


def part(tensor_name: str) -> str:
    """The part of a codec file a tensor belongs to: vqvae, prior, detail or postfilter."""
    return tensor_name.split(".", 1)[0]


@dataclass
class CodecModel:
    vqvae_config: dict
    vqvae_state: dict[str, np.ndarray]  # the VQ-VAE's tensors (fp16 where floating point)
    prior: FixedPointPrior
    ladder: list[Rung]
    # per rung with a step: int32 weights (3, GROUPS, CONTEXTS, SYMBOLS) in the neighbours-only
    # layout, or uint8 codes (rows, LIMIT + 1) in `detail_layout` (`detail.Table.from_codes`)
    detail_tables: np.ndarray | None
    postfilter_config: dict | None = None
    postfilter_state: dict[str, np.ndarray] | None = None
    adaptive_detail: bool = False
    block_modes: tuple[int, ...] = ()  # per quality: how many predictors each block chooses from (`codec.modes`)
    detail_layout: detail.Layout = detail.NEIGHBOURS
    shipped_sha256: str | None = None  # a repacked model's first shipped file's (`codec_file`)
    _tables: dict = field(init=False, default_factory=dict, repr=False, compare=False)

    def detail_table(self, quality: int) -> detail.Table:
        """The detail table of a quality whose rung has a step."""
        assert self.ladder[quality - 1].step is not None, f"quality {quality} has no detail layer"
        if quality not in self._tables:
            stored = self.detail_tables[sum(r.step is not None for r in self.ladder[:quality - 1])]
            self._tables[quality] = (detail.Table(stored.reshape(-1, detail.SYMBOLS)) if stored.dtype == np.int32
                                     else detail.Table.from_codes(stored, self.detail_layout))
        return self._tables[quality]

    def strength_tile(self, quality: int) -> int | None:
        """The size of the tiles whose filter strengths (`codec.strength`) end a payload of this
        quality, or None where there are none."""
        config = self.postfilter_config
        if config is None or quality in config.get("skip", []):
            return None
        return config.get("strength_tile")

    def predictors(self, quality: int) -> int:
        """How many predictors a block of the detail layer chooses from at a quality (0: no choice)."""
        return self.block_modes[quality - 1] if self.block_modes else 0


def load_codec_file(path) -> CodecModel:
    """A codec model from its weights file; a file of another kind is a WeightsError."""
    own_meta = weights.metadata(path)  # a repacked file's own keys (`shipped_sha256`), which `codec_file` drops
    if "vqvae_config" not in own_meta:
        raise weights.WeightsError(f"model {Path(path).stem} is not a codec model")
    meta, tensors = codec_file(path)
    config = meta["vqvae_config"]
    prior = FixedPointPrior({k[6:]: v for k, v in tensors.items() if k.startswith("prior.")})
    ladder = ladder_from_metadata(meta)
    steps = sum(r.step is not None for r in ladder)
    try:
        layout = detail.Layout(**meta["detail_layout"]) if "detail_layout" in meta else detail.NEIGHBOURS
    except (TypeError, ValueError, OverflowError):
        raise weights.WeightsError(f"{path}: unknown detail layout ({meta['detail_layout']})") from None
    if layout is not detail.NEIGHBOURS and "detail.codes" not in tensors:
        raise weights.WeightsError(f"{path}: a detail layout without its tables (detail.codes)")
    if "detail.codes" in tensors:
        tables, shape, dtype = tensors["detail.codes"], (steps, layout.rows, detail.LIMIT + 1), np.uint8
    else:
        tables, shape, dtype = tensors.get("detail.tables"), (steps, 3, detail.GROUPS, detail.CONTEXTS, detail.SYMBOLS), np.int32
    tables_fit = (tables is None and steps == 0) or (tables is not None and tables.shape == shape and tables.dtype == dtype)
    if not tables_fit or not all(1 <= r.stages <= config["num_stages"] for r in ladder):
        raise weights.WeightsError(f"{path}: the quality ladder does not fit the file's networks and tables")
    state = {k[6:]: v for k, v in tensors.items() if k.startswith("vqvae.")}
    filter_config = meta.get("postfilter_config")
    filter_state = {k[11:]: v for k, v in tensors.items() if k.startswith("postfilter.")} or None
    if (filter_config is None) != (filter_state is None) or (filter_config and filter_config["qualities"] != len(ladder)):
        raise weights.WeightsError(f"{path}: the reconstruction filter does not fit the quality ladder")
    if filter_config and "strength_tile" in filter_config and filter_config["strength_tile"] not in STRENGTH_TILES:
        raise weights.WeightsError(f"{path}: filter strength tiles of {filter_config['strength_tile']!r} pixels "
                                   f"(known: {', '.join(map(str, STRENGTH_TILES))})")
    try:
        int8 = sorted(int8_graphs(filter_state)) if filter_config else []
    except ValueError:  # a tensor named like a graph, without a quality
        int8 = None
    if filter_config and int8 != filter_config.get("int8", []):
        raise weights.WeightsError(f"{path}: the filter's 8-bit graphs are not those of its qualities "
                                   f"{filter_config.get('int8', [])}")
    predictors = meta.get("block_modes", False)
    if isinstance(predictors, bool):
        predictors = [2 * predictors] * len(ladder)
    if not isinstance(predictors, list) or len(predictors) != len(ladder) or not set(predictors) <= {0, 2, 3}:
        raise weights.WeightsError(f"{path}: unknown block modes ({predictors})")
    if layout.modes > 1 and layout.modes < max(predictors):
        raise weights.WeightsError(f"{path}: the detail layout has rows for {layout.modes} modes, not {max(predictors)}")
    shipped_sha256 = own_meta.get("shipped_sha256")
    if shipped_sha256 is not None and not re.fullmatch("[0-9a-f]{64}", str(shipped_sha256)):
        raise weights.WeightsError(f"{path}: shipped_sha256 is not a sha256")
    return CodecModel(config, state, prior, ladder, tables, filter_config, filter_state,
                      bool(meta.get("adaptive_detail", False)), tuple(predictors) if any(predictors) else (), layout,
                      shipped_sha256)

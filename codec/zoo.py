"""Shipped weights: one safetensors file per model, checked against weights/SHA256SUMS.

A codec weights file holds the VQ-VAE (`vqvae.*`, fp16) and the prior's integer tables
(`prior.*`, int32), with the VQ-VAE config in the metadata. Its model id is the file's stem.
A model with a detail layer (`codec.detail`) also holds one table per quality that uses it
(`detail.tables`, int32) and its ladder in the metadata: per quality, the number of VQ stages
and the detail layer's step size (null where the quality has no detail layer).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import load_file, save_file

import weights

from . import detail
from .errors import VQPressError
from .fixedpoint import FixedPointPrior
from .vqvae import VQVAE, VQVAEConfig

DEFAULT_MODEL = "rvq-dct-v3"
CHECKSUMS = "SHA256SUMS"


class WeightsError(VQPressError):
    """Missing or damaged weights."""


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _checksums() -> dict[str, str]:
    text = weights.locate(CHECKSUMS).read_text()
    return {name: digest for digest, name in (line.split() for line in text.splitlines() if line)}


def model_is_shipped(model_id: str) -> bool:
    return f"{model_id}.safetensors" in _checksums()


def shipped_codecs() -> list[str]:
    """The ids of the shipped codec models (the other weights files are peers and VAEs)."""
    return sorted(name.removesuffix(".safetensors") for name in _checksums()
                  if name.startswith("rvq") and name.endswith(".safetensors"))


@cache
def weights_file(model_id: str) -> tuple[Path, str]:
    """(path, sha256) of a shipped model, verified."""
    name = f"{model_id}.safetensors"
    path = Path(str(weights.locate(name)))
    expected = _checksums().get(name)
    if not path.is_file() or expected is None:
        raise WeightsError(f"model {model_id!r} is not shipped with this vqpress")
    digest = sha256_file(path)
    if digest != expected:
        raise WeightsError(f"{path} is damaged (sha256 {digest[:12]}..., expected {expected[:12]}...)")
    return path, digest


def shipped_peers(arch: str) -> list[Path]:
    """The shipped compressai peers of `arch` (files `<arch>-l<lambda>.safetensors`), verified,
    lowest lambda (rate) first."""
    folder = Path(str(weights.locate(CHECKSUMS))).parent
    stems = sorted((p.stem for p in folder.glob(f"{arch}-l*.safetensors")),
                   key=lambda stem: float(stem.rsplit("-l", 1)[1]))
    return [weights_file(stem)[0] for stem in stems]


@dataclass(frozen=True)
class Rung:
    """One quality level: how many VQ stages, and the detail layer's step (None: no detail)."""
    stages: int
    step: float | None = None


def save_codec(path, vqvae: VQVAE, prior_tables: dict[str, np.ndarray], card: dict) -> str:
    """Write a codec weights file (quality k = k stages); returns its sha256."""
    tensors = {f"vqvae.{k}": v.detach().cpu().half().numpy() if v.is_floating_point()
               else v.detach().cpu().numpy() for k, v in vqvae.state_dict().items()}
    tensors.update({f"prior.{k}": np.ascontiguousarray(v, dtype=np.int32)
                    for k, v in prior_tables.items()})
    save_file(tensors, str(path), metadata={"vqvae_config": json.dumps(vqvae.config.to_dict()),
                                            "card": json.dumps(card)})
    return sha256_file(path)


def save_with_detail(path, base_path, card: dict, ladder: list[Rung], tables: np.ndarray) -> str:
    """Write a codec weights file: a base file's VQ-VAE and prior, plus detail tables (one per
    rung with a step) and the ladder. Returns its sha256."""
    tensors = {k: v for k, v in load_file(str(base_path)).items() if not k.startswith("detail.")}
    tensors["detail.tables"] = np.ascontiguousarray(tables, dtype=np.int32)
    metadata = {"vqvae_config": json.dumps(_metadata(base_path, "vqvae_config")),
                "card": json.dumps(card), "ladder": json.dumps([[r.stages, r.step] for r in ladder])}
    save_file(tensors, str(path), metadata=metadata)
    return sha256_file(path)


def _metadata(path, key: str):
    """A JSON value of a weights file's metadata."""
    from safetensors import safe_open

    with safe_open(str(path), "np") as f:
        return json.loads(f.metadata()[key])


def codec_card(model_id: str) -> dict:
    """The training facts stored in a shipped codec file (the JSON model card's content)."""
    return _metadata(weights_file(model_id)[0], "card")


@dataclass
class CodecModel:
    vqvae: VQVAE
    prior: FixedPointPrior
    ladder: list[Rung]
    detail_tables: np.ndarray | None  # (rungs with a step, 3, GROUPS, CONTEXTS, SYMBOLS)

    def detail_table(self, quality: int) -> np.ndarray:
        """The detail table of a quality whose rung has a step."""
        assert self.ladder[quality - 1].step is not None, f"quality {quality} has no detail layer"
        return self.detail_tables[sum(r.step is not None for r in self.ladder[:quality - 1])]


def load_codec_file(path) -> CodecModel:
    from safetensors import safe_open

    with safe_open(str(path), "np") as f:
        metadata = f.metadata() or {}
    if "vqvae_config" not in metadata:
        raise WeightsError(f"model {Path(path).stem} is not a codec model")
    config = VQVAEConfig(**json.loads(metadata["vqvae_config"]))
    tensors = load_file(str(path))
    vqvae = VQVAE(config)
    state = {k[6:]: torch.from_numpy(v.astype(np.float32) if v.dtype == np.float16 else v)
             for k, v in tensors.items() if k.startswith("vqvae.")}
    vqvae.load_state_dict(state)
    vqvae.eval()
    prior = FixedPointPrior({k[6:]: v for k, v in tensors.items() if k.startswith("prior.")})
    if "ladder" in metadata:
        ladder = [Rung(*r) for r in json.loads(metadata["ladder"])]
    else:  # the first codecs: quality k is k stages
        ladder = [Rung(k) for k in range(1, config.num_stages + 1)]
    tables = tensors.get("detail.tables")
    steps = sum(r.step is not None for r in ladder)
    tables_fit = (tables is None and steps == 0) or (tables is not None and tables.shape == (
        steps, 3, detail.GROUPS, detail.CONTEXTS, detail.SYMBOLS))
    if not tables_fit or not all(1 <= r.stages <= config.num_stages for r in ladder):
        raise WeightsError(f"{path}: the quality ladder does not fit the file's networks and tables")
    return CodecModel(vqvae, prior, ladder, tables)

"""Repacking a codec file onto a shipped base model: the file keeps the whole metadata and only
the parts (VQ-VAE, prior, detail tables, filter) that differ from the base
(`codec.model.codec_file` reads it back). A model that changes one part of its base (a filter
fine-tuned, tables refitted) then costs that part's bytes in `weights/`, not a whole model's."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from vqpress import weights
from vqpress.codec.errors import VQPressError
from vqpress.codec.model import codec_file, part

from .cards import release_codec
from .loop import command_line


def repack(source: Path, base_id: str, out: Path) -> Path:
    """Release the codec file `source` as <out>/<its stem>.safetensors on the shipped model
    `base_id`. A shipped model keeps the sha256 it was shipped under, so its files decode."""
    model_id = source.stem
    meta, tensors = codec_file(source)
    base_path, base_digest = weights.verified(base_id)
    if "base_model" in weights.metadata(base_path):
        raise VQPressError(f"{base_id} names a base of its own: repack onto a complete model")
    base_meta, base_tensors = codec_file(base_path)
    if base_meta.get("vqvae_config") != meta.get("vqvae_config"):
        raise VQPressError(f"{base_id} is not the same architecture as {model_id}")
    parts = {part(k) for k in tensors}
    if {part(k) for k in base_tensors} - parts:
        raise VQPressError(f"{model_id} lacks a part that {base_id} has: it cannot name it as its base")
    changed = {p for p in parts if not same_tensors(of_part(tensors, p), of_part(base_tensors, p))}
    own = {k: v for k, v in tensors.items() if part(k) in changed}
    digest = weights.sha256_file(source)
    shipped = weights.metadata(source).get("shipped_sha256") or (
        digest if weights.checksums().get(source.name) == digest else None)
    card_file = source.with_suffix(".json")  # the card beside a released file may have grown since
    card = json.loads(card_file.read_text()) if card_file.is_file() else meta["card"]
    card = {**card, "repacked": {"base": base_id, "base_sha256": base_digest, "command": command_line(),
                                 "parts": sorted(changed), **({"shipped_sha256": shipped} if shipped else {})}}

    delta = {"base_model": base_id, "base_sha256": base_digest, **({"shipped_sha256": shipped} if shipped else {})}
    return release_codec(out, model_id, own, {**meta, **delta}, card)


def of_part(tensors: dict[str, np.ndarray], name: str) -> dict[str, np.ndarray]:
    return {k: v for k, v in tensors.items() if part(k) == name}


def same_tensors(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    """The same names, dtypes and values: the same bytes in a file."""
    return a.keys() == b.keys() and all(a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]) for k in a)

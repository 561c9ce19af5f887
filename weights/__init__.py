"""The shipped model weights and their registry.

One safetensors file per model, named `<model id>.safetensors`, with a model card beside it
(`.json` and `.md`), and the ONNX graphs of the transforms' architectures
(`<graph id>.analysis.onnx`, `.synthesis.onnx`), each with its sha256 in `SHA256SUMS`, checked
on every load. This folder is
installed as a package so that `pip install .` and `pip install -e .` find the files the same
way, through importlib.resources.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from importlib.resources import files
from pathlib import Path

from vqpress.codec.errors import VQPressError

CHECKSUMS = "SHA256SUMS"
MAX_HEADER_BYTES = 100_000_000  # the safetensors format's own limit


class WeightsError(VQPressError):
    """Missing or damaged weights."""


def folder() -> Path:
    return Path(str(files(__name__) / CHECKSUMS)).parent


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def checksums(sums: Path | None = None) -> dict[str, str]:
    """{file name: sha256} of a SHA256SUMS file (the shipped one by default)."""
    text = (sums or folder() / CHECKSUMS).read_text()
    return {name: digest for digest, name in (line.split() for line in text.splitlines() if line)}


def record_checksum(sums: Path, filename: str, digest: str) -> None:
    """Add or replace one file's line in a SHA256SUMS file (sorted by file name)."""
    lines = [line for line in (sums.read_text().splitlines() if sums.exists() else [])
             if line.strip() and not line.endswith(f"  {filename}")]
    lines = sorted(lines + [f"{digest}  {filename}"], key=lambda line: line.split(maxsplit=1)[1])
    sums.write_text("\n".join(lines) + "\n")


def is_shipped(model_id: str) -> bool:
    return f"{model_id}.safetensors" in checksums()


def shipped(prefix: str = "") -> list[str]:
    """The ids of the shipped models whose id starts with `prefix`, sorted."""
    return sorted(name.removesuffix(".safetensors") for name in checksums()
                  if name.startswith(prefix) and name.endswith(".safetensors"))


def verified(model_id: str) -> tuple[Path, str]:
    """(path, sha256) of a shipped model's file, its checksum verified."""
    return verified_file(f"{model_id}.safetensors")


@cache
def verified_file(name: str) -> tuple[Path, str]:
    """(path, sha256) of a shipped file (a model, a graph), its checksum verified."""
    path = folder() / name
    expected = checksums().get(name)
    if not path.is_file() or expected is None:
        raise WeightsError(f"{name.removesuffix('.safetensors')!r} is not shipped with this vqpress")
    digest = sha256_file(path)
    if digest != expected:
        raise WeightsError(f"{path} is damaged (sha256 {digest[:12]}..., expected {expected[:12]}...)")
    return path, digest


def _header(path) -> dict:
    """A safetensors file's JSON header, read as the format defines it (a little-endian u64
    length, then the JSON): safetensors' own reader imports numpy, 0.16 s that a command
    line checking a quality level should not wait for."""
    with open(path, "rb") as f:
        size = int.from_bytes(f.read(8), "little")
        if size > MAX_HEADER_BYTES:
            raise WeightsError(f"{path}: not a safetensors file")
        try:
            header = json.loads(f.read(size))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise WeightsError(f"{path}: not a safetensors file") from None
    if not isinstance(header, dict):
        raise WeightsError(f"{path}: not a safetensors file")
    return header


def metadata(path) -> dict[str, object]:
    """A weights file's metadata ({} when it has none), each value decoded from JSON where it
    is JSON (the peers' "arch" is a plain string)."""
    raw = _header(path).get("__metadata__") or {}
    out = {}
    for key, value in raw.items():
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def peers(arch: str) -> list[Path]:
    """The shipped compressai peers of `arch` (`<arch>-l<lambda>.safetensors`), verified,
    lowest lambda (rate) first."""
    ids = sorted(shipped(f"{arch}-l"), key=lambda stem: float(stem.rsplit("-l", 1)[1]))
    return [verified(model_id)[0] for model_id in ids]

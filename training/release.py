"""Releasing trained weights: the file, its checksum line and its model card, for every model.

A model card is a JSON file of facts (`card`) and a Markdown rendering of them: a title, the
file's sha256, what the model is, then one section per trained part with its data, steps,
time, hardware, configuration and last validation.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from vqpress import weights
from vqpress.codec.errors import VQPressError


def half(state: dict) -> dict[str, np.ndarray]:
    """A torch state dict as numpy arrays, floating point ones in fp16."""
    return {k: (v.detach().cpu().half() if v.is_floating_point() else v.detach().cpu()).numpy()
            for k, v in state.items()}


def summary(ckpt: dict) -> dict:
    """The facts of a training run a card gives, from its checkpoint."""
    cfg = ckpt["train_config"]
    images = cfg["extra"].get("train_images")
    if images is None and Path(cfg["data"]).is_dir():
        from .data import image_paths

        images = len(image_paths(cfg["data"]))
    return {"data": cfg["data"], "train_images": images,
            "valid": cfg["valid"], "steps": ckpt["step"], "planned_steps": cfg["steps"],
            "batch": cfg["batch"], "crop": cfg["crop"], "lr": cfg["lr"],
            "train_seconds": round(ckpt["seconds"]), "hardware": ckpt.get("hardware", "unknown"),
            "model_config": ckpt["model_config"], "init": cfg["extra"].get("init"),
            "schedules": cfg["extra"].get("schedules"), "tasks": cfg["extra"].get("tasks"),
            "qualities": cfg["extra"].get("qualities"),
            "commands": cfg["extra"].get("commands"),
            "last_validation": ckpt["history"][-1] if ckpt["history"] else None}


def exported_summary(ckpt: dict) -> dict:
    """`summary`, with the command now running (the export that puts the run into a codec file)
    after the run's own commands."""
    from .loop import command_line

    facts = summary(ckpt)
    facts["commands"] = [*(facts["commands"] or []), command_line()]
    return facts


def training_lines(c: dict) -> list[str]:
    """A card section's lines for one training run (a `summary`)."""
    schedules = c.get("schedules") or []
    lr = f"lr {c['lr']} in the last command" if len(schedules) > 1 else f"peak lr {c['lr']}"
    lines = [f"- data: `{c['data']}` ({c['train_images']} images)"
             + (f", validation `{c['valid']}`" if c.get("valid") else ""),
             f"- {c['steps']} steps, batch {c['batch']}, crop {c['crop']}, {lr}"]
    if c.get("planned_steps", 0) > c["steps"]:
        lines.append(f"- stopped at step {c['steps']} of a planned {c['planned_steps']}: the cosine "
                     "lr schedule had not decayed")
    lines.append(f"- {c['train_seconds'] / 60:.0f} min of training on {c['hardware']}")
    if len(schedules) > 1:  # `loop.learning_rate`: a resumed run takes up the cosine of its new length
        later = [f"from step {s['from_step']} that of a {s['steps']}-step run" for s in schedules[1:]]
        lines.append(f"- lr schedule: warm-up and cosine over steps 0-{schedules[0]['steps']}, then "
                     f"{', then '.join(later)} (resumed with a new number of steps, each part at "
                     "its command's --lr)")
    lines.append(f"- config: `{json.dumps(c['model_config'])}`")
    lines += [f"- command: `{command}`" for command in c.get("commands") or []]
    if c.get("last_validation") is not None:
        lines.append(f"- last validation: `{json.dumps(c['last_validation'])}`")
    return lines


def render_card(model_id: str, digest: str, intro: list[str], sections: list[tuple[str, list[str]]]) -> str:
    """The Markdown model card: title, file and sha256, intro paragraphs, then sections."""
    lines = [f"# {model_id}", "", f"File `{model_id}.safetensors`, sha256 `{digest}`.", ""]
    for paragraph in intro:
        lines += [paragraph, ""]
    for title, body in sections:
        lines += [f"## {title}", "", *body, ""]
    return "\n".join(lines).rstrip() + "\n"


def release(out: Path, model_id: str, write: Callable[[Path], None], card: dict,
            intro: list[str], sections: list[tuple[str, list[str]]]) -> Path:
    """Write <out>/<model_id>.safetensors (with `write(path)`), its SHA256SUMS line and its model
    card (<model_id>.json and .md). Returns the weights file's path. A file already there is
    never replaced: --out defaults to weights/, where the same id would overwrite a shipped
    model."""
    path = out / f"{model_id}.safetensors"
    if path.exists():
        raise VQPressError(f"{path} exists: an export never replaces a file (choose another --model-id or --out)")
    out.mkdir(parents=True, exist_ok=True)
    write(path)
    digest = weights.sha256_file(path)
    weights.record_checksum(out / weights.CHECKSUMS, path.name, digest)
    (out / f"{model_id}.json").write_text(json.dumps(card, indent=2) + "\n")
    (out / f"{model_id}.md").write_text(render_card(model_id, digest, intro, sections))
    return path

"""Ablation of the codec's levers: BD-rates of codec variants against the peers, on image sets.

A variant is a shipped model or a codec file, optionally with levers switched off in a copy of
its metadata (same networks and tables): `-postfilter` drops the reconstruction filter,
`-modes` the per-block predictor choice, `-adaptive` the adaptive detail tables. Every variant
is really encoded and decoded on every image of every set (`vqpress.measure.rd`); the peers'
curves come from a `vqpress rd` run on the same set (`--peers`, one per `--set`), and so can
a variant's (`rd:CODEC`, or `rd:CODEC@DIR,...` from other runs). The measured variants'
curves are kept in the output folder (`variants-<set>.json`, by variant name) and reused:
delete them to measure again.

    vqpress rd ../shared/corpus/valid --codec jpeg --codec webp --codec avif --codec jxl -o out/rd-valid
    python benchmarks/ablation.py --set ../shared/corpus/valid --peers out/rd-valid \
        --variant "v9 without filter=rvq-dct-v9:-postfilter" --variant v9=rvq-dct-v9 -o out/ablation

Prints one markdown table (BD-rate in % of bits, PSNR; negative = fewer bits than the peer;
"row above": the lever's own change) and writes it, with every curve, to the output folder.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import replace
from pathlib import Path

from safetensors.numpy import save_file

from vqpress import weights
from vqpress.codec.model import codec_file
from vqpress.measure import baselines
from vqpress.measure.metrics import bd_rate
from vqpress.measure.rd import curves, measure, read_rows, slug

PEERS = ["webp", "avif", "jpeg", "jxl"]
LEVERS = {"-postfilter", "-modes", "-adaptive"}


def variant_file(spec: str, folder: Path) -> Path:
    """A codec file for MODEL[:-lever...]: the model itself, or a copy with levers off."""
    model, *levers = spec.split(":")
    path = Path(model) if Path(model).is_file() else weights.verified(model)[0]
    if not levers:
        return path
    if set(levers) - LEVERS:
        raise SystemExit(f"unknown lever in {spec!r} (known: {', '.join(sorted(LEVERS))})")
    meta, tensors = codec_file(path)
    meta = {k: json.dumps(v) if not isinstance(v, str) else v for k, v in meta.items()}
    if "-postfilter" in levers:
        tensors = {k: v for k, v in tensors.items() if not k.startswith("postfilter.")}
        meta.pop("postfilter_config", None)
    if "-modes" in levers:
        meta["block_modes"] = "false"
    if "-adaptive" in levers:
        meta["adaptive_detail"] = "false"
    out = folder / f"{path.stem}{''.join(levers)}.safetensors"
    save_file(tensors, str(out), metadata=meta)
    return out


def codec_of(name: str, path: Path) -> baselines.RDCodec:
    return replace(baselines.vqpress(model_id=str(path)), name=name)


def peer_curves(rd_run: Path) -> dict[str, dict]:
    """The peers' curves of a `vqpress rd` output folder, by their names here."""
    out = {}
    for name in PEERS:
        codec = baselines.get(name)
        doc = json.loads((rd_run / f"{slug(codec.name)}.json").read_text())
        out[name] = {"bpp": doc["results"]["bpp"], "psnr": doc["results"]["psnr-rgb"]}
    return out


def rd_curve(rd_run: Path, codec: str, grid: list[int] | None) -> dict:
    """A codec's curve from a `vqpress rd` run's rows, at the grid's qualities only."""
    rows = [r for r in read_rows(rd_run) if r["codec"] == codec and (grid is None or r["quality"] in grid)]
    if not rows:
        raise SystemExit(f"{rd_run}: no rows of {codec!r} at those qualities")
    return curves(rows)[codec]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", dest="sets", action="append", type=Path, required=True)
    parser.add_argument("--peers", action="append", type=Path, required=True,
                        help="a vqpress rd output folder of the peers on the same set, per --set")
    parser.add_argument("--qualities", help="the variants' qualities among these only (e.g. 1,3,5,7,9,11)")
    parser.add_argument("--variant", dest="variants", action="append", required=True,
                        help="NAME=MODEL[:-postfilter][:-modes][:-adaptive], or NAME=rd:CODEC for a "
                             "codec's rows in the set's --peers rd run (e.g. rd:vqpress), or "
                             "NAME=rd:CODEC@DIR,DIR... in other rd runs, one per --set (an earlier "
                             "version of the encoder, say)")
    parser.add_argument("-o", "--out", type=Path, default=Path("out/ablation"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    results = {}
    if len(args.peers) != len(args.sets):
        parser.error("give one --peers folder per --set")
    grid = [int(q) for q in args.qualities.split(",")] if args.qualities else None
    specs = [(name, spec) for name, _, spec in (v.partition("=") for v in args.variants)]
    with tempfile.TemporaryDirectory() as tmp:
        for folder in args.sets:  # the variants first: the peers' rd runs may still be going
            cached = args.out / f"variants-{folder.name}.json"
            mine = json.loads(cached.read_text()) if cached.exists() else {}
            codecs = [codec_of(name, variant_file(spec, Path(tmp))) for name, spec in specs
                      if not spec.startswith("rd:") and name not in mine]  # kept curves need no file
            grids = {c.name: [q for q in grid if q in c.qualities] for c in codecs} if grid else {}
            if codecs:
                mine |= curves(measure(codecs, grids, folder))
                cached.write_text(json.dumps(mine))
            results[folder.name] = {"variants": mine}
    for k, (folder, rd_run) in enumerate(zip(args.sets, args.peers)):
        results[folder.name]["peers"] = peer_curves(rd_run)
        for name, spec in specs:
            if spec.startswith("rd:"):
                codec, _, runs = spec[3:].partition("@")
                run = Path(runs.split(",")[k]) if runs else rd_run
                results[folder.name]["variants"][name] = rd_curve(run, codec, grid)
    head = "| variant | " + " | ".join(f"{s}: vs {p}" for s in results for p in [*PEERS, "row above"]) + " |"
    lines = [head, "|" + "---|" * (1 + len(results) * (len(PEERS) + 1))]
    for k, (name, _) in enumerate(specs):
        cells = []
        for r in results.values():
            v = r["variants"][name]
            refs = [r["peers"][p] for p in PEERS] + [r["variants"][specs[k - 1][0]] if k else None]
            cells += [f"{bd_rate(ref['bpp'], ref['psnr'], v['bpp'], v['psnr']):+.1f}%" if ref else ""
                      for ref in refs]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    print(table)
    (args.out / "ablation.md").write_text(table + "\n")
    (args.out / "ablation.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

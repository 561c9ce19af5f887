"""How much does averaging the refiner over orientations of its input (`restore.refine.refined`,
`orientations=`) add? Mean PSNR gain of the refined estimate over the estimate, per task, on
the held-out pairs of `vqpress train refiner-pairs` (the last two shards, as in training), for
1, 2, 4 and 8 orientations (super-resolution also per scale, inpainting also by missing share,
its known pixels kept as given); a shipped refiner (--model, default refiner-v3), or a training
run's last checkpoint.

    python benchmarks/study_refiner_ensemble.py runs/refine/pairs [--model refiner-v4 | --run runs/refine/r4]

Measured on shards 78-79 (100 crops, 60 without inpainting's; under a minute per refiner), with
the shipped fp16 files (refiner-v2 is vqpress 0.10's, git e99d635; `--run runs/refine/r4`
gives its fp32 weights):

| refiner | orientations | denoise | sr | deblur |
|---|---:|---:|---:|---:|
| refiner-v2 (horizontal flips in training) | 1 | +1.765 | +0.588 | +0.383 |
| | 2 | +1.837 | +0.632 | +0.409 |
| | 4 | +1.876 | +0.666 | +0.418 |
| | 8 | +1.908 | +0.664 | +0.428 |
| refiner-v3 (all 8 orientations in training) | 1 | +1.961 | +0.621 | +0.404 |
| | 2 | +2.049 | +0.669 | +0.431 |
| | **4 (shipped)** | **+2.099** | **+0.708** | **+0.448** |
| | 8 | +2.135 | +0.709 | +0.460 |

Denoising's figure is noisy: about 10 of the held-out crops are denoising crops.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vqpress.nets.refiner import Refiner, RefinerConfig
from vqpress.restore.refine import load_refiner, oriented, refined, unoriented
from vqpress.training.loop import read_checkpoint
from vqpress.training.refiner import RefinerPairs, gain_db

COUNTS = (1, 2, 4, 8)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pairs", help="folder of refiner-pairs shards")
    parser.add_argument("--run", help="a training run folder (default: the shipped refiner --model)")
    parser.add_argument("--model", default="refiner-v3", help="a shipped refiner")
    args = parser.parse_args()
    if args.run:
        ckpt = read_checkpoint(args.run)
        net = Refiner(RefinerConfig.from_dict(ckpt["model_config"]))
        net.load_state_dict(ckpt["model"])
        net.eval()
    else:
        net, _ = load_refiner(args.model)
    shards = sorted(Path(args.pairs).glob("pairs-*.npz"))[-2:]
    pairs = RefinerPairs(shards, crop=96, skip=net.config.skip)
    gains = {n: {} for n in COUNTS}
    for i in range(len(pairs)):
        estimate, observed, known, cond, truth, keeps = (torch.as_tensor(t) for t in pairs.item(i))
        estimate, observed, known, truth = (t[None] for t in (estimate, observed, known, truth))
        before = F.mse_loss(estimate, truth).item()
        # each orientation's pass once; the ensembles are means of their first n
        passes = [unoriented(refined(net, *(oriented(t, k) for t in (estimate, observed, known)), cond, 1), k)
                  for k in range(max(COUNTS))]
        labels = [pairs.tasks[i]]
        if pairs.tasks[i] == "sr":  # and per scale (condition's entry 5 is scale / 4)
            labels.append(f"sr x{round(float(cond[5]) * 4)}")
        if keeps:  # inpainting, and by how much is missing
            labels.append("inpaint, " + ("70% missing or more" if known.mean() <= 0.3 else "under 70% missing"))
        for n in COUNTS:
            out = torch.stack(passes[:n]).mean(0)
            after = F.mse_loss(torch.where(known > 0, truth, out) if keeps else out, truth).item()
            for label in labels:
                gains[n].setdefault(label, []).append(gain_db(before, after))
    tasks = sorted(gains[1])
    print("| orientations | " + " | ".join(tasks) + " |")
    print("|---:|" + "---:|" * len(tasks))
    for n in COUNTS:
        print(f"| {n} | " + " | ".join(f"{np.mean(gains[n][t]):+.3f}" for t in tasks) + " |")


if __name__ == "__main__":
    main()

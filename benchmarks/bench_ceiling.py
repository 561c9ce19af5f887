"""What limits the codec's quality: the autoencoder or the quantiser?

    python benchmarks/bench_ceiling.py DIR [--crop 256]

On centre crops of the images of DIR, with the shipped VQ-VAE: mean PSNR of the decoder fed
the unquantised latent (the autoencoder's ceiling) and fed k residual stages, and the latent's
relative quantisation error ||z_q - z||^2 / ||z||^2 at each k.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from vqpress.codec.ladder import DEFAULT_MODEL
from vqpress.measure.metrics import psnr_of_mse
from vqpress.training.codec_models import codec_vqvae
from vqpress.training.data import center_crops, load_folder


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("--crop", type=int, default=256)
    args = parser.parse_args()
    vqvae = codec_vqvae(DEFAULT_MODEL)
    crops = center_crops(load_folder(args.folder), args.crop)
    stages = range(1, vqvae.config.num_stages + 1)
    psnr = {k: [] for k in ["unquantised", *stages]}
    error = {k: [] for k in stages}
    with torch.no_grad():
        for c in crops:
            x = c[None].float() / 255
            z = vqvae.encoder(x)
            psnr["unquantised"].append(psnr_of_mse(F.mse_loss(vqvae.decoder(z).clamp(0, 1), x).item(), 1.0))
            for k in stages:
                z_q = vqvae.rvq.decode(vqvae.rvq.encode(z, k))
                psnr[k].append(psnr_of_mse(F.mse_loss(vqvae.decoder(z_q).clamp(0, 1), x).item(), 1.0))
                error[k].append(((z_q - z) ** 2).mean().item() / (z**2).mean().item())
    def mean(values):
        return sum(values) / len(values)

    print(f"{len(crops)} centre crops of {args.crop} px")
    print(f"unquantised autoencoder: {mean(psnr['unquantised']):.2f} dB")
    for k in stages:
        print(f"{k} stages: {mean(psnr[k]):.2f} dB, latent error {100 * mean(error[k]):.2f}%")


if __name__ == "__main__":
    main()

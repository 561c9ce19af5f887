"""The restoration prior: a fully convolutional VAE with z ~ N(0, I) on a latent map at 1/8 scale.

Same transforms as the codec's VQ-VAE (`vqpress.nets.transforms`); the encoder's last convolution
gives a mean and a log-variance per latent channel. `from_vqvae` starts one from a trained
VQ-VAE: its latent is whitened with the codebooks' per-channel Gaussian (folded into the two
convolutions that touch the latent), so training starts at the autoencoder's quality with
roughly unit-Gaussian latents instead of from scratch (exactly the same
output away from the borders, where zero padding of the latent differs).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
from safetensors.numpy import load_file
from torch import nn

from vqpress import weights
from vqpress.nets.transforms import analysis_transform, synthesis_transform
from vqpress.nets.vqvae import VQVAE

from .spectra import NUM_BINS

# The restoration encoder's extra input planes after the known-pixel mask: (offset, unit) that
# bring each number of the damage to about [0, 1].
CONDITIONS = {"known": None, "noise": (0.0, 0.25), "blur": (0.0, 4.0), "scale": (1.0, 3.0)}


@dataclass(frozen=True)
class VAEConfig:
    channels: int = 96
    latent_dim: int = 32
    kl_weight: float = 5e-5  # loss = MSE + kl_weight * KL (nats per pixel)
    restorer: bool = False  # a second encoder, for damaged images (`VAE.restore_mean`)

    def to_dict(self) -> dict:
        return asdict(self)


class VAE(nn.Module):
    def __init__(self, config: VAEConfig = VAEConfig()):
        super().__init__()
        self.config = config
        self.encoder = analysis_transform(config.channels, 2 * config.latent_dim)  # mean, log-variance
        self.decoder = synthesis_transform(config.latent_dim, config.channels)
        if config.restorer:
            self.restorer = analysis_transform(config.channels, config.latent_dim,
                                               inputs=3 + len(CONDITIONS))
        # log10 radial power spectra measured on training crops at export (`restore.spectra`):
        # of the decoder's error x - D(mean z), and of the images themselves (x minus its mean)
        self.register_buffer("log_residual_power", torch.zeros(NUM_BINS))
        self.register_buffer("log_image_power", torch.zeros(NUM_BINS))

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, log-variance) of q(z | x) for x in [0, 1], sides divisible by 8."""
        mean, logvar = self.encoder(x).chunk(2, dim=1)
        return mean, logvar.clamp(-30, 20)

    def encode_mean(self, x: torch.Tensor) -> torch.Tensor:
        return self.posterior(x)[0]

    def restore_mean(self, guess: torch.Tensor, known: torch.Tensor, noise=0.0, blur=0.0,
                     scale=1) -> torch.Tensor:
        """The latent of the clean image, estimated from a first guess of it (B, 3, H, W) and
        what is known of the damage: `known` (B or 1, 1, H, W) is 1 where the guess is an
        observed pixel and 0 where it was filled in; noise (std in [0, 1] units), blur (Gaussian
        std in pixels) and scale (super-resolution factor) are numbers or (B,) tensors."""
        b, _, h, w = guess.shape

        def plane(value, offset, unit):
            v = (torch.as_tensor(value, dtype=guess.dtype, device=guess.device) - offset) / unit
            return v.reshape(-1, 1, 1, 1).expand(b, 1, h, w)

        planes = [known.to(guess.dtype).expand(b, 1, h, w)] + [
            plane(value, *CONDITIONS[name]) for name, value in
            (("noise", noise), ("blur", blur), ("scale", scale))]
        return self.restorer(torch.cat([guess, *planes], dim=1))

    @torch.no_grad()
    def add_restorer(self) -> VAE:
        """A copy with a restoration encoder that starts as this VAE's encoder (posterior mean),
        with zero weights on the extra input planes."""
        vae = VAE(replace(self.config, restorer=True))
        vae.load_state_dict(self.state_dict(), strict=False)
        vae.restorer[1:-1].load_state_dict(self.encoder[1:-1].state_dict())
        first, last = vae.restorer[0], vae.restorer[-1]
        first.weight.zero_()
        first.weight[:, :3] = self.encoder[0].weight
        first.bias.copy_(self.encoder[0].bias)
        d = self.config.latent_dim
        last.weight.copy_(self.encoder[-1].weight[:d])
        last.bias.copy_(self.encoder[-1].bias[:d])
        return vae

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(reconstruction from a posterior sample, KL(q(z|x) || N(0, I)) in nats per pixel)."""
        mean, logvar = self.posterior(x)
        z = mean + torch.randn_like(mean) * (0.5 * logvar).exp()
        return self.decoder(z), kl_divergence(mean, logvar) / (x.shape[0] * x.shape[-2] * x.shape[-1])

    @classmethod
    @torch.no_grad()
    def from_vqvae(cls, vqvae: VQVAE, kl_weight: float, init_logvar: float = -7.0) -> VAE:
        c = vqvae.config
        vae = cls(VAEConfig(c.channels, c.latent_dim, kl_weight))
        vae.encoder[:-1].load_state_dict(vqvae.encoder[:-1].state_dict())
        vae.decoder[1:].load_state_dict(vqvae.decoder[1:].state_dict())
        m, var = codebook_gaussian(vqvae.rvq)
        s = var.sqrt()
        last, head = vqvae.encoder[-1], vae.encoder[-1]
        d = c.latent_dim
        head.weight[:d] = last.weight / s[:, None, None, None]  # z = (z_vq - m) / s
        head.bias[:d] = (last.bias - m) / s
        head.weight[d:] = 0
        head.bias[d:] = init_logvar
        first, new_first = vqvae.decoder[0], vae.decoder[0]  # z_vq = s z + m
        new_first.weight.copy_(first.weight * s[None, :, None, None])
        new_first.bias.copy_(first.bias + (first.weight * m[None, :, None, None]).sum((1, 2, 3)))
        return vae


def kl_divergence(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) || N(0, I)) in nats, summed over every element."""
    return 0.5 * (mean**2 + logvar.exp() - 1 - logvar).sum()


def codebook_gaussian(rvq) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance per channel of a sum of independent residual-VQ stage codes."""
    mean = var = 0
    for vq in rvq.stages:
        w = vq.cluster_size / vq.cluster_size.sum()
        m = (w[:, None] * vq.codebook).sum(0)
        mean = mean + m
        var = var + (w[:, None] * (vq.codebook - m) ** 2).sum(0)
    return mean, var.clamp_min(1e-6)


def load_vae(model_id: str) -> tuple[VAE, dict]:
    """A shipped VAE (checksum verified) in eval mode, and its card."""
    path, _ = weights.verified(model_id)
    meta = weights.metadata(path)
    if "vae_config" not in meta:
        raise weights.WeightsError(f"model {model_id} is not a restoration VAE")
    vae = VAE(VAEConfig(**meta["vae_config"]))
    vae.load_state_dict({k: torch.from_numpy(v.astype(np.float32)) for k, v in load_file(str(path)).items()})
    return vae.eval(), meta["card"]

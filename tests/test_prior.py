"""Causality of the prior: a symbol's probabilities depend only on symbols before it in
decoding order (raster order of positions; stage order within a position)."""

import numpy as np
import pytest
import torch

from vqpress.codec.prior import FixedPointPrior, PriorConfig, wavefront
from vqpress.nets.pixelcnn import PixelCNNPrior
from vqpress.training.fixedpoint import export_tables

CFG = PriorConfig(num_codes=16, num_stages=3, embed_dim=4, channels=8, blocks=2)


@pytest.fixture(scope="module")
def prior():
    torch.manual_seed(0)
    p = PixelCNNPrior(CFG).eval()
    with torch.no_grad():  # make every weight matter, so a leak would show
        for param in p.parameters():
            param.add_(torch.randn_like(param) * 0.3)
    return p


def _order(h, w, s):
    """Decoding rank of (stage, row, col) in raster-then-stage order."""
    return {(st, i, j): (i * w + j) * s + st for i in range(h) for j in range(w) for st in range(s)}


@pytest.mark.parametrize("changed", [(0, 2, 3), (2, 2, 3), (1, 0, 0), (0, 4, 5)])
def test_float_prior_is_causal(prior, changed):
    h, w, s = 5, 6, CFG.num_stages
    g = torch.Generator().manual_seed(1)
    indices = torch.randint(0, CFG.num_codes, (1, s, h, w), generator=g)
    q = torch.tensor([s])
    base = prior.logits(indices, q)
    other = indices.clone()
    other[0][changed] = (other[0][changed] + 5) % CFG.num_codes
    new = prior.logits(other, q)
    rank = _order(h, w, s)
    k = rank[changed]
    moved = (base - new).abs().amax(dim=2)[0]  # (S, H, W)
    # float convolutions may mix neighbours' rounding (Winograd): allow 1e-5, far below any
    # real dependence; the fixed-point test below is exact
    for key, r in rank.items():
        if r <= k:
            assert moved[key] < 1e-5, f"symbol {key} before {changed} changed"
    assert moved.max() > 1e-2  # and the change is seen by some later symbol


def test_fixed_point_prior_is_causal(prior):
    fp = FixedPointPrior(export_tables(prior))
    h, w, s = 5, 6, CFG.num_stages
    rng = np.random.default_rng(2)
    indices = rng.integers(0, CFG.num_codes, (s, h, w))

    def all_weights(ix):
        tokens = ix.transpose(1, 2, 0)
        feats = fp.all_features(tokens).reshape(-1, CFG.channels)
        flat = tokens.reshape(-1, s)
        earlier, out = np.zeros_like(feats), []
        for st in range(s):
            out.append(fp.stage_weights(feats, earlier, st))
            earlier = earlier + fp.same_position[st][flat[:, st]]
        return np.stack(out).reshape(s, h, w, -1)

    base = all_weights(indices)
    changed = (1, 2, 2)
    other = indices.copy()
    other[changed] = (other[changed] + 3) % CFG.num_codes
    new = all_weights(other)
    rank = _order(h, w, s)
    for key, r in rank.items():
        same = np.array_equal(base[key], new[key])
        if r <= rank[changed]:
            assert same, f"symbol {key} before {changed} changed"


def test_integer_prior_tracks_float_prior(prior):
    """The exported integers reproduce the float model's code lengths closely."""
    from vqpress.codec.entropy import encode_symbols, new_encoder

    fp = FixedPointPrior(export_tables(prior))
    g = torch.Generator().manual_seed(3)
    indices = torch.randint(0, CFG.num_codes, (1, CFG.num_stages, 6, 7), generator=g)
    float_bits = prior.bits(indices, torch.tensor([CFG.num_stages])).item()
    int_bits = encode_symbols(fp, indices[0].numpy(), new_encoder())
    assert abs(int_bits - float_bits) / float_bits < 0.01


def test_wavefront_visits_every_position_once_after_its_context():
    h, w = 7, 9
    seen = np.full((h, w), -1)
    for t, (rows, cols) in enumerate(wavefront(h, w)):
        assert (seen[rows, cols] == -1).all()
        seen[rows, cols] = t
    assert (seen >= 0).all()
    # the farthest context to the upper right, (i-1, j+2), is decoded earlier
    assert (seen[1:, :-2] > seen[:-1, 2:]).all()


def test_weights_file_round_trip(prior, tmp_path):
    """What is saved is what is loaded: every table, and so every probability."""
    from vqpress.nets.vqvae import VQVAE, VQVAEConfig
    from vqpress.codec.model import load_codec_file
    from vqpress.training.codec_models import write_codec_file

    tables = export_tables(prior)
    vqvae = VQVAE(VQVAEConfig(channels=8, latent_dim=4, num_codes=16, num_stages=3))
    write_codec_file(tmp_path / "m.safetensors", vqvae, tables, {})
    loaded = load_codec_file(tmp_path / "m.safetensors").prior
    direct = FixedPointPrior(tables)
    for name in ("embed", "same_position", "head", "head_bias", "exp", "tanh", "sigmoid"):
        assert np.array_equal(getattr(loaded, name), getattr(direct, name)), name
    for a, b in zip(loaded.layers, direct.layers):
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2:] == b[2:]

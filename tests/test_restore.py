import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from vqpress import restore
from vqpress.cli.main import main
from vqpress.codec.errors import VQPressError
from vqpress.measure.metrics import psnr_of_mse
from vqpress.nets.device import to_uint8
from vqpress.restore import operators


def test_mask_operator_keeps_known_pixels_only():
    known = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    x = torch.arange(12.0).reshape(1, 3, 2, 2)
    y = operators.Mask(known)(x)
    assert torch.equal(y[0, :, 0, 1], torch.zeros(3)) and torch.equal(y[0, :, 1, 1], x[0, :, 1, 1])


def test_downsample_operator_sizes_and_constants():
    x = torch.full((1, 3, 24, 36), 0.25)
    for s in (2, 3, 4):
        y = operators.Downsample(s)(x)
        assert y.shape == (1, 3, 24 // s, 36 // s)
        assert torch.allclose(y, torch.full_like(y, 0.25), atol=1e-6)
    # a 2x2 checkerboard period averages out under x2 antialiased downsampling, away from edges
    board = torch.tensor([[0.0, 1.0], [1.0, 0.0]]).repeat(8, 8)[None, None].repeat(1, 3, 1, 1)
    assert torch.allclose(operators.Downsample(2)(board)[..., 2:-2, 2:-2], torch.tensor(0.5), atol=0.02)


def test_blur_kernels_by_hand():
    g = operators.gaussian_kernel(1.0)
    assert g.shape == (7, 7) and torch.allclose(g, g.t()) and torch.allclose(g, g.flip(0))
    assert g[3, 3] == g.max()
    m = torch.zeros(5, 5)
    m[2] = 1  # a horizontal line of 5 pixels
    blur = operators.gaussian_blur(1.5)
    x = torch.full((1, 3, 16, 16), 0.7)
    assert torch.allclose(blur(x), x, atol=1e-6)  # normalised: constants unchanged
    impulse = torch.zeros(1, 3, 15, 15)
    impulse[..., 7, 7] = 1
    assert torch.allclose(operators.Blur(m)(impulse)[0, 0, 7, 5:10], torch.full((5,), 0.2))


def test_gaussian_smoothing_by_fft_equals_the_2d_blur():
    x = torch.rand(1, 3, 40, 50, generator=torch.Generator().manual_seed(0))
    for sigma in (0.7, 2.0, 13.0):
        two_d = operators.Blur(operators.gaussian_kernel(sigma))(x)  # the 2-D convolution
        assert torch.allclose(operators.gaussian_blur(sigma)(x), two_d, atol=1e-5)
        assert torch.allclose(operators.gaussian_smooth(x, sigma), two_d, atol=1e-5)


def test_tiles_cover_the_image_and_blend_to_the_whole(monkeypatch):
    """With an identity decoder and no steps each tile returns its first guess, so the blended
    overlapping tiles must give back the whole first guess exactly."""
    from vqpress.restore import latent_map

    monkeypatch.setattr(latent_map, "TILE_PIXELS", 48)
    monkeypatch.setattr(latent_map, "OVERLAP", 16)
    flat = torch.full((64,), 1e-3)
    prior = latent_map.LatentPrior(lambda guess, known: guess, torch.nn.Identity(), flat, flat)
    guess = torch.rand(1, 3, 72, 104)
    seen = []

    def tile(y0, y1, x0, x1):
        seen.append((y0, y1, x0, x1))
        g = guess[..., y0:y1, x0:x1]
        return g, torch.nn.Identity(), g, torch.ones_like(g[:, :1]), lambda v: v

    out = latent_map.solve_tiled(prior, 72, 104, 1, tile, {}, sigma=0.01, steps=0, desc="test")
    # as few tiles of at most 48 as overlap by 16, evenly spread: rows start at 0, 24; columns
    # at 0, 24, 56 (multiples of 8)
    assert seen == [(y0, y0 + 48, x0, x0 + 48) for y0 in (0, 24) for x0 in (0, 24, 56)]
    assert torch.allclose(out, guess, atol=1e-6)


def test_refine_by_hand():
    """The pixel step against closed forms. A flat spectrum is white noise: a per-pixel blend
    for the identity; for a downsampling, an image whose shrunk copy is the observation when the
    noise is tiny. For the identity with a coloured spectrum, the Wiener filter."""
    from vqpress.restore.spectra import NUM_BINS, power_grid, refine

    torch.manual_seed(0)
    flat = torch.full((NUM_BINS,), 0.04**2)
    x0, y = torch.rand(1, 3, 16, 24), torch.rand(1, 3, 16, 24)
    blend = (0.04**2 * y + 0.03**2 * x0) / (0.04**2 + 0.03**2)
    assert torch.allclose(refine(x0, y, torch.nn.Identity(), 0.03, flat), blend, atol=1e-5)
    down = operators.Downsample(2)
    low = torch.rand(1, 3, 8, 12)
    x = refine(x0, low, down, 1e-4, flat, iters=300)
    assert (down(x) - low).abs().max() < 1e-3 < (down(x0) - low).abs().max()
    # with a huge noise the observation says nothing and x0 comes back
    assert torch.allclose(refine(x0, low, down, 1e3, flat), x0, atol=1e-6)
    # coloured spectrum, identity, no padding (the FFT's circle is the whole problem): each
    # frequency is a blend with the Wiener weight S / (S + sigma^2)
    power = torch.logspace(-1, -5, NUM_BINS)
    s = power_grid(power, 16, 24)
    wiener = torch.fft.irfft2(torch.fft.rfft2(x0) + s / (s + 0.03**2) * torch.fft.rfft2(y - x0),
                              s=(16, 24))
    assert torch.allclose(refine(x0, y, torch.nn.Identity(), 0.03, power, pad=0), wiener, atol=1e-5)


def test_radial_power_and_gain():
    from vqpress.restore.spectra import power_gain, radial_power

    torch.manual_seed(0)
    white = torch.randn(16, 3, 64, 64) * 0.1
    assert torch.allclose(radial_power(white)[1:], torch.tensor(0.01), rtol=0.25)
    like = torch.zeros(4, 3, 64, 64)
    assert torch.allclose(power_gain(lambda v: v, like), torch.tensor(1.0))
    assert torch.allclose(power_gain(lambda v: 0.5 * v, like), torch.tensor(0.25))
    gain = power_gain(operators.gaussian_blur(2.0), like)
    assert gain[0] > 0.9 and gain[-1] < 1e-3 and (gain[1:].diff() <= 1e-3).all()  # a low-pass


def test_vae_started_from_the_codec_decodes_like_it():
    """Away from the borders (zero padding of the latent differs) the whitened VAE decodes its
    posterior mean exactly as the VQ-VAE decodes its unquantised latent."""
    from vqpress.restore.vae import VAE
    from vqpress.training.codec_models import codec_vqvae

    vqvae = codec_vqvae("rvq-dct-v9")
    vae = VAE.from_vqvae(vqvae, kl_weight=1e-4)
    x = torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        a, b = vqvae.decoder(vqvae.encoder(x)), vae.decoder(vae.encode_mean(x))
        recon, kl = vae(x)
    assert torch.allclose(a[..., 40:-40, 40:-40], b[..., 40:-40, 40:-40], atol=1e-5)
    assert recon.shape == x.shape and kl > 0


def test_restorer_starts_as_the_encoder():
    """A new restoration encoder ignores the damage planes (zero weights) and gives the
    posterior mean, so its training starts from the VAE's own encoder."""
    from vqpress.restore.vae import VAE, VAEConfig

    vae = VAE(VAEConfig(channels=16, latent_dim=4)).add_restorer()
    assert vae.config.restorer and vae.restorer[0].weight.shape[1] == 7
    x = torch.rand(2, 3, 48, 64)
    known = (torch.rand(2, 1, 48, 64) > 0.5).float()
    with torch.no_grad():
        z = vae.restore_mean(x, known, noise=torch.tensor([0.1, 0.2]), blur=2.0, scale=3)
        assert torch.allclose(z, vae.encode_mean(x), atol=1e-6)
        vae.restorer[0].weight[:, 3:] = 1  # once trained, the planes matter
        assert not torch.allclose(vae.restore_mean(x, known, noise=0.1), vae.encode_mean(x))


def test_random_damage_is_what_each_task_observes():
    from vqpress.restore.damage import random_damage

    x = torch.rand(6, 3, 48, 48).mul(255).round().div(255)
    for task in ("inpaint", "denoise", "sr", "deblur"):
        d = random_damage(x, np.random.default_rng(1), task)
        a = random_damage(x, np.random.default_rng(1), task)
        assert torch.equal(d.guess, a.guess) and torch.equal(d.known, a.known)  # seeded
        assert d.guess.shape == x.shape and d.tasks == [task] * 6
        assert d.guess.min() >= 0 and d.guess.max() <= 1
        known = d.known.bool().expand_as(x)
        if task == "inpaint":
            assert torch.equal(d.guess[known], x[known]) and not known.all()
        else:
            assert known.all()
        if task in ("denoise", "deblur"):  # the guess is the 8-bit observation itself
            assert torch.equal(d.guess, d.guess.mul(255).round().div(255))
        assert ((d.noise > 0) == (task == "denoise")).all()
        assert ((d.blur > 0) == (task == "deblur")).all()
        assert set(d.scale.tolist()) <= ({2.0, 3.0} if task == "sr" else {1.0})  # 48 = 8 x 2 x 3
    d = random_damage(x, np.random.default_rng(0), "denoise")
    err = (d.guess - x).std(dim=(1, 2, 3))
    assert torch.allclose(err, d.noise, rtol=0.3, atol=2 / 255)


def test_kriging_fill_beats_the_smooth_fill_on_a_photo(photo):
    """Half the pixels missing at random: the kriging fill (photos' spectrum) keeps the known
    pixels and is far closer to the truth than normalised Gaussian averaging."""
    from vqpress.restore.damage import kriging_fill, smooth_fill
    from vqpress.restore.vae import load_vae

    x = torch.from_numpy(photo.copy()).permute(2, 0, 1)[None].float() / 255
    known = (torch.rand(1, 1, *x.shape[-2:], generator=torch.Generator().manual_seed(0)) > 0.5).float()
    power = 10 ** load_vae("vae-v1")[0].log_image_power.float()
    fill = kriging_fill(x * known, known, power)
    assert torch.equal(fill[known.expand_as(x) > 0], x[known.expand_as(x) > 0])

    def error(g):
        return (g - x).pow(2).mean().item()

    assert error(fill) < 0.7 * error(smooth_fill(x * known, known))


def test_inpaint_keeps_known_pixels_exactly(photo):
    mask = np.zeros(photo.shape[:2], bool)
    mask[20:40, 30:60] = True
    out = np.asarray(restore.inpaint(photo, mask, steps=3, device="cpu"))
    assert out.shape == photo.shape
    assert np.array_equal(out[~mask], photo[~mask])


@pytest.mark.parametrize("task, kwargs, size", [
    ("sr", {"scale": 2}, (194, 142)), ("sr", {"scale": 3}, (291, 213)),
    ("denoise", {"sigma": 25}, (97, 71)), ("deblur", {"blur_sigma": 2}, (97, 71))])
def test_output_sizes(photo, task, kwargs, size):
    out = restore.restore(photo, task=task, steps=2, device="cpu", **kwargs)
    assert out.size == size
    assert restore.restore(photo, task=task, device="cpu", **kwargs).size == size  # default steps


def test_sr_with_no_steps_agrees_with_its_observation(photo):
    """The encoder's estimate alone, after the pixel step, shrinks back to the input."""
    from vqpress.restore import operators as ops

    out = np.asarray(restore.restore(photo[:64, :96], task="sr", scale=2, steps=0, device="cpu"))
    x = torch.from_numpy(out.copy()).permute(2, 0, 1)[None].float() / 255
    back = ops.Downsample(2)(x)[0].permute(1, 2, 0).mul(255).numpy()
    assert np.abs(back - photo[:64, :96]).mean() < 1.0


def test_errors(photo, tmp_path):
    with pytest.raises(VQPressError, match="mask is 10x10, image is 97x71"):
        restore.inpaint(photo, np.ones((10, 10), bool))
    with pytest.raises(VQPressError, match="mask is empty"):
        restore.inpaint(photo, np.zeros(photo.shape[:2], bool))
    with pytest.raises(VQPressError, match="unknown task"):
        restore.restore(photo, task="colorize")
    src = tmp_path / "p.png"
    Image.fromarray(photo).save(src)
    Image.new("L", (5, 5), 255).save(tmp_path / "m.png")
    runner = CliRunner()
    for args, text in [
        (["inpaint", src, "--mask", tmp_path / "m.png", "-o", tmp_path / "o.png"], "mask is 5x5"),
        (["inpaint", src, "--box", "90,60,20,20", "-o", tmp_path / "o.png"], "not inside"),
        (["inpaint", tmp_path / "nope.png", "--box", "1,1,2,2", "-o", tmp_path / "o.png"], "no such file"),
        (["restore", src, "--task", "sr", "--scale", "5", "-o", tmp_path / "o.png"], "scale must be"),
    ]:
        r = runner.invoke(main, [str(a) for a in args])
        assert r.exit_code == 1 and text in r.output, r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.png", "p.png"]


def test_an_output_over_the_size_limit_is_refused_before_any_work(photo, tmp_path, monkeypatch):
    from vqpress.codec import limits

    src = tmp_path / "p.png"
    Image.fromarray(photo).save(src)  # 97x71: under the limit; x4, 388x284 is over it
    monkeypatch.setattr(limits, "MAX_IMAGE_PIXELS", 100_000)
    r = CliRunner().invoke(main, ["restore", str(src), "--task", "sr", "--scale", "4", "-o", str(tmp_path / "o.png")])
    assert r.exit_code == 1 and "the restored image is 388x284" in r.output, r.output
    assert "Traceback" not in r.output and "latent MAP" not in r.output  # refused before the work
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.png"]


def test_cli_inpaint_box(photo, tmp_path):
    src = tmp_path / "p.png"
    Image.fromarray(photo).save(src)
    r = CliRunner().invoke(main, ["inpaint", str(src), "--box", "10,10,20,15", "-o",
                                  str(tmp_path / "o.png"), "--steps", "2", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    out = np.asarray(Image.open(tmp_path / "o.png"))
    keep = np.ones(photo.shape[:2], bool)
    keep[10:25, 10:30] = False
    assert np.array_equal(out[keep], photo[keep])


def _astronaut(size=128):
    from skimage import data

    crop = data.astronaut()[100:100 + size, 150:150 + size] / 255
    return torch.tensor(crop, dtype=torch.float32).permute(2, 0, 1)[None]


def _psnr(a, b, where=None):
    err = (a - b).square().mean(1)
    return psnr_of_mse(float(err[where].mean() if where is not None else err.mean()), peak=1.0)


def test_local_wiener_on_flat_images_averages_pilot_and_observation_by_precision():
    # Flat images have only a DC coefficient per window, which has no prior: the output is
    # (pilot / tau^2 + y / sigma^2) / (1 / tau^2 + 1 / sigma^2) everywhere, dark or not.
    from vqpress.restore import local_wiener

    sigma, tau = 0.1, local_wiener.TAU
    for pilot_value, y_value in ((0.5, 0.6), (0.02, 0.02)):
        pilot, y = torch.full((1, 3, 16, 24), pilot_value), torch.full((1, 3, 16, 24), y_value)
        out = local_wiener.denoise(y, pilot, sigma, iterations=1)
        expected = (pilot_value / tau**2 + y_value / sigma**2) / (1 / tau**2 + 1 / sigma**2)
        assert torch.allclose(out, torch.full_like(out, expected), atol=1e-6)


def test_local_wiener_windows_are_8x8_dcts_and_overlap_add_inverts_them():
    from vqpress.codec.blocks import DCT
    from vqpress.restore.local_wiener import BLOCK, DENSE, PNP_GRIDS, _dct, _overlap_add, _windows

    g = torch.Generator().manual_seed(0)
    image = torch.rand(3, 13, 10, generator=g)
    d = torch.tensor(DCT, dtype=torch.float32)
    for grid in (DENSE, *PNP_GRIDS):
        windows = _windows(image, _dct(image.device), grid)  # (3, R, 8, 8, C)
        left, right, top, bottom = grid.pads()
        padded = torch.nn.functional.pad(image[:, None], grid.pads(), mode="replicate")[:, 0]
        size, s = padded.shape[-2:], grid.stride
        assert windows.shape[1:] == ((size[0] - BLOCK) // s + 1, BLOCK, BLOCK, (size[1] - BLOCK) // s + 1)
        for row, col in ((0, 0), (1, 2), (4, 3)):
            patch = padded[1, s * row:s * row + BLOCK, s * col:s * col + BLOCK]
            assert torch.allclose(windows[1, row, ..., col], d @ patch @ d.T, atol=1e-5)
        # the DCT is orthonormal: putting every window back and dividing by the count gives
        # the image (inside the padding, which the filter crops: the padding's last rows may
        # have no window)
        count = _overlap_add(torch.ones_like(windows[:, :, :1, :1]), None, size, s)
        back = _overlap_add(windows, _dct(image.device), size, s) / count
        assert back.shape[-2:] == size and count[..., top:-bottom, left:-right].min() >= 1
        assert torch.allclose(back[:, 0, top:-bottom, left:-right], image, atol=1e-5)


def test_local_wiener_in_bands_equals_the_whole_image_at_once():
    from vqpress.restore import local_wiener

    g = torch.Generator().manual_seed(0)
    y, pilot = torch.rand(1, 3, 45, 38, generator=g), torch.rand(1, 3, 45, 38, generator=g)
    whole = local_wiener.denoise(y, pilot, 0.1, iterations=2, band=1000)
    assert torch.allclose(local_wiener.denoise(y, pilot, 0.1, iterations=2, band=16), whole, atol=1e-5)
    with pytest.raises(ValueError, match="band"):
        local_wiener.denoise(y, pilot, 0.1, band=15)


def test_plug_and_play_grids_are_the_dense_grids_windows_and_filter_in_bands_exactly():
    import math

    from vqpress.restore import local_wiener
    from vqpress.restore.local_wiener import (BLOCK, INPAINT_GRIDS, INPAINT_SIDES, PNP_GRIDS, _dct, _pass,
                                              _windows, side_by_side_shifts)

    g = torch.Generator().manual_seed(0)
    image, pilot = torch.rand(3, 150, 30, generator=g), torch.rand(3, 150, 30, generator=g)
    dense = _windows(image, _dct(image.device))
    for grid in (*PNP_GRIDS, *INPAINT_GRIDS[::5]):
        # window r of a grid of stride s starts at s r - BLOCK - offset, dense window k at
        # 2 k - BLOCK: the same window when the offset is even and k = (s r - offset) / 2
        down, across = grid.offset
        if grid.side == BLOCK and down % 2 == 0 and across % 2 == 0:
            sparse = _windows(image, _dct(image.device), grid)
            for row, col in ((1, 1), (3, 2), (4, 3)):
                s = grid.stride
                assert torch.allclose(sparse[:, row, ..., col],
                                      dense[:, (s * row - down) // 2, ..., (s * col - across) // 2], atol=1e-5)
        bands = [_pass(image, pilot, 0.1, math.inf, band, local_wiener._bar(1, image, band), grid)
                 for band in (1024, max(16, grid.stride))]
        assert torch.allclose(*bands, atol=1e-5)
    # so four passes, one per offset, visit every window of the dense grid; inpainting's
    # side-by-side grids take each size's shifts in turn, each far from the one before, and the
    # 8-pixel grids take every shift
    assert {grid.offset for grid in PNP_GRIDS} == {(0, 0), (2, 2), (0, 2), (2, 0)}
    for side in (8, 16, 64):
        shifts = side_by_side_shifts(side)
        assert sorted(shifts) == [(a, b) for a in range(side) for b in range(side)]
        assert shifts[:3] == [(0, 0), (side // 2, side // 2), (0, side // 2)]
    assert [grid.side for grid in INPAINT_GRIDS] == list(INPAINT_SIDES) * 128
    assert all(grid.stride == grid.side for grid in INPAINT_GRIDS)
    assert {grid.offset for grid in INPAINT_GRIDS if grid.side == BLOCK} == {(a, b) for a in range(BLOCK)
                                                                             for b in range(BLOCK)}


def test_a_pass_on_side_by_side_windows_is_each_windows_own_estimate():
    """With stride equal to the side each pixel has one window: the pass (blocks cut by a
    reshape, the DCT across the rows of several blocks in one product) must equal each window's
    posterior mean computed window by window on the edge-replicated image."""
    import math

    from vqpress.codec.blocks import DCT
    from vqpress.restore.local_wiener import Grid, _dct, _filter

    assert torch.allclose(_dct(torch.device("cpu"), 8), torch.tensor(DCT, dtype=torch.float32), atol=1e-6)
    g = torch.Generator().manual_seed(1)
    y, pilot = torch.rand(3, 29, 35, generator=g), torch.rand(3, 29, 35, generator=g)
    sigma = 0.05
    for side, offset in ((8, (0, 0)), (8, (3, 6)), (16, (5, 2)), (64, (40, 9))):
        d = _dct(y.device, side)
        assert torch.allclose(d @ d.T, torch.eye(side), atol=1e-5)
        out = _filter(y, pilot, sigma, math.inf, Grid(side, offset, side))
        down, across = offset
        pads = (across, side, down, side)  # enough rows and columns for whole windows
        yp, pp = (torch.nn.functional.pad(t[:, None], pads, mode="replicate")[:, 0] for t in (y, pilot))
        expected = torch.empty_like(yp)
        for top in range(0, 29 + down, side):
            for left in range(0, 35 + across, side):
                window = (slice(None), slice(top, top + side), slice(left, left + side))
                yc, pc = d @ yp[window] @ d.T, d @ pp[window] @ d.T
                gain = pc.square() / (pc.square() + sigma**2)
                gain[:, 0, 0] = 1  # the window's mean gets no prior
                expected[window] = d.T @ (yc * gain) @ d
        assert torch.allclose(out, expected[:, down:down + 29, across:across + 35], atol=1e-5)


def test_inpainting_an_image_under_49_pixels_a_side_keeps_its_known_pixels():
    # the rough fill's 16-px blur once needed reflect padding wider than such an image
    rgb = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    missing = np.zeros((48, 64), bool)
    missing[10:20, 30:40] = True
    out = np.asarray(restore.inpaint(rgb, missing, device="cpu"))
    assert out.shape == rgb.shape
    assert np.array_equal(out[~missing], rgb[~missing])


def test_local_wiener_removes_noise_from_a_real_photo():
    from vqpress.measure.metrics import psnr
    from vqpress.restore import local_wiener

    clean = _astronaut()
    noisy = clean + 0.1 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))
    pilot = operators.gaussian_smooth(noisy, 1.0)
    out = local_wiener.denoise(noisy, pilot, 0.1)
    as8 = lambda t: to_uint8(t[0])  # noqa: E731
    assert psnr(as8(clean), as8(out)) > psnr(as8(clean), as8(pilot)) + 1.0


def test_fourier_blur_over_the_mirror_extension_equals_the_blur_operator():
    # reflect padding is circular convolution over one period of the mirrored image, so the
    # deblurring data step can be solved exactly in the Fourier domain
    from vqpress.restore.local_wiener import _mirror, _transfer

    x = torch.rand(1, 3, 21, 34, generator=torch.Generator().manual_seed(0))
    kernel = operators.gaussian_kernel(2.0)
    size = (2 * 21 - 2, 2 * 34 - 2)
    fourier = torch.fft.irfft2(_transfer(kernel, size) * torch.fft.rfft2(_mirror(x[0])), s=size)
    assert torch.allclose(fourier[..., :21, :34], operators.gaussian_blur(2.0)(x)[0], atol=1e-5)


def test_local_wiener_deblurring_sharpens_a_photo_and_refuses_asymmetric_kernels():
    from vqpress.restore import local_wiener

    clean = _astronaut()
    blurred = operators.gaussian_blur(2.0)(clean).mul(255).round().div(255)
    out = local_wiener.deblur(blurred, operators.gaussian_kernel(2.0), blurred, 1 / 255)
    assert _psnr(out.clamp(0, 1), clean) > _psnr(blurred, clean) + 2.0
    with pytest.raises(ValueError, match="symmetric"):
        local_wiener.deblur(blurred, torch.tensor([[0.0, 1.0, 2.0]]), blurred, 1 / 255)


def test_deblurring_on_a_fast_fourier_canvas_matches_the_images_own_mirror_extension(monkeypatch):
    # the data step runs on a larger canvas whose mirror extension has only small prime factors;
    # the reflected extra rows and columns leave the deblurred photo as it was
    from vqpress.restore import local_wiener

    for n in (8, 9, 17, 200, 511, 512, 3000):
        m = local_wiener._canvas_side(n)
        rest = 2 * m - 2
        for p in (2, 3, 5, 7):
            while rest % p == 0:
                rest //= p
        assert rest == 1 or m == n
        assert m == n or m >= n + 16
    clean = _astronaut()
    blurred = operators.gaussian_blur(2.0)(clean).mul(255).round().div(255)
    kernel = operators.gaussian_kernel(2.0)
    assert local_wiener._canvas_side(clean.shape[-1]) > clean.shape[-1]
    fast = local_wiener.deblur(blurred, kernel, blurred, 1 / 255, levels=(40, 1, 8))
    monkeypatch.setattr(local_wiener, "_canvas_side", lambda n: n)
    own = local_wiener.deblur(blurred, kernel, blurred, 1 / 255, levels=(40, 1, 8))
    assert fast.shape == own.shape
    assert abs(_psnr(fast.clamp(0, 1), clean) - _psnr(own.clamp(0, 1), clean)) < 0.01
    assert (fast - own).abs().mean() < 1e-3


def test_downsampling_is_a_matrix_down_the_columns_and_one_across_the_rows():
    x = torch.rand(1, 3, 50, 37, generator=torch.Generator().manual_seed(0))
    for scale in (2, 3, 4):
        op = operators.Downsample(scale)
        rows, cols = op.matrix(50), op.matrix(37)
        assert rows.shape == (50 // scale, 50) and cols.shape == (37 // scale, 37)
        assert torch.allclose(rows @ x @ cols.T, op(x), atol=1e-5)


def test_local_wiener_super_resolution_beats_its_bicubic_pilot_and_fits_the_small_image():
    from vqpress.restore import local_wiener
    from vqpress.restore.damage import upscale

    clean = _astronaut()
    op = operators.Downsample(4)
    small = op(clean).mul(255).round().div(255)
    pilot = upscale(small, 4).clamp(0, 1)
    out = local_wiener.super_resolve(small, op, pilot, 1 / 255)
    assert _psnr(out.clamp(0, 1), clean) > _psnr(pilot, clean) + 0.5
    assert (op(out) - small).abs().mean() < (op(pilot) - small).abs().mean()


def test_the_data_fits_keep_an_estimate_that_fits_and_pull_others_towards_the_observation():
    # argmin |A x - y|^2 / sigma^2 + |x - e|^2 / s^2 is e itself when A e = y; otherwise it fits
    # y better than e, the more so the wider the spread s, and tends to e as s shrinks
    from vqpress.restore import local_wiener

    clean = _astronaut(64)
    rough = clean + 0.05 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))
    kernel, op = operators.gaussian_kernel(2.0), operators.Downsample(4)
    blur = operators.gaussian_blur(2.0)
    for fit, a, y in ((lambda y, e, s: local_wiener.fit_blurred(y, kernel, e, 1 / 255, s, rounds=0), blur, blur(clean)),
                      (lambda y, e, s: local_wiener.fit_downscaled(y, op, e, 1 / 255, s), op, op(clean))):
        kept = (fit(y, clean, local_wiener.FIT_SPREAD) - clean).abs()  # the blur's canvas: 6e-4 at the edges
        assert kept.max() < 1e-3 and kept.mean() < 1e-4
        residuals = [float((a(fit(y, rough, s)) - y).square().mean()) for s in (1e-4, 4 / 255, 16 / 255)]
        assert residuals[0] == pytest.approx(float((a(rough) - y).square().mean()), rel=1e-3)
        assert residuals[0] > residuals[1] > residuals[2]
    # deblurring's default: rounds of plug-and-play passes and fit; it still fits better than the estimate
    polished = local_wiener.fit_blurred(blur(clean), kernel, rough, 1 / 255)
    assert (blur(polished) - blur(clean)).square().mean() < (blur(rough) - blur(clean)).square().mean() / 10


def test_the_fits_measure_the_observations_noise_and_trust_a_noisy_one_less(monkeypatch):
    from vqpress.restore import local_wiener
    from vqpress.restore.damage import as_8bit

    clean = _astronaut()
    blur, kernel = operators.gaussian_blur(2.0), operators.gaussian_kernel(2.0)
    noise = torch.randn(clean.shape, generator=torch.Generator().manual_seed(1))
    assert local_wiener.noise_std(local_wiener._opponent(as_8bit(blur(clean)))) < 0.5 / 255  # rounding alone
    noisy = as_8bit(blur(clean) + 3 / 255 * noise)
    assert local_wiener.noise_std(local_wiener._opponent(noisy)) == pytest.approx(3 / 255, rel=0.15)
    estimate = clean  # a perfect estimate: what the fit gets wrong is the noise it takes in
    adaptive = local_wiener.fit_blurred(noisy, kernel, estimate, 1 / 255)
    monkeypatch.setattr(local_wiener, "NOISE_GAIN", 0.0)
    fixed = local_wiener.fit_blurred(noisy, kernel, estimate, 1 / 255)
    assert _psnr(adaptive.clamp(0, 1), clean) > _psnr(fixed.clamp(0, 1), clean) + 1.0


def test_deblurring_and_super_resolution_end_with_the_data_fit(photo):
    """Each damaged by the operator the restoration models (a plain 2x decimation is not what
    super-resolution inverts: the fit to it lost on this crop)."""
    as_tensor = lambda a: torch.tensor(a / 255, dtype=torch.float32).permute(2, 0, 1)[None]  # noqa: E731
    even = photo[:photo.shape[0] // 2 * 2, :photo.shape[1] // 2 * 2]
    blurred = to_uint8(operators.gaussian_blur(2.0)(as_tensor(photo))[0])
    small = to_uint8(operators.Downsample(2)(as_tensor(even))[0])
    for task, damaged, truth, kwargs in (("deblur", blurred, photo, {"blur_sigma": 2.0}),
                                         ("sr", small, even, {"scale": 2})):
        fitted = np.asarray(restore.restore(damaged, task, device="cpu", **kwargs))
        unfitted = np.asarray(restore.restore(damaged, task, device="cpu", fit=False, **kwargs))
        assert fitted.shape == unfitted.shape == truth.shape and not np.array_equal(fitted, unfitted)
        # closer to the photo. Its misfit to the 8-bit observation is not a test: both sit at
        # the rounding floor.
        error = [float((as_tensor(out) - as_tensor(truth)).square().mean()) for out in (fitted, unfitted)]
        assert error[0] < error[1]


def test_local_wiener_inpainting_keeps_known_pixels_and_beats_its_pilot():
    from vqpress.restore import local_wiener
    from vqpress.restore.damage import smooth_fill

    clean = _astronaut()
    known = (torch.rand(1, 1, 128, 128, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    pilot = smooth_fill(clean * known, known)
    out = local_wiener.inpaint(clean * known, known, pilot)
    assert torch.equal(out * known, clean * known)
    missing = known[:, 0] == 0
    assert _psnr(out.clamp(0, 1), clean, missing) > _psnr(pilot, clean, missing) + 1.0


def test_inpaintings_far_passes_change_only_the_pixels_far_from_every_known_one():
    """The 32-pixel windows are taken only where a missing pixel is FAR_DISTANCE from every
    known one: a pass with `where` keeps its output elsewhere, and inpainting with and without
    them is the same where missing pixels are scattered, not in a wide hole. (What they gain is
    measured on training crops: see FAR_GRIDS.)"""
    import math

    from vqpress.restore import local_wiener
    from vqpress.restore.damage import smooth_fill
    from scipy.ndimage import distance_transform_edt

    from vqpress.restore.local_wiener import FAR_GRIDS, _bar, _far_from, _pass

    g = torch.Generator().manual_seed(0)
    y, pilot, before = (torch.rand(3, 300, 40, generator=g) for _ in range(3))
    where = torch.zeros(300, 40, dtype=torch.bool)
    where[140:150, 5:30] = True
    out = _pass(y, pilot, 0.1, math.inf, 128, _bar(1, y, 128), FAR_GRIDS[1], before.clone(), where)
    whole = _pass(y, pilot, 0.1, math.inf, 128, _bar(1, y, 128), FAR_GRIDS[1])
    assert torch.equal(out[:, ~where], before[:, ~where]) and torch.allclose(out[:, where], whole[:, where])

    clean = _astronaut()
    scattered = (torch.rand(1, 1, 128, 128, generator=g) > 0.5).float()  # no pixel 3 px from a known one
    hole = torch.ones(1, 1, 128, 128)
    hole[..., 40:80, 50:90] = 0
    for known, far in ((scattered, False), (hole, True)):
        for distance in (2, 2.5, 3, 6):  # the disk convolution is the Euclidean distance transform
            expected = distance_transform_edt(known[0, 0].numpy() == 0) >= distance
            assert torch.equal(_far_from(known[0] > 0, distance), torch.from_numpy(expected))
        pilot = smooth_fill(clean * known, known)
        on, off = (local_wiener.inpaint(clean * known, known, pilot, far_grids=grids) for grids in (FAR_GRIDS, ()))
        assert torch.equal(on * known, clean * known) and torch.equal(on, off) != far


def test_refiner_starts_as_the_identity_and_its_tiles_join_exactly(monkeypatch):
    from vqpress.nets.refiner import Refiner, RefinerConfig
    from vqpress.restore import refine

    torch.manual_seed(0)
    x, obs = torch.rand(1, 3, 40, 56), torch.rand(1, 3, 40, 56)
    known = (torch.rand(1, 1, 40, 56) > 0.5).float()
    net = Refiner(RefinerConfig(8, 3))
    cond = refine.condition("denoise", {"noise": 25 / 255})
    assert torch.equal(net(x, obs, known, cond[None]), x)  # the last layer starts at zero
    torch.nn.init.normal_(net.convs[-1].weight, std=0.1)
    whole = refine.refined(net, x, obs, known, cond)
    monkeypatch.setattr(refine, "TILE", 16)
    assert torch.allclose(refine.refined(net, x, obs, known, cond), whole, atol=1e-6)
    assert not torch.allclose(whole, x)


def test_the_refiners_self_ensemble_turns_and_flips_with_its_input():
    from vqpress.nets.refiner import Refiner, RefinerConfig
    from vqpress.restore import refine

    torch.manual_seed(0)
    x, obs = torch.rand(1, 3, 24, 40), torch.rand(1, 3, 24, 40)
    known = (torch.rand(1, 1, 24, 40) > 0.5).float()
    for k in range(refine.ORIENTATIONS):
        assert torch.equal(refine.unoriented(refine.oriented(x, k), k), x)
    assert len({refine.oriented(x, k).flatten().numpy().tobytes() for k in range(refine.ORIENTATIONS)}) == 8
    net = Refiner(RefinerConfig(8, 3))
    torch.nn.init.normal_(net.convs[-1].weight, std=0.1)
    cond = refine.condition("sr", {"scale": 2})

    def turned(k, orientations=refine.ORIENTATIONS):
        return refine.refined(net, *(refine.oriented(t, k) for t in (x, obs, known)), cond, orientations)

    one = refine.refined(net, x, obs, known, cond, orientations=1)
    assert not torch.allclose(turned(5, orientations=1), refine.oriented(one, 5), atol=1e-4)
    whole = refine.refined(net, x, obs, known, cond, refine.ORIENTATIONS)
    for k in (1, 2, 5, 7):  # the mean over every orientation turns with the input
        assert torch.allclose(turned(k), refine.oriented(whole, k), atol=1e-5)
    flipped = refine.refined(net, x, obs, known, cond)  # the default: the mean over the flips
    for k in (1, 2, 3):
        assert torch.allclose(turned(k, refine.ENSEMBLE), refine.oriented(flipped, k), atol=1e-5)
    assert not torch.allclose(flipped, whole, atol=1e-4)


def test_the_self_ensemble_shrinks_on_big_images(monkeypatch):
    """4000x3000 gets one orientation, 768x512 four; an image over the pixel budget is refined
    as with that many orientations."""
    from vqpress.nets.refiner import Refiner, RefinerConfig
    from vqpress.restore import refine

    assert refine.ensemble_size(768 * 512) == refine.ENSEMBLE == 4
    assert refine.ensemble_size(2000 * 2000) == 4 and refine.ensemble_size(3000 * 2000) == 2
    assert refine.ensemble_size(4000 * 3000) == 1 and refine.ensemble_size(10**9) == 1
    torch.manual_seed(0)
    net = Refiner(RefinerConfig(8, 3))
    torch.nn.init.normal_(net.convs[-1].weight, std=0.1)
    x, known, cond = torch.rand(1, 3, 24, 40), torch.ones(1, 1, 24, 40), refine.condition("sr", {"scale": 2})
    monkeypatch.setattr(refine, "ENSEMBLE_PIXELS", 2 * 24 * 40)
    assert torch.equal(refine.refined(net, x, x, known, cond), refine.refined(net, x, x, known, cond, 2))
    assert not torch.allclose(refine.refined(net, x, x, known, cond, 2), refine.refined(net, x, x, known, cond, 4))


def test_refiner_conditions_tell_the_tasks_and_settings_apart():
    from vqpress.restore.refine import condition

    rows = [condition("inpaint", {}), condition("denoise", {"noise": 15 / 255}),
            condition("denoise", {"noise": 50 / 255}), condition("sr", {"scale": 2}),
            condition("sr", {"scale": 4}), condition("deblur", {"blur": 2.0})]
    assert len({tuple(r.tolist()) for r in rows}) == len(rows)
    assert condition("sr", {"scale": 4})[5] == 1 and condition("denoise", {"noise": 25 / 255})[4] == pytest.approx(1)


def test_only_scattered_missing_pixels_count_as_scattered():
    from vqpress.restore.damage import strokes
    from vqpress.restore.refine import scattered

    rng = np.random.default_rng(0)
    for share in (0.4, 0.5, 0.9, 0.95):
        assert scattered(torch.from_numpy(rng.random((96, 128)) >= share).float())
    box = np.ones((96, 128), bool)
    box[20:60, 30:90] = False
    assert not scattered(torch.from_numpy(box).float())
    lines = ~strokes((96, 128), 12, 4, rng)
    assert 0.05 < 1 - lines.mean() and not scattered(torch.from_numpy(lines).float())
    assert not scattered(torch.ones(1, 1, 96, 128))


def test_each_task_takes_the_first_refiner_trained_for_it():
    """refiner-v10 was trained for super-resolution only and refiner-v11 for inpainting only; the
    other tasks keep refiner-v3's weights."""
    from vqpress.restore.refine import REFINERS, load_refiner, refiner_for

    v10, v11, v3 = (load_refiner(model_id)[0] for model_id in REFINERS)
    assert set(v10.config.skip) == {"inpaint", "denoise", "deblur"} and v3.config.skip == ("inpaint",)
    assert set(v11.config.skip) == {"sr", "denoise", "deblur"}
    assert (v10.config.layers, v11.config.layers, v3.config.layers) == (12, 12, 8)
    weights_of = lambda net: torch.cat([t.flatten() for t in net.state_dict().values()])  # noqa: E731
    assert torch.equal(weights_of(refiner_for("sr")), weights_of(v10))
    assert torch.equal(weights_of(refiner_for("inpaint")), weights_of(v11))
    for task in ("denoise", "deblur"):
        assert torch.equal(weights_of(refiner_for(task)), weights_of(v3))
    assert refiner_for("inpaint", ("refiner-v10", "refiner-v3")) is None
    assert torch.equal(weights_of(refiner_for("sr", ("refiner-v3",))), weights_of(v3))


def test_inpainting_is_refined_only_where_the_missing_pixels_are_scattered(photo):
    """refiner-v11 changes a scattered mask's missing pixels, never its known ones, and leaves a
    box's fill as it is."""
    rgb = np.asarray(photo)
    h, w = rgb.shape[:2]
    scattered = np.random.default_rng(0).random((h, w)) < 0.6
    box = np.zeros((h, w), bool)
    box[h // 4:h // 2, w // 4:w // 2] = True
    for mask, changes in ((scattered, True), (box, False)):
        on = np.asarray(restore.inpaint(rgb, mask, device="cpu"))
        off = np.asarray(restore.inpaint(rgb, mask, device="cpu", refine=False))
        assert np.array_equal(on[~mask], rgb[~mask]) and np.array_equal(off[~mask], rgb[~mask])
        assert np.array_equal(on, off) != changes


def test_the_refiner_changes_the_estimate_unless_off_or_the_task_has_none(photo, monkeypatch):
    from vqpress.restore import api

    on = np.asarray(restore.restore(photo, task="sr", scale=2, device="cpu"))
    off = np.asarray(restore.restore(photo, task="sr", scale=2, device="cpu", refine=False))
    assert on.shape == off.shape and not np.array_equal(on, off)
    monkeypatch.setattr(api, "_refiner", lambda task, device: None)
    assert np.array_equal(np.asarray(restore.restore(photo, task="sr", scale=2, device="cpu")), off)

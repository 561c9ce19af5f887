import math

import numpy as np
import pytest

from vqpress.measure.metrics import (
    bd_rate,
    frontier,
    ms_ssim,
    ms_ssim_db,
    points_in_overlap,
    psnr,
)


def test_psnr_of_known_arrays():
    a = np.zeros((4, 4, 3), np.uint8)
    b = a.copy()
    b[0, 0, 0] = 255  # one error of 255 in 48 values: MSE = 255^2 / 48
    assert psnr(a, b) == pytest.approx(10 * math.log10(48))
    assert psnr(a, a) == math.inf
    assert psnr(a, a + 1) == pytest.approx(20 * math.log10(255))


@pytest.mark.parametrize("size", [(200, 240), (64, 80), (20, 30)])
def test_ms_ssim_identical_is_one_and_noise_lowers_it(size, photo):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size + (3,), dtype=np.uint8)
    assert ms_ssim(img, img) == pytest.approx(1.0)
    noisy = np.clip(img + rng.normal(0, 40, img.shape), 0, 255).astype(np.uint8)
    assert ms_ssim(img, noisy) < 0.99
    assert ms_ssim_db(0.99) == pytest.approx(20.0)


def test_bd_rate_hand_computed():
    psnrs = [30.0, 32.0, 34.0, 36.0, 38.0]
    rates = [0.2, 0.35, 0.6, 1.0, 1.6]
    half = [r / 2 for r in rates]
    # the same curve at half the rate: -50% (negative = fewer bits = better)
    assert bd_rate(rates, psnrs, half, psnrs) == pytest.approx(-50.0)
    assert bd_rate(half, psnrs, rates, psnrs) == pytest.approx(100.0)
    # no overlap, or too few points: undefined
    assert math.isnan(bd_rate(rates, psnrs, rates, [p + 20 for p in psnrs]))
    assert math.isnan(bd_rate(rates[:3], psnrs[:3], rates[:3], psnrs[:3]))


def test_frontier_drops_points_no_one_would_pick():
    rates = [0.4, 0.1, 0.2, 0.3, 0.3, 0.5]
    psnrs = [33.0, 28.0, 30.0, 29.0, 32.0, 32.5]  # 0.3/29 and 0.5/32.5 cost more for less
    r, q = frontier(rates, psnrs)
    assert r.tolist() == [0.1, 0.2, 0.3, 0.4] and q.tolist() == [28.0, 30.0, 32.0, 33.0]
    # a dominated point does not change the BD-rate
    clean = ([0.1, 0.2, 0.3, 0.4], [28.0, 30.0, 32.0, 33.0])
    half = ([r / 2 for r in clean[0]], clean[1])
    assert bd_rate(rates, psnrs, *half) == pytest.approx(bd_rate(*clean, *half)) == pytest.approx(-50.0)


def test_bd_rate_follows_a_dense_wide_curve():
    """A 20-point curve over 20 dB against a 6-point piece of itself at 80% of the rate:
    -20% over the narrow overlap at the low end."""
    psnrs = np.linspace(22, 42, 20)
    rates = 0.05 * np.exp((psnrs - 22) / 5) + 0.01 * np.sin(psnrs)
    ref = (rates[:6], psnrs[:6])  # covers 22-27 dB only
    assert bd_rate(*ref, rates * 0.8, psnrs) == pytest.approx(-20.0, abs=0.05)
    assert points_in_overlap(rates, psnrs, *ref) == (6, 6)
    assert points_in_overlap(rates[10:], psnrs[10:], *ref) == (0, 0)

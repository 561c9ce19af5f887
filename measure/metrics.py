"""Image quality and rate-distortion metrics: PSNR, MS-SSIM, Bjontegaard deltas."""

from __future__ import annotations

import math

import numpy as np

MS_SSIM_MIN_SIDE = 161


def psnr_of_mse(mse: float, peak: float = 255.0) -> float:
    """PSNR in dB of a mean squared error, for signals that span 0..peak; inf when 0."""
    return math.inf if mse == 0 else 10 * math.log10(peak**2 / mse)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two 8-bit images (all channels together); inf when identical."""
    return psnr_of_mse(float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)))


def ms_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """MS-SSIM of two (H, W, 3) uint8 images (standard 11-tap window, five scales).

    Its four downsamplings need a side over 160 px; smaller images are mirror-padded (the
    same way for both) to 161 px rather than scored with a crippled window."""
    import torch
    from pytorch_msssim import ms_ssim as _ms_ssim

    h, w = a.shape[:2]
    pad = ((0, max(0, MS_SSIM_MIN_SIDE - h)), (0, max(0, MS_SSIM_MIN_SIDE - w)), (0, 0))
    x, y = (torch.from_numpy(np.pad(v, pad, mode="symmetric")).permute(2, 0, 1)[None].float()
            for v in (a, b))
    return float(_ms_ssim(x, y, data_range=255))


def ms_ssim_db(value: float) -> float:
    """MS-SSIM on a dB scale, -10 log10(1 - MS-SSIM), as used for BD-rate."""
    return -10 * math.log10(max(1e-10, 1 - value))


def frontier(rate, quality) -> tuple[np.ndarray, np.ndarray]:
    """The points of an RD curve that a user would pick, sorted by rate: each one has a higher
    quality than every cheaper point (a point with more bits and no better quality is dropped,
    as are repeats, e.g. two quality settings that give the same file)."""
    rate, quality = np.asarray(rate, np.float64), np.asarray(quality, np.float64)
    keep, best = [], -math.inf
    for i in np.lexsort((-quality, rate)):
        if quality[i] > best:
            keep.append(i)
            best = quality[i]
    return rate[keep], quality[keep]


def points_in_overlap(rate_a, quality_a, rate_b, quality_b) -> tuple[int, int]:
    """How many frontier points of each curve lie inside the common quality range."""
    (_, qa), (_, qb) = frontier(rate_a, quality_a), frontier(rate_b, quality_b)
    lo, hi = max(qa.min(), qb.min()), min(qa.max(), qb.max())
    return int(np.sum((qa >= lo) & (qa <= hi))), int(np.sum((qb >= lo) & (qb <= hi)))


def _mean_gap(x1, y1, x2, y2) -> float:
    """Mean of y2(x) - y1(x) over the overlap of the x ranges, each curve interpolated piecewise
    cubically (PCHIP). Unlike the original single cubic polynomial, this follows dense grids
    that span 20 dB without wiggling, and agrees with it on smooth 4-point curves."""
    x1, y1, x2, y2 = (np.asarray(v, np.float64) for v in (x1, y1, x2, y2))
    lo, hi = max(x1.min(), x2.min()), min(x1.max(), x2.max())
    if min(len(x1), len(x2)) < 4 or not lo < hi:
        return math.nan
    from scipy.interpolate import PchipInterpolator

    f1, f2 = PchipInterpolator(x1, y1), PchipInterpolator(x2, y2)
    return float((f2.integrate(lo, hi) - f1.integrate(lo, hi)) / (hi - lo))


def bd_rate(rate_ref, dist_ref, rate_test, dist_test) -> float:
    """Bjontegaard delta rate in percent: the average bit-rate change of `test` against `ref`
    at equal quality (negative: test needs fewer bits). Log-rate is interpolated against
    quality on each curve's frontier and averaged over the common quality range; NaN without
    an overlap or with fewer than 4 frontier points per curve."""
    rate_ref, dist_ref = frontier(rate_ref, dist_ref)
    rate_test, dist_test = frontier(rate_test, dist_test)
    gap = _mean_gap(dist_ref, np.log(rate_ref), dist_test, np.log(rate_test))
    return (math.exp(gap) - 1) * 100 if math.isfinite(gap) else math.nan

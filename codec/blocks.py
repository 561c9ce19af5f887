"""The block geometry and the orthonormal bases the detail layer codes in, shared with
restoration's local Wiener filter.

Each symbol of the VQ maps covers DOWNSCALE x DOWNSCALE pixels (the analysis transform's three
stride-2 layers); the detail layer transforms BLOCK x BLOCK blocks. The colour transform (luma
and two differences) and the DCT are orthonormal, so squared error in their coefficients is
squared error in RGB pixels.
"""

from __future__ import annotations

import numpy as np

DOWNSCALE = 8  # pixels per symbol along each side
BLOCK = 8  # DCT block side in pixels


def _orthonormal_rows(m: np.ndarray) -> np.ndarray:
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def dct_matrix(n: int) -> np.ndarray:
    """The orthonormal n-point DCT-II (frequency, position), float64."""
    k = np.arange(n)
    return _orthonormal_rows(np.cos(np.pi * (2 * k[None] + 1) * k[:, None] / (2 * n)))


COLOR = _orthonormal_rows(np.array([[1.0, 1, 1], [1, 0, -1], [1, -2, 1]]))  # luma, two differences
DCT = dct_matrix(BLOCK)
# A block's 64 coefficients (raster order) from low to high frequency: anti-diagonal by
# anti-diagonal, top row first within each
ZIGZAG = np.array(sorted(range(BLOCK * BLOCK), key=lambda b: (b // BLOCK + b % BLOCK, b // BLOCK)))


# One block's pixels (8, 8, 3), flattened, times this (192, 192) matrix: its coefficients
# (3, 64), flattened: the colour transform and the 2-d DCT in one product, so a whole image is
# one matrix product (orthonormal: the inverse is the transpose). In float64: BLAS may sum a
# row in another order depending on how many rows the product has, and in float32 that moved a
# decoded pixel by one step when the detail layer was added in bands (float64: 4 -> 7 ms a
# 768x512 image).
_BLOCK_TRANSFORM = np.einsum("uy,vx,dc->yxcduv", DCT, DCT, COLOR).reshape(3 * BLOCK * BLOCK, -1)


# -- transforms --------------------------------------------------------------------------------
def padded_blocks(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) -> (ceil(H/8), 8, ceil(W/8), 8, 3) float32: the image's 8x8 blocks, partial
    blocks at the right and bottom edges filled by repeating the last row and column."""
    h, w = image.shape[:2]
    bh, bw = -(-h // BLOCK), -(-w // BLOCK)
    padded = np.pad(image.astype(np.float32, copy=False), ((0, bh * BLOCK - h), (0, bw * BLOCK - w), (0, 0)),
                    mode="edge")
    return padded.reshape(bh, BLOCK, bw, BLOCK, 3)


def to_coefficients(residual: np.ndarray) -> np.ndarray:
    """(H, W, 3) residual -> (ceil(H/8), ceil(W/8), 3, 64) float32 DCT coefficients.

    Partial blocks are filled as `padded_blocks` fills them: the decoder crops those pixels away,
    and a block that is flat beyond the image's edge puts its energy into few low frequencies
    (zeros there made a step that no coarse level could code, leaving the edge 3 dB worse and a
    1x1 image far off)."""
    blocks = padded_blocks(residual)
    bh, bw = blocks.shape[0], blocks.shape[2]
    flat = blocks.transpose(0, 2, 1, 3, 4).reshape(bh * bw, -1).astype(np.float64)
    return (flat @ _BLOCK_TRANSFORM).astype(np.float32).reshape(bh, bw, 3, BLOCK * BLOCK)


def to_pixels(coefficients: np.ndarray, height: int, width: int) -> np.ndarray:
    """Inverse of to_coefficients, cropped to (height, width, 3), float64."""
    bh, bw = coefficients.shape[:2]
    blocks = coefficients.reshape(bh * bw, -1).astype(np.float64) @ _BLOCK_TRANSFORM.T
    pixels = blocks.reshape(bh, bw, BLOCK, BLOCK, 3).transpose(0, 2, 1, 3, 4).reshape(bh * BLOCK, bw * BLOCK, 3)
    return pixels[:height, :width]


def low_pass(blocks: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Blocks (n, 8, 8, 3) with only the coefficients where `keep` (3, 64) is true (the rest
    set to zero), back in pixels (n, 8, 8, 3) float32."""
    coefficients = blocks.reshape(len(blocks), -1).astype(np.float64) @ _BLOCK_TRANSFORM
    coefficients *= keep.reshape(-1)
    return (coefficients @ _BLOCK_TRANSFORM.T).astype(np.float32).reshape(blocks.shape)

"""Classical quality measures that need no download, the yardsticks printed beside every model row.

- `psnr` and `ssim`: full-reference (an oracle where the pristine reference exists: synthetic sets, KADID, TID,
  CSIQ, PIPAL).
- `piqe`: the no-reference Perception-based Image Quality Evaluator (Venkatanath et al., NCC 2015), implemented
  here from the paper and MATLAB's documented algorithm. 0 = excellent, 100 = bad (lower is better).

Images are uint8 arrays (H, W, 3) RGB or (H, W) grey.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage


def _check(img: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(img)
    if arr.dtype != np.uint8:
        raise ValueError(f"{name} must be uint8, got {arr.dtype}")
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] != 3):
        raise ValueError(f"{name} must have shape (H, W) or (H, W, 3), got {arr.shape}")
    return arr


def _pair(img, ref):
    a, b = _check(img, "img"), _check(ref, "ref")
    if a.shape != b.shape:
        raise ValueError(f"img and ref must have the same shape, got {a.shape} and {b.shape}")
    return a.astype(np.float64), b.astype(np.float64)


def psnr(img, ref) -> float:
    """PSNR in dB over all channels, peak 255.

    Identical images would give +inf, which no correlation accepts; they get the PSNR of half the smallest
    non-zero 8-bit error instead (one value off by 1 in one channel), which still ranks above every image that
    differs from the reference.
    """
    a, b = _pair(img, ref)
    mse = float(((a - b) ** 2).mean())
    mse = max(mse, 0.5 / a.size)
    return 10.0 * math.log10(255.0**2 / mse)


def luminance(img) -> np.ndarray:
    """BT.601 luma of a uint8 RGB (or grey) image, float64 in [0, 255]."""
    arr = _check(img, "img").astype(np.float64)
    return arr if arr.ndim == 2 else arr @ np.array([0.299, 0.587, 0.114])


def ssim(img, ref, sigma: float = 1.5) -> float:
    """Mean SSIM on luma (Wang et al. 2004: Gaussian window sigma 1.5, K1 .01, K2 .03, population covariance),
    averaged over pixels at least one window radius from the border."""
    _pair(img, ref)
    x, y = luminance(img), luminance(ref)
    truncate = 3.5
    radius = int(truncate * sigma + 0.5)
    if min(x.shape) < 2 * radius + 1:
        raise ValueError(f"images must be at least {2 * radius + 1} px per side for SSIM, got {x.shape}")
    filt = lambda z: ndimage.gaussian_filter(z, sigma, truncate=truncate, mode="reflect")  # noqa: E731
    ux, uy = filt(x), filt(y)
    vx, vy, vxy = filt(x * x) - ux * ux, filt(y * y) - uy * uy, filt(x * y) - ux * uy
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
    return float(s[radius:-radius, radius:-radius].mean())


# PIQE constants (paper / MATLAB): 16x16 blocks, activity and impairment thresholds on the MSCN map, 6-px edge
# segments.
_BLOCK, _ACTIVITY, _IMPAIRED, _SEGMENT, _C = 16, 0.1, 0.1, 6, 1.0


def _gaussian_7x7(sigma: float = 7.0 / 6.0) -> np.ndarray:
    x = np.arange(-3, 4, dtype=np.float64)
    g = np.exp(-(x**2) / (2 * sigma**2))
    k = np.outer(g, g)
    return k / k.sum()


def _mscn(grey: np.ndarray) -> np.ndarray:
    """Mean-subtracted contrast-normalised coefficients with a 7x7 Gaussian window (sigma 7/6), replicate
    padding and C = 1 on [0, 255] intensities."""
    w = _gaussian_7x7()
    mu = ndimage.correlate(grey, w, mode="nearest")
    sigma = np.sqrt(np.abs(ndimage.correlate(grey * grey, w, mode="nearest") - mu * mu))
    return (grey - mu) / (sigma + 1.0)


def piqe(img) -> float:
    """PIQE score in [0, 100], lower = better. A uniform image scores 100 (nothing salient to judge)."""
    arr = _check(img, "img")
    h, w = arr.shape[:2]
    # Pad by replication to whole blocks (after MATLAB's piqe), then grey as round(255 * gray) like rgb2gray.
    pad = ((0, (-h) % _BLOCK), (0, (-w) % _BLOCK)) + (((0, 0),) if arr.ndim == 3 else ())
    arr = np.pad(arr, pad, mode="edge").astype(np.float64)
    grey = np.rint(arr @ np.array([0.298936021293775, 0.587043074451121, 0.114020904255103])) if arr.ndim == 3 else arr
    norm = _mscn(grey)
    hb, wb = norm.shape[0] // _BLOCK, norm.shape[1] // _BLOCK
    blocks = norm.reshape(hb, _BLOCK, wb, _BLOCK).transpose(0, 2, 1, 3).reshape(-1, _BLOCK, _BLOCK)
    var = blocks.reshape(len(blocks), -1).var(axis=1, ddof=1)
    active = var > _ACTIVITY
    blocks, var = blocks[active], var[active]
    if len(blocks) == 0:
        return 100.0  # (0 + C) / (0 + C): no active block

    # Noticeable-artifact criterion: some 6-px segment of some block edge is nearly flat (std < 0.1).
    edges = np.stack([blocks[:, 0, :], blocks[:, -1, :], blocks[:, :, 0], blocks[:, :, -1]], axis=1)  # (B, 4, 16)
    segments = np.lib.stride_tricks.sliding_window_view(edges, _SEGMENT, axis=2)  # (B, 4, 11, 6)
    impaired = (segments.std(axis=3, ddof=1) < _IMPAIRED).any(axis=(1, 2))

    # Noise criterion: compare the block's std to the ratio of centre (2 middle columns) and surround stds. The
    # surround is every other column, as the paper describes (MATLAB's code drops columns 8 and 10 instead).
    sigma = np.sqrt(var)
    center = blocks[:, :, _BLOCK // 2 - 1 : _BLOCK // 2 + 1].reshape(len(blocks), -1)
    surround = np.concatenate([blocks[:, :, : _BLOCK // 2 - 1], blocks[:, :, _BLOCK // 2 + 1 :]], axis=2)
    surround = surround.reshape(len(blocks), -1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = center.std(axis=1, ddof=1) / surround.std(axis=1, ddof=1)
        ratio = np.where(np.isfinite(ratio), ratio, 0.0)
        beta = np.abs(sigma - ratio) / np.maximum(sigma, ratio)
    noisy = sigma > 2 * beta

    distortion = (impaired * (1.0 - var) + noisy * var).sum()
    return float((distortion + _C) / (len(blocks) + _C) * 100.0)

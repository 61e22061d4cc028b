"""PSNR / SSIM against scikit-image, PIQE against a readable loop-per-block reference of the published algorithm."""

import math

import numpy as np
import pytest
from scipy import ndimage

from evoquality.evaluation.reference_metrics import luminance, piqe, psnr, ssim

skimage_metrics = pytest.importorskip("skimage.metrics", reason="scikit-image is a test dependency")


@pytest.fixture(scope="module")
def pair():
    rng = np.random.default_rng(0)
    ref = ndimage.gaussian_filter(rng.integers(0, 256, (45, 61, 3)).astype(float), (2, 2, 0))
    ref = np.clip(ref * 3 - 250, 0, 255).astype(np.uint8)
    noisy = np.clip(ref + rng.normal(0, 12, ref.shape), 0, 255).astype(np.uint8)
    return noisy, ref


def test_psnr_matches_skimage_and_caps_identity(pair):
    img, ref = pair
    assert psnr(img, ref) == pytest.approx(skimage_metrics.peak_signal_noise_ratio(ref, img, data_range=255), abs=1e-10)
    same = psnr(ref, ref)
    assert math.isfinite(same)
    one_off = ref.copy()
    one_off[0, 0, 0] ^= 1
    assert same > psnr(one_off, ref)  # identity ranks above the smallest possible error


def test_ssim_matches_skimage_on_luma(pair):
    img, ref = pair
    expected = skimage_metrics.structural_similarity(
        luminance(img), luminance(ref), data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    assert ssim(img, ref) == pytest.approx(expected, abs=1e-12)
    assert ssim(ref, ref) == pytest.approx(1.0, abs=1e-12)


def test_shape_and_dtype_checks(pair):
    img, ref = pair
    with pytest.raises(ValueError, match="img and ref must have the same shape"):
        psnr(img[:10], ref)
    with pytest.raises(ValueError, match="img must be uint8, got float64"):
        piqe(img.astype(float))
    with pytest.raises(ValueError, match=r"must have shape \(H, W\) or \(H, W, 3\)"):
        piqe(np.zeros((4, 4, 4), np.uint8))


def _piqe_reference(img: np.ndarray) -> float:
    """The algorithm as written in the paper / MATLAB documentation, one block at a time."""
    h, w = img.shape[:2]
    img = np.pad(img, ((0, (-h) % 16), (0, (-w) % 16), (0, 0)), mode="edge").astype(float)
    grey = np.rint(img[..., 0] * 0.298936021293775 + img[..., 1] * 0.587043074451121 + img[..., 2] * 0.114020904255103)
    x = np.arange(-3, 4)
    g = np.exp(-(x[:, None] ** 2 + x[None, :] ** 2) / (2 * (7 / 6) ** 2))
    g /= g.sum()
    mu = ndimage.correlate(grey, g, mode="nearest")
    sd = np.sqrt(abs(ndimage.correlate(grey**2, g, mode="nearest") - mu**2))
    mscn = (grey - mu) / (sd + 1)
    total, active = 0.0, 0
    for i in range(0, mscn.shape[0], 16):
        for j in range(0, mscn.shape[1], 16):
            b = mscn[i : i + 16, j : j + 16]
            v = b.var(ddof=1)
            if v <= 0.1:
                continue
            active += 1
            impaired = False
            for edge in (b[0, :], b[15, :], b[:, 0], b[:, 15]):
                for k in range(11):
                    if edge[k : k + 6].std(ddof=1) < 0.1:
                        impaired = True
            centre = np.concatenate([b[:, 7], b[:, 8]])
            surround = np.delete(b, [7, 8], axis=1).ravel()
            ratio = centre.std(ddof=1) / surround.std(ddof=1)
            if not np.isfinite(ratio):
                ratio = 0.0
            sigma = math.sqrt(v)
            beta = abs(sigma - ratio) / max(sigma, ratio)
            total += impaired * (1 - v) + (sigma > 2 * beta) * v
    return (total + 1) / (active + 1) * 100


@pytest.mark.parametrize("shape", [(37, 50), (64, 64), (16, 33)])
def test_piqe_matches_block_loop_reference(shape):
    rng = np.random.default_rng(sum(shape))
    base = ndimage.gaussian_filter(rng.integers(0, 256, shape + (3,)).astype(float), (1.5, 1.5, 0)) * 2 - 128
    img = np.clip(base + (rng.random(shape + (3,)) < 0.05) * 200, 0, 255).astype(np.uint8)
    assert piqe(img) == pytest.approx(_piqe_reference(img), abs=1e-9)


def test_piqe_behaviour(pair):
    img, ref = pair
    assert piqe(np.full((40, 40, 3), 77, np.uint8)) == 100.0  # nothing salient
    assert 0.0 <= piqe(ref) <= 100.0 and 0.0 <= piqe(img) <= 100.0
    grey = ref[..., 0]
    assert piqe(grey) == pytest.approx(piqe(np.repeat(grey[..., None], 3, axis=2)), abs=1e-9)

"""smart_resize equal to transformers' (integers, errors) and bicubic bit-identical to Pillow 13's BICUBIC."""

from __future__ import annotations

import numpy as np
import pytest

import evoquality.io as eio
from evoquality.io.reference import resize_ref, smart_resize_ref

pytestmark = pytest.mark.skipif(not eio.native_available(), reason="native extension not built")


def test_smart_resize_round_half_even():
    # 742 / 28 = 26.5 -> Python's round() gives 26 (std::round would give 27 -> 756).
    assert eio.smart_resize(742, 742, max_pixels=10**9) == smart_resize_ref(742, 742, max_pixels=10**9) == (728, 728)


@pytest.mark.parametrize("min_pixels,max_pixels", [(56 * 56, 28 * 28 * 1280), (4 * 28 * 28, 256 * 28 * 28),
                                                   (200_704, 1_003_520), (3136, 200_704), (10_000, 12_000)])
def test_smart_resize_matches_transformers(min_pixels, max_pixels):
    rng = np.random.default_rng(min_pixels)
    sizes = [(h, w) for h, w in rng.integers(1, 6000, (400, 2)) if max(h, w) / min(h, w) <= 200]
    sizes += [(1, 1), (1, 200), (200, 1), (13, 14), (14, 14), (27, 5000), (28, 5600), (9999, 50), (742, 1000)]
    for h, w in sizes:
        assert eio.smart_resize(int(h), int(w), 28, min_pixels, max_pixels) == \
            smart_resize_ref(int(h), int(w), 28, min_pixels, max_pixels), (h, w)


def test_smart_resize_aspect_ratio_error():
    with pytest.raises(ValueError, match="aspect ratio must be smaller than 200"):
        smart_resize_ref(10, 2001)
    with pytest.raises(eio.ImageDecodeError, match="aspect ratio must be smaller than 200"):
        eio.smart_resize(10, 2001)
    with pytest.raises(eio.ImageDecodeError, match="must be >= 1"):
        eio.smart_resize(0, 10)


def _cases(n, seed, max_in, max_out):
    rng = np.random.default_rng(seed)
    return [tuple(int(v) for v in c) for c in
            np.concatenate([rng.integers(1, max_in, (n, 2)), rng.integers(1, max_out, (n, 2))], axis=1)]


@pytest.mark.parametrize("H,W,h,w", _cases(60, 0, 120, 160) + [
    (1, 1, 28, 28), (5, 3, 56, 28), (3000, 2000, 1218, 812), (2000, 3000, 812, 1218), (768, 1024, 868, 1148),
    (427, 640, 420, 644), (40, 8000, 28, 5600), (8000, 40, 5600, 28), (37, 53, 37, 112), (37, 53, 112, 53)])
def test_bicubic_bit_identical_to_pillow(H, W, h, w):
    img = np.random.default_rng(H * 7919 + W).integers(0, 256, (H, W, 3), dtype=np.uint8)
    np.testing.assert_array_equal(eio.resize_bicubic(img, h, w), resize_ref(img, h, w))


def test_bicubic_extreme_values_clip_like_pillow():
    # A checkerboard of 0/255 drives the bicubic overshoot to both clip bounds.
    img = ((np.indices((41, 59)).sum(0) % 2) * 255).astype(np.uint8)[..., None].repeat(3, -1)
    for h, w in [(100, 130), (17, 23), (41, 200), (300, 59)]:
        np.testing.assert_array_equal(eio.resize_bicubic(img, h, w), resize_ref(img, h, w))


def test_resize_argument_errors():
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        eio.resize_bicubic(np.zeros((4, 4), np.uint8), 2, 2)
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        eio.resize_bicubic(np.zeros((4, 4, 3), np.float32), 2, 2)
    with pytest.raises(ValueError, match="height and width must be >= 1"):
        eio.resize_bicubic(np.zeros((4, 4, 3), np.uint8), 0, 2)


def test_pass_order_follows_installed_pillow():
    import PIL

    from evoquality.io.pipeline import installed_pillow_pass_order

    expected = "pillow13" if int(PIL.__version__.split(".")[0]) >= 13 else "horizontal_first"
    assert installed_pillow_pass_order() == expected


@pytest.mark.parametrize("H,W,h,w", [(120, 120, 12, 90), (427, 640, 420, 644), (100, 100, 90, 120)])
def test_horizontal_first_order_is_pillow12(H, W, h, w):
    # Pillow <= 12 always resized horizontally first: the same as two single-axis Pillow resizes, width first.
    # These sizes are ones where Pillow 13 runs the vertical pass first instead, so the orders give different bits.
    img = np.random.default_rng(H + w).integers(0, 256, (H, W, 3), dtype=np.uint8)
    old = eio.resize_bicubic(img, h, w, pass_order="horizontal_first")
    np.testing.assert_array_equal(old, resize_ref(resize_ref(img, H, w), h, w))
    assert not np.array_equal(old, eio.resize_bicubic(img, h, w, pass_order="pillow13"))
    with pytest.raises(ValueError, match="pass_order must be one of"):
        eio.resize_bicubic(img, h, w, pass_order="vertical_first")

"""The synthetic distortion benchmark: determinism, level order, layout, colour conversions."""

import numpy as np
import pytest
from PIL import Image

from evoquality.data import load_dataset, read_manifest
from evoquality.data.colorspace import lab_to_rgb, rgb_to_lab, rgb_to_ycbcr, ycbcr_to_rgb
from evoquality.data.distortions import DISTORTIONS
from evoquality.data.synthetic import BUNDLED_REFERENCES, build_synthetic_benchmark, fit_size, make_variants

skimage = pytest.importorskip("skimage", reason="the bundled reference photos come from scikit-image (test extra)")


@pytest.fixture(scope="module")
def photo():
    import skimage.data

    return fit_size(Image.fromarray(skimage.data.astronaut()), 48)


def _mse(a, b):
    return float(((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2).mean())


def test_every_type_is_deterministic_and_strictly_graded(photo):
    ref = np.asarray(photo)
    first = make_variants(photo, seed=3)
    again = make_variants(np.asarray(photo), seed=3)
    assert [(v.dist_type, v.level) for v in first] == [(v.dist_type, v.level) for v in again]
    for a, b in zip(first, again):
        assert np.array_equal(np.asarray(a.image), np.asarray(b.image)), (a.dist_type, a.level)
        assert a.image.size == photo.size and a.image.mode == "RGB"
    for t in DISTORTIONS:
        kept = [v for v in first if v.dist_type == t]
        # at 48x48 JPEG2000 loses levels (the codec's ~160-byte floor); saturation x1 is the identity
        assert len(kept) == {"jpeg2000": 3, "color_saturation2": 4}.get(t, 5), t
        errs = [_mse(v.image, ref) for v in kept]
        assert errs[0] > 0 and all(x < y for x, y in zip(errs, errs[1:])), (t, errs)


def test_identical_variants_are_dropped_or_kept_on_request():
    grey = np.repeat(np.linspace(0, 255, 24 * 24).reshape(24, 24, 1).astype(np.uint8), 3, axis=2)
    # chroma-only distortions leave a grey image untouched
    assert make_variants(grey, ["color_saturation2", "color_diffusion"]) == []
    kept = make_variants(grey, ["color_saturation2"], drop_identical=False)
    assert [v.level for v in kept] == [1, 2, 3, 4, 5]
    assert all(np.array_equal(np.asarray(v.image), grey) for v in kept)


def test_seed_and_reference_change_the_noise(photo):
    a = make_variants(photo, ["white_noise"], [3], seed=0)[0].image
    b = make_variants(photo, ["white_noise"], [3], seed=1)[0].image
    c = make_variants(photo, ["white_noise"], [3], seed=0, reference_key="other")[0].image
    assert not np.array_equal(np.asarray(a), np.asarray(b))
    assert not np.array_equal(np.asarray(a), np.asarray(c))
    # levels of one (seed, reference, type) share a noise field: level k is a scaled copy, not a fresh draw
    lv = make_variants(photo, ["white_noise"], [1, 5], seed=0)
    d1 = np.asarray(lv[0].image, np.float64) - np.asarray(photo, np.float64)
    d5 = np.asarray(lv[1].image, np.float64) - np.asarray(photo, np.float64)
    inside = (np.asarray(lv[1].image) > 10) & (np.asarray(lv[1].image) < 245)
    assert np.corrcoef(d1[inside], d5[inside])[0, 1] > 0.9


def test_make_variants_rejects_bad_arguments(photo):
    with pytest.raises(ValueError, match="distortion type must be one of"):
        make_variants(photo, ["mean_shift"])
    with pytest.raises(ValueError, match=r"levels must be a non-empty subset of \(1, 2, 3, 4, 5\), got \(0, 6\)"):
        make_variants(photo, ["jpeg"], [0, 6])
    with pytest.raises(ValueError, match="image must be uint8"):
        make_variants(np.zeros((16, 16, 3), np.float32), ["jpeg"])
    with pytest.raises(ValueError, match="at least 8x8"):
        make_variants(np.zeros((4, 16, 3), np.uint8), ["jpeg"])


def test_fit_size_crops_to_aspect():
    img = Image.fromarray(np.zeros((30, 60, 3), np.uint8))
    assert fit_size(img, 16).size == (16, 16)
    assert fit_size(img, (40, 10)).size == (40, 10)
    assert fit_size(img, None) is img
    with pytest.raises(ValueError, match="size must be at least 8 px"):
        fit_size(img, 4)


def test_build_benchmark_layout_and_manifest(tmp_path):
    refs = ["chelsea", "camera"]  # camera is grey: chroma-only types are skipped for it, and counted
    m = build_synthetic_benchmark(tmp_path / "b", refs, types=("jpeg", "color_saturation2"), levels=(1, 3), seed=7,
                                  size=32)
    # saturation x1 (level 1) is the identity and a grey photo has no chroma: 1 + 2 variants dropped, counted
    assert len(m) == 2 + 2 * 2 + 1 * 2 - 1
    assert m.header.skipped == {"variant identical to its reference or a milder level": 3}
    assert [(r.group, r.level) for r in m.records if r.dist_type == "color_saturation2"] == [("chelsea", 3)]
    assert m.header.subset == "2 refs x 2 types x 2 levels, 32x32, seed 7"
    back = read_manifest(tmp_path / "b" / "manifest.jsonl")
    assert back.records == m.records and back.header.root == m.header.root
    assert load_dataset("synthetic", tmp_path / "b").records == m.records
    pristine = [r for r in m.records if r.level == 0]
    assert [r.image for r in pristine] == ["references/chelsea.png", "references/camera.png"]
    for r in m.records:
        with Image.open(m.image_path(r)) as im:
            assert im.size == (32, 32)
        assert r.mos is None and r.group in refs
        if r.level:
            assert r.ref == f"references/{r.group}.png"
            assert r.image == f"images/{r.group}/{r.group}__{r.dist_type}__{r.level}.png"
    # same call, same bytes
    again = build_synthetic_benchmark(tmp_path / "c", refs, types=("jpeg", "color_saturation2"), levels=(1, 3),
                                      seed=7, size=32)
    for r in again.records:
        assert (tmp_path / "b" / r.image).read_bytes() == (tmp_path / "c" / r.image).read_bytes()


def test_build_from_user_folder(tmp_path):
    (tmp_path / "in" / "x").mkdir(parents=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(tmp_path / "in" / "x" / "p.png")
    m = build_synthetic_benchmark(tmp_path / "out", tmp_path / "in", types=("gaussian_blur",))
    assert [r.group for r in m.records] == ["x_p"] * 6 and [r.level for r in m.records] == [0, 1, 2, 3, 4, 5]
    with pytest.raises(ValueError, match="bundled reference must be one of"):
        build_synthetic_benchmark(tmp_path / "o2", ["clock"], types=("jpeg",))
    assert "clock" not in BUNDLED_REFERENCES


def test_colorspaces_match_skimage():
    import skimage.color

    rgb = np.random.default_rng(0).random((7, 9, 3))
    np.testing.assert_allclose(rgb_to_lab(rgb), skimage.color.rgb2lab(rgb), atol=1e-6, rtol=0)
    np.testing.assert_allclose(lab_to_rgb(rgb_to_lab(rgb)), rgb, atol=1e-9, rtol=0)
    np.testing.assert_allclose(ycbcr_to_rgb(rgb_to_ycbcr(rgb)), rgb, atol=1e-12, rtol=0)
    # BT.601 full range: skimage's ycbcr is studio-swing; compare Y only through the luma weights
    np.testing.assert_allclose(rgb_to_ycbcr(rgb)[..., 0], rgb @ [0.299, 0.587, 0.114], atol=1e-15, rtol=0)

"""Batch preprocess: pixel_values / image_grid_thw equal to transformers' Qwen2VLImageProcessorPil (max |delta| <= 1e-6,
in fact bit-identical), the bf16 and compact uint8 outputs, caller buffers, paths, skip mode, threads."""

from __future__ import annotations

import io
import threading

import numpy as np
import pytest
from PIL import Image

import evoquality.io as eio
from io_helpers import encoded_rgb, mode_variants, photo

pytestmark = pytest.mark.skipif(not eio.native_available(), reason="native extension not built")


def native_patchify_isa() -> str:
    from evoquality import _backend

    ext = _backend.native_extension()
    return ext.patchify_isa() if ext is not None else "scalar"

# Required tolerance: max |delta| <= 1e-6 against the PIL backend (the implementation is bit-exact; 0 is asserted
# where the computation is the same float32 arithmetic).
PIXEL_ATOL = 1e-6


@pytest.fixture(scope="module")
def pil_processor():
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    return Qwen2VLImageProcessorPil


def _transformers(cls, blobs, **kw):
    out = cls(**kw)([Image.open(io.BytesIO(b)) for b in blobs])
    return np.asarray(out["pixel_values"]), np.asarray(out["image_grid_thw"])


def _random_sizes(n, seed):
    rng = np.random.default_rng(seed)
    sizes = [(int(h), int(w)) for h, w in rng.integers(1, 700, (n, 2))]
    return sizes + [(1, 1), (13, 27), (27, 13), (3, 590), (590, 3), (1, 200), (2, 399), (29, 57), (742, 31)]


SETTINGS = [dict(), dict(min_pixels=4 * 28 * 28, max_pixels=64 * 28 * 28), dict(min_pixels=200_704, max_pixels=1_003_520),
            dict(min_pixels=3136, max_pixels=20_000)]


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
@pytest.mark.parametrize("setting", range(len(SETTINGS)))
def test_matches_transformers_pil_backend(pil_processor, fmt, setting):
    kw = SETTINGS[setting]
    sizes = _random_sizes(6, seed=setting * 10 + len(fmt))
    blobs = [encoded_rgb(h, w, fmt, seed=i) for i, (h, w) in enumerate(sizes)]
    want_pv, want_grid = _transformers(pil_processor, blobs, **kw)
    got = eio.preprocess(blobs, **kw)
    np.testing.assert_array_equal(got.image_grid_thw, want_grid)
    assert got.pixel_values.dtype == np.float32 and got.pixel_values.shape == want_pv.shape
    assert np.abs(got.pixel_values - want_pv).max() <= PIXEL_ATOL
    np.testing.assert_array_equal(got.pixel_values, want_pv)


def test_colour_modes_match_transformers(pil_processor):
    variants = mode_variants(seed=3)
    blobs = list(variants.values())
    want_pv, want_grid = _transformers(pil_processor, blobs)
    got = eio.preprocess(blobs)
    np.testing.assert_array_equal(got.image_grid_thw, want_grid)
    np.testing.assert_array_equal(got.pixel_values, want_pv)


def test_pil_and_array_inputs(pil_processor):
    images = [Image.fromarray(photo(50, 70)).convert("RGBA"), Image.fromarray(photo(90, 31)).convert("P")]
    arrays = [photo(64, 64, 5)]
    want_pv, want_grid = (np.asarray(v) for v in pil_processor()(images + arrays).values())
    got = eio.preprocess(images + arrays)
    np.testing.assert_array_equal(got.pixel_values, want_pv)
    np.testing.assert_array_equal(got.image_grid_thw, want_grid)


def test_paths_and_buffers(tmp_path):
    blob = encoded_rgb(80, 120, "PNG")
    path = tmp_path / "x.png"
    path.write_bytes(blob)
    ref = eio.preprocess([blob])
    for form in (str(path), path, bytearray(blob), memoryview(blob), np.frombuffer(blob, np.uint8)):
        np.testing.assert_array_equal(eio.preprocess([form]).pixel_values, ref.pixel_values)


def _every_byte_in_every_channel(height: int = 56, width: int = 56) -> np.ndarray:
    """(H, W, 3) uint8 holding each of the 256 values in each channel, at different pixels per channel."""
    i = np.arange(height * width)
    rgb = np.stack([i % 256, (i * 7 + 3) % 256, (255 - i) % 256], axis=-1).astype(np.uint8).reshape(height, width, 3)
    assert all(len(np.unique(rgb[..., c])) == 256 for c in range(3))
    return rgb


# (do_rescale, rescale_factor, do_normalize, image_mean, image_std): the default and settings that change each term.
VALUE_SETTINGS = [
    (True, 1 / 255, True, eio.OPENAI_CLIP_MEAN, eio.OPENAI_CLIP_STD),
    (True, 1 / 255, True, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    (True, 1 / 127.5, True, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    (True, 1 / 255, False, eio.OPENAI_CLIP_MEAN, eio.OPENAI_CLIP_STD),
    (False, 1 / 255, True, (120.0, 110.5, 100.25), (60.0, 61.0, 62.5)),
    (False, 1 / 255, False, eio.OPENAI_CLIP_MEAN, eio.OPENAI_CLIP_STD),
]


@pytest.mark.parametrize("setting", range(len(VALUE_SETTINGS)))
def test_every_byte_value_matches_transformers_arithmetic(pil_processor, setting):
    """The per-channel 256-entry table behind the native path reproduces transformers' float64 rescale then float32
    normalise bit for bit, for every input byte of every channel (float32), and its bfloat16 rounding (bfloat16)."""
    torch = pytest.importorskip("torch")
    do_rescale, factor, do_normalize, mean, std = VALUE_SETTINGS[setting]
    kw = dict(do_rescale=do_rescale, rescale_factor=factor, do_normalize=do_normalize, image_mean=list(mean),
              image_std=list(std))
    rgb = _every_byte_in_every_channel()
    want = np.asarray(pil_processor(do_resize=False, **kw)([rgb])["pixel_values"])
    f32 = eio.preprocess([rgb], do_resize=False, **kw).pixel_values
    assert f32.dtype == np.float32
    np.testing.assert_array_equal(f32.view(np.uint32), want.view(np.uint32))
    bf = eio.preprocess([rgb], do_resize=False, dtype="bfloat16", **kw).to_torch()[0]
    assert torch.equal(bf.view(torch.int16), torch.from_numpy(want).to(torch.bfloat16).view(torch.int16))


# (patch_size, merge_size, temporal_patch_size): Qwen2/2.5-VL, Qwen3-VL's 16, and shapes only the scalar path takes.
GEOMETRIES = [(14, 2, 2), (16, 2, 2), (12, 2, 1), (14, 2, 3), (4, 2, 2), (14, 1, 2), (7, 3, 2), (15, 2, 2)]


@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_patch_geometries_match_transformers(pil_processor, geometry):
    p, m, t = geometry
    kw = dict(patch_size=p, merge_size=m, temporal_patch_size=t, min_pixels=(p * m) ** 2, max_pixels=(p * m) ** 2 * 40)
    images = [photo(97, 131, 1), photo(3 * p * m, 5 * p * m, 2)]
    want = pil_processor(**kw)(images)
    got = eio.preprocess(images, **kw)
    np.testing.assert_array_equal(got.pixel_values, np.asarray(want["pixel_values"]))
    np.testing.assert_array_equal(got.image_grid_thw, np.asarray(want["image_grid_thw"]))


@pytest.mark.skipif(native_patchify_isa() == "scalar", reason="CPU without AVX-512 VBMI: only the scalar path exists")
@pytest.mark.parametrize("dtype", eio.DTYPES)
def test_avx512_path_equals_scalar_path(dtype, monkeypatch):
    images = [photo(h, w, s) for s, (h, w) in enumerate([(56, 56), (97, 131), (812, 1204), (300, 28)])]
    for p, m, t in GEOMETRIES:
        kw = dict(patch_size=p, merge_size=m, temporal_patch_size=t, min_pixels=(p * m) ** 2, dtype=dtype)
        monkeypatch.delenv("EVQ_NATIVE_ISA", raising=False)
        fast = eio.preprocess(images, **kw).pixel_values
        monkeypatch.setenv("EVQ_NATIVE_ISA", "scalar")
        assert native_patchify_isa() == "scalar"
        np.testing.assert_array_equal(eio.preprocess(images, **kw).pixel_values, fast)


def test_bfloat16_is_round_to_nearest_even_of_float32():
    torch = pytest.importorskip("torch")
    blobs = [encoded_rgb(100, 150, "JPEG"), encoded_rgb(30, 40, "PNG")]
    f32 = eio.preprocess(blobs)
    bf = eio.preprocess(blobs, dtype="bfloat16")
    assert bf.pixel_values.dtype == np.uint16
    pv, grid = bf.to_torch()
    assert pv.dtype == torch.bfloat16
    assert torch.equal(pv, torch.from_numpy(f32.pixel_values).to(torch.bfloat16))
    np.testing.assert_array_equal(grid.numpy(), f32.image_grid_thw)


def test_uint8_compact_layout_is_the_resized_pixels_without_temporal_copies():
    blob = encoded_rgb(100, 150, "PNG")
    f32 = eio.preprocess([blob])
    u8 = eio.preprocess([blob], dtype="uint8")
    n = f32.pixel_values.shape[0]
    assert u8.pixel_values.shape == (n, 3 * 14 * 14) and u8.pixel_values.dtype == np.uint8
    mean = np.asarray(eio.OPENAI_CLIP_MEAN, np.float32)[:, None]
    std = np.asarray(eio.OPENAI_CLIP_STD, np.float32)[:, None]
    # Normalising the compact bytes as transformers does reproduces the float output exactly.
    x = (u8.pixel_values.reshape(n, 3, 196).astype(np.float64) * (1 / 255)).astype(np.float32)
    x = (x - mean) / std
    full = np.concatenate([x[:, :, None], x[:, :, None]], axis=2).reshape(n, 1176)
    np.testing.assert_array_equal(full, f32.pixel_values)


def test_out_buffer_numpy_and_torch():
    torch = pytest.importorskip("torch")
    blobs = [encoded_rgb(60, 60, "JPEG"), encoded_rgb(90, 50, "WEBP")]
    ref = eio.preprocess(blobs)
    n = ref.pixel_values.shape[0]
    buf = np.full((n + 5, 1176), np.nan, np.float32)
    got = eio.preprocess(blobs, out=buf)
    assert np.shares_memory(got.pixel_values, buf)
    np.testing.assert_array_equal(buf[:n], ref.pixel_values)
    assert np.isnan(buf[n:]).all()
    tbuf = torch.empty((n, 1176), dtype=torch.bfloat16)
    eio.preprocess(blobs, dtype="bfloat16", out=tbuf)
    assert torch.equal(tbuf, torch.from_numpy(ref.pixel_values).to(torch.bfloat16))
    with pytest.raises(ValueError, match=r"out must have shape \(>= %d, 1176\)" % n):
        eio.preprocess(blobs, out=np.empty((n - 1, 1176), np.float32))
    with pytest.raises(ValueError, match="out has dtype float64"):
        eio.preprocess(blobs, out=np.empty((n, 1176), np.float64))


def test_fresh_outputs_reuse_freed_memory_and_never_a_live_array():
    torch = pytest.importorskip("torch")
    eio.release_output_cache()
    arrays = [photo(448, 448, s) for s in range(2)]  # 2048 rows: 9.6 MB of float32, above the 4 MiB threshold
    first = eio.preprocess(arrays, do_resize=False)
    want = first.pixel_values.copy()
    address = first.pixel_values.ctypes.data
    del first
    again = eio.preprocess(arrays, do_resize=False)
    assert again.pixel_values.ctypes.data == address  # the freed block came back
    np.testing.assert_array_equal(again.pixel_values, want)
    live = [eio.preprocess(arrays, do_resize=False) for _ in range(3)]
    for a in [again] + live:
        for b in live:
            assert a is b or not np.shares_memory(a.pixel_values, b.pixel_values)
        np.testing.assert_array_equal(a.pixel_values, want)
    pv, _ = live[0].to_torch()  # a tensor keeps its block alive after the result is gone
    del live[0]
    eio.preprocess(arrays, do_resize=False)
    assert torch.equal(pv, torch.from_numpy(want))
    # bfloat16 (half the bytes: too small for the cached blocks, a new one) and a skip-mode view come out right too.
    bf = eio.preprocess(arrays, do_resize=False, dtype="bfloat16")
    assert torch.equal(bf.to_torch()[0], torch.from_numpy(want).to(torch.bfloat16))
    skip = eio.preprocess([arrays[0], b"not an image", arrays[1]], do_resize=False, on_error="skip")
    np.testing.assert_array_equal(skip.pixel_values, want)
    del again, live, bf, skip, pv
    assert eio.release_output_cache() > 0
    assert eio.release_output_cache() == 0


def test_errors_name_the_input_and_skip_mode(tmp_path):
    good = encoded_rgb(60, 60, "PNG")
    bad_header = b"\x89PNG\r\n\x1a\n" + b"\0" * 30
    jpeg = encoded_rgb(80, 80, "JPEG")
    truncated = jpeg[: len(jpeg) * 2 // 3]  # header fine, data cut: fails during decode
    missing = str(tmp_path / "missing.jpg")
    with pytest.raises(eio.ImageDecodeError, match=r"image 1 \(38 bytes\): invalid PNG"):
        eio.preprocess([good, bad_header, good])
    with pytest.raises(eio.ImageDecodeError, match=r"image 0 \(path '.*missing.jpg'\): cannot open file"):
        eio.preprocess([missing])
    with pytest.raises(eio.ImageDecodeError, match=r"image 2 \(%d bytes\): JPEG decode failed" % len(truncated)):
        eio.preprocess([good, good, truncated], strict=True)
    ref = eio.preprocess([good, good])
    got = eio.preprocess([bad_header, good, truncated, missing, good], on_error="skip", strict=True)
    np.testing.assert_array_equal(got.pixel_values, ref.pixel_values)
    np.testing.assert_array_equal(got.image_grid_thw, ref.image_grid_thw)
    assert [i for i, _ in got.skipped] == [0, 2, 3]
    assert "JPEG decode failed" in got.skipped[1][1]


def test_empty_batch():
    r = eio.preprocess([])
    assert r.pixel_values.shape == (0, 1176) and r.image_grid_thw.shape == (0, 3) and r.skipped == []


def test_argument_errors():
    blob = encoded_rgb(30, 30, "PNG")
    with pytest.raises(ValueError, match="dtype must be one of"):
        eio.preprocess([blob], dtype="float16")
    with pytest.raises(TypeError, match="wrap a single image in a list"):
        eio.preprocess(blob)
    with pytest.raises(ValueError, match="on_error must be 'raise' or 'skip'"):
        eio.preprocess([blob], on_error="ignore")
    with pytest.raises(ValueError, match="min_pixels <= max_pixels"):
        eio.preprocess([blob], min_pixels=100, max_pixels=10)
    with pytest.raises(TypeError, match=r"inputs\[0\].*\(H, W, 3\) uint8"):
        eio.preprocess([np.zeros((4, 4, 3), np.float32)])
    with pytest.raises(ValueError, match="num_threads must be >= 1"):
        eio.preprocess([blob], num_threads=0)


def test_thread_count_and_concurrent_callers_give_identical_results():
    blobs = [encoded_rgb(h, w, fmt, seed=i) for i, (h, w, fmt) in
             enumerate([(300, 200, "JPEG"), (123, 457, "PNG"), (640, 480, "WEBP"), (64, 900, "JPEG")] * 3)]
    ref = eio.preprocess(blobs, num_threads=1)
    np.testing.assert_array_equal(eio.preprocess(blobs, num_threads=4).pixel_values, ref.pixel_values)
    results, errors = [None] * 4, []

    def worker(k):
        try:
            results[k] = eio.preprocess(blobs, num_threads=2).pixel_values
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for r in results:
        np.testing.assert_array_equal(r, ref.pixel_values)


def test_approx_mode_error_is_small():
    blob = encoded_rgb(1600, 1200, "JPEG", seed=9)
    exact = eio.preprocess([blob], max_pixels=200_704, dtype="uint8")
    approx = eio.preprocess([blob], max_pixels=200_704, dtype="uint8", approx=True)
    np.testing.assert_array_equal(approx.image_grid_thw, exact.image_grid_thw)
    diff = np.abs(approx.pixel_values.astype(np.int16) - exact.pixel_values.astype(np.int16))
    assert 0 < diff.mean() < 2.0  # measured ~0.5-1 LSB on photos; bench_image_pipeline.py reports it
    # Non-JPEG input and images too small to downscale in the DCT domain are unchanged by approx.
    png = encoded_rgb(300, 200, "PNG")
    np.testing.assert_array_equal(eio.preprocess([png], approx=True).pixel_values, eio.preprocess([png]).pixel_values)

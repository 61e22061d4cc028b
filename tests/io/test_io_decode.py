"""Decoding: identical pixels to Pillow + transformers' convert_to_rgb for every colour mode, clean errors for
hostile or broken input, header-first limits."""

from __future__ import annotations

import io
import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image, ImageOps

import evoquality.io as eio
from evoquality.io.reference import decode_ref
from io_helpers import encode, encoded_rgb, mode_variants, photo, png_file

pytestmark = pytest.mark.skipif(not eio.native_available(), reason="native extension not built")

VARIANTS = mode_variants()


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_decode_matches_pillow(name):
    data = VARIANTS[name]
    got, want = eio.decode(data), decode_ref(data)
    assert got.dtype == np.uint8 and got.shape == want.shape
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
@pytest.mark.parametrize("size", [(1, 1), (1, 301), (299, 2), (17, 31), (64, 64)])
def test_decode_sizes(fmt, size):
    data = encoded_rgb(*size, fmt, seed=size[0])
    np.testing.assert_array_equal(eio.decode(data), decode_ref(data))


def test_probe_reads_header_only():
    assert eio.probe(encoded_rgb(21, 34, "JPEG")) == {"format": "JPEG", "width": 34, "height": 21, "orientation": 1,
                                                      "warning": ""}
    assert eio.probe(encoded_rgb(21, 34, "PNG"))["format"] == "PNG"
    assert eio.probe(encoded_rgb(21, 34, "WEBP"))["width"] == 34


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
@pytest.mark.parametrize("orientation", [1, 3, 6, 8, 2, 5, 7])
def test_exif_orientation_is_opt_in(fmt, orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encode(Image.fromarray(photo(20, 33)), fmt, exif=exif.tobytes(),
                  **({"lossless": True} if fmt == "WEBP" else {}))
    assert eio.probe(data)["orientation"] == orientation
    # Default: stored orientation, as transformers (which never applies EXIF).
    np.testing.assert_array_equal(eio.decode(data), decode_ref(data))
    oriented = eio.decode(data, apply_exif_orientation=True)
    with Image.open(io.BytesIO(data)) as im:
        want = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    np.testing.assert_array_equal(oriented, want)


# --- errors: every one is an ImageDecodeError (a ValueError) with the reason in the message --------------------

def _raises(data, match, **kw):
    with pytest.raises(eio.ImageDecodeError, match=match):
        eio.decode(data, **kw)


def test_empty_and_unsupported():
    _raises(b"", "empty input")
    _raises(b"GIF89a" + b"\0" * 20, "unsupported image format.*GIF")
    _raises(b"BM" + b"\0" * 40, "unsupported image format.*BMP")
    _raises(b"hello world, not an image", "unsupported image format")
    assert issubclass(eio.ImageDecodeError, ValueError)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_truncated_strict_refuses(fmt):
    data = encoded_rgb(64, 80, fmt)
    for cut in (len(data) // 2, len(data) - 40, 30, 12):
        with pytest.raises(eio.ImageDecodeError):
            eio.decode(data[:cut], strict=True)


def test_truncated_jpeg_lenient_keeps_partial_image():
    data = encoded_rgb(64, 80, "JPEG")
    cut = data[: len(data) * 2 // 3]
    _raises(cut, r"JPEG decode failed \(strict mode\)", strict=True)
    partial, warning = eio.decode(cut, return_warning=True)
    assert partial.shape == (64, 80, 3) and "premature end" in warning.lower()
    np.testing.assert_array_equal(partial[:8], eio.decode(data)[:8])  # the rows before the cut are intact


def test_progressive_scan_limit():
    # A progressive JPEG whose last scan is repeated 600 times: libjpeg-turbo would decode every scan (a CPU
    # exhaustion vector); strict mode stops at the first inconsistent scan, lenient mode at the 500-scan limit.
    data = encode(Image.fromarray(photo(64, 64)), "JPEG", quality=90, progressive=True)
    last_sos, eoi = data.rfind(b"\xff\xda"), data.rfind(b"\xff\xd9")
    many = data[:eoi] + data[last_sos:eoi] * 600 + data[eoi:]
    _raises(many, r"strict mode.*progression", strict=True)
    _raises(many, "more than 500 scans", strict=False)


def test_corrupt_bytes():
    data = bytearray(encoded_rgb(64, 80, "PNG"))
    data[60:70] = b"\xff" * 10  # inside IDAT: CRC mismatch on a critical chunk
    _raises(bytes(data), "PNG decode failed")
    jpeg = bytearray(encoded_rgb(64, 80, "JPEG"))
    jpeg[2:4] = b"\x00\x00"
    _raises(bytes(jpeg), "JPEG")


def _ihdr(width, height, depth=8, color=2):
    return struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, 0)


def test_zero_size_png():
    _raises(png_file(_ihdr(0, 10), zlib.compress(b"")), "invalid size 0x10")


def _zero_rows_zlib(rows: int, row_bytes: int) -> bytes:
    """A valid zlib stream of rows*row_bytes zero bytes, built fast: after Z_FULL_FLUSH a raw-deflate compressor
    starts afresh, so the compressed bytes of 1000 rows can be repeated; adler32 of n zeros is (n % 65521) << 16 | 1."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = c.compress(b"\0" * (row_bytes * 1000)) + c.flush(zlib.Z_FULL_FLUSH)
    n = rows * row_bytes
    return b"\x78\xda" + block * (rows // 1000) + b"\x03\x00" + (((n % 65521) << 16) | 1).to_bytes(4, "big")


def test_png_bomb_refused_before_allocation():
    # A complete 20000 x 20000 8-bit grayscale PNG (400 MP of zeros) in ~390 KB; refused from its header in < 1 ms.
    bomb = png_file(_ihdr(20000, 20000, color=0), _zero_rows_zlib(20000, 20001))
    assert 300_000 < len(bomb) < 400_000
    elapsed = []
    for _ in range(5):  # best of 5: a loaded CI machine may deschedule one attempt
        t0 = time.perf_counter()
        with pytest.raises(eio.ImageDecodeError, match="400000000 pixels exceeds max_image_pixels=178956970"):
            eio.decode(bomb)
        elapsed.append(time.perf_counter() - t0)
    assert min(elapsed) < 1e-3
    with pytest.raises(eio.ImageDecodeError, match="exceeds max_image_pixels"):
        eio.probe(bomb)
    with pytest.raises(eio.ImageDecodeError, match=r"image 0 .*exceeds max_image_pixels"):
        eio.preprocess([bomb])


def test_png_header_with_extreme_sizes():
    # Found by the UBSan fuzz run: 0xFFFFFFFF x 0xFFFFFFFF once overflowed the pixel-count product.
    for w, h in ((0xFFFFFFFF, 0xFFFFFFFF), (0x80000000, 3), (1, 0xFFFFFFFF)):
        data = png_file(_ihdr(w, h), zlib.compress(b""))
        _raises(data, f"invalid size {w}x{h} \\(sides above 2\\^31 - 1")
        _raises(data, f"invalid size {w}x{h}", max_image_pixels=2**63 - 1)
        with pytest.raises(eio.ImageDecodeError, match=f"invalid size {w}x{h}"):
            eio.probe(data)
    _raises(png_file(_ihdr(0x7FFFFFFF, 0x7FFFFFFF), zlib.compress(b"")),
            f"2147483647x2147483647 = {0x7FFFFFFF ** 2} pixels exceeds max_image_pixels=178956970")


def test_max_image_pixels_is_configurable():
    data = encoded_rgb(40, 50, "JPEG")
    _raises(data, "2000 pixels exceeds max_image_pixels=1999", max_image_pixels=1999)
    assert eio.decode(data, max_image_pixels=2000).shape == (40, 50, 3)
    with pytest.raises(ValueError, match="max_image_pixels must be >= 1"):
        eio.decode(data, max_image_pixels=0)


def test_type_errors_name_the_argument():
    with pytest.raises(TypeError, match="data must be bytes"):
        eio.decode(12345)
    with pytest.raises(TypeError, match="contiguous 1-D byte buffer"):
        eio.decode(np.zeros((4, 4), np.uint8))

"""The decoder contract: whatever Pillow + transformers' processor accept, the native decoder accepts and
reproduces bit for bit; recovered warnings are returned and counted; strict=True refuses them. Every file here is
written by the test itself, one per case met in public corpora."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

import evoquality.io as eio
from corpus_check import check_file, expected_refusal, pillow_rgb
from io_helpers import _interlaced_png, encode, encoded_rgb, photo, png_chunk, png_file

pytestmark = pytest.mark.skipif(not eio.native_available(), reason="native extension not built")


def _lenient_matches_pillow(data: bytes, *, warns: str | None, truncated: bool = False) -> str:
    """Decodes leniently, checks the pixels against Pillow (its LOAD_TRUNCATED_IMAGES mode when `truncated`), checks
    that strict mode refuses when a warning is expected; returns the warning."""
    want = pillow_rgb(data, truncated=truncated)
    assert want is not None, "the reference must decode this file"
    if truncated:
        assert pillow_rgb(data, truncated=False) is None  # only Pillow's truncated mode takes it
    got, warning = eio.decode(data, return_warning=True)
    np.testing.assert_array_equal(got, want)
    if warns is None:
        assert warning == ""
        np.testing.assert_array_equal(eio.decode(data, strict=True), want)
    else:
        assert warns in warning, warning
        with pytest.raises(eio.ImageDecodeError, match="strict mode"):
            eio.decode(data, strict=True)
    return warning


# --- JPEG -----------------------------------------------------------------------------------------------------------

def _junk_before_dqt(n: int) -> bytes:
    data = encoded_rgb(40, 56, "JPEG")
    dqt = data.index(b"\xff\xdb")
    return data[:dqt] + b"\x00" * n + data[dqt:]


@pytest.mark.parametrize("junk", [1, 5, 16])
def test_jpeg_extraneous_bytes_are_a_header_warning(junk):
    data = _junk_before_dqt(junk)
    _lenient_matches_pillow(data, warns=f"{junk} extraneous bytes before marker")
    info = eio.probe(data)
    assert (info["width"], info["height"]) == (56, 40) and "extraneous bytes" in info["warning"]
    with pytest.raises(eio.ImageDecodeError, match=r"JPEG header warning \(strict mode\).*extraneous"):
        eio.probe(data, strict=True)


def test_jpeg_premature_end_of_segment_is_a_warning():
    data = encoded_rgb(64, 80, "JPEG")
    cut = data[: len(data) * 3 // 4] + b"\xff\xd9"  # the entropy data stops early, the file still ends with EOI
    _lenient_matches_pillow(cut, warns="premature end of data segment")


def test_jpeg_cut_inside_icc_profile_names_the_segment():
    data = encode(Image.fromarray(photo(30, 30)), "JPEG", icc_profile=bytes(range(256)) * 20)
    app2 = data.index(b"ICC_PROFILE") - 4
    for cut in (app2 + 100, app2 + 3000):
        with pytest.raises(eio.ImageDecodeError, match=r"truncated JPEG.*ends inside the APP2 \(ICC profile\) "
                                                       rf"segment at byte {app2}.*before the frame header"):
            eio.decode(data[:cut])
        with pytest.raises(eio.ImageDecodeError, match=r"ICC profile"):
            eio.probe(data[:cut])


# --- PNG ------------------------------------------------------------------------------------------------------------

def test_png_trns_out_of_range_is_a_warning():
    # Pillow writes a bilevel image's transparency as the 8-bit value 255 in a 1-bit file: out of range for libpng.
    data = encode(Image.fromarray(photo(20, 30)).convert("1"), "PNG", transparency=255)
    _lenient_matches_pillow(data, warns="tRNS")


def test_png_extra_compressed_data_is_a_warning():
    raw = b"".join(b"\x00" + bytes(range(y, y + 30)) for y in range(10))
    data = png_file(struct.pack(">IIBBBBB", 30, 10, 8, 0, 0, 0, 0), zlib.compress(raw) + b"\x00" * 64)
    _lenient_matches_pillow(data, warns="Extra compressed data")


@pytest.mark.parametrize("key", [0, 7, 200, 255, 256, 40000])
def test_png_gray16_with_trns(key):
    rng = np.random.default_rng(key)
    values = rng.integers(0, 65536, (23, 31), dtype=np.uint16)
    values[:8] = rng.integers(0, 260, (8, 31))
    values[0, :4] = (key, key, 255, 0)
    data = encode(Image.fromarray(values), "PNG", transparency=key)
    assert b"tRNS" in data
    _lenient_matches_pillow(data, warns=None)


def _rows(mode: str, h: int = 48, w: int = 40) -> Image.Image:
    rgb = Image.fromarray(photo(h, w, seed=3))
    if mode == "RGBA":
        rgb.putalpha(Image.fromarray(np.full((h, w), 100, np.uint8)))
        return rgb
    if mode == "P":
        return rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    return rgb.convert(mode)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "P", "P-trns", "interlaced"])
@pytest.mark.parametrize("fraction", [0.3, 0.7])
def test_png_truncated_is_pillows_truncated_image(mode, fraction):
    if mode == "interlaced":
        data = _interlaced_png(Image.fromarray(photo(48, 40, seed=3)))
    elif mode == "P-trns":
        data = encode(_rows("P"), "PNG", transparency=0, compress_level=1)
    else:
        data = encode(_rows(mode), "PNG", compress_level=1)
    idat = data.index(b"IDAT")
    length = struct.unpack(">I", data[idat - 4:idat])[0]
    cut = data[: idat + 4 + int(length * fraction)]
    assert expected_refusal(cut) is None
    _lenient_matches_pillow(cut, warns="incomplete image data", truncated=True)


def test_png_image_data_ending_early_before_iend():
    raw = b"".join(b"\x00" + bytes([y * 5 % 256] * 30) for y in range(20))
    data = png_file(struct.pack(">IIBBBBB", 30, 20, 8, 0, 0, 0, 0), zlib.compress(raw)[:40])
    _lenient_matches_pillow(data, warns="Not enough image data", truncated=True)


def test_png_idat_checksum_error_is_refused_in_both_modes():
    data = bytearray(encoded_rgb(20, 20, "PNG"))
    crc_at = data.index(b"IEND") - 8  # the last 4 bytes of the IDAT chunk
    data[crc_at] ^= 0xFF
    data = bytes(data)
    assert pillow_rgb(data, truncated=False) is not None  # Pillow does not check it
    for strict in (False, True):
        with pytest.raises(eio.ImageDecodeError, match="IDAT chunk at byte 33 has a wrong CRC"):
            eio.decode(data, strict=strict)
    assert check_file(data)[0] == "refused_expected"


def test_png_chunk_longer_than_the_file_is_refused():
    data = bytearray(encoded_rgb(2, 2, "PNG"))
    idat = data.index(b"IDAT")
    data[idat - 4:idat] = struct.pack(">I", 2**30 - 1)  # libpng's huge_IDAT crasher
    with pytest.raises(eio.ImageDecodeError, match=r"IDAT chunk at byte 33 declares 1073741823 bytes, more than the "
                                                   r"whole file"):
        eio.decode(bytes(data))


# --- WebP -----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
@pytest.mark.parametrize("lossless", [False, True])
def test_animated_webp_decodes_the_first_frame(mode, lossless):
    frames = [Image.fromarray(photo(30, 44, seed=s)).convert(mode) for s in range(3)]
    if mode == "RGBA":
        for i, f in enumerate(frames):
            f.putalpha(Image.fromarray(np.full((30, 44), 60 + 80 * i, np.uint8)))
    buf = io.BytesIO()
    frames[0].save(buf, "WEBP", save_all=True, append_images=frames[1:], duration=50, lossless=lossless)
    data = buf.getvalue()
    with Image.open(io.BytesIO(data)) as im:
        assert im.n_frames == 3
    _lenient_matches_pillow(data, warns=None)
    assert eio.probe(data)["width"] == 44


# --- batch ----------------------------------------------------------------------------------------------------------

def test_preprocess_lists_warnings_and_strict_refuses():
    clean, warned = encoded_rgb(28, 28, "PNG"), _junk_before_dqt(3)
    result = eio.preprocess([clean, warned, clean])
    assert result.image_grid_thw.shape == (3, 3) and not result.skipped
    assert len(result.warnings) == 1 and result.warnings[0][0] == 1
    assert "image 1" in result.warnings[0][1] and "3 extraneous bytes" in result.warnings[0][1]
    strict = eio.preprocess([clean, warned], strict=True, on_error="skip")
    assert [i for i, _ in strict.skipped] == [1] and not strict.warnings

"""Test images for tests/io: encoded with Pillow in every colour mode the pipeline must treat like Pillow."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image


def photo(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth-plus-noise RGB uint8 image: compresses like a photo, exercises every pixel value range."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([127 + 100 * np.sin(x / (7 + seed % 5)), 127 + 100 * np.cos(y / 11.0),
                     127 + 100 * np.sin((x + y) / 17.0)], axis=-1)
    return np.clip(base + rng.normal(0, 25, base.shape), 0, 255).astype(np.uint8)


def encode(image: Image.Image, fmt: str, **params) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **params)
    return buf.getvalue()


def encoded_rgb(height: int, width: int, fmt: str, seed: int = 0) -> bytes:
    params = {"JPEG": {"quality": 90}, "WEBP": {"quality": 85}}.get(fmt, {})
    return encode(Image.fromarray(photo(height, width, seed)), fmt, **params)


def mode_variants(seed: int = 0) -> dict[str, bytes]:
    """One file per (format, colour mode) case, named "<format>-<case>"."""
    rgb = Image.fromarray(photo(37, 53, seed))
    rng = np.random.default_rng(seed)
    alpha = Image.fromarray(rng.integers(0, 256, (37, 53), dtype=np.uint8))
    rgba = rgb.copy()
    rgba.putalpha(alpha)
    gray = rgb.convert("L")
    palette = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=37)
    palette_trns = palette.copy()
    palette_trns.info["transparency"] = 5
    gray_trns = gray.copy()
    rgb_trns = rgb.copy()
    rgb16 = np.asarray(rgb).astype(np.uint16) * 257 + rng.integers(0, 257, (37, 53, 3)).astype(np.uint16)
    gray16 = rng.integers(0, 65536, (37, 53), dtype=np.uint16)
    gray16[:5] = rng.integers(0, 256, (5, 53))  # values below 256 take the I;16 -> RGB path without clamping
    cases = {
        "PNG-rgb": encode(rgb, "PNG"),
        "PNG-rgba": encode(rgba, "PNG"),
        "PNG-gray": encode(gray, "PNG"),
        "PNG-la": encode(Image.merge("LA", (gray, alpha)), "PNG"),
        "PNG-palette": encode(palette, "PNG"),
        "PNG-palette-trns": encode(palette_trns, "PNG", transparency=5),
        "PNG-gray-trns": encode(gray_trns, "PNG", transparency=int(np.asarray(gray)[0, 0])),
        "PNG-rgb-trns": encode(rgb_trns, "PNG", transparency=tuple(int(v) for v in np.asarray(rgb)[0, 0])),
        "PNG-1bit": encode(gray.convert("1"), "PNG"),
        "PNG-gray16": encode(Image.fromarray(gray16), "PNG"),
        "PNG-interlaced": _interlaced_png(rgb),
        "PNG-rgb16": _png16(rgb16),
        "PNG-rgb16-trns-low": _png16(rgb16 // 257, trns=tuple(int(v) for v in (rgb16 // 257)[0, 0])),
        "PNG-rgb16-trns-high": _png16(rgb16, trns=tuple(int(v) for v in rgb16[0, 0])),
        "PNG-gray2-trns": _png_gray_lowbit(rng.integers(0, 4, (37, 53)), 2, trns=1),
        "PNG-gray4-trns": _png_gray_lowbit(rng.integers(0, 16, (37, 53)), 4, trns=3),
        "PNG-gray4-trns0": _png_gray_lowbit(rng.integers(0, 16, (37, 53)), 4, trns=0),
        "PNG-gray1-trns": _png_gray_lowbit(rng.integers(0, 2, (37, 53)), 1, trns=1),
        "PNG-gray2": _png_gray_lowbit(rng.integers(0, 4, (37, 53)), 2),
        "JPEG-rgb": encode(rgb, "JPEG", quality=90),
        "JPEG-gray": encode(gray, "JPEG", quality=90),
        "JPEG-cmyk": encode(rgb.convert("CMYK"), "JPEG", quality=90),
        "JPEG-progressive": encode(rgb, "JPEG", quality=90, progressive=True),
        "JPEG-444": encode(rgb, "JPEG", quality=95, subsampling=0),
        "WEBP-lossy": encode(rgb, "WEBP", quality=80),
        "WEBP-lossless": encode(rgb, "WEBP", lossless=True),
        "WEBP-rgba-lossy": encode(rgba, "WEBP", quality=80),
        "WEBP-rgba-lossless": encode(rgba, "WEBP", lossless=True),
    }
    return cases


def _png16(rgb16: np.ndarray, trns: tuple[int, int, int] | None = None) -> bytes:
    """16-bit RGB PNG (Pillow cannot write one), optionally with a tRNS colour key: filter type 0 on every row."""
    h, w, _ = rgb16.shape
    raw = b"".join(b"\x00" + rgb16[y].astype(">u2").tobytes() for y in range(h))
    extra = png_chunk(b"tRNS", struct.pack(">HHH", *trns)) if trns is not None else b""
    return png_file(struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0), zlib.compress(raw), extra)


def _png_gray_lowbit(values: np.ndarray, depth: int, trns: int | None = None) -> bytes:
    """1/2/4-bit grayscale PNG from sample values, optionally with a tRNS key (Pillow cannot write these)."""
    h, w = values.shape
    raw = b""
    for row in values:
        bits = "".join(format(int(v), f"0{depth}b") for v in row)
        bits += "0" * (-len(bits) % 8)
        raw += b"\x00" + int(bits, 2).to_bytes(len(bits) // 8, "big")
    extra = png_chunk(b"tRNS", struct.pack(">H", trns)) if trns is not None else b""
    return png_file(struct.pack(">IIBBBBB", w, h, depth, 0, 0, 0, 0), zlib.compress(raw), extra)


def _interlaced_png(rgb: Image.Image) -> bytes:
    """Adam7-interlaced 8-bit RGB PNG (Pillow does not write interlaced PNGs)."""
    a = np.asarray(rgb)
    h, w, _ = a.shape
    passes = [(0, 0, 8, 8), (0, 4, 8, 8), (4, 0, 8, 4), (0, 2, 4, 4), (2, 0, 4, 2), (0, 1, 2, 2), (1, 0, 2, 1)]
    raw = b""
    for y0, x0, dy, dx in passes:
        sub = a[y0::dy, x0::dx]
        if sub.size == 0:
            continue
        raw += b"".join(b"\x00" + sub[y].tobytes() for y in range(sub.shape[0]))

    return png_file(struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 1), zlib.compress(raw))


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_file(ihdr: bytes, idat: bytes, extra: bytes = b"") -> bytes:
    """A PNG from its IHDR payload, compressed IDAT payload and optional pre-IDAT chunks."""
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + extra + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")

"""The path-keyed preprocessing cache: a batch of paths is read, header-checked and preprocessed in one native call,
a rejected header or a body that fails to decode is one image's outcome, and decoder warnings belong to their image."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

import evoquality.io as eio
from evoquality.io import pipeline
from io_helpers import encoded_rgb

pytestmark = pytest.mark.skipif(not eio.native_available(), reason="native extension not built")

from evoquality.io import NativeQwen2VLImageProcessor  # noqa: E402
from evoquality.io.preprocess_cache import CachedImageProcessor  # noqa: E402


def png_with_bad_idat_crc(width: int, height: int) -> bytes:
    """A PNG whose header is sound and whose IDAT CRC is wrong: the probe accepts it, the decoder refuses the body."""
    data = bytearray(encoded_rgb(width, height, "PNG"))
    start = data.index(b"IDAT") - 4
    length = struct.unpack(">I", data[start : start + 4])[0]
    crc = start + 8 + length
    data[crc : crc + 4] = struct.pack(">I", zlib.crc32(bytes(data[start + 4 : crc])) ^ 1)
    return bytes(data)


def png_with_extra_compressed_data(width: int, height: int) -> bytes:
    """An RGB PNG whose IDAT carries bytes after the zlib stream: decoded, with the warning "Extra compressed data"."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    raw = b"".join(b"\x00" + bytes([80, 0, 0]) * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw) + b"\x00" * 16) + chunk(b"IEND", b""))


@pytest.fixture
def files(tmp_path):
    blobs = {"a.jpg": encoded_rgb(70, 50, "JPEG"), "b.png": encoded_rgb(33, 90, "PNG", seed=2),
             "corrupt.png": png_with_bad_idat_crc(40, 40), "warned.png": png_with_extra_compressed_data(30, 20),
             "thin.png": encoded_rgb(2, 402, "PNG"), "text.png": b"not an image at all"}
    for name, blob in blobs.items():
        (tmp_path / name).write_bytes(blob)
    return {name: str(tmp_path / name) for name in blobs}


def test_prepare_rejects_per_image_and_keeps_the_others_exact(files, monkeypatch):
    calls = []
    real = pipeline.preprocess
    monkeypatch.setattr(pipeline, "preprocess", lambda images, **k: calls.append(len(images)) or real(images, **k))
    cache = CachedImageProcessor(NativeQwen2VLImageProcessor())
    found = cache.prepare(files.values())
    rejected = {name: found[path].rejected for name, path in files.items() if found[path].rejected}
    assert set(rejected) == {"corrupt.png", "thin.png", "text.png"}
    assert rejected["thin.png"].startswith("aspect ratio 402x2")  # the header check: never decoded
    assert rejected["text.png"].startswith("unreadable:")
    assert rejected["corrupt.png"] == ("unreadable: ImageError: PNG decode failed: IDAT chunk at byte 33 has a "
                                       "wrong CRC (corrupt image data)")
    # The messages are the image's own, as decoding it alone gives them (not its place in the batch).
    assert found[files["warned.png"]].warning == "IDAT: Extra compressed data" and not found[files["a.jpg"]].warning
    # One batch of the 4 sound headers failed on the corrupt body; each image was then retried alone.
    assert calls == [4, 1, 1, 1, 1]
    good = [files["a.jpg"], files["b.png"], files["warned.png"]]
    alone = NativeQwen2VLImageProcessor()(good)
    np.testing.assert_array_equal(cache(good)["pixel_values"], alone["pixel_values"])
    assert cache.computed == 3 and cache.reused == 3


def test_prepare_is_one_native_call_for_sound_images(files, monkeypatch):
    calls = []
    real = pipeline.preprocess
    monkeypatch.setattr(pipeline, "preprocess", lambda images, **k: calls.append(list(images)) or real(images, **k))
    cache = CachedImageProcessor(NativeQwen2VLImageProcessor())
    paths = [files["a.jpg"], files["b.png"], files["a.jpg"]]
    assert all(not p.rejected and not p.warning for p in cache.prepare(paths).values())
    assert len(calls) == 1 and len(calls[0]) == 2 and all(isinstance(x, bytes) for x in calls[0])
    cache([paths[0], paths[1]]), cache.prepare(paths)  # all cached: no further call
    assert len(calls) == 1

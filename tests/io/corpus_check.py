"""Runs the native decoder over a folder of third-party images and compares it with Pillow + transformers'
convert_to_rgb (the reference path of transformers' PIL image processor).

Per file, one outcome:
- "match": both decode, pixels identical (Pillow default, or Pillow's LOAD_TRUNCATED_IMAGES mode where only that
  one decodes: our lenient mode is that mode);
- "mismatch": both decode, pixels differ (a bug);
- "refused": we refuse a file Pillow decodes (a bug, unless `expected_refusal` names a reason Pillow does not check);
- "refused_expected": as above, for a reason in `expected_refusal` (a PNG image-data checksum error, a chunk that
  claims more bytes than the whole file);
- "both_refuse", "pillow_refuses" (we decode what Pillow does not even in truncated mode: reported, not a bug),
  "crash" (an exception other than ImageDecodeError).

    python tests/io/corpus_check.py DIR   # prints the tally and every file that is not a match / both-refuse
"""

from __future__ import annotations

import io
import math
import os
import struct
import sys
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile

import evoquality.io as eio
from evoquality.io.reference import to_rgb_array

BUGS = ("mismatch", "refused", "crash")


def _max_image_data(data: bytes) -> float:
    """The most bytes a zlib stream of the image data can take (stored blocks), from IHDR; 0 without one."""
    if len(data) < 29 or data[12:16] != b"IHDR":
        return 0.0
    width, height, depth, color = struct.unpack(">IIBB", data[16:26])
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(color, 4)
    raw = (math.ceil(width * channels * depth / 8) + 1 + 7) * height
    return raw + 5 * math.ceil(raw / 16383) + 64


def expected_refusal(data: bytes) -> str | None:
    """Why a reader must refuse a PNG that Pillow decodes, or None: an IDAT whose CRC is wrong (Pillow does not
    check it, PngSuite's xcs*/crc files say reject) or a chunk longer than the file and than any image data could be
    (a file cut inside its image data is a truncated download instead: lenient mode keeps the partial image)."""
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return None
    p = 8
    while p + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[p:p + 8])
        if length > len(data) and (kind != b"IDAT" or length > _max_image_data(data)):
            return f"{kind!r} chunk of {length} bytes in a {len(data)}-byte file"
        end = p + 8 + length
        if end + 4 > len(data):
            return None  # a truncated file: lenient mode keeps what was decoded
        if kind == b"IDAT" and zlib.crc32(data[p + 4:end]) != struct.unpack(">I", data[end:end + 4])[0]:
            return "IDAT checksum error"
        if kind == b"IEND":
            return None
        p = end + 4
    return None


def pillow_rgb(data: bytes, truncated: bool) -> np.ndarray | None:
    old = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = truncated
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.format not in ("JPEG", "PNG", "WEBP", "MPO"):
                return None
            im.load()
            return to_rgb_array(im)
    except Exception:  # Pillow's whole zoo (OSError, SyntaxError, ValueError, DecompressionBombError, ...)
        return None
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = old


def check_file(data: bytes, strict: bool = False) -> tuple[str, str]:
    """(outcome, detail) for one file; see the module docstring."""
    try:
        ours = eio.decode(data, strict=strict)
        error = ""
    except eio.ImageDecodeError as exc:
        ours, error = None, str(exc)
    except Exception as exc:  # noqa: BLE001 - anything else is the finding
        return "crash", f"{type(exc).__name__}: {exc}"
    want = pillow_rgb(data, truncated=False)
    if want is None and (ours is not None or not strict):
        want = pillow_rgb(data, truncated=True)
    if ours is None:
        if want is None:
            return "both_refuse", error
        reason = expected_refusal(data)
        return ("refused_expected", f"{reason}; ours: {error}") if reason else ("refused", error)
    if want is None:
        return "pillow_refuses", f"{ours.shape}"
    if ours.shape != want.shape or not np.array_equal(ours, want):
        diff = "shape" if ours.shape != want.shape else f"{int((ours != want).any(-1).sum())} pixels"
        return "mismatch", f"ours {ours.shape} vs Pillow {want.shape}: {diff} differ"
    return "match", ""


def run_corpus(root: Path, strict: bool = False) -> tuple[Counter, dict[str, tuple[str, str]]]:
    """Tally of outcomes over every image file under `root` and the per-file (outcome, detail)."""
    results = {}
    for path in sorted(Path(root).rglob("*")):
        if path.is_file() and path.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp"):
            results[str(path.relative_to(root))] = check_file(path.read_bytes(), strict)
    return Counter(outcome for outcome, _ in results.values()), results


def main() -> None:
    root = Path(sys.argv[1])
    tally, results = run_corpus(root, strict=os.environ.get("EVQ_STRICT") == "1")
    for name, (outcome, detail) in sorted(results.items()):
        if outcome not in ("match", "both_refuse"):
            print(f"{outcome:16s} {name}: {detail}")
    print(dict(tally))


if __name__ == "__main__":
    main()

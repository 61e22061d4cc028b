"""Reading image files for the model: the one loader of labelling, training and evaluation.

JPEG/PNG/WebP go through `evoquality.io` (the native decoder: header-first size limits, hostile input fails
cleanly, pixels identical to Pillow's) when the extension is built; other formats, or an install without the
extension, use Pillow. A bad image is a reported skip, never a crash: `load_image` raises `ImageRejected` with a
reason, the caller drops the image's pairs and counts it in the summary. An image the decoder recovered (a JPEG
ending early, PNG data cut short: what Pillow and transformers accept) is used, as transformers would, and its
warning is in `decode_warning(image)` for the summary to count.

`image_input` is the same check without the decode, for callers that hand the image to the processor: it reads the
file and its header (size, aspect and format limits) and returns the encoded bytes, which the native batch
preprocess then decodes and resizes in one go (`io.preprocess_cache`); a body that fails to decode is found there.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from pathlib import Path

from PIL import Image

# Larger images are rejected rather than decoded: a 100-Mpixel photo costs ~300 MB decoded and the processor
# downsizes it to at most a few Mpixels anyway. Pillow's own bomb limit (~89 Mpx) would only warn below 2x that.
DEFAULT_MAX_PIXELS = 40_000_000
# Qwen2-VL's smart_resize raises beyond this aspect ratio; rejecting here keeps one image from failing a batch.
MAX_ASPECT = 200
_NATIVE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


# Key of the decoder's warning in a loaded image's PIL `info` dict (absent when the decode was clean).
DECODE_WARNING_KEY = "evoquality_decode_warning"


def decode_warning(image) -> str:
    """The warning the native decoder gave for a `load_image` result ('' when clean or not a PIL image)."""
    return getattr(image, "info", {}).get(DECODE_WARNING_KEY, "")


class ImageRejected(Exception):
    """An image that cannot be used: the message is the reason shown in the summary."""


def _check_size(w: int, h: int, max_pixels: int) -> None:
    if w * h > max_pixels:
        raise ImageRejected(f"oversized: {w}x{h} = {w * h} pixels > max_image_pixels={max_pixels}")
    if w < 1 or h < 1:
        raise ImageRejected(f"empty image {w}x{h}")
    if max(w, h) > MAX_ASPECT * min(w, h):
        raise ImageRejected(f"aspect ratio {w}x{h} exceeds {MAX_ASPECT}:1 (the Qwen2-VL processor rejects it)")


def load_image(path: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode `path` to an RGB PIL image, fully (so truncated files fail here, not inside the model)."""
    from evoquality.io import native_available

    if native_available() and Path(path).suffix.lower() in _NATIVE_SUFFIXES:
        return _load_native(path, max_pixels)
    return _load_pillow(path, max_pixels)


def image_input(path: str, max_pixels: int = DEFAULT_MAX_PIXELS):
    """What the image processor should get for `path`: its encoded bytes once the header passed the limits (formats
    the native decoder reads, extension built), else the image decoded by Pillow (`load_image`). Raises
    `ImageRejected` with the reason."""
    from evoquality.io import native_available

    if native_available() and Path(path).suffix.lower() in _NATIVE_SUFFIXES:
        with _unreadable_is_rejected():
            return _read_checked(path, max_pixels)
    return _load_pillow(path, max_pixels)


@contextmanager
def _unreadable_is_rejected():
    try:
        yield
    except ImageRejected:
        raise
    except (OSError, ValueError) as e:  # io.ImageDecodeError is a ValueError
        raise ImageRejected(f"unreadable: {type(e).__name__}: {e}") from None


def _read_checked(path: str, max_pixels: int) -> bytes:
    """The file's bytes, once the native decoder read its header and the size limits passed."""
    from evoquality import io

    with open(path, "rb") as f:
        data = f.read()
    # Probe without a limit so an oversized image gets the same message as on the Pillow path.
    info = io.probe(data, max_image_pixels=2**62)
    _check_size(int(info["width"]), int(info["height"]), max_pixels)
    return data


def _load_native(path: str, max_pixels: int) -> Image.Image:
    from evoquality import io

    with _unreadable_is_rejected():
        rgb, warning = io.decode(_read_checked(path, max_pixels), max_image_pixels=max_pixels, return_warning=True)
    image = Image.fromarray(rgb)
    if warning:
        image.info[DECODE_WARNING_KEY] = warning
    return image


def _load_pillow(path: str, max_pixels: int) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                _check_size(*im.size, max_pixels)
                rgb = im.convert("RGB")
                rgb.load()
                return rgb
    except ImageRejected:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageRejected(f"unreadable: {type(e).__name__}: {e}") from None

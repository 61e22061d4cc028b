"""Loading one pool image for the model — the single seam to swap in `evoquality.io` when it lands.

A bad image is a reported skip, never a crash: `load_image` raises `ImageRejected` with a reason, the caller drops
the image's pairs and counts it in the summary.
"""

from __future__ import annotations

import warnings

from PIL import Image

# Larger images are rejected rather than decoded: a 100-Mpixel photo costs ~300 MB decoded and the processor
# downsizes it to at most a few Mpixels anyway. Pillow's own bomb limit (~89 Mpx) would only warn below 2x that.
DEFAULT_MAX_PIXELS = 40_000_000

# Qwen2-VL's smart_resize raises beyond this aspect ratio; rejecting here keeps one image from failing a batch.
MAX_ASPECT = 200


class ImageRejected(Exception):
    """An image that cannot be used: the message is the reason shown in the summary."""


def load_image(path: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode `path` to an RGB PIL image, fully (so truncated files fail here, not inside the model)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                w, h = im.size
                if w * h > max_pixels:
                    raise ImageRejected(f"oversized: {w}x{h} = {w * h} pixels > max_image_pixels={max_pixels}")
                if w < 1 or h < 1:
                    raise ImageRejected(f"empty image {w}x{h}")
                if max(w, h) > MAX_ASPECT * min(w, h):
                    raise ImageRejected(f"aspect ratio {w}x{h} exceeds {MAX_ASPECT}:1 (the Qwen2-VL processor rejects it)")
                rgb = im.convert("RGB")
                rgb.load()
                return rgb
    except ImageRejected:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageRejected(f"unreadable: {type(e).__name__}: {e}") from None

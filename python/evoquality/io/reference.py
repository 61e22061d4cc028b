"""Pure Pillow + numpy reference of the image pipeline: the readable spec the native path is tested against.

It follows transformers' PIL-backend ``Qwen2VLImageProcessorPil`` step by step (decode with Pillow, ``convert_to_rgb``
with alpha composited onto white, ``smart_resize``, Pillow BICUBIC, float64 rescale then float32 normalise,
patchify in (gh/m, gw/m, m, m) x (C, T, P, P) order), one image at a time. Slow by design.
"""

from __future__ import annotations

import io
from typing import Sequence

import numpy as np
from PIL import Image, ImageOps

from evoquality.io.errors import ImageDecodeError

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
# Pillow raises DecompressionBombError above twice Image.MAX_IMAGE_PIXELS.
DEFAULT_MAX_IMAGE_PIXELS = 178_956_970


def to_rgb_array(image: Image.Image) -> np.ndarray:
    """PIL image -> (H, W, 3) uint8, as transformers' ``convert_to_rgb``: transparency composited onto white."""
    if "A" in image.getbands() or image.info.get("transparency") is not None:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(background, rgba).convert("RGB"))
    return np.asarray(image.convert("RGB"))


def decode_ref(data: bytes, *, apply_exif_orientation: bool = False,
               max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> np.ndarray:
    """Encoded bytes -> (H, W, 3) uint8 through Pillow. Raises ImageDecodeError with Pillow's reason."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.format not in ("JPEG", "PNG", "WEBP"):
                raise ImageDecodeError(f"unsupported image format {im.format}: expected JPEG, PNG or WebP")
            if im.width * im.height > max_image_pixels:
                raise ImageDecodeError(f"image of {im.width}x{im.height} exceeds max_image_pixels={max_image_pixels}")
            im.load()
            if apply_exif_orientation:
                im = ImageOps.exif_transpose(im)
            return to_rgb_array(im)
    except ImageDecodeError:
        raise
    except Exception as exc:  # Pillow raises OSError, SyntaxError, DecompressionBombError, ...
        raise ImageDecodeError(f"Pillow could not decode the image: {exc}") from exc


def smart_resize_ref(height: int, width: int, factor: int = 28, min_pixels: int = 56 * 56,
                     max_pixels: int = 28 * 28 * 1280) -> tuple[int, int]:
    """transformers' own smart_resize (the spec itself, not a copy)."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

    return smart_resize(height, width, factor=factor, min_pixels=min_pixels, max_pixels=max_pixels)


def resize_ref(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """(H, W, 3) uint8 -> (height, width, 3) uint8 with Pillow's BICUBIC."""
    return np.asarray(Image.fromarray(rgb).resize((width, height), Image.Resampling.BICUBIC))


def patchify_ref(rgb: np.ndarray, *, patch_size: int = 14, temporal_patch_size: int = 2, merge_size: int = 2,
                 image_mean: Sequence[float] = OPENAI_CLIP_MEAN, image_std: Sequence[float] = OPENAI_CLIP_STD,
                 rescale_factor: float = 1 / 255) -> tuple[np.ndarray, tuple[int, int, int]]:
    """(H, W, 3) uint8 with H, W multiples of patch_size*merge_size -> ((gh*gw, 3*T*P*P) float32, (1, gh, gw))."""
    h, w, c = rgb.shape
    x = (rgb.astype(np.float64) * rescale_factor).astype(np.float32)  # transformers' rescale: float64, then down
    x = (x - np.asarray(image_mean, np.float32)) / np.asarray(image_std, np.float32)
    x = x.transpose(2, 0, 1)  # (C, H, W)
    gh, gw, m, p = h // patch_size, w // patch_size, merge_size, patch_size
    x = x.reshape(c, gh // m, m, p, gw // m, m, p).transpose(1, 4, 2, 5, 0, 3, 6)  # (gh/m, gw/m, m, m, C, P, P)
    x = np.broadcast_to(x[:, :, :, :, :, None], (*x.shape[:5], temporal_patch_size, p, p))
    return np.ascontiguousarray(x.reshape(gh * gw, c * temporal_patch_size * p * p)), (1, gh, gw)


def preprocess_ref(images: Sequence[bytes | np.ndarray], *, min_pixels: int = 56 * 56,
                   max_pixels: int = 28 * 28 * 1280, patch_size: int = 14, temporal_patch_size: int = 2,
                   merge_size: int = 2, image_mean: Sequence[float] = OPENAI_CLIP_MEAN,
                   image_std: Sequence[float] = OPENAI_CLIP_STD) -> tuple[np.ndarray, np.ndarray]:
    """Encoded bytes or (H, W, 3) uint8 arrays -> (pixel_values (N, 3*T*P*P) float32, image_grid_thw (B, 3))."""
    patches, grids = [], []
    for image in images:
        rgb = image if isinstance(image, np.ndarray) else decode_ref(image)
        h, w = smart_resize_ref(rgb.shape[0], rgb.shape[1], patch_size * merge_size, min_pixels, max_pixels)
        if (h, w) != rgb.shape[:2]:
            rgb = resize_ref(rgb, h, w)
        p, grid = patchify_ref(rgb, patch_size=patch_size, temporal_patch_size=temporal_patch_size,
                               merge_size=merge_size, image_mean=image_mean, image_std=image_std)
        patches.append(p)
        grids.append(grid)
    return np.concatenate(patches), np.asarray(grids, dtype=np.int64)

"""Python face of the native pipeline: decode, resize and the batch ``preprocess`` to Qwen2.5-VL inputs.

Inputs are encoded bytes (any contiguous byte buffer), ``str``/``os.PathLike`` paths, PIL images or (H, W, 3)
uint8 arrays. Decoding, resizing and patchifying run in C++ on a thread pool with the GIL released; results are
bit-identical to transformers' ``Qwen2VLImageProcessorPil`` (``approx=True`` trades that for speed on JPEG).
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from evoquality import _backend
from evoquality.io.reference import DEFAULT_MAX_IMAGE_PIXELS, OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, to_rgb_array

DTYPES = ("float32", "bfloat16", "uint8")


def _native():
    ext = _backend.native_extension()
    if ext is None:
        raise RuntimeError("evoquality._native is not built; reinstall with `pip install .` (needs libturbojpeg, "
                           "libpng and libwebp development packages) or use evoquality.io.reference")
    return ext


PASS_ORDERS = ("pillow13", "horizontal_first")


@functools.lru_cache(maxsize=None)
def installed_pillow_pass_order() -> str:
    """The resize pass order of the installed Pillow, which the transformers PIL path uses: Pillow 13 sometimes
    runs the vertical pass first, Pillow <= 12 never does (the results differ in the last bit). Without Pillow:
    Pillow 13's."""
    try:
        major = int(importlib.metadata.version("pillow").split(".")[0])
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return "pillow13"
    return "pillow13" if major >= 13 else "horizontal_first"


def _pass_order(pass_order: str | None) -> str:
    if pass_order is None:
        return installed_pillow_pass_order()
    if pass_order not in PASS_ORDERS:
        raise ValueError(f"pass_order must be one of {PASS_ORDERS} or None, got {pass_order!r}")
    return pass_order


def native_available() -> bool:
    return _backend.native_extension() is not None


def default_num_threads() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


def probe(data, *, max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS, strict: bool = False) -> dict[str, Any]:
    """Header facts without decoding: {'format': 'JPEG'|'PNG'|'WebP', 'width', 'height', 'orientation' (EXIF 1..8),
    'warning' (a header warning the codec recovered from, e.g. "extraneous bytes before marker"; '' when clean)}.
    strict: such a warning raises instead."""
    return _native().probe(data, max_image_pixels, strict)


def decode(data, *, max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS, strict: bool = False,
           apply_exif_orientation: bool = False, return_warning: bool = False):
    """Encoded JPEG/PNG/WebP bytes -> (H, W, 3) uint8 RGB, equal to Pillow's decode + transformers' convert_to_rgb.

    Lenient by default, as Pillow: data the codec recovers from (a JPEG ending early, extraneous bytes, a PNG tRNS
    out of range, image data cut short: Pillow's LOAD_TRUNCATED_IMAGES result) decodes, with a warning.
    strict: such warnings raise instead. return_warning: return (image, warning), warning '' when clean.
    Raises ImageDecodeError (a ValueError) naming the reason; never crashes on hostile input.
    """
    image, warning = _native().decode(data, max_image_pixels=max_image_pixels, strict=strict,
                                      apply_exif_orientation=apply_exif_orientation)
    return (image, warning) if return_warning else image


def smart_resize(height: int, width: int, factor: int = 28, min_pixels: int = 56 * 56,
                 max_pixels: int = 28 * 28 * 1280) -> tuple[int, int]:
    """Qwen2-VL's target (height, width): multiples of `factor`, area within [min_pixels, max_pixels]."""
    return tuple(_native().smart_resize(height, width, factor, min_pixels, max_pixels))


def resize_bicubic(image: np.ndarray, height: int, width: int, *, pass_order: str | None = None) -> np.ndarray:
    """(H, W, 3) uint8 -> (height, width, 3) uint8, bit-identical to Pillow's Image.resize(..., BICUBIC).

    pass_order: "pillow13" | "horizontal_first" (Pillow <= 12); None = that of the installed Pillow."""
    if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3):
        raise ValueError(f"image must be an (H, W, 3) uint8 array, got {getattr(image, 'shape', type(image))}")
    return _native().resize_bicubic(np.ascontiguousarray(image), height, width, _pass_order(pass_order))


def release_output_cache() -> int:
    """Free the output buffers ``preprocess`` keeps for reuse; returns the bytes freed.

    A fresh output of 4 MiB or more lives on a block that goes back to a small cache (the two most recently freed)
    when the array and its views die, so the next call of about the same size skips the kernel's page faults and
    zeroing of new memory (measured: more than the normalise + patchify itself in float32). Call this to hand the
    memory back once no more batches come."""
    return _native().release_output_cache()


@dataclass
class Preprocessed:
    """pixel_values: (N, 3*T*P*P) float32, or its bfloat16 bit pattern as uint16, or (N, 3*P*P) uint8 (compact:
    no temporal copy, not normalised). image_grid_thw: (B, 3) int64, one row per image that was not skipped.
    skipped: (input index, message) for each image dropped under on_error="skip". warnings: (input index, message)
    for each kept image whose decoder warned (lenient mode; see `decode`)."""

    pixel_values: np.ndarray
    image_grid_thw: np.ndarray
    dtype: str
    skipped: list[tuple[int, str]] = field(default_factory=list)
    warnings: list[tuple[int, str]] = field(default_factory=list)

    def to_torch(self):
        """(pixel_values, image_grid_thw) as torch tensors sharing memory (bfloat16 viewed from its bits)."""
        import torch

        pv = torch.from_numpy(self.pixel_values)
        if self.dtype == "bfloat16":
            pv = pv.view(torch.bfloat16)
        return pv, torch.from_numpy(self.image_grid_thw)


def flatten_images(images) -> list:
    """The images of a processor call in order: transformers and TRL nest them in lists or tuples (per sample,
    per conversation turn) to any depth; anything that is not a list or tuple is one image."""
    if isinstance(images, (list, tuple)):
        return [leaf for item in images for leaf in flatten_images(item)]
    return [images]


def _as_input(image):
    """PIL images become RGB arrays with transformers' convert_to_rgb rules; everything else passes to C++."""
    if hasattr(image, "getbands") and hasattr(image, "convert"):  # a PIL image, without importing PIL eagerly
        return np.ascontiguousarray(to_rgb_array(image))
    return image


def _out_array(out, dtype: str):
    if out is None or isinstance(out, np.ndarray):
        return out
    import torch

    if isinstance(out, torch.Tensor):
        if out.device.type != "cpu":
            raise ValueError(f"out must be a CPU tensor, got device {out.device}")
        return (out.view(torch.int16) if dtype == "bfloat16" else out).numpy()
    raise TypeError(f"out must be a numpy array or a torch tensor, got {type(out).__name__}")


def preprocess(images: Sequence, *, min_pixels: int = 56 * 56, max_pixels: int = 28 * 28 * 1280,
               patch_size: int = 14, temporal_patch_size: int = 2, merge_size: int = 2,
               image_mean: Sequence[float] = OPENAI_CLIP_MEAN, image_std: Sequence[float] = OPENAI_CLIP_STD,
               do_resize: bool = True, do_rescale: bool = True, rescale_factor: float = 1 / 255,
               do_normalize: bool = True, dtype: str = "float32", approx: bool = False, strict: bool = False,
               max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS, apply_exif_orientation: bool = False,
               num_threads: int | None = None, on_error: str = "raise", out=None,
               pass_order: str | None = None) -> Preprocessed:
    """A batch of images -> Qwen2.5-VL ``pixel_values`` and ``image_grid_thw`` in one call.

    dtype: "float32" (transformers' output, exact), "bfloat16" (round-to-nearest-even of it) or "uint8" (the
    resized pixels in patch order without temporal duplication: (N, 3*P*P), 8x fewer bytes, normalise on GPU).
    approx: JPEG DCT-domain downscale before the bicubic resize (faster, not bit-exact).
    strict: decoder warnings are errors (default: kept and listed in .warnings, see `decode`).
    on_error: "raise" (ImageDecodeError naming the first failing input) or "skip" (drop it, report in .skipped).
    out: optional caller buffer of shape (>= N, D) and matching dtype (numpy or CPU torch tensor) written in place;
    the result's pixel_values is then a view of its first N rows. Without it, a large output reuses the memory of
    one freed by an earlier call when one fits (see ``release_output_cache``).
    pass_order: the bicubic pass order to reproduce ("pillow13" | "horizontal_first"); None = the installed
    Pillow's, so the output equals transformers' PIL path in this environment.
    """
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    if isinstance(images, (bytes, bytearray, memoryview, str, os.PathLike, np.ndarray)):
        raise TypeError("images must be a sequence of images; wrap a single image in a list")
    threads = default_num_threads() if num_threads is None else int(num_threads)
    if threads < 1:
        raise ValueError(f"num_threads must be >= 1, got {num_threads}")
    pixel_values, grid, skipped, warned = _native().preprocess(
        [_as_input(im) for im in images], min_pixels=min_pixels, max_pixels=max_pixels, patch_size=patch_size,
        temporal_patch_size=temporal_patch_size, merge_size=merge_size, do_resize=do_resize, do_rescale=do_rescale,
        rescale_factor=rescale_factor, do_normalize=do_normalize, image_mean=list(image_mean),
        image_std=list(image_std), dtype=dtype, approx=approx, max_image_pixels=max_image_pixels, strict=strict,
        apply_exif_orientation=apply_exif_orientation, num_threads=threads, on_error=on_error,
        out=_out_array(out, dtype), pass_order=_pass_order(pass_order))
    return Preprocessed(pixel_values, grid, dtype, [tuple(s) for s in skipped], [tuple(w) for w in warned])

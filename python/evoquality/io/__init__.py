"""Image IO for EvoQuality: bytes/paths/PIL -> Qwen2.5-VL ``pixel_values`` through the native extension.

- ``decode``, ``probe``, ``smart_resize``, ``resize_bicubic``, ``preprocess`` (batch, threaded): the fast path,
  bit-identical to transformers' PIL-backend ``Qwen2VLImageProcessorPil``.
- ``NativeQwen2VLImageProcessor``: a drop-in image processor for Qwen2-VL / Qwen2.5-VL processors (transformers,
  TRL), imported lazily because it pulls in transformers.
- ``evoquality.io.reference``: the pure Pillow/numpy spec used by tests.
"""

from evoquality.io.errors import ImageDecodeError
from evoquality.io.pipeline import (
    DTYPES,
    Preprocessed,
    decode,
    default_num_threads,
    native_available,
    preprocess,
    probe,
    resize_bicubic,
    smart_resize,
)
from evoquality.io.reference import DEFAULT_MAX_IMAGE_PIXELS, OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

__all__ = [
    "DEFAULT_MAX_IMAGE_PIXELS", "DTYPES", "ImageDecodeError", "NativeQwen2VLImageProcessor", "OPENAI_CLIP_MEAN",
    "OPENAI_CLIP_STD", "Preprocessed", "decode", "default_num_threads", "native_available", "preprocess", "probe",
    "resize_bicubic", "smart_resize", "use_native_image_processor",
]


def __getattr__(name):
    if name in ("NativeQwen2VLImageProcessor", "use_native_image_processor"):
        from evoquality.io import processor

        return getattr(processor, name)
    raise AttributeError(f"module 'evoquality.io' has no attribute {name!r}")

"""Image IO for EvoQuality: bytes/paths/PIL -> Qwen2.5-VL ``pixel_values`` through the native extension.

- ``decode``, ``probe``, ``smart_resize``, ``resize_bicubic``, ``preprocess`` (batch, threaded): the fast path,
  bit-identical to transformers' PIL-backend ``Qwen2VLImageProcessorPil``.
- ``NativeQwen2VLImageProcessor``: a drop-in image processor for Qwen2-VL / Qwen2.5-VL processors (transformers,
  TRL), imported lazily because it pulls in transformers.
- ``evoquality.io.reference``: the pure Pillow/numpy spec used by tests.

Exactness: decode equals Pillow 13's (libjpeg-turbo accurate IDCT + fancy upsampling, libpng, libwebp) followed by
transformers' ``convert_to_rgb`` (Pillow's colour rules for L/LA/P/CMYK/I;16, alpha composited onto white);
``smart_resize`` and BICUBIC are Pillow/transformers bit for bit (the two resize passes run in the order of the
installed Pillow: 13 sometimes goes vertical-first, <= 12 never does, and the uint8 intermediate differs);
rescale/normalise reproduce transformers' float64 then float32 arithmetic through per-channel tables (looked up 64
at a time with AVX-512 VBMI where the CPU has it). ``approx=True`` decodes JPEGs at 1/2, 1/4 or 1/8 scale in the DCT
domain (the largest reduction keeping both sides >= the target) before the same resampler; measured against exact
mode on photos (uint8 output): mean |delta| 0.29 LSB at 3000x2000 -> 1M pixels, 0.46 LSB at 3000x2000 -> 200k, 0.82
LSB at 1024x768 -> 200k; p99 2-7 LSB (benchmarks/bench_image_pipeline.py reports it per run).

Safety: the header is read first; width, height >= 1 and width*height <= max_image_pixels (default 178,956,970,
Pillow's DecompressionBombError bound) are checked before any pixel buffer exists; buffer sizes are
overflow-checked; progressive JPEGs are limited to 500 scans. The contract is transformers' own: whatever Pillow +
``Qwen2VLImageProcessorPil`` accept is accepted and reproduced bit for bit, so decoding is lenient by default (a
JPEG ending early or with extraneous bytes, an out-of-range PNG tRNS, PNG image data cut short: Pillow's
LOAD_TRUNCATED_IMAGES image; an animated WebP gives its first frame) and each recovered warning is returned
(``decode(..., return_warning=True)``, ``probe()['warning']``, ``Preprocessed.warnings``) for callers to count;
``strict=True`` refuses them. PNG warnings about ancillary metadata chunks such as iCCP are ignored, as Pillow does.
A PNG whose IDAT CRC is wrong (Pillow does not check it) or with a chunk longer than the whole file, and formats
other than JPEG/PNG/WebP are refused with a reason in both modes. Every failure is an
``ImageDecodeError`` (a ValueError) naming the input and the reason; the C++ code never exits or aborts and shares
no mutable state between threads but the mutex-guarded cache of freed output buffers (``release_output_cache``).
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
    release_output_cache,
    resize_bicubic,
    smart_resize,
)
from evoquality.io.reference import DEFAULT_MAX_IMAGE_PIXELS, OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

__all__ = [
    "DEFAULT_MAX_IMAGE_PIXELS", "DTYPES", "ImageDecodeError", "NativeQwen2VLImageProcessor", "OPENAI_CLIP_MEAN",
    "OPENAI_CLIP_STD", "Preprocessed", "decode", "default_num_threads", "native_available", "preprocess", "probe",
    "release_output_cache", "resize_bicubic", "smart_resize", "use_native_image_processor",
]


def __getattr__(name):
    if name in ("NativeQwen2VLImageProcessor", "use_native_image_processor"):
        from evoquality.io import processor

        return getattr(processor, name)
    raise AttributeError(f"module 'evoquality.io' has no attribute {name!r}")

"""A Qwen2-VL / Qwen2.5-VL image processor that runs on the native pipeline.

`NativeQwen2VLImageProcessor` is transformers' `Qwen2VLImageProcessorPil` with the per-image work (decode, RGB
conversion, smart_resize, bicubic, rescale, normalise, patchify) replaced by one threaded C++ call. Outputs are
identical to the parent's (same `pixel_values` bits, same `image_grid_thw`), so it is a drop-in for the processor's
`image_processor` in transformers, TRL and EvoQuality's own loaders (`evoquality.processing.load_processor(path,
image_processor=NativeQwen2VLImageProcessor.from_pretrained(path))`).

Beyond the parent it accepts encoded bytes and local paths as images, also inside the full processor: its
`fetch_images` leaves them for the native decoder (transformers' own would open a path with Pillow, orient it by its
EXIF tag and hand the pixels back to be converted again; EvoQuality never applies EXIF orientation, as `io.load`).
Whatever it cannot run natively (a resample other than BICUBIC, float arrays, URLs, do_convert_rgb=False) goes to the
parent, paths and bytes decoded first.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from transformers.image_processing_utils import BatchFeature
from transformers.image_utils import PILImageResampling
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

from evoquality.io import pipeline
from evoquality.io.reference import DEFAULT_MAX_IMAGE_PIXELS, to_rgb_array

# Runtime settings: not part of the saved preprocessor config, so checkpoints stay loadable by stock transformers.
_RUNTIME_KEYS = ("num_threads", "strict", "max_image_pixels", "num_decode_warnings", "last_warnings")


def _is_encoded(x) -> bool:
    return isinstance(x, (bytes, bytearray, memoryview))


def _is_local_path(x) -> bool:
    if isinstance(x, os.PathLike):
        return True
    return isinstance(x, str) and not x.startswith(("http://", "https://", "data:"))


class NativeQwen2VLImageProcessor(Qwen2VLImageProcessorPil):
    """Drop-in `Qwen2VLImageProcessorPil` on the native pipeline.

    Args (beyond the parent's):
        num_threads: worker threads per call (default: the CPUs this process may use).
        strict: decoder warnings (e.g. truncated JPEG) are errors; by default they are kept, as transformers' PIL
            path does, and counted in `num_decode_warnings`.
        max_image_pixels: refuse larger images before decoding them (decompression bombs).
    """

    def __init__(self, *, num_threads: int | None = None, strict: bool = False,
                 max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS, **kwargs):
        super().__init__(**kwargs)
        if num_threads is not None and num_threads < 1:
            raise ValueError(f"num_threads must be >= 1, got {num_threads}")
        self.num_threads = num_threads
        self.strict = strict
        self.max_image_pixels = max_image_pixels
        self.num_decode_warnings = 0  # images this processor decoded with a recovered warning
        # (index among the flattened images, message) for each image of the latest call whose decoder warned: lets a
        # caller that preprocesses many images in one call attribute each warning to its image.
        self.last_warnings: list[tuple[int, str]] = []

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        for key in _RUNTIME_KEYS:
            out.pop(key, None)
        out["image_processor_type"] = "Qwen2VLImageProcessor"  # what stock transformers loads back
        return out

    def fetch_images(self, images):
        """Local paths and encoded bytes stay as they are (the native pipeline decodes them); URLs are the parent's."""
        if isinstance(images, (list, tuple)):
            return [self.fetch_images(x) for x in images]
        if _is_encoded(images) or _is_local_path(images):
            return images
        return super().fetch_images(images)

    def _native_eligible(self, kwargs: dict) -> bool:
        resample = kwargs.get("resample")
        size = kwargs.get("size")
        return (
            pipeline.native_available()
            and resample is not None and int(resample) == int(PILImageResampling.BICUBIC)
            and bool(kwargs.get("do_convert_rgb", True))
            and (not kwargs.get("do_resize") or (size is not None and size.shortest_edge and size.longest_edge))
        )

    def _to_native_input(self, image, kwargs: dict):
        """bytes / local path / PIL / uint8 array -> something `pipeline.preprocess` takes, or None."""
        if _is_encoded(image) or _is_local_path(image):
            return image
        if hasattr(image, "getbands"):  # PIL
            return np.ascontiguousarray(to_rgb_array(image))
        # numpy / torch: the parent's own conversion (RGB, channels-first), then back to (H, W, 3) if uint8.
        chw = self.process_image(image, do_convert_rgb=True, input_data_format=kwargs.get("input_data_format"))
        if chw.dtype != np.uint8 or chw.ndim != 3 or chw.shape[0] != 3:
            return None
        return np.ascontiguousarray(chw.transpose(1, 2, 0))

    def _decode(self, index: int, data) -> np.ndarray:
        if _is_local_path(data):
            data = Path(data).read_bytes()
        image, warning = pipeline.decode(data, strict=self.strict, max_image_pixels=self.max_image_pixels,
                                         return_warning=True)
        if warning:
            self.num_decode_warnings += 1
            self.last_warnings.append((index, warning))
        return image

    def _preprocess_image_like_inputs(self, images, *args, **kwargs) -> BatchFeature:
        items = pipeline.flatten_images(images)
        self.last_warnings = []
        inputs = [self._to_native_input(im, kwargs) for im in items] if self._native_eligible(kwargs) else None
        if inputs is None or any(x is None for x in inputs):
            # The parent path cannot take encoded bytes or paths: decode those first, natively.
            decoded = [self._decode(k, im) if _is_encoded(im) or _is_local_path(im) else im
                       for k, im in enumerate(items)]
            return super()._preprocess_image_like_inputs(decoded, *args, **kwargs)
        mean, std = kwargs["image_mean"], kwargs["image_std"]
        mean = [float(mean)] * 3 if np.isscalar(mean) else [float(v) for v in mean]
        std = [float(std)] * 3 if np.isscalar(std) else [float(v) for v in std]
        size = kwargs["size"]
        result = pipeline.preprocess(
            inputs, min_pixels=size.shortest_edge, max_pixels=size.longest_edge, patch_size=kwargs["patch_size"],
            temporal_patch_size=kwargs["temporal_patch_size"], merge_size=kwargs["merge_size"], image_mean=mean,
            image_std=std, do_resize=bool(kwargs["do_resize"]), do_rescale=bool(kwargs["do_rescale"]),
            rescale_factor=float(kwargs["rescale_factor"]), do_normalize=bool(kwargs["do_normalize"]),
            strict=self.strict, max_image_pixels=self.max_image_pixels, num_threads=self.num_threads)
        self.num_decode_warnings += len(result.warnings)
        self.last_warnings = list(result.warnings)
        return BatchFeature(data={"pixel_values": result.pixel_values, "image_grid_thw": result.image_grid_thw},
                            tensor_type=kwargs.get("return_tensors"))


def use_native_image_processor(processor):
    """Swap `processor.image_processor` (a Qwen2-VL PIL/torchvision image processor) for the native one with the
    same configuration; returns the processor."""
    config = processor.image_processor.to_dict()
    config.pop("image_processor_type", None)
    config.pop("processor_class", None)
    processor.image_processor = NativeQwen2VLImageProcessor(**config)
    return processor

"""Type stub of evoquality._native (csrc/module.cpp)."""

from os import PathLike
from typing import Sequence

import numpy as np
import numpy.typing as npt

DEFAULT_MAX_IMAGE_PIXELS: int

class ImageError(ValueError):
    """A corrupt, truncated, oversized or unsupported image; the message names the input and the reason."""

_Bytes = bytes | bytearray | memoryview | npt.NDArray[np.uint8]
_Input = _Bytes | str | PathLike[str] | npt.NDArray[np.uint8]

def codecs() -> dict[str, bool]: ...
def versions() -> dict[str, str]: ...
def probe(data: _Bytes, max_image_pixels: int = ..., strict: bool = False) -> dict[str, str | int]: ...
def decode(
    data: _Bytes,
    *,
    max_image_pixels: int = ...,
    strict: bool = False,
    apply_exif_orientation: bool = False,
    jpeg_scale_denom: int = 1,
) -> tuple[npt.NDArray[np.uint8], str]: ...
def patchify_isa() -> str: ...
def release_output_cache() -> int: ...
def smart_resize(
    height: int, width: int, factor: int = 28, min_pixels: int = 3136, max_pixels: int = 1003520
) -> tuple[int, int]: ...
def resize_bicubic(
    image: npt.NDArray[np.uint8], height: int, width: int, pass_order: str = "pillow13"
) -> npt.NDArray[np.uint8]: ...
def preprocess(
    inputs: Sequence[_Input],
    *,
    min_pixels: int,
    max_pixels: int,
    patch_size: int = 14,
    temporal_patch_size: int = 2,
    merge_size: int = 2,
    do_resize: bool = True,
    do_rescale: bool = True,
    rescale_factor: float = ...,
    do_normalize: bool = True,
    image_mean: Sequence[float],
    image_std: Sequence[float],
    dtype: str = "float32",
    approx: bool = False,
    max_image_pixels: int = ...,
    strict: bool = False,
    apply_exif_orientation: bool = False,
    num_threads: int = 0,
    on_error: str = "raise",
    out: np.ndarray | None = None,
    pass_order: str = "pillow13",
) -> tuple[np.ndarray, npt.NDArray[np.int64], list[tuple[int, str]], list[tuple[int, str]]]: ...

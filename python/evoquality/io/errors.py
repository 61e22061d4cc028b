"""The one exception type of the image pipeline.

With the native extension present it *is* ``evoquality._native.ImageError`` (raised from C++ with the input's
label and the reason); without it, a ValueError subclass of the same name raised by the Pillow reference path.
Either way ``except ValueError`` catches it.
"""

from __future__ import annotations

from evoquality import _backend

_ext = _backend.native_extension()

if _ext is not None:
    ImageDecodeError = _ext.ImageError
else:

    class ImageDecodeError(ValueError):  # type: ignore[no-redef]
        """A corrupt, truncated, oversized or unsupported image."""


__all__ = ["ImageDecodeError"]

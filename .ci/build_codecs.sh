#!/usr/bin/env bash
# Build the image codecs the extension links -- libjpeg-turbo (TurboJPEG API), libpng, libwebp (+ libwebpdemux) --
# from source as static, position-independent archives under PREFIX, with their pkg-config files. Pointing
# PKG_CONFIG_PATH at PREFIX/lib/pkgconfig then links them into _native itself, so a release wheel needs no codec
# library on the target machine (zlib stays the system's: libz.so.1 is on the manylinux policy's list).
#
#   .ci/build_codecs.sh PREFIX
#
# Why from source: the manylinux_2_28 images (AlmaLinux 8) ship libjpeg-turbo 1.5.3, older than the TurboJPEG 2.x
# API the decoder needs (tjGetErrorStr2, TJFLAG_LIMITSCANS), and Debian's static archives are not PIC.
# Versions: those Pillow 13's wheels bundle (libpng 1.6.58, libwebp 1.6.0) and the newest libjpeg-turbo 3.1.x,
# which keeps the 2.x API. Each is cloned at its tag and checked against the tag's commit, so a moved tag fails
# the build instead of changing what is shipped. CODEC_GIT (default https://github.com) may point at local
# mirrors laid out as <owner>/<name>.
# Needs: a C compiler, cmake >= 3.18, git, zlib headers, and NASM or Yasm on x86_64 (REQUIRE_SIMD: a build without
# the SIMD decoder would be several times slower, so it fails instead).
set -euo pipefail
PREFIX=$(mkdir -p "${1:?usage: build_codecs.sh PREFIX}" && cd "$1" && pwd)
GIT=${CODEC_GIT:-https://github.com}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/evq-codecs.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
JOBS=${CODEC_JOBS:-$(nproc)}

fetch() {  # fetch OWNER/NAME TAG COMMIT -> prints the source directory
  local repo=$1 tag=$2 commit=$3 dir="$WORK/src/${1#*/}"
  git -c advice.detachedHead=false clone -q --depth 1 --branch "$tag" "$GIT/$repo" "$dir" >&2
  local got; got=$(git -C "$dir" rev-parse HEAD)
  if [ "$got" != "$commit" ]; then
    echo "[build_codecs] $repo $tag is commit $got, expected $commit" >&2
    exit 1
  fi
  echo "$dir"
}

build() {  # build NAME SOURCE_DIR CMAKE_ARGS...
  local name=$1 src=$2; shift 2
  echo "[build_codecs] $name"
  cmake -S "$src" -B "$WORK/build/$name" -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$PREFIX" \
    -DCMAKE_INSTALL_LIBDIR=lib -DCMAKE_POSITION_INDEPENDENT_CODE=ON -DCMAKE_PREFIX_PATH="$PREFIX" "$@" >/dev/null
  cmake --build "$WORK/build/$name" -j "$JOBS" >/dev/null
  cmake --install "$WORK/build/$name" >/dev/null
}

build libjpeg-turbo "$(fetch libjpeg-turbo/libjpeg-turbo 3.1.4.1 9217719d3a58633923b096af4c1d50d304768a64)" \
  -DENABLE_SHARED=OFF -DENABLE_STATIC=ON -DWITH_TURBOJPEG=ON -DWITH_JAVA=OFF -DREQUIRE_SIMD=ON
build libpng "$(fetch pnggroup/libpng v1.6.58 3061454d980de7d53608f594194cfac722721d2a)" \
  -DPNG_SHARED=OFF -DPNG_STATIC=ON -DPNG_TESTS=OFF -DPNG_TOOLS=OFF
build libwebp "$(fetch webmproject/libwebp v1.6.0 4fa21912338357f89e4fd51cf2368325b59e9bd9)" \
  -DBUILD_SHARED_LIBS=OFF -DWEBP_BUILD_ANIM_UTILS=OFF -DWEBP_BUILD_CWEBP=OFF -DWEBP_BUILD_DWEBP=OFF \
  -DWEBP_BUILD_GIF2WEBP=OFF -DWEBP_BUILD_IMG2WEBP=OFF -DWEBP_BUILD_VWEBP=OFF -DWEBP_BUILD_WEBPINFO=OFF \
  -DWEBP_BUILD_WEBPMUX=OFF -DWEBP_BUILD_EXTRAS=OFF

# Only static archives may be found: a shared copy here would be linked instead and then missed by the wheel.
if ls "$PREFIX"/lib/*.so* >/dev/null 2>&1; then
  echo "[build_codecs] shared libraries in $PREFIX/lib: $(ls "$PREFIX"/lib/*.so*)" >&2
  exit 1
fi
for pc in libturbojpeg libpng16 libwebp libwebpdemux; do
  PKG_CONFIG_PATH="$PREFIX/lib/pkgconfig" pkg-config --exists "$pc" || { echo "[build_codecs] no $pc.pc" >&2; exit 1; }
done
echo "[build_codecs] done: PKG_CONFIG_PATH=$PREFIX/lib/pkgconfig"

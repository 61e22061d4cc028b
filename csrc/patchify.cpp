#include "patchify.h"

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace evq {
namespace {

// float32 -> bfloat16 with round-to-nearest-even, as torch's Tensor.to(torch.bfloat16) (inputs here are finite).
inline uint16_t to_bf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  bits += 0x7FFFu + ((bits >> 16) & 1u);
  return uint16_t(bits >> 16);
}

// The output is written once and read only by the consumer (often many MB per image): non-temporal stores skip
// the read-for-ownership of each destination line and keep the cache for the input.
inline void stream_copy(void* dst, const void* src, size_t bytes) {
#if defined(__SSE2__)
  if ((reinterpret_cast<uintptr_t>(dst) & 15) == 0) {
    auto* d = static_cast<__m128i*>(dst);
    auto* s = static_cast<const __m128i*>(src);
    size_t n = bytes / 16;
    for (size_t i = 0; i < n; ++i) _mm_stream_si128(d + i, _mm_loadu_si128(s + i));
    std::memcpy(static_cast<char*>(dst) + n * 16, static_cast<const char*>(src) + n * 16, bytes - n * 16);
    return;
  }
#endif
  std::memcpy(dst, src, bytes);
}

inline void stream_fence() {
#if defined(__SSE2__)
  _mm_sfence();  // order the streaming stores before the caller reads or hands out the buffer
#endif
}

// Works one band of patch_size image rows at a time: the band is first converted to channel-planar values through
// the per-channel table (sequential reads, one lookup per byte), then every patch of the band is assembled from
// contiguous P-value runs with memcpy. Output rows are written in Qwen2-VL's (h/m, w/m, m, m) order.
template <typename T>
void write_patches(const uint8_t* rgb, int width, int height, const PatchSpec& s, const T (*lut)[256], T* out,
                   int temporal) {
  const int P = s.patch_size, M = s.merge_size;
  const int gh = height / P, gw = width / P;
  const size_t row_stride = size_t(width) * 3;
  const size_t block = size_t(P) * P;  // one (c, t) plane of a patch
  const size_t dim = 3 * size_t(temporal) * block;
  std::vector<T> planes(3 * size_t(P) * width);  // [c][py][x]
  std::vector<T> scratch(dim);                     // one output row, assembled in cache
  for (int y = 0; y < gh; ++y) {
    const int bh = y / M, mh = y % M;
    for (int py = 0; py < P; ++py) {
      const uint8_t* src = rgb + size_t(y * P + py) * row_stride;
      T* p0 = planes.data() + size_t(py) * width;
      T* p1 = p0 + size_t(P) * width;
      T* p2 = p1 + size_t(P) * width;
      for (int x = 0; x < width; ++x) {
        p0[x] = lut[0][src[3 * x]];
        p1[x] = lut[1][src[3 * x + 1]];
        p2[x] = lut[2][src[3 * x + 2]];
      }
    }
    for (int x = 0; x < gw; ++x) {
      const int bw = x / M, mw = x % M;
      const size_t row = ((size_t(bh) * (gw / M) + bw) * M + mh) * M + mw;
      // uint8 rows (588 B) are too small and unaligned for streaming: written in place.
      T* patch = sizeof(T) == 1 ? out + row * dim : scratch.data();
      for (int c = 0; c < 3; ++c) {
        const T* plane = planes.data() + size_t(c) * P * width + size_t(x) * P;
        T* first = patch + size_t(c) * temporal * block;
        for (int py = 0; py < P; ++py) std::memcpy(first + size_t(py) * P, plane + size_t(py) * width, P * sizeof(T));
        // Temporal copies of a still image are identical (transformers broadcasts the frame).
        for (int t = 1; t < temporal; ++t) std::memcpy(first + t * block, first, block * sizeof(T));
      }
      if (sizeof(T) > 1) stream_copy(out + row * dim, patch, dim * sizeof(T));
    }
  }
  stream_fence();
}

}  // namespace

int64_t patch_dim(const PatchSpec& s, OutDtype d) {
  const int64_t t = d == OutDtype::Uint8 ? 1 : s.temporal_patch_size;
  return 3 * t * s.patch_size * s.patch_size;
}

void patchify(const uint8_t* rgb, int width, int height, const PatchSpec& s, OutDtype d, void* out) {
  const int f = s.patch_size * s.merge_size;
  if (width % f != 0 || height % f != 0) {
    throw ImageError("patchify: image size " + std::to_string(width) + "x" + std::to_string(height) +
                     " is not a multiple of patch_size*merge_size=" + std::to_string(f));
  }
  if (d == OutDtype::Uint8) {
    uint8_t lut[3][256];
    for (int c = 0; c < 3; ++c)
      for (int u = 0; u < 256; ++u) lut[c][u] = uint8_t(u);
    write_patches<uint8_t>(rgb, width, height, s, lut, static_cast<uint8_t*>(out), 1);
    return;
  }
  float lut[3][256];
  for (int c = 0; c < 3; ++c) {
    const float m = float(s.mean[c]), sd = float(s.std[c]);
    for (int u = 0; u < 256; ++u) {
      float x = s.do_rescale ? float(double(u) * s.rescale_factor) : float(u);
      if (s.do_normalize) x = (x - m) / sd;
      lut[c][u] = x;
    }
  }
  if (d == OutDtype::Float32) {
    write_patches<float>(rgb, width, height, s, lut, static_cast<float*>(out), s.temporal_patch_size);
    return;
  }
  uint16_t lut16[3][256];
  for (int c = 0; c < 3; ++c)
    for (int u = 0; u < 256; ++u) lut16[c][u] = to_bf16(lut[c][u]);
  write_patches<uint16_t>(rgb, width, height, s, lut16, static_cast<uint16_t*>(out), s.temporal_patch_size);
}

}  // namespace evq

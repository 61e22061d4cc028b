#include "patchify.h"

#include <algorithm>
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

// Writes a byte stream to consecutive output addresses with non-temporal stores of whole, aligned 64-byte lines
// only; the unaligned head and the final tail use ordinary stores. The output is written once and read only by
// the consumer (often many MB per image): streaming skips the read-for-ownership of each line and keeps the cache
// for the input (ordinary stores measured ~1.5x slower here). Whole lines: numpy's large buffers start 16 bytes
// into a page, so rows do not start on lines; a line is never streamed in two pieces, and a line shared with the
// neighbouring image's rows (written by another thread) only ever gets ordinary stores.
class LineStreamer {
 public:
  explicit LineStreamer(void* dst) : dst_(static_cast<char*>(dst)) {
    head_ = (64 - (reinterpret_cast<uintptr_t>(dst_) & 63)) & 63;
  }
  void put(const void* data, size_t bytes) {
    auto* src = static_cast<const char*>(data);
    if (head_ > 0) {  // ordinary stores up to the first line boundary
      const size_t k = std::min(head_, bytes);
      std::memcpy(dst_, src, k);
      dst_ += k, src += k, bytes -= k, head_ -= k;
    }
    if (pending_ > 0) {
      const size_t k = std::min(64 - pending_, bytes);
      std::memcpy(line_ + pending_, src, k);
      pending_ += k, src += k, bytes -= k;
      if (pending_ < 64) return;
      stream_line(line_);
      pending_ = 0;
    }
    for (; bytes >= 64; src += 64, bytes -= 64) stream_line(src);
    std::memcpy(line_, src, bytes);
    pending_ = bytes;
  }
  void finish() {
    std::memcpy(dst_, line_, pending_);
    pending_ = 0;
#if defined(__SSE2__)
    _mm_sfence();  // order the streaming stores before the caller reads or hands out the buffer
#endif
  }

 private:
  void stream_line(const char* src) {
#if defined(__SSE2__)
    auto* d = reinterpret_cast<__m128i*>(dst_);
    auto* s = reinterpret_cast<const __m128i*>(src);
    _mm_stream_si128(d, _mm_loadu_si128(s));
    _mm_stream_si128(d + 1, _mm_loadu_si128(s + 1));
    _mm_stream_si128(d + 2, _mm_loadu_si128(s + 2));
    _mm_stream_si128(d + 3, _mm_loadu_si128(s + 3));
#else
    std::memcpy(dst_, src, 64);
#endif
    dst_ += 64;
  }

  char* dst_;
  size_t head_ = 0;
  char line_[64];
  size_t pending_ = 0;
};

// Output rows come in Qwen2-VL's (h/m, w/m, m, m) order, so the output is written front to back: the rows of one
// merge band (m patch rows of the image) are contiguous. Each row is assembled in an L1-resident scratch row, one
// table lookup per input byte straight from the interleaved RGB (frame 0 only: the temporal copies of a still image
// are identical, copied from it), then streamed out.
template <typename T>
void write_patches(const uint8_t* rgb, int width, int height, const PatchSpec& s, const T (*lut)[256], T* out,
                   int temporal) {
  const int P = s.patch_size, M = s.merge_size;
  const int gh = height / P, gw = width / P;
  const size_t row_stride = size_t(width) * 3;
  const size_t block = size_t(P) * P;  // one (c, t) plane of a patch
  const size_t dim = 3 * size_t(temporal) * block;
  std::vector<T> scratch(dim);
  LineStreamer stream(out);
  for (int bh = 0; bh < gh / M; ++bh) {
    for (int bw = 0; bw < gw / M; ++bw) {
      // A merge block reads m*P rows a whole image row apart: more streams than the hardware prefetcher follows.
      // Ask for the next-but-one block's bytes now, so they arrive before the lookups need them.
      if (bw + 2 < gw / M) {
        const uint8_t* ahead = rgb + size_t(bh * M * P) * row_stride + size_t((bw + 2) * M * P) * 3;
        const size_t span = size_t(M) * P * 3;
        for (int r = 0; r < M * P; ++r, ahead += row_stride)
          for (size_t off = 0; off < span + 63; off += 64) __builtin_prefetch(ahead + std::min(off, span - 1));
      }
      for (int mh = 0; mh < M; ++mh) {
        for (int mw = 0; mw < M; ++mw) {
          const uint8_t* src = rgb + size_t((bh * M + mh) * P) * row_stride + size_t((bw * M + mw) * P) * 3;
          T* d0 = scratch.data();
          T* d1 = d0 + temporal * block;
          T* d2 = d1 + temporal * block;
          for (int py = 0; py < P; ++py, src += row_stride, d0 += P, d1 += P, d2 += P) {
            for (int px = 0; px < P; ++px) {
              if constexpr (sizeof(T) == 1) {  // the compact layout keeps the bytes
                d0[px] = src[3 * px];
                d1[px] = src[3 * px + 1];
                d2[px] = src[3 * px + 2];
              } else {
                d0[px] = lut[0][src[3 * px]];
                d1[px] = lut[1][src[3 * px + 1]];
                d2[px] = lut[2][src[3 * px + 2]];
              }
            }
          }
          for (int c = 0; c < 3; ++c) {
            T* frame0 = scratch.data() + size_t(c) * temporal * block;
            for (int t = 1; t < temporal; ++t) std::memcpy(frame0 + t * block, frame0, block * sizeof(T));
          }
          stream.put(scratch.data(), dim * sizeof(T));
        }
      }
    }
  }
  stream.finish();
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
    write_patches<uint8_t>(rgb, width, height, s, nullptr, static_cast<uint8_t*>(out), 1);
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

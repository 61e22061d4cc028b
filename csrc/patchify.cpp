#include "patchify.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>
#if defined(__x86_64__)
#include <immintrin.h>
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

// Fills the M*M output rows of merge block (bh, bw), frame 0 of every channel, one table lookup per input byte
// straight from the interleaved RGB.
template <typename T>
void fill_block_scalar(const uint8_t* rgb, size_t row_stride, const PatchSpec& s, const T (*lut)[256], int bh,
                       int bw, size_t frame, size_t block, T* rows) {
  const int P = s.patch_size, M = s.merge_size;
  for (int mh = 0; mh < M; ++mh) {
    for (int mw = 0; mw < M; ++mw) {
      const uint8_t* src = rgb + size_t((bh * M + mh) * P) * row_stride + size_t((bw * M + mw) * P) * 3;
      T* d0 = rows + size_t(mh * M + mw) * frame;
      T* d1 = d0 + block;
      T* d2 = d1 + block;
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
    }
  }
}

#if defined(__x86_64__)
#define EVQ_VBMI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vbmi")))

// AVX-512 VBMI path for M = 2 and an even P <= 16 (Qwen2-VL's 14, Qwen3-VL's 16), two image rows of a merge block
// (2 x 2P pixels) at a time: one vpermt2b + one masked vpermb gather a channel's bytes of both rows into a 64-byte
// vector, looked up through the 256-entry table held as byte planes (vpermi2b over 128 entries twice, blended on
// the index's top bit) and re-interleaved into T values: four run slots of 16 lanes, P used, for (row, patch)
// (0,0), (0,1), (1,0), (1,1). Which lane lands in which slot is read off lookup_store itself (vbmi_tables), so the
// gather indices follow the unpack order without a hand-derived table.
template <typename T>
struct VbmiTables {
  alignas(64) uint8_t planes[3][sizeof(T)][256];  // byte b of lut[c][u] at planes[c][b][u]
  alignas(64) uint8_t gather_ac[3][64];           // lane -> byte of row 0 (< 64) or 64 + byte of row 1 (< 64)
  alignas(64) uint8_t gather_e[3][64];            // lane -> byte of the tails vector (row 0 at 0, row 1 at 32)
  uint64_t from_e[3];                              // lanes taken from the tails vector
};

EVQ_VBMI inline __m512i lookup_plane(__m512i idx, const uint8_t* plane) {
  const __m512i lo = _mm512_permutex2var_epi8(_mm512_load_si512(plane), idx, _mm512_load_si512(plane + 64));
  const __m512i hi = _mm512_permutex2var_epi8(_mm512_load_si512(plane + 128), idx, _mm512_load_si512(plane + 192));
  return _mm512_mask_blend_epi8(_mm512_movepi8_mask(idx), lo, hi);
}

// Looks the 64 lanes of `idx` up in one channel's planes; stores elements [0, P) of run slot s to run[s].
template <typename T>
EVQ_VBMI inline void lookup_store(__m512i idx, const uint8_t (*planes)[256], __mmask16 m, T* const* run) {
  if constexpr (sizeof(T) == 1) {
    _mm_mask_storeu_epi8(run[0], m, _mm512_extracti32x4_epi32(idx, 0));
    _mm_mask_storeu_epi8(run[1], m, _mm512_extracti32x4_epi32(idx, 1));
    _mm_mask_storeu_epi8(run[2], m, _mm512_extracti32x4_epi32(idx, 2));
    _mm_mask_storeu_epi8(run[3], m, _mm512_extracti32x4_epi32(idx, 3));
  } else if constexpr (sizeof(T) == 2) {
    const __m512i b0 = lookup_plane(idx, planes[0]), b1 = lookup_plane(idx, planes[1]);
    const __m512i h0 = _mm512_unpacklo_epi8(b0, b1), h1 = _mm512_unpackhi_epi8(b0, b1);
    _mm256_mask_storeu_epi16(run[0], m, _mm512_extracti64x4_epi64(h0, 0));
    _mm256_mask_storeu_epi16(run[1], m, _mm512_extracti64x4_epi64(h0, 1));
    _mm256_mask_storeu_epi16(run[2], m, _mm512_extracti64x4_epi64(h1, 0));
    _mm256_mask_storeu_epi16(run[3], m, _mm512_extracti64x4_epi64(h1, 1));
  } else {
    const __m512i b0 = lookup_plane(idx, planes[0]), b1 = lookup_plane(idx, planes[1]);
    const __m512i b2 = lookup_plane(idx, planes[2]), b3 = lookup_plane(idx, planes[3]);
    const __m512i u0 = _mm512_unpacklo_epi8(b0, b1), u1 = _mm512_unpackhi_epi8(b0, b1);
    const __m512i u2 = _mm512_unpacklo_epi8(b2, b3), u3 = _mm512_unpackhi_epi8(b2, b3);
    _mm512_mask_storeu_epi32(run[0], m, _mm512_unpacklo_epi16(u0, u2));
    _mm512_mask_storeu_epi32(run[1], m, _mm512_unpackhi_epi16(u0, u2));
    _mm512_mask_storeu_epi32(run[2], m, _mm512_unpacklo_epi16(u1, u3));
    _mm512_mask_storeu_epi32(run[3], m, _mm512_unpackhi_epi16(u1, u3));
  }
}

template <typename T>
EVQ_VBMI void vbmi_tables(const T (*lut)[256], int P, VbmiTables<T>* t) {
  for (int c = 0; c < 3; ++c)
    for (int u = 0; u < 256; ++u) {
      const T v = lut != nullptr ? lut[c][u] : T(u);
      for (size_t b = 0; b < sizeof(T); ++b) t->planes[c][b][u] = reinterpret_cast<const uint8_t*>(&v)[b];
    }
  // Probe: lane q holds q, an identity table puts q in the low byte of whatever slot element lane q reaches.
  alignas(64) uint8_t identity[sizeof(T)][256] = {};
  alignas(64) uint8_t lanes[64];
  for (int u = 0; u < 256; ++u) identity[0][u] = uint8_t(u);
  for (int q = 0; q < 64; ++q) lanes[q] = uint8_t(q);
  T probe[4][16];
  T* const slots[4] = {probe[0], probe[1], probe[2], probe[3]};
  lookup_store<T>(_mm512_load_si512(lanes), identity, __mmask16(0xFFFF), slots);
  for (int c = 0; c < 3; ++c) {
    t->from_e[c] = 0;
    for (int s = 0; s < 4; ++s) {
      for (int k = 0; k < 16; ++k) {
        uint8_t q;
        std::memcpy(&q, &probe[s][k], 1);  // the low byte (little-endian x86)
        const int row = s / 2, pixel = (s % 2) * P + std::min(k, P - 1), byte = 3 * pixel + c;
        if (byte < 64) {
          t->gather_ac[c][q] = uint8_t(byte + 64 * row);
          t->gather_e[c][q] = 0;
        } else {
          t->gather_ac[c][q] = 0;
          t->gather_e[c][q] = uint8_t(byte - 64 + 32 * row);
          t->from_e[c] |= uint64_t(1) << q;
        }
      }
    }
  }
}

template <typename T>
EVQ_VBMI void fill_block_vbmi(const uint8_t* rgb, size_t row_stride, int P, const VbmiTables<T>& t, int bh, int bw,
                              size_t frame, size_t block, T* rows) {
  // Bytes of one merge-block row (6P <= 96): the first 64 in one vector per row, the rest in the tails vector.
  const int span = 2 * P * 3;
  const __mmask64 head = span >= 64 ? ~__mmask64(0) : (__mmask64(1) << span) - 1;
  const __mmask64 tail = span > 64 ? (__mmask64(1) << (span - 64)) - 1 : 0;
  const __mmask16 m = __mmask16((1u << P) - 1);
  for (int mh = 0; mh < 2; ++mh) {
    for (int py = 0; py < P; py += 2) {
      const uint8_t* r0 = rgb + size_t((bh * 2 + mh) * P + py) * row_stride + size_t(bw) * span;
      const uint8_t* r1 = r0 + row_stride;
      const __m512i a = _mm512_maskz_loadu_epi8(head, r0), b = _mm512_maskz_loadu_epi8(head, r1);
      const __m512i e = _mm512_mask_loadu_epi8(_mm512_maskz_loadu_epi8(tail, r0 + 64), tail << 32, r1 + 32);
      for (int c = 0; c < 3; ++c) {
        __m512i idx = _mm512_permutex2var_epi8(a, _mm512_load_si512(t.gather_ac[c]), b);
        idx = _mm512_mask_permutexvar_epi8(idx, t.from_e[c], _mm512_load_si512(t.gather_e[c]), e);
        T* base = rows + size_t(mh) * 2 * frame + size_t(c) * block + size_t(py) * P;
        T* const run[4] = {base, base + frame, base + P, base + frame + P};
        lookup_store<T>(idx, t.planes[c], m, run);
      }
    }
  }
}

bool cpu_has_vbmi() {
  static const bool has = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                          __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vbmi");
  return has;
}
#endif

bool use_vbmi(const PatchSpec& s) {
#if defined(__x86_64__)
  return s.merge_size == 2 && s.patch_size % 2 == 0 && s.patch_size <= 16 &&
         std::string(patchify_isa()) == "avx512vbmi";
#else
  (void)s;
  return false;
#endif
}

// Output rows come in Qwen2-VL's (h/m, w/m, m, m) order, so the output is written front to back: the rows of one
// merge block are contiguous. Frame 0 of each (patch, channel) plane is assembled in an L1-resident scratch and
// streamed out once per temporal frame (a still image's frames are identical copies).
template <typename T>
void write_patches(const uint8_t* rgb, int width, int height, const PatchSpec& s, const T (*lut)[256], T* out,
                   int temporal) {
  const int P = s.patch_size, M = s.merge_size;
  const int gh = height / P, gw = width / P;
  const size_t row_stride = size_t(width) * 3;
  const size_t block = size_t(P) * P;  // one (c, t) plane of a patch
  const size_t frame = 3 * block;      // frame 0 of one output row: its channels' planes
  std::vector<T> rows(size_t(M) * M * frame);
#if defined(__x86_64__)
  std::unique_ptr<VbmiTables<T>> vbmi;
  if (use_vbmi(s)) {
    vbmi = std::make_unique<VbmiTables<T>>();
    vbmi_tables<T>(lut, P, vbmi.get());
  }
#endif
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
#if defined(__x86_64__)
      if (vbmi) {
        fill_block_vbmi<T>(rgb, row_stride, P, *vbmi, bh, bw, frame, block, rows.data());
      } else {
        fill_block_scalar<T>(rgb, row_stride, s, lut, bh, bw, frame, block, rows.data());
      }
#else
      fill_block_scalar<T>(rgb, row_stride, s, lut, bh, bw, frame, block, rows.data());
#endif
      if (temporal == 1) {  // the scratch is the output layout (uint8 always)
        stream.put(rows.data(), rows.size() * sizeof(T));
        continue;
      }
      for (int r = 0; r < M * M; ++r) {
        for (int c = 0; c < 3; ++c) {
          const T* plane = rows.data() + size_t(r) * frame + size_t(c) * block;
          for (int t = 0; t < temporal; ++t) stream.put(plane, block * sizeof(T));
        }
      }
    }
  }
  stream.finish();
}

}  // namespace

const char* patchify_isa() {
  const char* forced = std::getenv("EVQ_NATIVE_ISA");
  if (forced != nullptr && std::string(forced) == "scalar") return "scalar";
#if defined(__x86_64__)
  if (cpu_has_vbmi()) return "avx512vbmi";
#endif
  return "scalar";
}

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

// Bit-exactness notes: coefficients are computed in double exactly as Pillow's Resample.c (same expression order;
// the build passes -ffp-contract=off so no FMA changes the rounding), then rounded to int32 with 22 fractional
// bits. Accumulation is in int32 as in Pillow (|sum| < 2^31 is guaranteed by the 2 guard bits), so any summation
// order gives the same integers; that freedom is what lets the loops below be reordered for SIMD.
#include "resize.h"

#include <cmath>
#include <algorithm>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif
#include <cstring>
#include <string>

namespace evq {

namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;

inline double bicubic_filter(double x) {
  constexpr double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

inline uint8_t clip8(int v) {
  v >>= kPrecisionBits;  // arithmetic shift, as Pillow's clip8 lookup index
  return uint8_t(v < 0 ? 0 : (v > 255 ? 255 : v));
}

// Horizontal pass: rows [row0, row0 + rows) of `src` into `dst` (out_w x rows).
// Rows are processed kRows at a time: the block is first interleaved column-wise (for each input x: kRows pixels,
// 3*kRows bytes contiguous), so that every filter tap becomes one multiply-add over 3*kRows int32 lanes with a
// single coefficient, a loop of fixed length the compiler turns into straight SIMD code.
constexpr int kRows = 8;
constexpr int kLanes = 3 * kRows;

void horizontal_block_scalar(const uint8_t* cols, uint8_t* const* out_rows, int nrows, int out_w, const Taps& t) {
  for (int x = 0; x < out_w; ++x) {
    const int xmin = t.bounds[2 * x], n = t.bounds[2 * x + 1];
    const int32_t* k = &t.coeffs[size_t(x) * t.ksize];
    int32_t acc[kLanes];
    for (int l = 0; l < kLanes; ++l) acc[l] = 1 << (kPrecisionBits - 1);
    const uint8_t* c = cols + size_t(xmin) * kLanes;
    for (int i = 0; i < n; ++i, c += kLanes) {
      const int32_t ki = k[i];
      for (int l = 0; l < kLanes; ++l) acc[l] += c[l] * ki;
    }
    for (int r = 0; r < nrows; ++r) {
      uint8_t* o = out_rows[r] + 3 * size_t(x);
      for (int ch = 0; ch < 3; ++ch) o[ch] = clip8(acc[3 * r + ch]);
    }
  }
}

#if defined(__x86_64__) || defined(__i386__)
// Same integers as the scalar kernel: 24 int32 lanes in three AVX2 registers, exact 32-bit multiplies.
__attribute__((target("avx2")))
void horizontal_block_avx2(const uint8_t* cols, uint8_t* const* out_rows, int nrows, int out_w, const Taps& t) {
  static_assert(kLanes == 24, "the AVX2 kernel is written for 8 rows x 3 channels");
  const __m256i bias = _mm256_set1_epi32(1 << (kPrecisionBits - 1));
  alignas(32) uint8_t px[32];
  for (int x = 0; x < out_w; ++x) {
    const int xmin = t.bounds[2 * x], n = t.bounds[2 * x + 1];
    const int32_t* k = &t.coeffs[size_t(x) * t.ksize];
    __m256i a0 = bias, a1 = bias, a2 = bias;
    const uint8_t* c = cols + size_t(xmin) * kLanes;
    for (int i = 0; i < n; ++i, c += kLanes) {
      const __m256i ki = _mm256_set1_epi32(k[i]);
      const __m128i lo = _mm_loadu_si128(reinterpret_cast<const __m128i*>(c));
      const __m128i hi = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(c + 16));
      a0 = _mm256_add_epi32(a0, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(lo), ki));
      a1 = _mm256_add_epi32(a1, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(_mm_srli_si128(lo, 8)), ki));
      a2 = _mm256_add_epi32(a2, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(hi), ki));
    }
    // clip8: arithmetic shift, then saturating packs (int32 -> int16 -> uint8 clamps to [0, 255] exactly as the
    // scalar clip; |sum >> 22| < 2^15). The permutes undo the per-128-bit-lane order of the pack instructions.
    a0 = _mm256_srai_epi32(a0, kPrecisionBits);
    a1 = _mm256_srai_epi32(a1, kPrecisionBits);
    a2 = _mm256_srai_epi32(a2, kPrecisionBits);
    const __m256i p01 = _mm256_permute4x64_epi64(_mm256_packs_epi32(a0, a1), 0xD8);
    const __m256i p22 = _mm256_permute4x64_epi64(_mm256_packs_epi32(a2, a2), 0xD8);
    const __m256i bytes = _mm256_permute4x64_epi64(_mm256_packus_epi16(p01, p22), 0xD8);
    _mm256_store_si256(reinterpret_cast<__m256i*>(px), bytes);
    for (int r = 0; r < nrows; ++r) std::memcpy(out_rows[r] + 3 * size_t(x), px + 3 * r, 3);
  }
}

bool have_avx2() {
  static const bool yes = __builtin_cpu_supports("avx2");
  return yes;
}
#endif

void horizontal_block(const uint8_t* cols, uint8_t* const* out_rows, int nrows, int out_w, const Taps& t) {
#if defined(__x86_64__) || defined(__i386__)
  if (have_avx2()) return horizontal_block_avx2(cols, out_rows, nrows, out_w, t);
#endif
  horizontal_block_scalar(cols, out_rows, nrows, out_w, t);
}

void horizontal(const uint8_t* src, int in_w, int row0, int rows, uint8_t* dst, int out_w, const Taps& t) {
  const size_t in_stride = size_t(in_w) * 3, out_stride = size_t(out_w) * 3;
  std::vector<uint8_t> cols(size_t(in_w) * kLanes + 1, 0);
  for (int y = 0; y < rows; y += kRows) {
    const int nrows = std::min(kRows, rows - y);
    uint8_t* out_rows[kRows];
    const uint8_t* in_rows[kRows];
    for (int r = 0; r < nrows; ++r) {
      in_rows[r] = src + size_t(row0 + y + r) * in_stride;
      out_rows[r] = dst + size_t(y + r) * out_stride;
    }
    // Interleave: 4-byte copies (one byte too many, overwritten by the next copy; `cols` has a byte of slack)
    // except for the last pixel, whose 4th source byte may lie past the end of the image.
    uint8_t* c = cols.data();
    for (int x = 0; x < in_w - 1; ++x, c += kLanes) {
      for (int r = 0; r < nrows; ++r) std::memcpy(c + 3 * r, in_rows[r] + 3 * size_t(x), 4);
    }
    for (int r = 0; r < nrows; ++r) std::memcpy(c + 3 * r, in_rows[r] + 3 * size_t(in_w - 1), 3);
    horizontal_block(cols.data(), out_rows, nrows, out_w, t);
  }
}

// Vertical pass over whole rows: each output row is a weighted sum of input rows, which vectorises across the row.
__attribute__((target_clones("avx2", "default")))
void vertical(const uint8_t* src, int width, uint8_t* dst, int out_h, const Taps& t) {
  const size_t stride = size_t(width) * 3;
  std::vector<int32_t> acc(stride);
  for (int y = 0; y < out_h; ++y) {
    const int ymin = t.bounds[2 * y], n = t.bounds[2 * y + 1];
    const int32_t* k = &t.coeffs[size_t(y) * t.ksize];
    int32_t* a = acc.data();
    for (size_t i = 0; i < stride; ++i) a[i] = 1 << (kPrecisionBits - 1);
    for (int j = 0; j < n; ++j) {
      const uint8_t* row = src + size_t(ymin + j) * stride;
      const int32_t kj = k[j];
      for (size_t i = 0; i < stride; ++i) a[i] += row[i] * kj;
    }
    uint8_t* out = dst + size_t(y) * stride;
    for (size_t i = 0; i < stride; ++i) out[i] = clip8(a[i]);
  }
}

}  // namespace

ResizeTarget smart_resize(int64_t height, int64_t width, int factor, int64_t min_pixels, int64_t max_pixels) {
  if (height < 1 || width < 1) {
    throw ImageError("smart_resize: height and width must be >= 1, got " + std::to_string(height) + "x" +
                     std::to_string(width));
  }
  if (factor < 1) throw ImageError("smart_resize: factor must be >= 1, got " + std::to_string(factor));
  const double ratio = double(std::max(height, width)) / double(std::min(height, width));
  if (ratio > 200) {
    throw ImageError("absolute aspect ratio must be smaller than 200, got " + std::to_string(ratio) + " (" +
                     std::to_string(width) + "x" + std::to_string(height) + ")");
  }
  const double h = double(height), w = double(width), f = double(factor);
  int64_t h_bar = int64_t(std::nearbyint(h / f)) * factor;
  int64_t w_bar = int64_t(std::nearbyint(w / f)) * factor;
  if (h_bar * w_bar > max_pixels) {
    const double beta = std::sqrt(double(height * width) / double(max_pixels));
    h_bar = std::max<int64_t>(factor, int64_t(std::floor(h / beta / f)) * factor);
    w_bar = std::max<int64_t>(factor, int64_t(std::floor(w / beta / f)) * factor);
  } else if (h_bar * w_bar < min_pixels) {
    const double beta = std::sqrt(double(min_pixels) / double(height * width));
    h_bar = int64_t(std::ceil(h * beta / f)) * factor;
    w_bar = int64_t(std::ceil(w * beta / f)) * factor;
  }
  if (h_bar > 0x7FFFFFFF || w_bar > 0x7FFFFFFF) throw ImageError("smart_resize: target size overflows int32");
  return {int(h_bar), int(w_bar)};
}

Taps bicubic_taps(int in_size, int out_size) {
  if (in_size < 1 || out_size < 1) throw ImageError("resize: sizes must be >= 1");
  const float in0 = 0.0f, in1 = float(in_size);  // Pillow's box is float
  const double scale = double(in1 - in0) / out_size;
  const double filterscale = scale < 1.0 ? 1.0 : scale;
  const double support = 2.0 * filterscale;
  Taps t;
  t.ksize = int(std::ceil(support)) * 2 + 1;
  t.bounds.resize(size_t(out_size) * 2);
  t.coeffs.assign(checked_mul(size_t(out_size), size_t(t.ksize), "resize taps"), 0);
  std::vector<double> k(t.ksize);
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = in0 + (xx + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    int xmin = int(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = int(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      const double w = bicubic_filter((x + xmin - center + 0.5) * ss);
      k[x] = w;
      ww += w;
    }
    for (int x = 0; x < xmax; ++x) {
      if (ww != 0.0) k[x] /= ww;
    }
    int32_t* out = &t.coeffs[size_t(xx) * t.ksize];
    for (int x = 0; x < xmax; ++x) {
      out[x] = k[x] < 0 ? int32_t(-0.5 + k[x] * (1 << kPrecisionBits)) : int32_t(0.5 + k[x] * (1 << kPrecisionBits));
    }
    t.bounds[2 * xx] = xmin;
    t.bounds[2 * xx + 1] = xmax;
  }
  return t;
}

RgbImage resize_bicubic(const uint8_t* src, int width, int height, int out_width, int out_height, PassOrder order) {
  if (width < 1 || height < 1 || out_width < 1 || out_height < 1) {
    throw ImageError("resize: input and output sizes must be >= 1, got " + std::to_string(width) + "x" +
                     std::to_string(height) + " -> " + std::to_string(out_width) + "x" + std::to_string(out_height));
  }
  RgbImage out;
  out.width = out_width;
  out.height = out_height;
  const bool need_h = out_width != width, need_v = out_height != height;
  if (!need_h && !need_v) {
    out.data.assign(src, src + size_t(width) * height * 3);
    return out;
  }
  // Pass order. Pillow <= 12 (measured: 12.0.0) always runs the horizontal pass first; Pillow 13.0 runs the vertical
  // pass first when the height shrinks and 2*(out_w - w) > out_h - h. That rule was measured against Pillow 13.0
  // over random sizes, not read from its source; tests/io re-checks it against the installed Pillow.
  const bool vertical_first = order == PassOrder::Pillow13 && need_h && need_v && out_height < height &&
                              2LL * (out_width - width) > int64_t(out_height) - height;
  out.data.resize(checked_mul(size_t(out_width) * 3, size_t(out_height), "resize output"));
  if (vertical_first) {
    Taps tv = bicubic_taps(height, out_height), th = bicubic_taps(width, out_width);
    std::vector<uint8_t> tmp(checked_mul(size_t(width) * 3, size_t(out_height), "resize buffer"));
    vertical(src, width, tmp.data(), out_height, tv);
    horizontal(tmp.data(), width, 0, out_height, out.data.data(), out_width, th);
    return out;
  }
  Taps tv;
  int first = 0, last = height;
  if (need_v) {
    tv = bicubic_taps(height, out_height);
    first = tv.bounds[0];
    last = tv.bounds[2 * out_height - 2] + tv.bounds[2 * out_height - 1];
  }
  if (!need_v) {  // horizontal only
    horizontal(src, width, 0, height, out.data.data(), out_width, bicubic_taps(width, out_width));
    return out;
  }
  // Bounds become relative to `first`: the horizontal pass produces only rows [first, last).
  for (int y = 0; y < out_height; ++y) tv.bounds[2 * y] -= first;
  if (!need_h) {  // vertical only, straight from the source rows
    vertical(src + size_t(first) * width * 3, width, out.data.data(), out_height, tv);
    return out;
  }
  std::vector<uint8_t> tmp(checked_mul(size_t(out_width) * 3, size_t(last - first), "resize buffer"));
  horizontal(src, width, first, last - first, tmp.data(), out_width, bicubic_taps(width, out_width));
  vertical(tmp.data(), out_width, out.data.data(), out_height, tv);
  return out;
}

}  // namespace evq

// Qwen2-VL's smart_resize and a bicubic resampler bit-identical to Pillow's Image.resize(..., BICUBIC).
#pragma once
#include <cstdint>
#include <vector>

#include "image.h"

namespace evq {

struct ResizeTarget {
  int height;
  int width;
};

// transformers.models.qwen2_vl.image_processing_qwen2_vl.smart_resize, with the same floating-point operations
// in the same order (Python's round() is half-to-even: std::nearbyint, not std::round). Throws ImageError for an
// aspect ratio > 200 or non-positive sizes.
ResizeTarget smart_resize(int64_t height, int64_t width, int factor, int64_t min_pixels, int64_t max_pixels);

// Pillow's fixed-point filter taps for one axis: for each output index, `bounds` = (first input index, count) and
// `ksize` int32 coefficients with PRECISION_BITS = 22 (Resample.c precompute_coeffs + normalize_coeffs_8bpc).
struct Taps {
  int ksize = 0;
  std::vector<int> bounds;
  std::vector<int32_t> coeffs;
};
Taps bicubic_taps(int in_size, int out_size);

// Which Pillow's pass order to reproduce: the order changes the clipped uint8 intermediate, hence the result.
// Pillow <= 12 always runs the horizontal pass first; Pillow 13 sometimes runs the vertical pass first.
enum class PassOrder { Pillow13, HorizontalFirst };

// Packed-RGB bicubic resize (stride 3*width) in Pillow's two passes with a clipped uint8 intermediate, in the pass
// order of `order` (see resize.cpp). Equal sizes return a copy.
RgbImage resize_bicubic(const uint8_t* src, int width, int height, int out_width, int out_height,
                        PassOrder order = PassOrder::Pillow13);

}  // namespace evq

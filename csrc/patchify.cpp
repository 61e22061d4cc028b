#include "patchify.h"

#include <cstring>
#include <string>

namespace evq {
namespace {

// float32 -> bfloat16 with round-to-nearest-even, as torch's Tensor.to(torch.bfloat16) (inputs here are finite).
inline uint16_t to_bf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  bits += 0x7FFFu + ((bits >> 16) & 1u);
  return uint16_t(bits >> 16);
}

template <typename T>
void write_patches(const uint8_t* rgb, int width, int height, const PatchSpec& s, const T (*lut)[256], T* out, int temporal) {
  const int P = s.patch_size, M = s.merge_size;
  const int gh = height / P, gw = width / P;
  const size_t row_stride = size_t(width) * 3;
  const size_t block = size_t(P) * P;  // one (c, t) plane of a patch
  T* o = out;
  for (int bh = 0; bh < gh / M; ++bh) {
    for (int bw = 0; bw < gw / M; ++bw) {
      for (int mh = 0; mh < M; ++mh) {
        for (int mw = 0; mw < M; ++mw) {
          const int y0 = (bh * M + mh) * P, x0 = (bw * M + mw) * P;
          for (int c = 0; c < 3; ++c) {
            const T* l = lut[c];
            T* plane = o;
            for (int py = 0; py < P; ++py) {
              const uint8_t* src = rgb + size_t(y0 + py) * row_stride + size_t(x0) * 3 + c;
              T* dst = plane + size_t(py) * P;
              for (int px = 0; px < P; ++px) dst[px] = l[src[3 * px]];
            }
            // Temporal copies of a still image are identical (transformers broadcasts the frame).
            for (int t = 1; t < temporal; ++t) std::memcpy(plane + t * block, plane, block * sizeof(T));
            o += block * temporal;
          }
        }
      }
    }
  }
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

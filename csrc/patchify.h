// Fused rescale + normalize + patchify into Qwen2-VL's flat patch layout.
#pragma once
#include <cstdint>

#include "image.h"

namespace evq {

enum class OutDtype { Float32, BFloat16, Uint8 };

struct PatchSpec {
  int patch_size = 14;
  int temporal_patch_size = 2;
  int merge_size = 2;
  bool do_rescale = true;
  double rescale_factor = 1.0 / 255.0;
  bool do_normalize = true;
  double mean[3] = {0.48145466, 0.4578275, 0.40821073};  // OPENAI_CLIP_MEAN
  double std[3] = {0.26862954, 0.26130258, 0.27577711};  // OPENAI_CLIP_STD
};

// Values per output row: C*T*P*P (float32/bfloat16) or C*P*P for the compact uint8 layout, which drops the
// temporal duplication (a still image's T frames are identical copies).
int64_t patch_dim(const PatchSpec& s, OutDtype d);
inline size_t dtype_size(OutDtype d) { return d == OutDtype::Float32 ? 4 : d == OutDtype::BFloat16 ? 2 : 1; }

// `rgb` is packed RGB (stride 3*width). Writes grid_h*grid_w rows of patch_dim values to `out` (row order (h/m, w/m, m, m), column order (C, T, P, P),
// as Qwen2VLImageProcessorPil.patchify). The value of an input byte u in channel c is computed as transformers
// does: float32(float64(u) * rescale_factor), then (x - float32(mean[c])) / float32(std[c]) in float32, so a
// 256-entry table per channel is exact. Requires width and height to be multiples of patch_size*merge_size.
// Two paths give the same bytes: AVX-512 VBMI (64 lookups per instruction group) where the CPU has it and
// merge_size == 2 with an even patch_size <= 16, else scalar table lookups.
void patchify(const uint8_t* rgb, int width, int height, const PatchSpec& s, OutDtype d, void* out);

// "avx512vbmi" or "scalar": the path patchify takes for the shapes the fast path covers. EVQ_NATIVE_ISA=scalar in
// the environment forces the scalar path (tests compare the two; PyTorch's ATEN_CPU_CAPABILITY works alike).
const char* patchify_isa();

}  // namespace evq

// One image from encoded bytes (or an RGB array) to Qwen2-VL patches, and a parallel batch driver.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "image.h"
#include "patchify.h"
#include "resize.h"

namespace evq {

struct PipelineOptions {
  DecodeOptions decode;
  bool do_resize = true;
  int64_t min_pixels = 56 * 56;
  int64_t max_pixels = 28 * 28 * 1280;
  PatchSpec patch;
  OutDtype dtype = OutDtype::Float32;
  // Approximate mode: JPEG DCT-domain downscale by the largest 1/2^k keeping both sides >= the target, then the
  // same bicubic resampler. Not bit-exact (see evoquality.io docs for the measured error).
  bool approx = false;
  PassOrder pass_order = PassOrder::Pillow13;  // match the Pillow that the reference transformers path uses
};

// What the header says an image will become, decided before any pixel is decoded.
struct Plan {
  int src_height = 0, src_width = 0;  // after EXIF orientation when it is applied
  int out_height = 0, out_width = 0;
  int jpeg_scale_denom = 1;
  int64_t num_patches = 0;
};

Plan plan_encoded(const uint8_t* data, size_t size, const PipelineOptions& opt);
Plan plan_array(int height, int width, const PipelineOptions& opt);
// Writes plan.num_patches rows of patch_dim values to `out`. run_encoded returns the decoder's warning (empty when
// clean; only lenient mode gets this far with one).
std::string run_encoded(const uint8_t* data, size_t size, const PipelineOptions& opt, const Plan& plan, void* out);
void run_array(const uint8_t* rgb, int height, int width, const PipelineOptions& opt, const Plan& plan, void* out);

// Runs fn(i) for i in [0, n) on `threads` workers (the calling thread included); an exception in fn(i) is
// captured as errors[i] (empty string = success). Workers share nothing mutable but the index counter.
void parallel_for(size_t n, int threads, const std::function<void(size_t)>& fn, std::vector<std::string>& errors);

// Reads a whole file, refusing anything larger than `max_bytes`.
std::vector<uint8_t> read_file(const std::string& path, size_t max_bytes);

}  // namespace evq

// The batch driver of the native image pipeline, with no Python in it: inputs (encoded bytes, file paths or RGB
// arrays) to Qwen2-VL patches on a pool of threads, one image's failure kept as a value beside the others.
//
// A batch runs in two phases so that its output can be allocated once, at its final size, between them:
// plan_batch reads files and headers and sizes every image's output; run_batch decodes, resizes, normalises and
// patchifies each image straight into its rows. Neither phase needs the caller's locks (the binding releases the
// GIL around each) and both keep going past a failed image; the caller chooses between raising first_error and
// skipping, and finish_batch closes the gaps that skipped images leave.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
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

// One input as the caller resolved it. Encoded bytes and arrays are borrowed: they must stay alive and unchanged
// until finish_batch. A path is read by a worker in plan_batch.
struct BatchInput {
  enum class Kind { Encoded, Path, Array };
  Kind kind = Kind::Encoded;
  const uint8_t* data = nullptr;  // Encoded: the file's bytes; Array: packed RGB, stride 3*width
  size_t size = 0;                // Encoded
  std::string path;               // Path
  int height = 0, width = 0;      // Array
};

// One image between the phases.
struct BatchItem {
  BatchInput input;
  std::string label;          // names the image in every message: "image 3 (path 'a.jpg')"
  std::vector<uint8_t> file;  // contents of input.path, from plan_batch until the image is written
  Plan plan;
  int64_t first_row = 0;      // where run_batch writes it: rows reserved for every image plan_batch kept
  std::string error;          // why the image failed (empty = kept)
  std::string warning;        // the decoder's warning of a kept image (lenient mode), empty when clean
};

struct Batch {
  std::vector<BatchItem> items;
  int threads = 1;
  int64_t rows = 0;  // output rows reserved by plan_batch: the planned patches of every image it kept
};

// The kept images, in input order.
struct BatchResult {
  int64_t rows = 0;                                      // rows [0, rows) of the output hold their patches
  std::vector<int64_t> grid_thw;                         // (kept images, 3), row-major
  std::vector<std::pair<size_t, std::string>> skipped;   // (index, "label: reason") of every failed image
  std::vector<std::pair<size_t, std::string>> warnings;  // (index, "label: warning") of kept images
};

// num_threads < 1 means one worker per hardware thread.
Batch make_batch(std::vector<BatchInput> inputs, int num_threads);
// Phase 1: read files, parse headers and plan every image; sets each item's plan and first_row, batch.rows and
// the errors.
void plan_batch(Batch& batch, const PipelineOptions& opt);
// "label: reason" of the lowest-index failed image, empty when none has failed.
std::string first_error(const Batch& batch);
// Phase 2: writes every planned image to its rows of `out` (batch.rows rows of patch_dim values); an image that
// fails leaves its rows unwritten and gets an error.
void run_batch(Batch& batch, const PipelineOptions& opt, void* out);
// Moves the kept images' rows up over the gaps of images that failed in run_batch, and lists what was kept.
BatchResult finish_batch(const Batch& batch, const PipelineOptions& opt, void* out);

}  // namespace evq

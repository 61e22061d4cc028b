// Output buffers of `preprocess`, kept after Python frees them and handed to the next call that fits.
//
// A fresh output is written once, but every fresh page first costs a kernel page fault and zeroing: on the 2-core
// EPYC VM that was ~2.5-3 ms per output megapixel of float32 (24 MB), more than the whole normalise + patchify into
// a buffer already in memory. A loop over batches frees one output and asks for one of about the same size, so
// reusing freed blocks removes that cost without holding more than two blocks (release_cached_out_blocks frees them).
#pragma once
#include <cstddef>

namespace evq {

// Outputs smaller than this come from numpy as before: malloc reuses small allocations itself, and a huge page
// behind a small array would multiply its resident size.
constexpr size_t kMinCachedOutBytes = size_t(4) << 20;

struct OutBlock {
  void* data = nullptr;
  size_t capacity = 0;
};

// A block of at least `bytes` (>= kMinCachedOutBytes): a cached one holding `bytes` with at most as much again to
// spare, else a new one with a quarter of headroom (untouched headroom is not resident). Throws std::bad_alloc.
OutBlock acquire_out_block(size_t bytes);
// Called when the array on the block dies: the block is cached for reuse; the two most recently released are kept.
void release_out_block(OutBlock block);
// Frees every cached block; returns the bytes freed.
size_t release_cached_out_blocks();

}  // namespace evq

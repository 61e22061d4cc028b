#include "out_buffers.h"

#include <cstdlib>
#include <mutex>
#include <new>
#include <vector>
#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace evq {
namespace {

constexpr size_t kAlign = size_t(2) << 20;  // the x86-64 huge page
constexpr size_t kMaxCached = 2;             // double buffering: one output alive while the next is written

struct Cache {
  std::mutex mu;
  std::vector<OutBlock> blocks;  // oldest first
};

// Never destroyed: numpy arrays may die during interpreter shutdown, after static destructors would have run.
Cache& cache() {
  static Cache* c = new Cache;
  return *c;
}

void free_blocks(const std::vector<OutBlock>& blocks) {
  for (const OutBlock& b : blocks) std::free(b.data);
}

}  // namespace

OutBlock acquire_out_block(size_t bytes) {
  {
    std::lock_guard<std::mutex> lock(cache().mu);
    auto& blocks = cache().blocks;
    auto best = blocks.end();
    for (auto it = blocks.begin(); it != blocks.end(); ++it) {
      if (it->capacity >= bytes && it->capacity / 2 <= bytes && (best == blocks.end() || it->capacity < best->capacity)) {
        best = it;
      }
    }
    if (best != blocks.end()) {
      OutBlock b = *best;
      blocks.erase(best);
      return b;
    }
  }
  const size_t capacity = (bytes + bytes / 4 + kAlign - 1) / kAlign * kAlign;
  OutBlock b{std::aligned_alloc(kAlign, capacity), capacity};
  if (b.data == nullptr) throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  madvise(b.data, capacity, MADV_HUGEPAGE);  // 512x fewer page faults; advisory, so a failure changes nothing
#endif
  return b;
}

void release_out_block(OutBlock block) {
  std::vector<OutBlock> evicted;
  {
    std::lock_guard<std::mutex> lock(cache().mu);
    auto& blocks = cache().blocks;
    blocks.push_back(block);
    if (blocks.size() > kMaxCached) {
      evicted.assign(blocks.begin(), blocks.end() - kMaxCached);
      blocks.erase(blocks.begin(), blocks.end() - kMaxCached);
    }
  }
  free_blocks(evicted);
}

size_t release_cached_out_blocks() {
  std::vector<OutBlock> all;
  {
    std::lock_guard<std::mutex> lock(cache().mu);
    all.swap(cache().blocks);
  }
  size_t bytes = 0;
  for (const OutBlock& b : all) bytes += b.capacity;
  free_blocks(all);
  return bytes;
}

}  // namespace evq

#include "pipeline.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <functional>
#include <new>
#include <thread>

namespace evq {

namespace {

// Files bigger than this are refused before reading (a 178 MP JPEG is far smaller).
constexpr size_t kMaxFileBytes = size_t(1) << 30;

Plan finish_plan(Plan p, const PipelineOptions& opt) {
  const int factor = opt.patch.patch_size * opt.patch.merge_size;
  if (opt.do_resize) {
    ResizeTarget t = smart_resize(p.src_height, p.src_width, factor, opt.min_pixels, opt.max_pixels);
    p.out_height = t.height;
    p.out_width = t.width;
  } else {
    if (p.src_height % factor != 0 || p.src_width % factor != 0) {
      throw ImageError("do_resize=False needs sides that are multiples of " + std::to_string(factor) + ", got " +
                       std::to_string(p.src_width) + "x" + std::to_string(p.src_height));
    }
    p.out_height = p.src_height;
    p.out_width = p.src_width;
  }
  p.num_patches = int64_t(p.out_height / opt.patch.patch_size) * (p.out_width / opt.patch.patch_size);
  return p;
}

void resize_and_patchify(RgbImage img, const PipelineOptions& opt, const Plan& plan, void* out) {
  if (img.width != plan.out_width || img.height != plan.out_height) {
    img = resize_bicubic(img.data.data(), img.width, img.height, plan.out_width, plan.out_height, opt.pass_order);
  }
  patchify(img.data.data(), img.width, img.height, opt.patch, opt.dtype, out);
}

Plan plan_encoded(const uint8_t* data, size_t size, const PipelineOptions& opt) {
  ImageInfo info = probe(data, size, opt.decode);
  Plan p;
  const bool swap = opt.decode.apply_exif_orientation && info.orientation >= 5;
  // probe() has checked both sides against 2^31 - 1 and max_image_pixels.
  p.src_height = int(swap ? info.width : info.height);
  p.src_width = int(swap ? info.height : info.width);
  p = finish_plan(p, opt);
  if (opt.approx && info.format == Format::Jpeg && opt.do_resize) {
    // TJSCALED rounds up: ceil(side / d). Keep both decoded sides >= the resize target.
    for (int d : {8, 4, 2}) {
      const int sh = (p.src_height + d - 1) / d, sw = (p.src_width + d - 1) / d;
      if (sh >= p.out_height && sw >= p.out_width) {
        p.jpeg_scale_denom = d;
        break;
      }
    }
  }
  return p;
}

Plan plan_array(int height, int width, const PipelineOptions& opt) {
  check_dimensions(width, height, opt.decode, "array");
  Plan p;
  p.src_height = height;
  p.src_width = width;
  return finish_plan(p, opt);
}

// Writes plan.num_patches rows of patch_dim values to `out`. Returns the decoder's warning (empty when clean; only
// lenient mode gets this far with one).
std::string run_encoded(const uint8_t* data, size_t size, const PipelineOptions& opt, const Plan& plan, void* out) {
  RgbImage img = decode(data, size, opt.decode, plan.jpeg_scale_denom);
  if (plan.jpeg_scale_denom == 1 && (img.height != plan.src_height || img.width != plan.src_width)) {
    throw ImageError("decoded size differs from the header's");
  }
  std::string warning = std::move(img.warning);
  resize_and_patchify(std::move(img), opt, plan, out);
  return warning;
}

void run_array(const uint8_t* rgb, int height, int width, const PipelineOptions& opt, const Plan& plan, void* out) {
  if (plan.out_height == height && plan.out_width == width) {
    patchify(rgb, width, height, opt.patch, opt.dtype, out);
    return;
  }
  RgbImage img = resize_bicubic(rgb, width, height, plan.out_width, plan.out_height, opt.pass_order);
  patchify(img.data.data(), img.width, img.height, opt.patch, opt.dtype, out);
}

// Runs fn(i) for i in [0, n) on `threads` workers (the calling thread included); an exception in fn(i) is
// captured as errors[i] (empty string = success). Workers share nothing mutable but the index counter.
void parallel_for(size_t n, int threads, const std::function<void(size_t)>& fn, std::vector<std::string>& errors) {
  errors.assign(n, std::string());
  std::atomic<size_t> next{0};
  auto worker = [&]() {
    for (size_t i = next.fetch_add(1); i < n; i = next.fetch_add(1)) {
      try {
        fn(i);
      } catch (const ImageError& e) {
        errors[i] = e.what();
      } catch (const std::bad_alloc&) {
        errors[i] = "out of memory";
      } catch (const std::exception& e) {
        errors[i] = std::string("internal error: ") + e.what();
      }
    }
  };
  const size_t nt = std::max<size_t>(1, std::min<size_t>(size_t(threads < 1 ? 1 : threads), n));
  std::vector<std::thread> pool;
  pool.reserve(nt - 1);
  for (size_t t = 1; t < nt; ++t) pool.emplace_back(worker);
  worker();
  for (auto& th : pool) th.join();
}

// Reads a whole file, refusing anything larger than `max_bytes`.
std::vector<uint8_t> read_file(const std::string& path, size_t max_bytes) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) throw ImageError(std::string("cannot open file: ") + std::strerror(errno));
  std::vector<uint8_t> buf;
  try {
    if (std::fseek(f, 0, SEEK_END) != 0) throw ImageError("cannot seek file");
    long len = std::ftell(f);
    if (len < 0) throw ImageError("cannot size file");
    if (size_t(len) > max_bytes) {
      throw ImageError("file of " + std::to_string(len) + " bytes exceeds the " + std::to_string(max_bytes) +
                       "-byte limit");
    }
    std::rewind(f);
    buf.resize(size_t(len));
    if (len > 0 && std::fread(buf.data(), 1, buf.size(), f) != buf.size()) throw ImageError("short read");
  } catch (...) {
    std::fclose(f);
    throw;
  }
  std::fclose(f);
  return buf;
}

std::string input_label(size_t i, const BatchInput& in) {
  const std::string head = "image " + std::to_string(i) + " (";
  switch (in.kind) {
    case BatchInput::Kind::Path:
      return head + "path '" + in.path + "')";
    case BatchInput::Kind::Array:
      return head + "array " + std::to_string(in.height) + "x" + std::to_string(in.width) + ")";
    case BatchInput::Kind::Encoded:
      break;
  }
  return head + std::to_string(in.size) + " bytes)";
}

}  // namespace

Batch make_batch(std::vector<BatchInput> inputs, int num_threads) {
  Batch batch;
  batch.threads = num_threads > 0 ? num_threads : int(std::max(1u, std::thread::hardware_concurrency()));
  batch.items.resize(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    BatchItem& it = batch.items[i];
    it.label = input_label(i, inputs[i]);
    it.input = std::move(inputs[i]);
  }
  return batch;
}

void plan_batch(Batch& batch, const PipelineOptions& opt) {
  std::vector<std::string> errors;
  parallel_for(batch.items.size(), batch.threads, [&](size_t i) {
    BatchItem& it = batch.items[i];
    BatchInput& in = it.input;
    if (in.kind == BatchInput::Kind::Path) {
      it.file = read_file(in.path, kMaxFileBytes);
      in.data = it.file.data();
      in.size = it.file.size();
    }
    it.plan = in.kind == BatchInput::Kind::Array ? plan_array(in.height, in.width, opt)
                                                 : plan_encoded(in.data, in.size, opt);
  }, errors);
  // Rows are reserved for every image planned here; images that fail later leave gaps that finish_batch closes.
  batch.rows = 0;
  for (size_t i = 0; i < batch.items.size(); ++i) {
    BatchItem& it = batch.items[i];
    it.error = std::move(errors[i]);
    it.first_row = batch.rows;
    if (it.error.empty()) batch.rows += it.plan.num_patches;
  }
}

std::string first_error(const Batch& batch) {
  for (const BatchItem& it : batch.items)
    if (!it.error.empty()) return it.label + ": " + it.error;
  return std::string();
}

void run_batch(Batch& batch, const PipelineOptions& opt, void* out) {
  uint8_t* base = static_cast<uint8_t*>(out);
  const size_t row_bytes = size_t(patch_dim(opt.patch, opt.dtype)) * dtype_size(opt.dtype);
  std::vector<std::string> errors;
  parallel_for(batch.items.size(), batch.threads, [&](size_t i) {
    BatchItem& it = batch.items[i];
    if (!it.error.empty()) return;
    const BatchInput& in = it.input;
    void* dst = base + size_t(it.first_row) * row_bytes;
    if (in.kind == BatchInput::Kind::Array) run_array(in.data, in.height, in.width, opt, it.plan, dst);
    else it.warning = run_encoded(in.data, in.size, opt, it.plan, dst);
    std::vector<uint8_t>().swap(it.file);  // free file bytes as soon as the image is done
  }, errors);
  for (size_t i = 0; i < batch.items.size(); ++i)
    if (!errors[i].empty()) batch.items[i].error = std::move(errors[i]);
}

BatchResult finish_batch(const Batch& batch, const PipelineOptions& opt, void* out) {
  uint8_t* base = static_cast<uint8_t*>(out);
  const size_t row_bytes = size_t(patch_dim(opt.patch, opt.dtype)) * dtype_size(opt.dtype);
  const int p = opt.patch.patch_size;
  BatchResult r;
  for (size_t i = 0; i < batch.items.size(); ++i) {
    const BatchItem& it = batch.items[i];
    if (!it.error.empty()) {
      r.skipped.emplace_back(i, it.label + ": " + it.error);
      continue;
    }
    if (!it.warning.empty()) r.warnings.emplace_back(i, it.label + ": " + it.warning);
    const int64_t rows = it.plan.num_patches;
    if (it.first_row != r.rows) {
      std::memmove(base + size_t(r.rows) * row_bytes, base + size_t(it.first_row) * row_bytes,
                   size_t(rows) * row_bytes);
    }
    r.rows += rows;
    // A still image is one temporal patch (its temporal_patch_size frames are copies of it).
    r.grid_thw.insert(r.grid_thw.end(), {1, it.plan.out_height / p, it.plan.out_width / p});
  }
  return r;
}

}  // namespace evq

#include "pipeline.h"

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <new>
#include <thread>

namespace evq {

namespace {

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

}  // namespace

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

}  // namespace evq

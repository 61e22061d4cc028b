// Python bindings of the native image pipeline (evoquality._native). Every C++ failure surfaces as
// _native.ImageError (a ValueError) whose message names the input and the reason; the GIL is released around all
// decoding and resampling.
#include <png.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <webp/decode.h>
#include <zlib.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "image.h"
#include "out_buffers.h"
#include "patchify.h"
#include "pipeline.h"
#include "resize.h"

#if __has_include(<jconfig.h>)
#include <jconfig.h>
#endif

namespace py = pybind11;
using namespace evq;

namespace {

std::string version3(unsigned v) {
  return std::to_string(v >> 16) + "." + std::to_string((v >> 8) & 0xFF) + "." + std::to_string(v & 0xFF);
}

#define EVQ_STR2(x) #x
#define EVQ_STR(x) EVQ_STR2(x)

DecodeOptions decode_options(int64_t max_image_pixels, bool strict, bool apply_exif_orientation) {
  if (max_image_pixels < 1) throw py::value_error("max_image_pixels must be >= 1, got " + std::to_string(max_image_pixels));
  DecodeOptions o;
  o.max_image_pixels = max_image_pixels;
  o.strict = strict;
  o.apply_exif_orientation = apply_exif_orientation;
  return o;
}

// Borrowed view of a bytes-like object (bytes, bytearray, memoryview, 1-D uint8 array).
struct ByteView {
  const uint8_t* data = nullptr;
  size_t size = 0;
  std::unique_ptr<py::buffer_info> keep;
};

ByteView byte_view(const py::handle& obj, const std::string& what) {
  ByteView v;
  if (PyBytes_Check(obj.ptr())) {
    char* p = nullptr;
    Py_ssize_t n = 0;
    PyBytes_AsStringAndSize(obj.ptr(), &p, &n);
    v.data = reinterpret_cast<const uint8_t*>(p);
    v.size = size_t(n);
    return v;
  }
  if (!PyObject_CheckBuffer(obj.ptr())) {
    throw py::type_error(what + " must be bytes, a buffer, a path or an (H, W, 3) uint8 array, got " +
                         std::string(py::str(py::type::of(obj).attr("__name__"))));
  }
  v.keep = std::make_unique<py::buffer_info>(py::reinterpret_borrow<py::buffer>(obj).request());
  const auto& b = *v.keep;
  if (b.itemsize != 1 || b.ndim != 1 || (b.ndim == 1 && b.strides[0] != 1)) {
    throw py::type_error(what + " must be a contiguous 1-D byte buffer, got ndim=" + std::to_string(b.ndim) +
                         " itemsize=" + std::to_string(b.itemsize));
  }
  v.data = static_cast<const uint8_t*>(b.ptr);
  v.size = size_t(b.size);
  return v;
}

PatchSpec patch_spec(int patch_size, int temporal_patch_size, int merge_size, bool do_rescale, double rescale_factor,
                     bool do_normalize, const std::vector<double>& mean, const std::vector<double>& stdv) {
  if (patch_size < 1 || temporal_patch_size < 1 || merge_size < 1) {
    throw py::value_error("patch_size, temporal_patch_size and merge_size must be >= 1");
  }
  if (mean.size() != 3 || stdv.size() != 3) {
    throw py::value_error("image_mean and image_std must have 3 values, got " + std::to_string(mean.size()) +
                          " and " + std::to_string(stdv.size()));
  }
  PatchSpec s;
  s.patch_size = patch_size;
  s.temporal_patch_size = temporal_patch_size;
  s.merge_size = merge_size;
  s.do_rescale = do_rescale;
  s.rescale_factor = rescale_factor;
  s.do_normalize = do_normalize;
  for (int c = 0; c < 3; ++c) {
    s.mean[c] = mean[c];
    s.std[c] = stdv[c];
  }
  return s;
}

PassOrder parse_pass_order(const std::string& p) {
  if (p == "pillow13") return PassOrder::Pillow13;
  if (p == "horizontal_first") return PassOrder::HorizontalFirst;
  throw py::value_error("pass_order must be 'pillow13' or 'horizontal_first', got '" + p + "'");
}

OutDtype parse_dtype(const std::string& d) {
  if (d == "float32") return OutDtype::Float32;
  if (d == "bfloat16") return OutDtype::BFloat16;
  if (d == "uint8") return OutDtype::Uint8;
  throw py::value_error("dtype must be 'float32', 'bfloat16' or 'uint8', got '" + d + "'");
}

py::dtype numpy_dtype(OutDtype d) {
  // bfloat16 travels as its uint16 bit pattern; the Python layer views it as torch.bfloat16.
  return d == OutDtype::Float32 ? py::dtype::of<float>() : d == OutDtype::BFloat16 ? py::dtype::of<uint16_t>()
                                                                                     : py::dtype::of<uint8_t>();
}

// A fresh (rows, dim) output array. Large ones live on a cached block (out_buffers.h) that goes back to the cache
// when the array and every view of it are gone.
py::array new_output(const py::dtype& dt, int64_t rows, int64_t dim) {
  const size_t bytes = size_t(rows) * size_t(dim) * size_t(dt.itemsize());
  const std::vector<py::ssize_t> shape{py::ssize_t(rows), py::ssize_t(dim)};
  if (bytes < kMinCachedOutBytes) return py::array(dt, shape);
  auto block = std::make_unique<OutBlock>(acquire_out_block(bytes));
  void* data = block->data;
  py::capsule owner(block.get(), [](void* p) {
    std::unique_ptr<OutBlock> b(static_cast<OutBlock*>(p));
    release_out_block(*b);
  });
  block.release();
  return py::array(dt, shape, std::vector<py::ssize_t>{}, data, owner);
}

// on_error='raise': the lowest-index failure so far becomes _native.ImageError (translated in PYBIND11_MODULE).
void raise_first_error(const Batch& batch) {
  const std::string error = first_error(batch);
  if (!error.empty()) throw ImageError(error);
}

// Python objects -> a Batch, the pipeline's two phases without the GIL, its results -> Python objects.
py::tuple preprocess(const py::list& inputs, int64_t min_pixels, int64_t max_pixels, int patch_size,
                     int temporal_patch_size, int merge_size, bool do_resize, bool do_rescale, double rescale_factor,
                     bool do_normalize, const std::vector<double>& image_mean, const std::vector<double>& image_std,
                     const std::string& dtype, bool approx, int64_t max_image_pixels, bool strict,
                     bool apply_exif_orientation, int num_threads, const std::string& on_error, py::object out,
                     const std::string& pass_order) {
  if (on_error != "raise" && on_error != "skip") {
    throw py::value_error("on_error must be 'raise' or 'skip', got '" + on_error + "'");
  }
  if (min_pixels < 1 || max_pixels < min_pixels) {
    throw py::value_error("need 1 <= min_pixels <= max_pixels, got min_pixels=" + std::to_string(min_pixels) +
                          " max_pixels=" + std::to_string(max_pixels));
  }
  PipelineOptions opt;
  opt.decode = decode_options(max_image_pixels, strict, apply_exif_orientation);
  opt.do_resize = do_resize;
  opt.min_pixels = min_pixels;
  opt.max_pixels = max_pixels;
  opt.patch = patch_spec(patch_size, temporal_patch_size, merge_size, do_rescale, rescale_factor, do_normalize,
                         image_mean, image_std);
  opt.dtype = parse_dtype(dtype);
  opt.approx = approx;
  opt.pass_order = parse_pass_order(pass_order);
  const int64_t dim = patch_dim(opt.patch, opt.dtype);

  // Resolved under the GIL into pointers the workers can read without it; `views` and `arrays` keep the Python
  // buffers they borrow alive until the call returns.
  const size_t n = inputs.size();
  std::vector<BatchInput> resolved(n);
  std::vector<ByteView> views(n);
  std::vector<py::buffer_info> arrays;
  arrays.reserve(n);
  py::module_ os = py::module_::import("os");
  for (size_t i = 0; i < n; ++i) {
    py::handle obj = inputs[i];
    BatchInput& in = resolved[i];
    const std::string what = "inputs[" + std::to_string(i) + "]";
    if (py::isinstance<py::str>(obj) || py::hasattr(obj, "__fspath__")) {
      py::object p = os.attr("fspath")(obj);
      if (!py::isinstance<py::str>(p)) throw py::type_error(what + ": bytes paths are not supported; pass a str");
      in.kind = BatchInput::Kind::Path;
      in.path = p.cast<std::string>();
    } else if (py::isinstance<py::array>(obj) && py::reinterpret_borrow<py::array>(obj).ndim() == 3) {
      py::array a = py::reinterpret_borrow<py::array>(obj);
      if (!a.dtype().is(py::dtype::of<uint8_t>()) || a.shape(2) != 3) {
        throw py::type_error(what + ": an image array must be (H, W, 3) uint8, got shape (" +
                             std::to_string(a.shape(0)) + ", " + std::to_string(a.shape(1)) + ", " +
                             std::to_string(a.shape(2)) + ") dtype " + std::string(py::str(a.dtype())));
      }
      if (!(a.flags() & py::array::c_style)) throw py::value_error(what + ": image array must be C-contiguous");
      if (a.shape(0) > 0x7FFFFFFF || a.shape(1) > 0x7FFFFFFF) throw py::value_error(what + ": image array too large");
      arrays.push_back(a.request());
      in.kind = BatchInput::Kind::Array;
      in.data = static_cast<const uint8_t*>(arrays.back().ptr);
      in.height = int(a.shape(0));
      in.width = int(a.shape(1));
    } else {
      views[i] = byte_view(obj, what);
      in.kind = BatchInput::Kind::Encoded;
      in.data = views[i].data;
      in.size = views[i].size;
    }
  }
  Batch batch = make_batch(std::move(resolved), num_threads);

  {
    py::gil_scoped_release release;
    plan_batch(batch, opt);
  }
  if (on_error == "raise") raise_first_error(batch);

  // The output: a fresh array, or rows [0, batch.rows) of the caller's buffer.
  const int64_t total = batch.rows;
  py::array result;
  if (out.is_none()) {
    result = new_output(numpy_dtype(opt.dtype), total, dim);
  } else {
    if (!py::isinstance<py::array>(out)) throw py::type_error("out must be a numpy array");
    py::array o = py::reinterpret_borrow<py::array>(out);
    if (o.ndim() != 2 || o.shape(1) != dim || o.shape(0) < total) {
      throw py::value_error("out must have shape (>= " + std::to_string(total) + ", " + std::to_string(dim) +
                            "), got ndim=" + std::to_string(o.ndim()) +
                            (o.ndim() == 2 ? " shape (" + std::to_string(o.shape(0)) + ", " + std::to_string(o.shape(1)) + ")" : ""));
    }
    if (size_t(o.itemsize()) != dtype_size(opt.dtype) || o.dtype().kind() != numpy_dtype(opt.dtype).kind()) {
      if (!(opt.dtype == OutDtype::BFloat16 && o.itemsize() == 2 && o.dtype().kind() == 'i')) {
        throw py::value_error("out has dtype " + std::string(py::str(o.dtype())) + ", expected " +
                              std::string(py::str(numpy_dtype(opt.dtype))) + " for dtype='" + dtype + "'");
      }
    }
    if (!(o.flags() & py::array::c_style) || !o.writeable()) throw py::value_error("out must be C-contiguous and writeable");
    result = o;
  }
  void* base = result.mutable_data();

  {
    py::gil_scoped_release release;
    run_batch(batch, opt, base);
  }
  if (on_error == "raise") raise_first_error(batch);

  const BatchResult r = finish_batch(batch, opt, base);
  py::list skipped, warned;
  for (const auto& [i, message] : r.skipped) skipped.append(py::make_tuple(i, message));
  for (const auto& [i, message] : r.warnings) warned.append(py::make_tuple(i, message));
  py::array_t<int64_t> thw({py::ssize_t(r.grid_thw.size() / 3), py::ssize_t(3)});
  std::copy(r.grid_thw.begin(), r.grid_thw.end(), thw.mutable_data());
  py::object pixel_values = result[py::slice(0, r.rows, 1)];
  return py::make_tuple(pixel_values, thw, skipped, warned);
}

py::array_t<uint8_t> to_array(RgbImage&& img) {
  auto* holder = new std::vector<uint8_t>(std::move(img.data));
  py::capsule free_when_done(holder, [](void* p) { delete static_cast<std::vector<uint8_t>*>(p); });
  return py::array_t<uint8_t>({py::ssize_t(img.height), py::ssize_t(img.width), py::ssize_t(3)}, holder->data(),
                              free_when_done);
}

}  // namespace

PYBIND11_MODULE(_native, m) {
  m.doc() = "EvoQuality native image pipeline: JPEG/PNG/WebP decode, Pillow-exact bicubic resize, Qwen2-VL patches";
  static py::exception<ImageError> image_error(m, "ImageError", PyExc_ValueError);
  image_error.doc() = "A corrupt, truncated, oversized or unsupported image (a ValueError).";
  // pybind11 maps registered C++ exceptions itself; this keeps the message (label + reason) intact.
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const ImageError& e) {
      py::set_error(image_error, e.what());
    }
  });

  m.attr("DEFAULT_MAX_IMAGE_PIXELS") = kDefaultMaxImagePixels;

  m.def("codecs", []() {
    py::dict d;
    d["jpeg"] = true;
    d["png"] = true;
    d["webp"] = true;
    return d;
  }, "Codecs this build decodes: {'jpeg': bool, 'png': bool, 'webp': bool}.");

  m.def("versions", []() {
    py::dict d;
#ifdef LIBJPEG_TURBO_VERSION
    d["libjpeg-turbo"] = EVQ_STR(LIBJPEG_TURBO_VERSION);
#endif
    d["libpng"] = png_get_libpng_ver(nullptr);
    d["libwebp"] = version3(unsigned(WebPGetDecoderVersion()));
    d["zlib"] = zlibVersion();
    return d;
  }, "Versions of the codec libraries linked into this build.");

  m.def("probe", [](py::object data, int64_t max_image_pixels, bool strict) {
    ByteView v = byte_view(data, "data");
    DecodeOptions o = decode_options(max_image_pixels, strict, false);
    ImageInfo info = probe(v.data, v.size, o);
    py::dict d;
    d["format"] = format_name(info.format);
    d["width"] = info.width;
    d["height"] = info.height;
    d["orientation"] = info.orientation;
    d["warning"] = info.warning;
    return d;
  }, py::arg("data"), py::arg("max_image_pixels") = kDefaultMaxImagePixels, py::arg("strict") = false,
  "Header facts {format, width, height, orientation, warning} without decoding pixels.");

  m.def("decode", [](py::object data, int64_t max_image_pixels, bool strict, bool apply_exif_orientation,
                     int jpeg_scale_denom) {
    ByteView v = byte_view(data, "data");
    DecodeOptions o = decode_options(max_image_pixels, strict, apply_exif_orientation);
    RgbImage img;
    {
      py::gil_scoped_release release;
      img = decode(v.data, v.size, o, jpeg_scale_denom);
    }
    std::string warning = std::move(img.warning);
    return py::make_tuple(to_array(std::move(img)), warning);
  }, py::arg("data"), py::kw_only(), py::arg("max_image_pixels") = kDefaultMaxImagePixels,
  py::arg("strict") = false, py::arg("apply_exif_orientation") = false, py::arg("jpeg_scale_denom") = 1,
  "Decode JPEG/PNG/WebP bytes to (an (H, W, 3) uint8 RGB array, the decoder's warning or '').");

  m.def("patchify_isa", []() { return std::string(patchify_isa()); },
        "The normalise+patchify path for the shapes it covers: 'avx512vbmi' or 'scalar' (EVQ_NATIVE_ISA=scalar "
        "forces the latter).");

  m.def("release_output_cache", []() { return release_cached_out_blocks(); },
        "Free the output buffers kept for reuse by later preprocess calls; returns the bytes freed.");

  m.def("smart_resize", [](int64_t height, int64_t width, int factor, int64_t min_pixels, int64_t max_pixels) {
    ResizeTarget t = smart_resize(height, width, factor, min_pixels, max_pixels);
    return py::make_tuple(t.height, t.width);
  }, py::arg("height"), py::arg("width"), py::arg("factor") = 28, py::arg("min_pixels") = 56 * 56,
  py::arg("max_pixels") = 28 * 28 * 1280);

  m.def("resize_bicubic", [](py::array_t<uint8_t, py::array::c_style> image, int height, int width,
                             const std::string& pass_order) {
    const PassOrder order = parse_pass_order(pass_order);
    if (image.ndim() != 3 || image.shape(2) != 3) throw py::value_error("image must have shape (H, W, 3)");
    if (height < 1 || width < 1) throw py::value_error("height and width must be >= 1");
    if (image.shape(0) > 0x7FFFFFFF || image.shape(1) > 0x7FFFFFFF) throw py::value_error("image too large");
    const uint8_t* src = image.data();
    const int h = int(image.shape(0)), w = int(image.shape(1));
    RgbImage img;
    {
      py::gil_scoped_release release;
      img = resize_bicubic(src, w, h, width, height, order);
    }
    return to_array(std::move(img));
  }, py::arg("image"), py::arg("height"), py::arg("width"), py::arg("pass_order") = "pillow13",
  "Bicubic resize of an (H, W, 3) uint8 array, bit-identical to Pillow's Image.resize(..., BICUBIC).");

  m.def("preprocess", &preprocess, py::arg("inputs"), py::kw_only(), py::arg("min_pixels"), py::arg("max_pixels"),
        py::arg("patch_size") = 14, py::arg("temporal_patch_size") = 2, py::arg("merge_size") = 2,
        py::arg("do_resize") = true, py::arg("do_rescale") = true, py::arg("rescale_factor") = 1.0 / 255.0,
        py::arg("do_normalize") = true, py::arg("image_mean"), py::arg("image_std"), py::arg("dtype") = "float32",
        py::arg("approx") = false, py::arg("max_image_pixels") = kDefaultMaxImagePixels, py::arg("strict") = false,
        py::arg("apply_exif_orientation") = false, py::arg("num_threads") = 0, py::arg("on_error") = "raise",
        py::arg("out") = py::none(), py::arg("pass_order") = "pillow13",
        "Batch: inputs (bytes, buffers, str paths or (H, W, 3) uint8 arrays) -> (pixel_values (N, D), "
        "image_grid_thw (B, 3) int64, skipped [(index, message)], warnings [(index, message)] of kept images).");
}

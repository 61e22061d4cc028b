// Shared types of the native image pipeline: decoded RGB images, decode options, and the error type that every
// failure becomes (mapped to a Python exception in module.cpp; nothing here calls exit/abort).
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

namespace evq {

// A decoding/preprocessing failure with a human-readable reason. Raised as evoquality.io.ImageDecodeError.
class ImageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Pillow refuses images above 2 * Image.MAX_IMAGE_PIXELS = 178,956,970 pixels (DecompressionBombError).
constexpr int64_t kDefaultMaxImagePixels = 178956970;

struct DecodeOptions {
  int64_t max_image_pixels = kDefaultMaxImagePixels;  // width*height limit, checked before any pixel allocation
  // Decoder warnings (corrupt or truncated data that the codec recovers from, as Pillow does) are errors when set;
  // otherwise they are reported in RgbImage::warning / ImageInfo::warning and the image is kept.
  bool strict = false;
  bool apply_exif_orientation = false;  // transformers does not apply EXIF orientation; opt-in
};

enum class Format { Jpeg, Png, Webp };
const char* format_name(Format f);

// Packed RGB, row-major, stride 3*width.
struct RgbImage {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> data;
  std::string warning;  // the codec's first warning when it recovered (lenient mode); empty when clean
};

// Header facts read without decoding pixels.
struct ImageInfo {
  Format format = Format::Jpeg;
  int64_t width = 0;   // as stored (before any EXIF orientation); wide enough for any header value
  int64_t height = 0;
  int orientation = 1;  // EXIF orientation tag (1..8); 1 when absent or unreadable
  std::string warning;  // a header warning the codec recovered from (lenient mode); empty when clean
};

// Overflow-checked size arithmetic: every buffer size goes through these before allocation.
inline size_t checked_mul(size_t a, size_t b, const char* what) {
  if (a != 0 && b > std::numeric_limits<size_t>::max() / a) {
    throw ImageError(std::string("size overflow computing ") + what);
  }
  return a * b;
}

// Width/height validity and the pixel-count limit, applied to header values before any allocation.
void check_dimensions(int64_t width, int64_t height, const DecodeOptions& opt, const char* format);

// Per-codec entry points (decode_jpeg.cpp, decode_png.cpp, decode_webp.cpp). Probes read headers only.
ImageInfo probe_jpeg(const uint8_t* data, size_t size, bool strict);
ImageInfo probe_png(const uint8_t* data, size_t size);
ImageInfo probe_webp(const uint8_t* data, size_t size);
// `scale_denom` (1, 2, 4 or 8) asks libjpeg-turbo for a DCT-domain downscale by 1/scale_denom (approximate mode).
RgbImage decode_jpeg(const uint8_t* data, size_t size, const DecodeOptions& opt, int scale_denom = 1);
RgbImage decode_png(const uint8_t* data, size_t size, const DecodeOptions& opt);
RgbImage decode_webp(const uint8_t* data, size_t size, const DecodeOptions& opt);

// Format sniffing from magic bytes; throws ImageError naming what was seen for anything else.
Format sniff_format(const uint8_t* data, size_t size);
ImageInfo probe(const uint8_t* data, size_t size, const DecodeOptions& opt);
// Full decode to RGB with Pillow's convert("RGB") colour rules and alpha composited onto white (as transformers'
// convert_to_rgb); EXIF orientation applied only when opt.apply_exif_orientation.
RgbImage decode(const uint8_t* data, size_t size, const DecodeOptions& opt, int jpeg_scale_denom = 1);
// Pillow's Image.alpha_composite onto an opaque white background, then RGB (bit-exact integer formula).
inline uint8_t composite_on_white(uint32_t c, uint32_t a) {
  if (a == 0) return 255;
  uint32_t coef1 = a * 128u;  // = a*255*255*128 / (255*255) with an opaque white destination
  uint32_t t = c * coef1 + 255u * (255u * 128u - coef1) + (0x80u << 7);
  return uint8_t(((((t >> 8) + t) >> 8)) >> 7);
}

}  // namespace evq

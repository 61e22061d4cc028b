// Format sniffing, the shared dimension check, and EXIF orientation: the codec-independent half of decoding.
#include <cstring>
#include <string>

#include "image.h"

namespace evq {

const char* format_name(Format f) {
  switch (f) {
    case Format::Jpeg: return "JPEG";
    case Format::Png: return "PNG";
    case Format::Webp: return "WebP";
  }
  return "?";
}

void check_dimensions(int64_t width, int64_t height, const DecodeOptions& opt, const char* format) {
  if (width < 1 || height < 1) {
    throw ImageError(std::string(format) + ": invalid size " + std::to_string(width) + "x" + std::to_string(height) +
                     " (width and height must be >= 1)");
  }
  if (width > 0x7FFFFFFF || height > 0x7FFFFFFF) {
    throw ImageError(std::string(format) + ": invalid size " + std::to_string(width) + "x" + std::to_string(height) +
                     " (sides above 2^31 - 1 are not valid in any supported format)");
  }
  // Division instead of a product: header fields reach 2^32 - 1 (PNG), and (2^32 - 1)^2 overflows int64.
  if (width > opt.max_image_pixels / height) {
    const unsigned long long pixels = static_cast<unsigned long long>(width) * static_cast<unsigned long long>(height);
    throw ImageError(std::string(format) + ": image of " + std::to_string(width) + "x" + std::to_string(height) +
                     " = " + std::to_string(pixels) + " pixels exceeds max_image_pixels=" +
                     std::to_string(opt.max_image_pixels) + " (possible decompression bomb)");
  }
}

Format sniff_format(const uint8_t* d, size_t n) {
  if (n == 0) throw ImageError("empty input (0 bytes)");
  if (n >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF) return Format::Jpeg;
  if (n >= 8 && std::memcmp(d, "\x89PNG\r\n\x1a\n", 8) == 0) return Format::Png;
  if (n >= 12 && std::memcmp(d, "RIFF", 4) == 0 && std::memcmp(d + 8, "WEBP", 4) == 0) return Format::Webp;
  std::string what;
  if (n >= 6 && (std::memcmp(d, "GIF87a", 6) == 0 || std::memcmp(d, "GIF89a", 6) == 0)) what = " (looks like GIF)";
  else if (n >= 2 && d[0] == 'B' && d[1] == 'M') what = " (looks like BMP)";
  else if (n >= 4 && (std::memcmp(d, "II*\0", 4) == 0 || std::memcmp(d, "MM\0*", 4) == 0)) what = " (looks like TIFF)";
  else if (n >= 12 && std::memcmp(d + 4, "ftyp", 4) == 0) what = " (looks like HEIF/AVIF)";
  throw ImageError("unsupported image format" + what + ": expected JPEG, PNG or WebP");
}

ImageInfo probe(const uint8_t* data, size_t size, const DecodeOptions& opt) {
  ImageInfo info;
  switch (sniff_format(data, size)) {
    case Format::Jpeg: info = probe_jpeg(data, size, opt.strict); break;
    case Format::Png: info = probe_png(data, size); break;
    case Format::Webp: info = probe_webp(data, size); break;
  }
  check_dimensions(info.width, info.height, opt, format_name(info.format));
  return info;
}

namespace {

// Applies EXIF orientation o (2..8) as PIL.ImageOps.exif_transpose does.
RgbImage orient(const RgbImage& in, int o) {
  const int w = in.width, h = in.height;
  const bool swap = o >= 5;
  RgbImage out;
  out.width = swap ? h : w;
  out.height = swap ? w : h;
  out.data.resize(in.data.size());
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      int ox = x, oy = y;
      switch (o) {
        case 2: ox = w - 1 - x; break;                       // mirror horizontal
        case 3: ox = w - 1 - x; oy = h - 1 - y; break;       // rotate 180
        case 4: oy = h - 1 - y; break;                       // mirror vertical
        case 5: ox = y; oy = x; break;                       // transpose
        case 6: ox = h - 1 - y; oy = x; break;               // rotate 270 (90 clockwise)
        case 7: ox = h - 1 - y; oy = w - 1 - x; break;       // transverse
        case 8: ox = y; oy = w - 1 - x; break;               // rotate 90 (counter-clockwise)
        default: break;
      }
      std::memcpy(&out.data[(size_t(oy) * out.width + ox) * 3], &in.data[(size_t(y) * w + x) * 3], 3);
    }
  }
  return out;
}

}  // namespace

RgbImage decode(const uint8_t* data, size_t size, const DecodeOptions& opt, int jpeg_scale_denom) {
  Format f = sniff_format(data, size);
  RgbImage img;
  int orientation = 1;
  switch (f) {
    case Format::Jpeg:
      img = decode_jpeg(data, size, opt, jpeg_scale_denom);
      break;
    case Format::Png:
      img = decode_png(data, size, opt);
      break;
    case Format::Webp:
      img = decode_webp(data, size, opt);
      break;
  }
  if (opt.apply_exif_orientation) {
    orientation = (f == Format::Jpeg) ? probe_jpeg(data, size, false).orientation
                : (f == Format::Png)  ? probe_png(data, size).orientation
                                      : probe_webp(data, size).orientation;
    if (orientation != 1) {
      std::string warning = std::move(img.warning);
      img = orient(img, orientation);
      img.warning = std::move(warning);
    }
  }
  return img;
}

}  // namespace evq

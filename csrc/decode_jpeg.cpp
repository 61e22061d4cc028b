// JPEG through the TurboJPEG 2.x API (Debian 12 ships 2.1.5; the 3.x API is guarded out by using only 2.x calls).
// With default flags (accurate integer IDCT, fancy upsampling) the RGB output is byte-identical to Pillow's decode.
#include <turbojpeg.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "exif.h"
#include "image.h"

namespace evq {
namespace {

struct TjHandle {
  tjhandle h = tjInitDecompress();
  ~TjHandle() {
    if (h) tjDestroy(h);
  }
  std::string error() const { return tjGetErrorStr2(h); }
};

// Walks the JPEG marker segments up to SOS looking for an APP1 "Exif" block; bounds-checked, never throws.
int jpeg_orientation(const uint8_t* d, size_t n) {
  size_t p = 2;
  while (p + 4 <= n) {
    if (d[p] != 0xFF) return 1;
    uint8_t marker = d[p + 1];
    if (marker == 0xFF) { ++p; continue; }  // fill byte
    if (marker == 0xDA || marker == 0xD9) return 1;  // start of scan / end of image: no EXIF before pixels
    size_t len = (size_t(d[p + 2]) << 8) | d[p + 3];
    if (len < 2 || p + 2 + len > n) return 1;
    if (marker == 0xE1 && len >= 8 && std::memcmp(d + p + 4, "Exif\0\0", 6) == 0) {
      return exif_orientation_from_tiff(d + p + 10, len - 8);
    }
    p += 2 + len;
  }
  return 1;
}

// Why a header read found no frame: the marker segment the file ends inside, or the first malformed marker. Only
// called on failure, so a clear reason replaces libjpeg's "invalid size 0x0" for a file cut before its SOF.
std::string no_frame_reason(const uint8_t* d, size_t n) {
  size_t p = 2;
  while (p + 2 <= n) {
    if (d[p] != 0xFF) return "no frame header (SOF) before byte " + std::to_string(p) + ", where no marker starts";
    const uint8_t marker = d[p + 1];
    if (marker == 0xFF) { ++p; continue; }
    if (marker == 0xD9) return "the image ends (EOI) before any frame header (SOF)";
    if (p + 4 > n) break;
    const size_t len = (size_t(d[p + 2]) << 8) | d[p + 3];
    char name[16];
    if (marker >= 0xE0 && marker <= 0xEF) std::snprintf(name, sizeof name, "APP%d", marker - 0xE0);
    else std::snprintf(name, sizeof name, "marker 0x%02X", marker);
    if (p + 2 + len > n) {
      std::string what = name;
      if (marker == 0xE2 && len >= 14 && p + 16 <= n && std::memcmp(d + p + 4, "ICC_PROFILE", 11) == 0) what += " (ICC profile)";
      if (marker == 0xE1 && p + 10 <= n && std::memcmp(d + p + 4, "Exif", 4) == 0) what += " (EXIF)";
      return "truncated JPEG: the file (" + std::to_string(n) + " bytes) ends inside the " + what + " segment at byte " +
             std::to_string(p) + " (" + std::to_string(len) + " bytes declared), before the frame header (SOF)";
    }
    p += 2 + len;
  }
  return "truncated JPEG: the file (" + std::to_string(n) + " bytes) ends before the frame header (SOF)";
}

// tjDecompressHeader3 returns -1 for a libjpeg *warning* too ("N extraneous bytes before marker"), with the
// header fully read: Pillow opens such files, so lenient mode keeps them and returns the warning.
std::string read_header(TjHandle& tj, const uint8_t* data, size_t size, bool strict, int& w, int& h, int& subsamp,
                        int& cs) {
  std::string warning;
  if (tjDecompressHeader3(tj.h, data, static_cast<unsigned long>(size), &w, &h, &subsamp, &cs) != 0) {
    if (tjGetErrorCode(tj.h) != TJERR_WARNING) throw ImageError("invalid JPEG header: " + tj.error());
    if (w >= 1 && h >= 1) {
      if (strict) throw ImageError("JPEG header warning (strict mode): " + tj.error());
      warning = tj.error();
    }
  }
  // A file cut before its SOF reads as a header of 0x0 without an error (libjpeg suspends for more data).
  if (w < 1 || h < 1) throw ImageError(no_frame_reason(data, size));
  return warning;
}

}  // namespace

ImageInfo probe_jpeg(const uint8_t* data, size_t size, bool strict) {
  if (size > 0xFFFFFFFFull) throw ImageError("JPEG: input larger than 4 GiB is not supported");
  TjHandle tj;
  if (!tj.h) throw ImageError("JPEG: cannot create a TurboJPEG decompressor");
  int w = 0, h = 0, subsamp = 0, cs = 0;
  ImageInfo info;
  info.warning = read_header(tj, data, size, strict, w, h, subsamp, cs);
  info.format = Format::Jpeg;
  info.width = w;
  info.height = h;
  info.orientation = jpeg_orientation(data, size);
  return info;
}

RgbImage decode_jpeg(const uint8_t* data, size_t size, const DecodeOptions& opt, int scale_denom) {
  if (size > 0xFFFFFFFFull) throw ImageError("JPEG: input larger than 4 GiB is not supported");
  if (scale_denom != 1 && scale_denom != 2 && scale_denom != 4 && scale_denom != 8) {
    throw ImageError("JPEG: scale_denom must be 1, 2, 4 or 8, got " + std::to_string(scale_denom));
  }
  TjHandle tj;
  if (!tj.h) throw ImageError("JPEG: cannot create a TurboJPEG decompressor");
  int w = 0, h = 0, subsamp = 0, cs = 0;
  std::string warning = read_header(tj, data, size, opt.strict, w, h, subsamp, cs);
  check_dimensions(w, h, opt, "JPEG");
  tjscalingfactor sf{1, scale_denom};
  const int ow = TJSCALED(w, sf), oh = TJSCALED(h, sf);
  const bool cmyk = (cs == TJCS_CMYK || cs == TJCS_YCCK);
  const int pf = cmyk ? TJPF_CMYK : TJPF_RGB;
  const size_t bpp = cmyk ? 4 : 3;
  // TJFLAG_LIMITSCANS: refuse progressive files with > 500 scans (a known CPU-exhaustion vector).
  int flags = TJFLAG_LIMITSCANS;
  if (opt.strict) flags |= TJFLAG_STOPONWARNING;

  std::vector<uint8_t> buf(checked_mul(checked_mul(size_t(ow), size_t(oh), "JPEG size"), bpp, "JPEG size"));
  if (tjDecompress2(tj.h, data, static_cast<unsigned long>(size), buf.data(), ow, int(ow * bpp), oh, pf, flags) != 0) {
    // In lenient mode a warning (e.g. premature end of data) still produced a full-size image: keep it, as
    // Pillow does with LOAD_TRUNCATED_IMAGES. Fatal errors are always raised.
    if (opt.strict || tjGetErrorCode(tj.h) != TJERR_WARNING) {
      throw ImageError(std::string("JPEG decode failed") + (opt.strict ? " (strict mode)" : "") + ": " +
                       tj.error());
    }
    if (warning.empty()) warning = tj.error();
  }
  RgbImage out;
  out.warning = std::move(warning);
  out.width = ow;
  out.height = oh;
  if (!cmyk) {
    out.data = std::move(buf);
    return out;
  }
  // Pillow reads CMYK JPEGs as inverted ("CMYK;I", Adobe convention) and converts with
  // nk = 255 - K; C' = nk - MULDIV255(C, nk) per channel (Convert.c cmyk2rgb).
  out.data.resize(size_t(ow) * oh * 3);
  const size_t n = size_t(ow) * oh;
  for (size_t i = 0; i < n; ++i) {
    const uint8_t* s = &buf[i * 4];
    int nk = s[3];  // 255 - (255 - raw K)
    for (int c = 0; c < 3; ++c) {
      int v = 255 - s[c];
      int tmp = v * nk + 128;
      int mul = ((tmp >> 8) + tmp) >> 8;
      int r = nk - mul;
      out.data[i * 3 + c] = uint8_t(r < 0 ? 0 : (r > 255 ? 255 : r));
    }
  }
  return out;
}

}  // namespace evq

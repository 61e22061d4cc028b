// PNG through libpng's low-level API. Colour rules follow Pillow's PngImagePlugin + convert("RGB"): 16-bit samples
// keep their high byte (RGB;16B, LA;16B, RGBA;16B), except 16-bit grayscale, which Pillow opens as "I;16" and
// converts to RGB by clamping the value to 255; palette transparency becomes alpha; alpha is composited onto white.
// A tRNS colour key on a gray or RGB image is applied as Pillow does: the *raw* tRNS sample values are compared with
// the 8-bit output pixel (right for 8-bit images; for 2/4-bit gray and 16-bit RGB this is Pillow's own quirk, kept
// for exactness), and keyed pixels become white; 16-bit gray with tRNS is keyed after the clamp to 255, as Pillow's
// I;16 -> RGBA transparent conversion does. Lenient mode keeps what was decoded of image data that ends early or
// breaks (Pillow's LOAD_TRUNCATED_IMAGES), the rest as Pillow's zero-initialised image; an IDAT whose CRC is wrong
// and a chunk longer than the whole file (and than any image data could be) are refused in both modes. libpng
// reports errors through longjmp, so the setjmp frame below touches only raw pointers and PODs (no C++ objects
// with destructors live across it).
#include <png.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <string>

#include "exif.h"
#include "image.h"

namespace evq {
namespace {

constexpr uint8_t kSig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};

uint32_t be32(const uint8_t* p) { return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3]; }

struct PngHeader {
  uint32_t width = 0, height = 0;
  int bit_depth = 0, color_type = 0, interlace = 0;
  bool has_trns = false;
  uint16_t trns[3] = {0, 0, 0};  // raw tRNS key of a gray (trns[0]) or RGB image
  int orientation = 1;
  size_t cut_idat = 0;  // offset of an IDAT chunk the file ends inside (a truncated download); 0 if none
};

// The most bytes a zlib stream of this image's data can take (stored blocks: 5 bytes per 16 KiB, plus header and
// Adler-32; interlacing adds at most 7 filter bytes per row). A chunk beyond the file's end but within this is a
// truncated download; beyond both it is a corrupt length (libpng's huge_*_chunk crashers).
double max_image_data_bytes(const PngHeader& h) {
  const int channels[] = {1, 0, 3, 1, 2, 0, 4};
  const int c = h.color_type <= 6 ? channels[h.color_type] : 4;
  const double rowbytes = std::ceil(double(h.width) * c * h.bit_depth / 8.0) + 1.0;
  const double raw = rowbytes * double(h.height) + 7.0 * double(h.height);
  return raw + 5.0 * std::ceil(raw / 16383.0) + 64.0;
}

// Reads IHDR and walks the chunk headers (never their payload, except eXIf, and IDAT when `check_idat`) so the size
// limit is enforced before libpng allocates anything. O(number of chunks); stops at the first malformed length.
// check_idat: refuse an IDAT whose CRC is wrong (Pillow does not check it; PngSuite's xcs* files must be rejected,
// and libpng stops reading before the CRC of the last IDAT once it has every row) and impossible chunk lengths.
PngHeader parse_png_header(const uint8_t* d, size_t n, bool check_idat = false) {
  if (n < 8 || std::memcmp(d, kSig, 8) != 0) throw ImageError("not a PNG file (bad signature)");
  if (n < 33) throw ImageError("truncated PNG: the IHDR chunk is incomplete");
  if (be32(d + 8) != 13 || std::memcmp(d + 12, "IHDR", 4) != 0) throw ImageError("invalid PNG: first chunk is not IHDR");
  PngHeader h;
  h.width = be32(d + 16);
  h.height = be32(d + 20);
  h.bit_depth = d[24];
  h.color_type = d[25];
  h.interlace = d[28];
  size_t p = 8;
  bool seen_idat = false;
  while (p + 12 <= n) {
    uint32_t len = be32(d + p);
    const uint8_t* type = d + p + 4;
    if (len > 0x7FFFFFFFu) break;
    if (std::memcmp(type, "IEND", 4) == 0) break;
    const bool idat = std::memcmp(type, "IDAT", 4) == 0;
    if (check_idat && len > n && (!idat || double(len) > max_image_data_bytes(h))) {
      throw ImageError("invalid PNG: the " + std::string(reinterpret_cast<const char*>(type), 4) + " chunk at byte " +
                       std::to_string(p) + " declares " + std::to_string(len) + " bytes, more than the whole file (" +
                       std::to_string(n) + " bytes)");
    }
    if (check_idat && idat && p + 12 + size_t(len) <= n &&
        crc32(crc32(0L, nullptr, 0), type, uInt(len) + 4) != be32(d + p + 8 + len)) {
      throw ImageError("PNG decode failed: IDAT chunk at byte " + std::to_string(p) + " has a wrong CRC (corrupt "
                       "image data)");
    }
    if (idat && p + 12 + size_t(len) > n) h.cut_idat = p;
    if (idat) {
      seen_idat = true;
    } else if (std::memcmp(type, "tRNS", 4) == 0 && !seen_idat) {  // a tRNS after image data is ignored (libpng too)
      h.has_trns = true;
      const uint8_t* v = d + p + 8;
      if (h.color_type == PNG_COLOR_TYPE_GRAY && len >= 2 && p + 10 <= n) {
        h.trns[0] = uint16_t((v[0] << 8) | v[1]);
      } else if (h.color_type == PNG_COLOR_TYPE_RGB && len >= 6 && p + 14 <= n) {
        for (int c = 0; c < 3; ++c) h.trns[c] = uint16_t((v[2 * c] << 8) | v[2 * c + 1]);
      }
    } else if (std::memcmp(type, "eXIf", 4) == 0 && p + 8 + size_t(len) <= n) {
      h.orientation = exif_orientation_from_tiff(d + p + 8, len);
    }
    p += 12 + size_t(len);
  }
  return h;
}

struct ReadState {
  const uint8_t* data;
  size_t size;
  size_t pos;
  bool strict;
  bool rows_started;  // past png_read_update_info: an error now leaves a partial image
  char message[256];
  char warning[256];
};

void on_error(png_structp png, png_const_charp msg) {
  auto* st = static_cast<ReadState*>(png_get_error_ptr(png));
  std::snprintf(st->message, sizeof st->message, "%s", msg);
  png_longjmp(png, 1);
}

void note_warning(ReadState* st, const char* msg) {
  if (st->warning[0] == 0) std::snprintf(st->warning, sizeof st->warning, "%s", msg);
}

// Warnings about ancillary chunks (names start with a lowercase letter: "iCCP: known incorrect sRGB profile")
// are metadata problems Pillow ignores too; any other warning concerns the image data and fails strict mode.
void on_warning(png_structp png, png_const_charp msg) {
  auto* st = static_cast<ReadState*>(png_get_error_ptr(png));
  bool ancillary = std::strlen(msg) > 5 && msg[0] >= 'a' && msg[0] <= 'z' && msg[4] == ':';
  if (ancillary) return;
  if (st->strict) {
    std::snprintf(st->message, sizeof st->message, "%s (a warning; strict mode)", msg);
    png_longjmp(png, 1);
  }
  note_warning(st, msg);
}

void on_read(png_structp png, png_bytep out, png_size_t len) {
  auto* st = static_cast<ReadState*>(png_get_io_ptr(png));
  if (len > st->size - st->pos) png_error(png, "truncated PNG data");
  std::memcpy(out, st->data + st->pos, len);
  st->pos += len;
}

// The setjmp frame. `rows` points at `height` row pointers, each `rowbytes` long, zero-filled. Returns Failed with
// st->message set on a libpng error, or Partial (lenient mode) when the image data broke after rows began.
enum class Layout { Rgb8OrRgba8, Rgb8KeepKey, Gray16 };
enum class ReadResult { Ok, Partial, Failed };

// Pillow's truncated image starts zeroed in its own mode: for a palette image that is index 0, which the expansion
// to RGB(A) turns into palette entry 0 with its tRNS alpha. Read before png_read_update_info, which drops num_trans.
bool palette_zero(png_structp png, png_infop info, uint8_t px[4]) {
  png_colorp palette = nullptr;
  int num_palette = 0;
  if (!png_get_PLTE(png, info, &palette, &num_palette) || num_palette < 1) return false;
  png_bytep trans = nullptr;
  int num_trans = 0;
  png_color_16p trans_color = nullptr;
  const bool has_trns = png_get_tRNS(png, info, &trans, &num_trans, &trans_color) && num_trans > 0 && trans;
  px[0] = palette[0].red;
  px[1] = palette[0].green;
  px[2] = palette[0].blue;
  px[3] = has_trns ? trans[0] : 255;
  return true;
}

ReadResult read_rows(ReadState* st, const PngHeader& hdr, png_bytepp rows, size_t rowbytes, Layout layout) {
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, st, on_error, on_warning);
  if (!png) {
    std::snprintf(st->message, sizeof st->message, "cannot create a libpng reader");
    return ReadResult::Failed;
  }
  png_infop info = png_create_info_struct(png);
  if (!info) {
    png_destroy_read_struct(&png, nullptr, nullptr);
    std::snprintf(st->message, sizeof st->message, "cannot create a libpng info struct");
    return ReadResult::Failed;
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, nullptr);
    // A CRC error is corrupt data Pillow would not see; it is never kept (parse_png_header checks complete IDATs).
    const bool keep = !st->strict && st->rows_started && std::strstr(st->message, "CRC") == nullptr;
    return keep ? ReadResult::Partial : ReadResult::Failed;
  }
  png_set_read_fn(png, st, on_read);
  // Defence in depth: libpng's own limits mirror ours, and ancillary chunks are capped at 8 MiB.
  png_set_user_limits(png, hdr.width, hdr.height);
  png_set_chunk_malloc_max(png, 8u << 20);
  png_set_crc_action(png, PNG_CRC_DEFAULT, PNG_CRC_DEFAULT);
  png_read_info(png, info);
  if (layout == Layout::Gray16) {
    png_set_swap(png);  // 16-bit gray: native little-endian samples
  } else {
    if (layout == Layout::Rgb8OrRgba8) {
      png_set_expand(png);  // palette -> RGB, gray < 8 bit -> 8 bit (bit replication as Pillow), tRNS -> alpha
    } else {
      png_set_expand_gray_1_2_4_to_8(png);  // the tRNS key is applied afterwards, Pillow's way
    }
    png_set_strip_16(png);  // high byte, as Pillow's ;16B raw modes
    png_set_gray_to_rgb(png);
  }
  int passes = png_set_interlace_handling(png);
  uint8_t fill[4];
  const bool fill_palette = !st->strict && hdr.color_type == PNG_COLOR_TYPE_PALETTE && palette_zero(png, info, fill);
  png_read_update_info(png, info);
  if (png_get_rowbytes(png, info) != rowbytes) {
    png_error(png, "unexpected row layout after colour transforms");
  }
  if (fill_palette) {
    const size_t bpp = rowbytes == size_t(hdr.width) * 4 ? 4 : 3;
    for (uint32_t y = 0; y < hdr.height; ++y) {
      for (size_t x = 0; x + bpp <= rowbytes; x += bpp) std::memcpy(rows[y] + x, fill, bpp);
    }
  }
  st->rows_started = true;
  // Interlaced passes are read with no display row: each pass writes only its own pixels, as Pillow's decoder does.
  for (int pass = 0; pass < passes; ++pass) {
    for (uint32_t y = 0; y < hdr.height; ++y) png_read_row(png, rows[y], nullptr);
  }
  png_destroy_read_struct(&png, &info, nullptr);
  return ReadResult::Ok;
}

}  // namespace

ImageInfo probe_png(const uint8_t* data, size_t size) {
  PngHeader h = parse_png_header(data, size);
  ImageInfo info;
  info.format = Format::Png;
  info.width = h.width;
  info.height = h.height;
  info.orientation = h.orientation;
  return info;
}

RgbImage decode_png(const uint8_t* data, size_t size, const DecodeOptions& opt) {
  PngHeader h = parse_png_header(data, size, true);
  check_dimensions(h.width, h.height, opt, "PNG");
  const bool gray16 = h.color_type == PNG_COLOR_TYPE_GRAY && h.bit_depth == 16;
  const bool color_key = h.has_trns && (h.color_type == PNG_COLOR_TYPE_GRAY || h.color_type == PNG_COLOR_TYPE_RGB);
  const bool alpha = (h.color_type & PNG_COLOR_MASK_ALPHA) != 0 || (h.has_trns && !color_key);
  // raw is zero-filled: rows a broken file never reaches stay as Pillow's zero-initialised image (lenient mode).
  const size_t w = h.width, ht = h.height;
  // Bytes per pixel after the transforms in read_rows: 16-bit gray stays 2 bytes; everything else is RGB or RGBA.
  const size_t bpp = gray16 ? 2 : (alpha ? 4 : 3);
  const size_t rowbytes = checked_mul(w, bpp, "PNG row size");
  std::vector<uint8_t> raw(checked_mul(rowbytes, ht, "PNG size"));
  std::vector<png_bytep> rows(ht);
  for (size_t y = 0; y < ht; ++y) rows[y] = raw.data() + y * rowbytes;
  // A file cut inside an IDAT: libpng reads image data in 8 KiB pieces and would drop the last partial piece, which
  // Pillow still decodes. Reading a copy whose last IDAT is shortened to the bytes present (with its CRC) feeds
  // every byte; the missing rest then ends the read as "Not enough image data".
  std::vector<uint8_t> patched;
  if (!opt.strict && h.cut_idat) {
    const size_t p = h.cut_idat, avail = std::min<size_t>(be32(data + p), size - p - 8);
    patched.assign(data, data + p + 8 + avail);
    for (int k = 0; k < 4; ++k) patched[p + k] = uint8_t(avail >> (24 - 8 * k));
    const uint32_t crc = uint32_t(crc32(crc32(0L, nullptr, 0), patched.data() + p + 4, uInt(avail) + 4));
    for (int k = 0; k < 4; ++k) patched.push_back(uint8_t(crc >> (24 - 8 * k)));
    data = patched.data();
    size = patched.size();
  }
  ReadState st{data, size, 0, opt.strict, false, {0}, {0}};
  const Layout layout = gray16 ? Layout::Gray16 : color_key ? Layout::Rgb8KeepKey : Layout::Rgb8OrRgba8;
  const ReadResult result = read_rows(&st, h, rows.data(), rowbytes, layout);
  if (result == ReadResult::Failed) {
    // Lenient mode would have kept the rows decoded before this error (unless it is a CRC error).
    const bool partial_possible = st.rows_started && std::strstr(st.message, "CRC") == nullptr;
    throw ImageError(std::string("PNG decode failed") + (opt.strict && partial_possible ? " (strict mode)" : "") +
                     ": " + st.message);
  }
  RgbImage out;
  out.width = int(w);
  out.height = int(ht);
  if (result == ReadResult::Partial) {
    out.warning = std::string("incomplete image data (") + st.message + "); the rest is left as Pillow's "
                  "LOAD_TRUNCATED_IMAGES leaves it";
  } else {
    out.warning = st.warning;
  }
  if (color_key && !gray16) {
    // Pillow's key: a 1-bit image is mode "1" (raw 1 means 255); otherwise the raw sample values, which an 8-bit
    // pixel can only equal when they are < 256.
    uint16_t key[3];
    for (int c = 0; c < 3; ++c) {
      uint16_t v = h.color_type == PNG_COLOR_TYPE_GRAY ? h.trns[0] : h.trns[c];
      key[c] = (h.color_type == PNG_COLOR_TYPE_GRAY && h.bit_depth == 1) ? (v & 1 ? 255 : 0) : v;
    }
    uint8_t* px = raw.data();
    for (size_t i = 0; i < w * ht; ++i, px += 3) {
      if (px[0] == key[0] && px[1] == key[1] && px[2] == key[2]) px[0] = px[1] = px[2] = 255;
    }
  }
  if (!gray16 && !alpha) {
    out.data = std::move(raw);
    return out;
  }
  out.data.resize(w * ht * 3);
  const size_t n = w * ht;
  uint8_t* o = out.data.data();
  if (gray16) {
    // Pillow: I;16 -> RGB clamps to 255; with tRNS, ImagingConvertTransparent compares the clamped value with the
    // key cast to 8 bits (256 keys 0, 40000 keys 64), and a key of 255 also hides every value above 255.
    const uint16_t* s = reinterpret_cast<const uint16_t*>(raw.data());
    const int key = color_key ? int(h.trns[0] & 0xFF) : -1;
    for (size_t i = 0; i < n; ++i) {
      uint8_t v = s[i] > 255 ? 255 : uint8_t(s[i]);
      if (int(v) == key) v = 255;
      o[3 * i] = o[3 * i + 1] = o[3 * i + 2] = v;
    }
    return out;
  }
  for (size_t i = 0; i < n; ++i) {
    const uint8_t* s = &raw[4 * i];
    for (int c = 0; c < 3; ++c) o[3 * i + c] = composite_on_white(s[c], s[3]);
  }
  return out;
}

}  // namespace evq

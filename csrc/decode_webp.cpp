// WebP through libwebp: still images with the simple decoder API, animated ones through WebPAnimDecoder (the first
// frame, as Pillow's Image.open gives). Pillow opens every WebP through WebPAnimDecoder in straight
// (non-premultiplied) RGBA, so a still image decodes to the same pixels as WebPDecodeRGBA; alpha is then composited
// onto white as transformers' convert_to_rgb does. Pillow reads a file without the alpha flag as RGBX: the canvas
// alpha of such an animation is dropped, not composited.
#include <webp/decode.h>
#include <webp/demux.h>

#include <string>

#include "exif.h"
#include "image.h"

namespace evq {
namespace {

const char* vp8_status(VP8StatusCode s) {
  switch (s) {
    case VP8_STATUS_OK: return "ok";
    case VP8_STATUS_OUT_OF_MEMORY: return "out of memory";
    case VP8_STATUS_INVALID_PARAM: return "invalid parameter";
    case VP8_STATUS_BITSTREAM_ERROR: return "corrupt bitstream";
    case VP8_STATUS_UNSUPPORTED_FEATURE: return "unsupported feature";
    case VP8_STATUS_SUSPENDED: return "suspended";
    case VP8_STATUS_USER_ABORT: return "aborted";
    case VP8_STATUS_NOT_ENOUGH_DATA: return "truncated data";
  }
  return "unknown error";
}

WebPBitstreamFeatures features(const uint8_t* data, size_t size) {
  WebPBitstreamFeatures f;
  VP8StatusCode s = WebPGetFeatures(data, size, &f);
  if (s != VP8_STATUS_OK) throw ImageError(std::string("invalid WebP header: ") + vp8_status(s));
  return f;
}

int webp_orientation(const uint8_t* data, size_t size) {
  WebPData wd{data, size};
  WebPDemuxer* demux = WebPDemux(&wd);
  if (!demux) return 1;
  int orientation = 1;
  WebPChunkIterator it;
  if (WebPDemuxGetChunk(demux, "EXIF", 1, &it)) {
    const uint8_t* p = it.chunk.bytes;
    size_t n = it.chunk.size;
    // Some writers keep the JPEG-style "Exif\0\0" prefix inside the chunk.
    if (n >= 6 && p[0] == 'E' && p[1] == 'x' && p[2] == 'i' && p[3] == 'f' && p[4] == 0 && p[5] == 0) {
      p += 6;
      n -= 6;
    }
    orientation = exif_orientation_from_tiff(p, n);
    WebPDemuxReleaseChunkIterator(&it);
  }
  WebPDemuxDelete(demux);
  return orientation;
}

}  // namespace

ImageInfo probe_webp(const uint8_t* data, size_t size) {
  WebPBitstreamFeatures f = features(data, size);
  ImageInfo info;
  info.format = Format::Webp;
  info.width = f.width;
  info.height = f.height;
  info.orientation = webp_orientation(data, size);
  return info;
}

// Straight RGBA (w*h*4) -> RGB, alpha composited onto white (or dropped when the file has no alpha flag).
RgbImage rgba_to_rgb(const uint8_t* rgba, size_t w, size_t h, bool composite) {
  RgbImage out;
  out.width = int(w);
  out.height = int(h);
  out.data.resize(checked_mul(checked_mul(w, h, "WebP size"), 3, "WebP size"));
  uint8_t* o = out.data.data();
  for (size_t i = 0; i < w * h; ++i) {
    const uint8_t* s = &rgba[4 * i];
    for (int c = 0; c < 3; ++c) o[3 * i + c] = composite ? composite_on_white(s[c], s[3]) : s[c];
  }
  return out;
}

RgbImage decode_animated_first_frame(const uint8_t* data, size_t size, bool has_alpha) {
  WebPAnimDecoderOptions options;
  if (!WebPAnimDecoderOptionsInit(&options)) throw ImageError("WebP: libwebp version mismatch");
  options.color_mode = MODE_RGBA;
  options.use_threads = 0;
  WebPData wd{data, size};
  struct Dec {
    WebPAnimDecoder* d;
    ~Dec() { WebPAnimDecoderDelete(d); }
  } dec{WebPAnimDecoderNew(&wd, &options)};
  if (!dec.d) throw ImageError("WebP decode failed: invalid animation (no decodable frame)");
  WebPAnimInfo info;
  if (!WebPAnimDecoderGetInfo(dec.d, &info)) throw ImageError("WebP decode failed: unreadable animation header");
  uint8_t* frame = nullptr;
  int timestamp = 0;
  if (!WebPAnimDecoderGetNext(dec.d, &frame, &timestamp) || !frame) {
    throw ImageError("WebP decode failed: the first animation frame is corrupt or truncated");
  }
  return rgba_to_rgb(frame, info.canvas_width, info.canvas_height, has_alpha);
}

RgbImage decode_webp(const uint8_t* data, size_t size, const DecodeOptions& opt) {
  WebPBitstreamFeatures f = features(data, size);
  // For an animation the features are the canvas: checked before WebPAnimDecoder allocates it.
  check_dimensions(f.width, f.height, opt, "WebP");
  if (f.has_animation) return decode_animated_first_frame(data, size, f.has_alpha);
  const size_t w = size_t(f.width), h = size_t(f.height);
  const size_t bpp = f.has_alpha ? 4 : 3;
  const size_t stride = checked_mul(w, bpp, "WebP row size");
  std::vector<uint8_t> buf(checked_mul(stride, h, "WebP size"));
  WebPDecoderConfig config;
  if (!WebPInitDecoderConfig(&config)) throw ImageError("WebP: libwebp version mismatch");
  config.output.colorspace = f.has_alpha ? MODE_RGBA : MODE_RGB;  // straight alpha, as Pillow
  config.output.is_external_memory = 1;
  config.output.u.RGBA.rgba = buf.data();
  config.output.u.RGBA.stride = int(stride);
  config.output.u.RGBA.size = buf.size();
  VP8StatusCode status = WebPDecode(data, size, &config);
  WebPFreeDecBuffer(&config.output);  // releases nothing we own (external memory); required by the API
  if (status != VP8_STATUS_OK) throw ImageError(std::string("WebP decode failed: ") + vp8_status(status));
  if (f.has_alpha) return rgba_to_rgb(buf.data(), w, h, true);
  RgbImage out;
  out.width = int(w);
  out.height = int(h);
  out.data = std::move(buf);
  return out;
}

}  // namespace evq

// WebP through libwebp's simple decoder API (still images; animated files are refused with a reason).
// Pillow opens WebP through WebPAnimDecoder in straight (non-premultiplied) RGBA, so a still image decodes to the
// same pixels as WebPDecodeRGBA; alpha is then composited onto white as transformers' convert_to_rgb does.
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

RgbImage decode_webp(const uint8_t* data, size_t size, const DecodeOptions& opt) {
  WebPBitstreamFeatures f = features(data, size);
  if (f.has_animation) throw ImageError("unsupported WebP: animated files are not supported");
  check_dimensions(f.width, f.height, opt, "WebP");
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
  RgbImage out;
  out.width = int(w);
  out.height = int(h);
  if (!f.has_alpha) {
    out.data = std::move(buf);
    return out;
  }
  out.data.resize(w * h * 3);
  uint8_t* o = out.data.data();
  for (size_t i = 0; i < w * h; ++i) {
    const uint8_t* s = &buf[4 * i];
    for (int c = 0; c < 3; ++c) o[3 * i + c] = composite_on_white(s[c], s[3]);
  }
  return out;
}

}  // namespace evq

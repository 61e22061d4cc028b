#include "exif.h"

namespace evq {

static uint32_t rd(const uint8_t* p, int n, bool le) {
  uint32_t v = 0;
  for (int i = 0; i < n; ++i) v |= uint32_t(p[le ? i : n - 1 - i]) << (8 * i);
  return v;
}

int exif_orientation_from_tiff(const uint8_t* t, size_t size) {
  if (size < 8) return 1;
  bool le;
  if (t[0] == 'I' && t[1] == 'I') le = true;
  else if (t[0] == 'M' && t[1] == 'M') le = false;
  else return 1;
  if (rd(t + 2, 2, le) != 42) return 1;
  uint64_t ifd = rd(t + 4, 4, le);
  if (ifd + 2 > size) return 1;
  uint32_t count = rd(t + ifd, 2, le);
  for (uint32_t i = 0; i < count; ++i) {
    uint64_t e = ifd + 2 + 12ull * i;
    if (e + 12 > size) return 1;
    if (rd(t + e, 2, le) != 0x0112) continue;
    // Orientation is a SHORT (type 3) with count 1, stored in the first two bytes of the value field.
    if (rd(t + e + 2, 2, le) != 3) return 1;
    uint32_t v = rd(t + e + 8, 2, le);
    return (v >= 1 && v <= 8) ? int(v) : 1;
  }
  return 1;
}

}  // namespace evq

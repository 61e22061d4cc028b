// Minimal, bounds-checked EXIF reader: only the IFD0 Orientation tag (0x0112) is needed.
#pragma once
#include <cstddef>
#include <cstdint>

namespace evq {
// `tiff` points at a TIFF header ("II*\0" or "MM\0*"). Returns 1..8, or 1 when absent/malformed.
int exif_orientation_from_tiff(const uint8_t* tiff, size_t size);
}  // namespace evq

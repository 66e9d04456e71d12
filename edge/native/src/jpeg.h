// JPEG decoding with libjpeg-turbo as OpenCV's imdecode(IMREAD_COLOR) does it (jpeg.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "edgekit/core.h"

namespace edgekit {

/// True when the bytes start with a JPEG SOI marker.
bool is_jpeg(const std::uint8_t* bytes, std::size_t size);
/// Decode JPEG bytes to BGR with OpenCV's settings and EXIF orientation; Error("input") when corrupt.
OwnedImage decode_jpeg(const std::uint8_t* bytes, std::size_t size, const std::string& what);

}  // namespace edgekit

#include "rotate.h"

#include <algorithm>

namespace zerofarm::transcode::worker {
namespace {

// Transposing walks one side against the cache; square tiles keep both sides in it.
constexpr int kTile = 32;

}  // namespace

void RotatePlane(const uint8_t* src, int src_stride, int width, int height, int degrees,
                 uint8_t* dst, int dst_stride) {
  const auto at = [&](int x, int y) { return src[static_cast<ptrdiff_t>(y) * src_stride + x]; };
  if (degrees == 180) {
    for (int y = 0; y < height; ++y) {
      uint8_t* out = dst + static_cast<ptrdiff_t>(height - 1 - y) * dst_stride;
      for (int x = 0; x < width; ++x) out[width - 1 - x] = at(x, y);
    }
    return;
  }
  // 90 clockwise: source (x, y) lands at (height - 1 - y, x); 270: at (y, width - 1 - x).
  for (int ty = 0; ty < height; ty += kTile) {
    for (int tx = 0; tx < width; tx += kTile) {
      const int y_end = std::min(ty + kTile, height), x_end = std::min(tx + kTile, width);
      for (int x = tx; x < x_end; ++x) {
        uint8_t* out = degrees == 90 ? dst + static_cast<ptrdiff_t>(x) * dst_stride
                                     : dst + static_cast<ptrdiff_t>(width - 1 - x) * dst_stride;
        for (int y = ty; y < y_end; ++y) {
          const int out_x = degrees == 90 ? height - 1 - y : y;
          out[out_x] = at(x, y);
        }
      }
    }
  }
}

void RotateFrame420(const AVFrame& src, int degrees, AVFrame* dst) {
  for (int plane = 0; plane < 3; ++plane) {
    const int shift = plane == 0 ? 0 : 1;
    const int width = (src.width + shift) >> shift;  // chroma planes round up
    const int height = (src.height + shift) >> shift;
    RotatePlane(src.data[plane], src.linesize[plane], width, height, degrees, dst->data[plane],
                dst->linesize[plane]);
  }
}

}  // namespace zerofarm::transcode::worker

// Display rotation applied to decoded pictures, without libavfilter. Pure; thread-safe.
#pragma once

#include <cstdint>

extern "C" {
#include <libavutil/frame.h>
}

namespace zerofarm::transcode::worker {

// Rotates one 8-bit plane of width x height clockwise by `degrees` (90, 180 or 270) into `dst`,
// which is height x width for 90 and 270 and width x height for 180.
void RotatePlane(const uint8_t* src, int src_stride, int width, int height, int degrees,
                 uint8_t* dst, int dst_stride);

// Rotates a planar 8-bit 4:2:0 frame (all three planes) clockwise by `degrees` into `dst`,
// already allocated with the rotated size and the same pixel format. Copies nothing else.
void RotateFrame420(const AVFrame& src, int degrees, AVFrame* dst);

}  // namespace zerofarm::transcode::worker

// Turns decoded pictures of any pixel format, size, range and matrix into 8-bit 4:2:0 pictures of
// one output size, applying the display rotation. libswscale scales and converts; the rotation
// is a plane rotation afterwards (no libavfilter). Not thread-safe: one converter per output.
#pragma once

#include <optional>

#include "zerofarm/base/status.h"
#include "zerofarm/transcode/ffmpeg_ptr.h"
#include "zerofarm/transcode/packet_stream.h"

namespace zerofarm::transcode::worker {

struct OutputColor {
  AVColorSpace matrix = AVCOL_SPC_BT709;
  AVColorPrimaries primaries = AVCOL_PRI_BT709;
  AVColorTransferCharacteristic trc = AVCOL_TRC_BT709;
};

// The YUV matrix of the source stream: its tag, else BT.709 for HD and BT.601 below.
AVColorSpace ResolveSourceMatrix(const StreamHeader& source);

// The tags of an output of width x height. A BT.601 or BT.709 source keeps its matrix (swscale
// then only scales, no detour through RGB); anything else (BT.2020, RGB, untagged exotic) goes to
// BT.709 for a short side of 720 or more and BT.601 below. Primaries and transfer pass through
// when they are SDR ones and follow the matrix otherwise: nothing is tone-mapped.
OutputColor ChooseOutputColor(const StreamHeader& source, int width, int height);

// The rotation as one of 0, 90, 180, 270 (clockwise), the nearest quarter turn of `degrees`.
int QuarterTurns(double degrees);

struct ConverterTarget {
  int width = 0, height = 0;  // the output, in display orientation
  int rotation = 0;           // clockwise, 0/90/180/270
  AVColorSpace matrix = AVCOL_SPC_BT709;
  bool full_range = false;  // limited (video) or full (JPEG) range
  // The matrix assumed for source frames that carry none (the stream's, resolved).
  AVColorSpace source_matrix = AVCOL_SPC_BT709;
};

class FrameConverter {
 public:
  explicit FrameConverter(const ConverterTarget& target) : target_(target) {}

  // Converts `src` into the converter's own yuv420p frame of the target size (valid until the
  // next call; its pts is src's). Error "unsupported" when swscale cannot read the format.
  Result<AVFrame*> Convert(const AVFrame& src);

 private:
  struct SourceKey {
    int width, height, format, full_range, matrix;
    bool operator==(const SourceKey&) const = default;
  };
  Status Configure(const SourceKey& key);
  Status EnsureFrame(FramePtr* frame, int width, int height);

  ConverterTarget target_;
  std::optional<SourceKey> key_;
  SwsContextPtr sws_;
  FramePtr scaled_;  // before rotation, when there is one
  FramePtr output_;
};

}  // namespace zerofarm::transcode::worker

// Test helpers for zerofarm-worker: make packet streams from media files with libavformat, run
// the worker binary with its channels as pipes, read its packet streams back and decode H.264.
// Thread-compatible: no shared state beyond the child processes each call creates.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "zerofarm/base/status.h"
#include "zerofarm/transcode/packet_stream.h"

namespace zerofarm::transcode::worker_test {

// One elementary stream of a file as the worker's input.
struct DemuxedStream {
  StreamHeader header;
  std::vector<Packet> packets;  // decode order, ordinals 0, 1, ...

  // EncodeHeader + EncodePacket of every packet.
  std::string Serialize() const;
};

// The best video ("v") or audio ("a") stream of `path`.
Result<DemuxedStream> Demux(const std::string& path, char kind);

struct WorkerRun {
  int exit_code = -1;                // -1 when it did not exit normally
  std::string report;                // fd 1
  std::string log;                   // fd 2
  std::vector<std::string> outputs;  // fds 3, 4, ... in order
};

// Runs `zerofarm-worker MODE --task TASK` as the product does, validated and in the sandbox,
// with `input` on fd 0 and `output_count` output channels as fds 3.. Kills it after `timeout`.
Result<WorkerRun> RunWorker(const std::string& mode, const std::string& task,
                            const std::string& input, int output_count,
                            std::chrono::seconds timeout = std::chrono::seconds(600));

// A whole packet stream read back.
struct ParsedStream {
  StreamHeader header;
  std::vector<Packet> packets;
};
Result<ParsedStream> ParseStream(const std::string& bytes);

struct DecodedPicture {
  int64_t pts = 0;
  int width = 0, height = 0;
  int format = -1;  // AVPixelFormat
  bool key = false;
  std::vector<uint8_t> luma;  // width * height

  int LumaAt(int x, int y) const { return luma[static_cast<size_t>(y) * width + x]; }
};

// Decodes an H.264 packet stream alone (no extradata: parameter sets must be in-band).
Result<std::vector<DecodedPicture>> DecodeH264(const ParsedStream& stream);

// Decodes a JPEG image; the picture's luma.
Result<DecodedPicture> DecodeJpeg(const std::string& bytes);

}  // namespace zerofarm::transcode::worker_test

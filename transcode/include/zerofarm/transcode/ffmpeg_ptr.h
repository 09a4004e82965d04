// Owners for libav* objects: one deleter per type, all in one place.
// Input and output format contexts have separate owners because they are freed differently.
// avformat_open_input frees the context itself on failure: adopt the pointer only on success.
#pragma once

#include <memory>

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/frame.h>
#include <libswresample/swresample.h>
#include <libswscale/swscale.h>
}

namespace zerofarm::transcode {

struct AVFrameDeleter {
  void operator()(AVFrame* f) const { av_frame_free(&f); }
};
struct AVPacketDeleter {
  void operator()(AVPacket* p) const { av_packet_free(&p); }
};
struct AVCodecContextDeleter {
  void operator()(AVCodecContext* c) const { avcodec_free_context(&c); }
};
struct AVCodecParametersDeleter {
  void operator()(AVCodecParameters* c) const { avcodec_parameters_free(&c); }
};
struct SwsContextDeleter {
  void operator()(SwsContext* c) const { sws_freeContext(c); }
};
struct SwrContextDeleter {
  void operator()(SwrContext* c) const { swr_free(&c); }
};
struct InputFormatContextDeleter {
  void operator()(AVFormatContext* c) const { avformat_close_input(&c); }
};
// For muxers writing through a custom or file AVIOContext the caller owns pb separately.
struct OutputFormatContextDeleter {
  void operator()(AVFormatContext* c) const { avformat_free_context(c); }
};
struct AVIOContextDeleter {
  void operator()(AVIOContext* c) const {
    if (c) av_freep(&c->buffer);
    avio_context_free(&c);
  }
};

using FramePtr = std::unique_ptr<AVFrame, AVFrameDeleter>;
using PacketPtr = std::unique_ptr<AVPacket, AVPacketDeleter>;
using CodecContextPtr = std::unique_ptr<AVCodecContext, AVCodecContextDeleter>;
using CodecParametersPtr = std::unique_ptr<AVCodecParameters, AVCodecParametersDeleter>;
using SwsContextPtr = std::unique_ptr<SwsContext, SwsContextDeleter>;
using SwrContextPtr = std::unique_ptr<SwrContext, SwrContextDeleter>;
using InputFormatPtr = std::unique_ptr<AVFormatContext, InputFormatContextDeleter>;
using OutputFormatPtr = std::unique_ptr<AVFormatContext, OutputFormatContextDeleter>;
using AVIOContextPtr = std::unique_ptr<AVIOContext, AVIOContextDeleter>;

inline FramePtr MakeFrame() { return FramePtr(av_frame_alloc()); }
inline PacketPtr MakePacket() { return PacketPtr(av_packet_alloc()); }

// "Invalid data found when processing input" etc.
std::string AvErrorString(int err);

}  // namespace zerofarm::transcode

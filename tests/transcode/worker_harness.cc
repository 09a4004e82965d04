#include "worker_harness.h"

#include <cstring>

#include "zerofarm/sandbox/runner.h"
#include "zerofarm/sandbox/sealed_program.h"
#include "zerofarm/sandbox/validator.h"
#include "zerofarm/transcode/ffmpeg_ptr.h"
#include "zerofarm/transcode/packet_stream_av.h"

namespace zerofarm::transcode::worker_test {
namespace {

Status AvError(const std::string& what, int err) {
  return Status::Error(ErrorCode::kAvError, what + ": " + AvErrorString(err));
}

// Decodes packets with a libavcodec decoder into pictures (luma copied).
Result<std::vector<DecodedPicture>> DecodeWith(AVCodecID id, const std::vector<Packet>& packets,
                                               AVRational time_base) {
  const AVCodec* codec = avcodec_find_decoder(id);
  if (!codec) return Status::Error(ErrorCode::kAvError, "no decoder");
  CodecContextPtr ctx(avcodec_alloc_context3(codec));
  ctx->pkt_timebase = time_base;
  ctx->thread_count = 1;
  int ret = avcodec_open2(ctx.get(), codec, nullptr);
  if (ret < 0) return AvError("avcodec_open2", ret);
  std::vector<DecodedPicture> pictures;
  PacketPtr pkt = MakePacket();
  FramePtr frame = MakeFrame();
  auto drain = [&]() -> Status {
    for (;;) {
      int r = avcodec_receive_frame(ctx.get(), frame.get());
      if (r == AVERROR(EAGAIN) || r == AVERROR_EOF) return Status::Ok();
      if (r < 0) return AvError("avcodec_receive_frame", r);
      DecodedPicture p;
      p.pts = frame->best_effort_timestamp;
      p.width = frame->width;
      p.height = frame->height;
      p.format = frame->format;
      p.key = frame->key_frame != 0;
      p.luma.resize(static_cast<size_t>(p.width) * p.height);
      for (int y = 0; y < p.height; ++y)
        std::memcpy(p.luma.data() + static_cast<size_t>(y) * p.width,
                    frame->data[0] + static_cast<ptrdiff_t>(y) * frame->linesize[0], p.width);
      pictures.push_back(std::move(p));
      av_frame_unref(frame.get());
    }
  };
  for (const Packet& packet : packets) {
    ZF_RETURN_IF_ERROR(PacketToAv(packet, pkt.get()));
    ret = avcodec_send_packet(ctx.get(), pkt.get());
    if (ret < 0) return AvError("avcodec_send_packet", ret);
    ZF_RETURN_IF_ERROR(drain());
  }
  ret = avcodec_send_packet(ctx.get(), nullptr);
  if (ret < 0) return AvError("flush", ret);
  ZF_RETURN_IF_ERROR(drain());
  return pictures;
}

}  // namespace

std::string DemuxedStream::Serialize() const {
  std::string out = EncodeHeader(header);
  for (const Packet& p : packets) out += EncodePacket(p);
  return out;
}

Result<DemuxedStream> Demux(const std::string& path, char kind) {
  // Probing broken corpus files logs every bad frame; the worker's own verdict is what counts.
  struct QuietLog {
    int saved = av_log_get_level();
    QuietLog() { av_log_set_level(AV_LOG_FATAL); }
    ~QuietLog() { av_log_set_level(saved); }
  } quiet;
  AVFormatContext* raw = nullptr;
  int ret = avformat_open_input(&raw, path.c_str(), nullptr, nullptr);
  if (ret < 0) return AvError("avformat_open_input " + path, ret);
  InputFormatPtr fmt(raw);
  ret = avformat_find_stream_info(fmt.get(), nullptr);
  if (ret < 0) return AvError("avformat_find_stream_info", ret);
  const int index = av_find_best_stream(
      fmt.get(), kind == 'a' ? AVMEDIA_TYPE_AUDIO : AVMEDIA_TYPE_VIDEO, -1, -1, nullptr, 0);
  if (index < 0) return AvError("av_find_best_stream", index);
  DemuxedStream out;
  out.header = HeaderFromStream(*fmt->streams[index]);
  PacketPtr pkt = MakePacket();
  while (av_read_frame(fmt.get(), pkt.get()) >= 0) {
    if (pkt->stream_index == index) out.packets.push_back(PacketFromAv(*pkt, out.packets.size()));
    av_packet_unref(pkt.get());
  }
  return out;
}

Result<WorkerRun> RunWorker(const std::string& mode, const std::string& task,
                            const std::string& input, int output_count,
                            std::chrono::seconds timeout) {
  namespace sb = zerofarm::sandbox;
  // The worker runs as in the product: its sealed bytes, validated once, in the sandbox.
  struct Loaded {
    Result<sb::SealedProgram> program = Status::Error(ErrorCode::kInternal, "not loaded");
    Result<sb::ValidationReport> verdict = Status::Error(ErrorCode::kInternal, "not validated");
  };
  static const Loaded* loaded = [] {
    auto* l = new Loaded;
    l->program = sb::LoadProgram(ZF_WORKER_BIN);
    if (l->program.ok()) l->verdict = sb::Validate(l->program->bytes());
    return l;
  }();
  if (!loaded->program.ok()) return loaded->program.status();
  if (!loaded->verdict.ok()) return loaded->verdict.status();
  sb::SandboxSpec spec;
  spec.program = &*loaded->program;
  spec.verdict = &*loaded->verdict;
  spec.argv = {"zerofarm-worker", mode, "--task", task};
  spec.channels.push_back({"input", 0, sb::Direction::kIn, sb::ChannelEnd::Memory(input)});
  spec.channels.push_back({"report", 1, sb::Direction::kOut, sb::ChannelEnd::Memory()});
  spec.channels.push_back({"stderr", 2, sb::Direction::kOut, sb::ChannelEnd::Memory()});
  for (int i = 0; i < output_count; ++i)
    spec.channels.push_back(
        {"out" + std::to_string(i), 3 + i, sb::Direction::kOut, sb::ChannelEnd::Memory()});
  spec.limits.memory_bytes = uint64_t{3} << 30;
  spec.limits.wall_timeout = timeout;
  spec.limits.cpu_seconds = static_cast<uint64_t>(timeout.count()) * 4;
  spec.limits.max_threads = 512;
  auto report = sb::RunSandboxed(spec);
  if (!report.ok()) return report.status();
  if (report->stopped_by == sandbox::StopRule::kTimeout)
    return Status::Error(ErrorCode::kTimeout, "the worker did not finish in time");
  WorkerRun run;
  run.outputs.resize(static_cast<size_t>(output_count));
  for (auto& c : report->channels) {
    if (c.target_fd == 1) run.report = std::move(c.captured);
    if (c.target_fd == 2) run.log = std::move(c.captured);
    if (c.target_fd >= 3) run.outputs[static_cast<size_t>(c.target_fd - 3)] = std::move(c.captured);
  }
  if (report->stopped_by != sandbox::StopRule::kNone)
    run.log += "\n[sandbox] stopped by " + report->detail;
  run.exit_code = report->ended == sandbox::RunEnd::kExited ? report->exit_code : -1;
  return run;
}

Result<ParsedStream> ParseStream(const std::string& bytes) {
  size_t cursor = 0;
  PacketStreamReader reader = ReaderOverString(bytes, &cursor);
  auto header = reader.ReadHeader();
  if (!header.ok()) return header.status();
  ParsedStream out;
  out.header = *header;
  for (;;) {
    auto next = reader.Next();
    if (!next.ok()) return next.status();
    if (!next->has_value()) break;
    out.packets.push_back(std::move(**next));
  }
  return out;
}

Result<std::vector<DecodedPicture>> DecodeH264(const ParsedStream& stream) {
  return DecodeWith(AV_CODEC_ID_H264, stream.packets,
                    AVRational{stream.header.time_base_num, stream.header.time_base_den});
}

Result<DecodedPicture> DecodeJpeg(const std::string& bytes) {
  Packet packet;
  packet.pts = 0;
  packet.data = bytes;
  packet.flags = kPacketKey;
  auto pictures = DecodeWith(AV_CODEC_ID_MJPEG, {packet}, AVRational{1, 25});
  if (!pictures.ok()) return pictures.status();
  if (pictures->size() != 1) return Status::Error(ErrorCode::kAvError, "not exactly one picture");
  return std::move((*pictures)[0]);
}

}  // namespace zerofarm::transcode::worker_test

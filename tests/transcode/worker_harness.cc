#include "worker_harness.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "zerofarm/base/unique_fd.h"
#include "zerofarm/transcode/ffmpeg_ptr.h"
#include "zerofarm/transcode/packet_stream_av.h"

extern char** environ;

namespace zerofarm::transcode::worker_test {
namespace {

using Clock = std::chrono::steady_clock;

// Child-side pipe ends are first moved above every target fd so that no dup2 overwrites an
// end that a later dup2 still needs.
constexpr int kStagingFd = 100;

Status AvError(const std::string& what, int err) {
  return Status::Error("av_error", what + ": " + AvErrorString(err));
}

class SpawnActions {
 public:
  SpawnActions() { posix_spawn_file_actions_init(&actions_); }
  ~SpawnActions() { posix_spawn_file_actions_destroy(&actions_); }
  SpawnActions(const SpawnActions&) = delete;
  SpawnActions& operator=(const SpawnActions&) = delete;
  posix_spawn_file_actions_t* get() { return &actions_; }

 private:
  posix_spawn_file_actions_t actions_;
};

// Decodes packets with a libavcodec decoder into pictures (luma copied).
Result<std::vector<DecodedPicture>> DecodeWith(AVCodecID id, const std::vector<Packet>& packets,
                                               AVRational time_base) {
  const AVCodec* codec = avcodec_find_decoder(id);
  if (!codec) return Status::Error("av_error", "no decoder");
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
  // A worker that stops reading early must show up as its report, not kill the test with SIGPIPE.
  signal(SIGPIPE, SIG_IGN);
  // Parent ends: [0] writes fd 0; [1] reads fd 1; [2] reads fd 2; [3 + i] reads output i.
  std::vector<UniqueFd> parent_ends, child_ends;
  const int channels = 3 + output_count;
  for (int target = 0; target < channels; ++target) {
    auto pipe = MakePipe();
    if (!pipe.ok()) return pipe.status();
    UniqueFd& child = target == 0 ? pipe->read : pipe->write;
    int staged = fcntl(child.get(), F_DUPFD_CLOEXEC, kStagingFd);
    if (staged < 0) return ErrnoError("fcntl", errno);
    child_ends.emplace_back(staged);
    parent_ends.push_back(std::move(target == 0 ? pipe->write : pipe->read));
  }
  SpawnActions actions;
  for (int target = 0; target < channels; ++target)
    posix_spawn_file_actions_adddup2(actions.get(), child_ends[target].get(), target);

  std::vector<std::string> args = {ZF_WORKER_BIN, mode, "--task", task};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  int err = posix_spawn(&pid, argv[0], actions.get(), nullptr, argv.data(), environ);
  if (err != 0) return ErrnoError("posix_spawn", err);
  child_ends.clear();

  // The input goes in from its own thread while the outputs are read here.
  UniqueFd input_fd = std::move(parent_ends[0]);
  std::thread writer([&input, fd = std::move(input_fd)]() mutable {
    (void)WriteAll(fd.get(), std::as_bytes(std::span(input.data(), input.size())));
    fd.Close();
  });

  WorkerRun run;
  run.outputs.resize(static_cast<size_t>(output_count));
  auto sink_for = [&](int target) -> std::string& {
    return target == 1 ? run.report : target == 2 ? run.log : run.outputs[target - 3];
  };
  const auto deadline = Clock::now() + timeout;
  bool timed_out = false;
  for (;;) {
    std::vector<pollfd> pfds;
    std::vector<int> targets;
    for (int target = 1; target < channels; ++target) {
      if (!parent_ends[target].valid()) continue;
      pfds.push_back(pollfd{parent_ends[target].get(), POLLIN, 0});
      targets.push_back(target);
    }
    if (pfds.empty()) break;
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    int ready = ::poll(pfds.data(), pfds.size(), static_cast<int>(left.count()));
    if (ready < 0 && errno != EINTR) return ErrnoError("poll", errno);
    for (size_t k = 0; ready > 0 && k < pfds.size(); ++k) {
      if (pfds[k].revents == 0) continue;
      std::byte buf[65536];
      auto got = ReadSome(pfds[k].fd, buf);
      if (!got.ok() || *got == 0) {
        parent_ends[targets[k]].Close();
        continue;
      }
      sink_for(targets[k]).append(reinterpret_cast<const char*>(buf), *got);
    }
  }
  if (timed_out) kill(pid, SIGKILL);
  for (UniqueFd& fd : parent_ends) fd.Close();  // unblocks the writer if the child is gone
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  writer.join();
  if (timed_out) return Status::Error("timeout", "the worker did not finish in time");
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
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
  if (pictures->size() != 1) return Status::Error("av_error", "not exactly one picture");
  return std::move((*pictures)[0]);
}

}  // namespace zerofarm::transcode::worker_test

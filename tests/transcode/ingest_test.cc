// The chunker: where chunks and tasks start, and that every packet is owned exactly once.
#include "zerofarm/transcode/ingest.h"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>

#include "clip_factory.h"
#include "corpus.h"
#include "run_command.h"
#include "zerofarm/storage/store.h"
#include "zerofarm/transcode/packet_stream.h"

namespace fs = std::filesystem;
using namespace zerofarm;
using namespace zerofarm::transcode;

namespace {

class FileSource : public ByteSource {
 public:
  explicit FileSource(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    bytes_.assign(std::istreambuf_iterator<char>(in), {});
  }
  explicit FileSource(std::string bytes) : bytes_(std::move(bytes)) {}
  Result<size_t> ReadAt(uint64_t offset, std::span<std::byte> out) override {
    if (offset >= bytes_.size()) return size_t{0};
    size_t n = std::min<size_t>(out.size(), bytes_.size() - offset);
    std::memcpy(out.data(), bytes_.data() + offset, n);
    return n;
  }
  std::optional<uint64_t> Size() const override { return bytes_.size(); }
  const std::string& bytes() const { return bytes_; }

 private:
  std::string bytes_;
};

struct Recorder : IngestSink {
  bool source_seen = false;
  std::vector<ChunkInfo> chunks;
  std::vector<TaskPlan> tasks;
  void OnSource(const SourceInfo&) override { source_seen = true; }
  void OnChunk(const ChunkInfo& c) override { chunks.push_back(c); }
  void OnTask(const TaskPlan& t) override { tasks.push_back(t); }
};

// Makes a clip with the ffmpeg CLI (cached); `video_args` shape its keyframes.
fs::path MakeClip(const std::string& name, double seconds,
                  const std::vector<std::string>& video_args, bool audio = true) {
  std::vector<std::string> args = {
      "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25:duration=" + std::to_string(seconds)};
  if (audio)
    args.insert(args.end(),
                {"-f", "lavfi", "-i", "sine=frequency=440:duration=" + std::to_string(seconds)});
  args.insert(args.end(), {"-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"});
  args.insert(args.end(), video_args.begin(), video_args.end());
  if (audio) args.insert(args.end(), {"-c:a", "aac", "-b:a", "64k"});
  auto clip = test::MakeCachedClip(name, args);
  INFO(clip.status().ToString());
  REQUIRE(clip.ok());
  return *clip;
}

std::unique_ptr<storage::Store> OpenStore(const fs::path& dir) {
  storage::Options o;
  o.dir = dir / "store";
  auto s = storage::Store::Open(o);
  REQUIRE(s.ok());
  return std::move(*s);
}

// Reads every packet of a stored chunk object.
std::vector<Packet> ReadChunk(storage::Store& store, const std::string& name) {
  auto bytes = store.GetObject(name);
  REQUIRE(bytes.ok());
  size_t cursor = 0;
  auto reader = ReaderOverString(*bytes, &cursor);
  REQUIRE(reader.ReadHeader().ok());
  std::vector<Packet> out;
  for (;;) {
    auto p = reader.Next();
    REQUIRE(p.ok());
    if (!p->has_value()) break;
    out.push_back(std::move(**p));
  }
  return out;
}

// Checks the partition: chunks hold every packet once, in decode order, and every packet's
// pts lies in exactly one task's [start, end).
void CheckPartition(storage::Store& store, const IngestResult& r) {
  std::vector<Packet> all;
  for (const auto& c : r.chunks) {
    auto ps = ReadChunk(store, c.object);
    REQUIRE(ps.size() == c.packets);
    REQUIRE(ps.front().ordinal == c.first_ordinal);
    REQUIRE(ps.back().ordinal == c.last_ordinal);
    for (auto& p : ps) all.push_back(std::move(p));
  }
  REQUIRE(all.size() == r.video_packets);
  for (size_t i = 0; i < all.size(); ++i) REQUIRE(all[i].ordinal == i);

  uint64_t owned = 0;
  for (size_t i = 0; i < r.tasks.size(); ++i) {
    const TaskPlan& t = r.tasks[i];
    CHECK(t.index == i);
    if (i == 0) CHECK_FALSE(t.start_pts.has_value());
    if (i + 1 == r.tasks.size()) CHECK_FALSE(t.end_pts.has_value());
    if (i > 0) REQUIRE(r.tasks[i - 1].end_pts == t.start_pts);
    // A task decodes from a keyframe.
    REQUIRE((all[t.decode_from].flags & kPacketKey) != 0);
    REQUIRE(t.decode_to >= t.decode_from);
    uint64_t mine = 0;
    for (const Packet& p : all) {
      bool in = (!t.start_pts || p.pts >= *t.start_pts) && (!t.end_pts || p.pts < *t.end_pts);
      if (in) {
        ++mine;
        REQUIRE(p.ordinal >= t.decode_from);
        REQUIRE(p.ordinal <= t.decode_to);
      }
    }
    REQUIRE(mine == t.owned_packets);
    owned += mine;
  }
  REQUIRE(owned == r.video_packets);
}

}  // namespace

TEST_CASE("a clip with regular keyframes is cut at keyframes near the chunk length",
          "[transcode][ingest][slow]") {
  auto scratch = test::ScratchDir::Create("ingest");
  REQUIRE(scratch.ok());
  const fs::path& dir = scratch->path();
  auto clip = MakeClip("gop1s.mp4", 10,
                       {"-g", "25", "-keyint_min", "25", "-sc_threshold", "0", "-bf", "2"});
  auto store = OpenStore(dir);
  FileSource src(clip);
  Recorder rec;
  IngestOptions opt;
  opt.chunk_seconds = 2;
  opt.prefix = "jobs/t/";
  auto r = Ingest(src, *store, opt, &rec);
  REQUIRE(r.ok());
  CHECK(rec.source_seen);
  CHECK(r->video_packets == 250);
  CHECK(r->tasks.size() == 5);
  CHECK(rec.tasks.size() == r->tasks.size());
  // With a keyframe every second, every task starts on its own keyframe: no pre-roll.
  for (const auto& t : r->tasks) CHECK(t.preroll_packets == 0);
  CheckPartition(*store, *r);
  // The stored source is the input, byte for byte.
  auto stored = store->GetObject("jobs/t/source");
  REQUIRE(stored.ok());
  CHECK(*stored == src.bytes());
  CHECK(store->Stat("jobs/t/audio").ok());
}

TEST_CASE("a clip with a single keyframe still gives many tasks through pre-roll",
          "[transcode][ingest][slow]") {
  auto scratch = test::ScratchDir::Create("ingest");
  REQUIRE(scratch.ok());
  const fs::path& dir = scratch->path();
  auto clip = MakeClip("onekey.mp4", 12,
                       {"-g", "10000", "-keyint_min", "10000", "-sc_threshold", "0", "-bf", "3"},
                       /*audio=*/false);
  auto store = OpenStore(dir);
  FileSource src(clip);
  IngestOptions opt;
  opt.chunk_seconds = 2;
  auto r = Ingest(src, *store, opt, nullptr);
  REQUIRE(r.ok());
  CHECK(r->tasks.size() == 6);
  for (size_t i = 1; i < r->tasks.size(); ++i) {
    CHECK(r->tasks[i].decode_from == 0);  // the only keyframe
    CHECK(r->tasks[i].preroll_packets > 0);
  }
  CHECK_FALSE(store->Stat("audio").ok());
  CheckPartition(*store, *r);
}

TEST_CASE("an open-GOP clip gives tasks whose last packet lies past the next keyframe",
          "[transcode][ingest][slow]") {
  auto scratch = test::ScratchDir::Create("ingest");
  REQUIRE(scratch.ok());
  const fs::path& dir = scratch->path();
  auto clip =
      MakeClip("opengop.mkv", 8, {"-g", "25", "-bf", "3", "-x264-params", "open-gop=1:scenecut=0"});
  auto store = OpenStore(dir);
  FileSource src(clip);
  IngestOptions opt;
  opt.chunk_seconds = 2;
  auto r = Ingest(src, *store, opt, nullptr);
  REQUIRE(r.ok());
  REQUIRE(r->tasks.size() >= 3);
  CheckPartition(*store, *r);
}

TEST_CASE("garbage, empty and audio-only inputs are refused with the reason",
          "[transcode][ingest][slow]") {
  auto scratch = test::ScratchDir::Create("ingest");
  REQUIRE(scratch.ok());
  const fs::path& dir = scratch->path();
  auto store = OpenStore(dir);
  IngestOptions opt;

  SECTION("empty") {
    FileSource src(std::string{});
    auto r = Ingest(src, *store, opt, nullptr);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == ErrorCode::kEmptyInput);
  }
  SECTION("random bytes") {
    std::mt19937 rng(7);
    std::string bytes(200000, '\0');
    for (char& c : bytes) c = static_cast<char>(rng());
    FileSource src(bytes);
    auto r = Ingest(src, *store, opt, nullptr);
    REQUIRE_FALSE(r.ok());
    CHECK((r.status().code() == ErrorCode::kNotMedia ||
           r.status().code() == ErrorCode::kCorruptContainer));
  }
  SECTION("audio only") {
    auto made =
        test::MakeCachedClip("tone.m4a", {"-f", "lavfi", "-i", "sine=duration=2", "-c:a", "aac"});
    REQUIRE(made.ok());
    const fs::path a = *made;
    FileSource src(a);
    auto r = Ingest(src, *store, opt, nullptr);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == ErrorCode::kNoVideoStream);
    CHECK_THAT(r.status().message(), Catch::Contains("no video stream"));
  }
  SECTION("an MP4 cut before its index") {
    auto clip = MakeClip("cut.mp4", 4, {"-g", "25"});
    FileSource whole(clip);
    FileSource src(whole.bytes().substr(0, whole.bytes().size() / 2));
    auto r = Ingest(src, *store, opt, nullptr);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == ErrorCode::kTruncated);
  }
  SECTION("an MP4 with its index first, cut in the middle of its media") {
    auto clip = MakeClip("cutfs.mp4", 4, {"-g", "25", "-movflags", "+faststart"});
    FileSource whole(clip);
    FileSource src(whole.bytes().substr(0, whole.bytes().size() / 2));
    auto r = Ingest(src, *store, opt, nullptr);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == ErrorCode::kTruncated);
  }
}

TEST_CASE("an audio track in a codec outside the allow-list is left out with a warning",
          "[transcode][ingest][slow]") {
  auto scratch = test::ScratchDir::Create("ingest");
  REQUIRE(scratch.ok());
  const fs::path& dir = scratch->path();
  auto made = test::MakeCachedClip(
      "ima-qt.mov",
      {"-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25:duration=2", "-f", "lavfi", "-i",
       "sine=duration=2", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "adpcm_ima_qt"});
  INFO(made.status().ToString());
  REQUIRE(made.ok());
  const fs::path clip = *made;
  auto store = OpenStore(dir);
  FileSource src(clip);
  IngestOptions opt;
  auto r = Ingest(src, *store, opt, nullptr);
  REQUIRE(r.ok());
  CHECK_FALSE(r->source.audio.has_value());
  REQUIRE(r->source.warnings.size() == 1);
  CHECK_THAT(r->source.warnings[0], Catch::Contains("adpcm_ima_qt"));
  CHECK_FALSE(store->Stat("audio").ok());
}

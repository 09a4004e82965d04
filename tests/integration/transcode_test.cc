// `zerofarm transcode` held to its contract on generated clips and on the real corpus.
// Every check of the output goes through the ffprobe/ffmpeg CLIs (see output_checks.h).

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "clip_factory.h"
#include "corpus.h"
#include "output_checks.h"
#include "run_command.h"

namespace zerofarm::test {
namespace {

namespace fs = std::filesystem;

// Guards against a hung process only; no test asserts how long anything takes.
constexpr std::chrono::seconds kTranscodeTimeout{1200};
constexpr std::chrono::seconds kRejectTimeout{120};
constexpr std::chrono::seconds kCliTimeout{60};

// Generated clips get short chunks, so even a few seconds make several chunks and segments,
// and a small ladder: 720p is skipped for 360-line clips, 360p and 240p give two rungs to
// align.
const std::vector<std::string> kClipArgs = {"--chunk-seconds", "2", "--ladder", "720p,360p,240p"};
const std::vector<int> kClipLadder = {720, 360, 240};
const std::vector<int> kDefaultLadder = {1080, 720, 480, 360};

CommandResult RunZerofarm(std::vector<std::string> args, std::chrono::seconds timeout) {
  args.insert(args.begin(), ZF_ZEROFARM_BIN);
  return RunCommand(args, timeout);
}

// Runs `zerofarm transcode input -o <scratch>/out --data <scratch>/data extra...`.
CommandResult RunTranscode(const ScratchDir& scratch, const std::string& input,
                           const std::vector<std::string>& extra, std::chrono::seconds timeout) {
  std::vector<std::string> args = {"transcode", input,
                                   "-o",        (scratch.path() / "out").string(),
                                   "--data",    (scratch.path() / "data").string()};
  args.insert(args.end(), extra.begin(), extra.end());
  return RunZerofarm(args, timeout);
}

void TranscodeAndCheck(const std::string& label, const std::string& input,
                       std::optional<int64_t> frames, const std::vector<std::string>& extra,
                       const std::vector<int>& ladder) {
  INFO("source " << input);
  auto source = DescribeSource(input, frames);
  INFO(source.status().ToString());
  REQUIRE(source.ok());
  auto scratch = ScratchDir::Create(label);
  REQUIRE(scratch.ok());
  CommandResult run = RunTranscode(*scratch, input, extra, kTranscodeTimeout);
  {
    INFO("zerofarm ended with " << run.DescribeEnd());
    INFO("stderr: " << run.err);
    REQUIRE(run.succeeded());
  }
  CheckTranscodeOutput(scratch->path() / "out", *source, ladder);
}

void TranscodeClipAndCheck(Clip clip, const std::vector<std::string>& args = kClipArgs,
                           const std::vector<int>& ladder = kClipLadder) {
  const ClipInfo& info = InfoFor(clip);
  INFO("clip " << info.name << ": " << info.description);
  auto path = MakeClip(clip);
  INFO(path.status().ToString());
  REQUIRE(path.ok());
  TranscodeAndCheck(info.name, path->string(), std::nullopt, args, ladder);
}

void RejectAndCheck(const std::string& label, const std::string& input,
                    const std::vector<std::string>& phrases) {
  INFO("input " << input);
  auto scratch = ScratchDir::Create(label);
  REQUIRE(scratch.ok());
  CommandResult run = RunTranscode(*scratch, input, kClipArgs, kRejectTimeout);
  CheckCleanRejection(run, scratch->path() / "out", phrases);
}

// What each corpus reject file is refused for; others may use any phrase of the contract.
std::vector<std::string> PhrasesFor(const std::string& corpus_file) {
  static const std::map<std::string, std::vector<std::string>> kKnown = {
      {"vp9_invalid-bitstream.webm", {"undecodable"}},
      {"mp4_sample_opus.mp4", {"no video stream"}},
      {"mkv_subsample_encrypted_altref.webm", {"encrypted"}},
      // A hostile container: its fragments name a track its header never declares.
      {"mp4_sample_fragmented_sideloaded_track.mp4", {"corrupt container"}},
  };
  auto it = kKnown.find(corpus_file);
  return it == kKnown.end() ? AnyRejectionPhrase() : it->second;
}

}  // namespace

// --- Generated clips: one hard case each ------------------------------------------------

TEST_CASE("a long-GOP clip with a single keyframe comes out frame-exact in every rung",
          "[integration][transcode][slow]") {
  TranscodeClipAndCheck(Clip::kLongGopSingleKeyframe);
}

TEST_CASE("an open-GOP clip comes out frame-exact in every rung",
          "[integration][transcode][slow]") {
  TranscodeClipAndCheck(Clip::kOpenGop);
}

TEST_CASE("a clip with a B-frame pyramid comes out frame-exact in every rung",
          "[integration][transcode][slow]") {
  TranscodeClipAndCheck(Clip::kBFramePyramid);
}

TEST_CASE("a variable-frame-rate clip keeps every frame and its audio length",
          "[integration][transcode][slow]") {
  TranscodeClipAndCheck(Clip::kVariableFrameRate);
}

TEST_CASE("a clip with odd dimensions gets one even-sized rung at its own size",
          "[integration][transcode][slow]") {
  // 321x241 is smaller than every rung asked for: one rung, "240p", at 320x240.
  TranscodeClipAndCheck(Clip::kOddDimensions, {"--chunk-seconds", "2", "--ladder", "720p,360p"},
                        {720, 360});
}

TEST_CASE("a clip with display rotation comes out upright and portrait",
          "[integration][transcode][slow]") {
  TranscodeClipAndCheck(Clip::kRotated);
}

TEST_CASE("a portrait clip gets portrait rungs named by their short side",
          "[integration][transcode][slow]") {
  TranscodeClipAndCheck(Clip::kPortrait);
}

TEST_CASE("a clip without audio gets no audio rendition or stream",
          "[integration][transcode][slow]") {
  TranscodeClipAndCheck(Clip::kNoAudio);
}

TEST_CASE("a clip with AAC audio keeps its audio length in HLS and MP4",
          "[integration][transcode][slow]") {
  TranscodeClipAndCheck(Clip::kAacAudio);
}

TEST_CASE("a 10-bit clip comes out frame-exact in every rung", "[integration][transcode][slow]") {
  TranscodeClipAndCheck(Clip::kTenBit);
}

TEST_CASE("garbage inputs are refused with one clear line and no playlist",
          "[integration][transcode][reject][slow]") {
  for (const ClipInfo& info : AllClips()) {
    if (!info.garbage) continue;
    DYNAMIC_SECTION(info.name) {
      INFO(info.description);
      auto path = MakeClip(info.clip);
      INFO(path.status().ToString());
      REQUIRE(path.ok());
      RejectAndCheck(info.name, path->string(), AnyRejectionPhrase());
    }
  }
}

TEST_CASE("a missing input file is refused with one clear line",
          "[integration][transcode][reject][slow]") {
  auto scratch = ScratchDir::Create("missing-input");
  REQUIRE(scratch.ok());
  const std::string input = (scratch->path() / "no-such-file.mp4").string();
  CommandResult run = RunTranscode(*scratch, input, kClipArgs, kRejectTimeout);
  INFO("stderr: " << run.err);
  INFO("ended with " << run.DescribeEnd());
  CHECK_FALSE(run.timed_out);
  CHECK(run.term_signal == 0);
  CHECK(run.exit_code != 0);
  CHECK(run.err.rfind("zerofarm: error:", 0) == 0);
  CHECK(std::count(run.err.begin(), run.err.end(), '\n') <= 1);
  CHECK_FALSE(fs::exists(scratch->path() / "out" / "master.m3u8"));
}

// --- The real corpus ----------------------------------------------------------------------

TEST_CASE("every corpus file marked transcode comes out frame-exact with the default ladder",
          "[integration][transcode][corpus][slow]") {
  auto dir = CorpusDir();
  if (!dir) {
    WARN("skipped: no corpus (set ZEROFARM_CORPUS to the folder holding MANIFEST.tsv)");
    return;
  }
  auto manifest = ReadCorpusManifest(*dir);
  INFO(manifest.status().ToString());
  REQUIRE(manifest.ok());
  for (const CorpusEntry& e : *manifest) {
    if (!e.transcode) continue;
    DYNAMIC_SECTION(e.file) {
      INFO(e.what);
      TranscodeAndCheck(e.file, (*dir / e.file).string(), e.frames, {}, kDefaultLadder);
    }
  }
}

TEST_CASE("every corpus file marked reject is refused with one clear line and no playlist",
          "[integration][transcode][corpus][reject][slow]") {
  auto dir = CorpusDir();
  if (!dir) {
    WARN("skipped: no corpus (set ZEROFARM_CORPUS to the folder holding MANIFEST.tsv)");
    return;
  }
  auto manifest = ReadCorpusManifest(*dir);
  INFO(manifest.status().ToString());
  REQUIRE(manifest.ok());
  for (const CorpusEntry& e : *manifest) {
    if (e.transcode) continue;
    DYNAMIC_SECTION(e.file) {
      INFO(e.what);
      RejectAndCheck(e.file, (*dir / e.file).string(), PhrasesFor(e.file));
    }
  }
}

// --- The command line ---------------------------------------------------------------------

TEST_CASE("zerofarm --help lists every subcommand and each answers --help",
          "[integration][cli][slow]") {
  CommandResult run = RunZerofarm({"--help"}, kCliTimeout);
  INFO("stdout: " << run.out);
  INFO("stderr: " << run.err);
  REQUIRE(run.succeeded());
  // Every subcommand of the architecture brief.
  for (const char* sub :
       {"transcode", "serve", "proxy", "token", "node", "ring", "validate", "sandbox", "bench"}) {
    INFO("subcommand " << sub);
    CHECK(run.out.find(std::string("  ") + sub + " ") != std::string::npos);
    CommandResult help = RunZerofarm({sub, "--help"}, kCliTimeout);
    INFO("its --help: " << help.out << help.err);
    CHECK(help.succeeded());
    CHECK_FALSE(help.out.empty());
  }
  CommandResult unknown = RunZerofarm({"no-such-command"}, kCliTimeout);
  CHECK(unknown.exit_code == 2);
  CHECK(unknown.err.find("unknown command") != std::string::npos);
}

TEST_CASE("zerofarm proxy refuses to start without a ring or with an unreadable one",
          "[integration][cli][slow]") {
  CommandResult none = RunZerofarm({"proxy", "--data", "unused"}, kCliTimeout);
  CHECK(none.exit_code == 2);
  CHECK(none.err.find("--ring is required") != std::string::npos);
  CommandResult missing = RunZerofarm(
      {"proxy", "--ring", "/nonexistent/ring.txt", "--data", "unused", "--insecure"}, kCliTimeout);
  CHECK(missing.exit_code == 3);
  CHECK(missing.err.find("cannot load the ring") != std::string::npos);
}

TEST_CASE("zerofarm transcode --help describes its options", "[integration][cli][slow]") {
  CommandResult run = RunZerofarm({"transcode", "--help"}, kCliTimeout);
  INFO("stdout: " << run.out);
  INFO("stderr: " << run.err);
  REQUIRE(run.succeeded());
  for (const char* option : {"-o", "--ladder", "--preset", "--chunk-seconds", "--jobs", "--data"}) {
    INFO("option " << option);
    CHECK(run.out.find(option) != std::string::npos);
  }
}

TEST_CASE("an unknown option prints usage and exits non-zero", "[integration][cli][slow]") {
  auto scratch = ScratchDir::Create("unknown-option");
  REQUIRE(scratch.ok());
  const std::vector<std::vector<std::string>> commands = {
      {"--no-such-option"},
      {"transcode", "--no-such-option", "in.mp4", "-o", (scratch->path() / "out").string()},
  };
  for (const auto& args : commands) {
    CommandResult run = RunZerofarm(args, kCliTimeout);
    INFO("zerofarm " << FormatCommand(args));
    INFO("stdout: " << run.out);
    INFO("stderr: " << run.err);
    CHECK_FALSE(run.timed_out);
    CHECK(run.term_signal == 0);
    CHECK(run.exit_code != 0);
    std::string all = run.out + run.err;
    std::transform(all.begin(), all.end(), all.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    CHECK(all.find("usage") != std::string::npos);
  }
  CHECK_FALSE(fs::exists(scratch->path() / "out" / "master.m3u8"));
}

// --- The clumsy user ----------------------------------------------------------------------

namespace {

void WriteText(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << text;
}

// Names in `dir` that start with `prefix` (a staging or replaced folder left behind).
std::vector<std::string> Leftovers(const fs::path& dir, const std::string& prefix) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().rfind(prefix, 0) == 0) out.push_back(e.path().string());
  return out;
}

mode_t CurrentUmask() {
  const mode_t m = ::umask(0);
  ::umask(m);
  return m;
}

}  // namespace

TEST_CASE(
    "an output folder with the user's files in it is refused without --force and left as it "
    "was",
    "[integration][cli][clumsy][slow]") {
  auto scratch = ScratchDir::Create("out-not-empty");
  REQUIRE(scratch.ok());
  const fs::path out = scratch->path() / "out";
  WriteText(out / "notes.txt", "mine");
  WriteText(out / "audio" / "keep.aac", "also mine");
  WriteText(out / "360p" / "index.m3u8", "#EXTM3U\n");
  auto clip = MakeClip(Clip::kNoAudio);
  REQUIRE(clip.ok());
  CommandResult run = RunTranscode(*scratch, clip->string(), {"--ladder", "240p"}, kRejectTimeout);
  INFO("stderr: " << run.err);
  CHECK(run.exit_code == 2);
  CHECK(run.err.rfind("zerofarm: error:", 0) == 0);
  CHECK(run.err.find("--force") != std::string::npos);
  CHECK(ReadFile(out / "notes.txt") == "mine");
  CHECK(ReadFile(out / "audio" / "keep.aac") == "also mine");
  CHECK(ReadFile(out / "360p" / "index.m3u8") == "#EXTM3U\n");
  CHECK_FALSE(fs::exists(out / "master.m3u8"));
  CHECK(Leftovers(scratch->path(), ".out.").empty());
}

TEST_CASE("the root, home and current folders and their ancestors are never output folders",
          "[integration][cli][clumsy][slow]") {
  std::vector<std::string> refused = {"/", ".", "..", fs::current_path().root_path().string()};
  if (const char* home = std::getenv("HOME"); home && *home && fs::is_directory(home))
    refused.push_back(home);
  for (const std::string& out : refused) {
    for (bool force : {false, true}) {
      std::vector<std::string> args = {"transcode", "in.mp4", "-o", out};
      if (force) args.push_back("--force");
      INFO("zerofarm " << FormatCommand(args));
      CommandResult run = RunZerofarm(args, kCliTimeout);
      INFO("stderr: " << run.err);
      CHECK(run.exit_code == 2);
      CHECK(run.err.find("refusing to write into") != std::string::npos);
    }
  }
}

TEST_CASE(
    "transcode --force replaces a non-empty output folder whole, and the output is readable by "
    "other "
    "users",
    "[integration][transcode][clumsy][slow]") {
  auto scratch = ScratchDir::Create("out-force");
  REQUIRE(scratch.ok());
  const fs::path out = scratch->path() / "out";
  WriteText(out / "stale.txt", "from an earlier run");
  WriteText(out / "720p" / "old.ts", "old segment");
  auto clip = MakeClip(Clip::kNoAudio);
  REQUIRE(clip.ok());
  CommandResult run =
      RunTranscode(*scratch, clip->string(),
                   {"--ladder", "240p", "--chunk-seconds", "2", "--force"}, kTranscodeTimeout);
  INFO("stderr: " << run.err);
  REQUIRE(run.succeeded());
  CHECK(fs::exists(out / "master.m3u8"));
  CHECK(fs::exists(out / "240p" / "index.m3u8"));
  CHECK_FALSE(fs::exists(out / "stale.txt"));
  CHECK_FALSE(fs::exists(out / "720p"));
  CHECK(Leftovers(scratch->path(), ".out.").empty());
  // Modes as any folder and file the user makes get (0755 and 0644 under umask 022).
  const mode_t mask = CurrentUmask();
  for (const fs::path& dir : {out, out / "240p"}) {
    struct stat st {};
    REQUIRE(::stat(dir.c_str(), &st) == 0);
    INFO(dir);
    CHECK((st.st_mode & 07777) == (0777 & ~mask));
  }
  struct stat file {};
  REQUIRE(::stat((out / "master.m3u8").c_str(), &file) == 0);
  CHECK((file.st_mode & 07777) == (0666 & ~mask));
}

TEST_CASE("a FIFO or a folder as input is refused at once with one clear line",
          "[integration][cli][clumsy][slow]") {
  auto scratch = ScratchDir::Create("fifo-input");
  REQUIRE(scratch.ok());
  const fs::path fifo = scratch->path() / "in.mp4";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  for (const fs::path& input : {fifo, scratch->path()}) {
    INFO("input " << input);
    // Nobody ever writes to the FIFO: opening it for reading would wait forever.
    CommandResult run = RunTranscode(*scratch, input.string(), {"--ladder", "240p"}, kCliTimeout);
    INFO("stderr: " << run.err);
    CHECK_FALSE(run.timed_out);
    CHECK(run.exit_code == 1);
    CHECK(run.err.find("not a regular file") != std::string::npos);
    CHECK(std::count(run.err.begin(), run.err.end(), '\n') == 1);
  }
  CHECK_FALSE(fs::exists(scratch->path() / "out"));
}

TEST_CASE("malformed numbers and impossible ladders are refused with the option they concern",
          "[integration][cli][clumsy][slow]") {
  auto scratch = ScratchDir::Create("bad-numbers");
  REQUIRE(scratch.ok());
  std::string huge_ladder;
  for (int h = 100; h < 400; ++h) huge_ladder += std::to_string(h) + "p,";
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"--chunk-seconds", "nan"},
      {"--chunk-seconds", "4abc"},
      {"--chunk-seconds", "inf"},
      {"--chunk-seconds", ""},
      {"--chunk-seconds", "0x4"},
      {"--chunk-seconds", "0.1"},
      {"--jobs", "2x"},
      {"--jobs", "0"},
      {"--jobs", "-1"},
      {"--jobs", "99999999999"},
      {"--task-timeout", "-1000"},
      {"--task-timeout", "0"},
      {"--task-timeout", "10x"},
      {"--ladder", huge_ladder},
  };
  for (const auto& [flag, value] : bad) {
    const std::vector<std::string> args = {flag, value};
    INFO("zerofarm transcode ... " << FormatCommand(args));
    CommandResult run = RunTranscode(*scratch, "in.mp4", args, kCliTimeout);
    INFO("stderr: " << run.err);
    CHECK(run.exit_code == 2);
    CHECK(run.err.find(flag == "--ladder" ? "rungs" : flag) != std::string::npos);
  }
  CHECK_FALSE(fs::exists(scratch->path() / "out"));
}

}  // namespace zerofarm::test

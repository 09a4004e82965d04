// kill -9 of `zerofarm transcode --data DIR` mid-job: the same command finishes the job
// without redoing the segments that were finished.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "corpus.h"
#include "run_command.h"
#include "test_pattern.h"

namespace fs = std::filesystem;
using namespace zerofarm;

namespace {

fs::path WorkerBin() { return fs::path(ZF_ZEROFARM_BIN).parent_path() / "zerofarm-worker"; }

int Count(const fs::path& f) {
  std::ifstream in(f);
  int n = 0;
  in >> n;
  return n;
}

int FrameCount(const fs::path& media) {
  auto r =
      test::RunCommand({"ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
                        "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", media.string()},
                       std::chrono::seconds(300));
  REQUIRE(r.succeeded());
  return std::stoi(r.out);
}

}  // namespace

TEST_CASE("a transcode killed with SIGKILL mid-job resumes without redoing finished segments",
          "[integration][resume][slow]") {
  auto scratch = test::ScratchDir::Create("resume");
  REQUIRE(scratch.ok());
  const fs::path& dir = scratch->path();
  auto made = test::MakeTestPattern(dir, 12);
  REQUIRE(made.ok());
  const fs::path clip = *made;

  // First run: the worker wrapper lets three segments finish, then kills zerofarm itself (the
  // audio track, which runs beside the segments, is left alone).
  fs::path counter = dir / "count";
  fs::path killer = dir / "worker.sh";
  {
    std::ofstream out(killer);
    out << "#!/bin/sh\n"
        << "if [ \"$1\" = video ]; then\n"
        << "n=$(cat '" << counter.string() << "' 2>/dev/null || echo 0); n=$((n+1))\n"
        << "echo $n > '" << counter.string() << "'\n"
        << "if [ $n -ge 4 ]; then kill -9 $PPID; exit 9; fi\n"
        << "fi\n"
        << "exec '" << WorkerBin().string() << "' \"$@\"\n";
  }
  ::chmod(killer.c_str(), 0755);
  const fs::path data = dir / "data", out = dir / "out";
  std::vector<std::string> cmd = {"env",
                                  "ZEROFARM_WORKER=" + killer.string(),
                                  ZF_ZEROFARM_BIN,
                                  "transcode",
                                  clip.string(),
                                  "-o",
                                  out.string(),
                                  "--data",
                                  data.string(),
                                  "--jobs",
                                  "1",
                                  "--chunk-seconds",
                                  "2",
                                  "--ladder",
                                  "180p",
                                  "--unsandboxed"};  // a wrapper script cannot be sandboxed
  auto first = test::RunCommand(cmd, std::chrono::seconds(600));
  REQUIRE(first.term_signal == SIGKILL);  // env exec'd zerofarm, which the wrapper killed
  CHECK_FALSE(fs::exists(out / "master.m3u8"));
  CHECK(Count(counter) == 4);

  // Second run, the same job in the product's configuration: the real worker, sandboxed.
  // Only the unfinished tasks run; they are the ones whose results say "sandbox".
  cmd.erase(cmd.begin(), cmd.begin() + 2);  // no env override
  cmd.erase(std::find(cmd.begin(), cmd.end(), "--unsandboxed"));
  auto second = test::RunCommand(cmd, std::chrono::seconds(600));
  INFO(second.err);
  REQUIRE(second.succeeded());
  auto report = nlohmann::json::parse(std::ifstream(out / "report.json"));
  const int tasks = static_cast<int>(report["chunks"].size()) + 1;  // segments + audio
  // Three segments, and the audio track if it had finished before the kill.
  const int resumed = report["tasks_resumed"].get<int>();
  int segments_resumed = 0;
  for (const auto& c : report["chunks"]) segments_resumed += c["isolation"] != "sandbox" ? 1 : 0;
  CHECK(segments_resumed == 3);
  CHECK(resumed == 3 + (report["audio"]["isolation"] != "sandbox" ? 1 : 0));
  int rerun = report["audio"]["isolation"] == "sandbox" ? 1 : 0;
  for (const auto& c : report["chunks"]) rerun += c["isolation"] == "sandbox" ? 1 : 0;
  CHECK(rerun == tasks - resumed);
  CHECK(report["worker"]["isolation"] == "sandbox");
  CHECK(FrameCount(out / "180p" / "index.m3u8") == 300);
  CHECK(FrameCount(out / "180p.mp4") == 300);
}

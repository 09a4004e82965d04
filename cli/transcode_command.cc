// zerofarm transcode: the whole pipeline on this machine.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "cli/commands.h"
#include "cli/flags.h"
#include "zerofarm/scheduler/transcode_job.h"
#include "zerofarm/storage/store.h"
#include "zerofarm/transcode/file_source.h"
#include "zerofarm/transcode/ingest.h"
#include "zerofarm/transcode/ladder.h"

namespace zerofarm::cli {
namespace {

namespace fs = std::filesystem;

constexpr const char* kUsage =
    "usage: zerofarm transcode INPUT -o OUTDIR [--ladder 1080p,720p,480p,360p]\n"
    "                          [--preset veryfast] [--chunk-seconds 4] [--task-slots N]\n"
    "                          [--data DIR] [--task-timeout SECONDS] [--worker-memory SIZE]\n"
    "                          [--force]\n"
    "\n"
    "Transcodes INPUT into an HLS ladder, progressive MP4s and a thumbnail in OUTDIR:\n"
    "  OUTDIR/master.m3u8, OUTDIR/<rung>/index.m3u8 + segments, OUTDIR/audio/...,\n"
    "  OUTDIR/<rung>.mp4, OUTDIR/thumbnail.jpg, OUTDIR/report.json\n"
    "\n"
    "  -o, --output DIR      where the renditions go (created; published only when complete);\n"
    "                        a folder with files in it is refused unless --force\n"
    "  --force               replace a non-empty DIR (old and new are swapped atomically,\n"
    "                        then the old one is removed)\n"
    "  --ladder LIST         rungs by short side; rungs above the source are skipped\n"
    "  --preset NAME         x264 preset (ultrafast ... veryslow), default veryfast\n"
    "  --chunk-seconds S     segment length target, 0.5-60, default 4\n"
    "  --task-slots N        tasks (worker processes) at once, default the number of cores\n"
    "                        (--jobs N is the same flag)\n"
    "  --data DIR            keep the job's store in DIR: rerunning the same command after a\n"
    "                        crash resumes without redoing finished segments\n"
    "                        (default: a temporary store, removed at the end)\n"
    "  --task-timeout S      a task running longer than S + 60 s per second of video it owns\n"
    "                        is killed and retried (default 300)\n"
    "  --worker-memory SIZE  each sandboxed worker's memory limit (e.g. 2G; default 3G)\n"
    "\n"
    "Every worker runs validated in the sandbox (see zerofarm sandbox). For development only,\n"
    "--unsandboxed runs the worker as a plain process (ZEROFARM_WORKER may name a dynamically\n"
    "linked one); zerofarm warns loudly and the report says \"unsandboxed\".\n";

// The job id: a hash of the input's bytes and of every option that changes the output.
Result<std::string> JobId(transcode::ByteSource& in, uint64_t size, const std::string& options) {
  XXH3_state_t* st = XXH3_createState();
  if (!st) return Status::Error(ErrorCode::kInternal, "out of memory");
  XXH3_128bits_reset(st);
  std::string buf(1 << 20, '\0');
  for (uint64_t off = 0; off < size;) {
    auto n = in.ReadAt(off, std::as_writable_bytes(std::span(buf.data(), buf.size())));
    if (!n.ok() || *n == 0) {
      XXH3_freeState(st);
      return n.ok() ? Status::Error(ErrorCode::kIoError, "the input shrank while being read")
                    : n.status();
    }
    XXH3_128bits_update(st, buf.data(), *n);
    off += *n;
  }
  XXH3_128bits_update(st, options.data(), options.size());
  XXH128_hash_t h = XXH3_128bits_digest(st);
  XXH3_freeState(st);
  char hex[40];
  std::snprintf(hex, sizeof(hex), "%016llx%016llx", static_cast<unsigned long long>(h.high64),
                static_cast<unsigned long long>(h.low64));
  return std::string(hex);
}

// On a terminal, one line redrawn in place: "[#####.....]  40%  12/30 segments  1.8x  ETA
// 0:21  transcode"; the fill counts finished segments (the audio track, encoded whole, is
// said apart). Silent without a terminal: the caller prints one summary line at the end.
class ProgressLine {
 public:
  ProgressLine() : tty_(::isatty(STDERR_FILENO) == 1), t0_(std::chrono::steady_clock::now()) {}
  ~ProgressLine() { Finish(); }
  ProgressLine(const ProgressLine&) = delete;
  ProgressLine& operator=(const ProgressLine&) = delete;

  void Update(const scheduler::JobProgress& p) {
    std::lock_guard lock(mu_);
    last_ = p;
    if (tty_) Draw();
  }

  // Clears the line (the terminal is left as it was found).
  void Finish() {
    std::lock_guard lock(mu_);
    if (drawn_) std::fputs("\r\033[K", stderr);
    drawn_ = false;
  }

  double ElapsedSeconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
  }
  // Seconds of video transcoded by this run (not counting segments resumed from an earlier one).
  double MediaSecondsThisRun() const {
    std::lock_guard lock(mu_);
    return std::max(0.0, last_.media_seconds_done - last_.media_seconds_resumed);
  }
  double DurationSeconds() const {
    std::lock_guard lock(mu_);
    return last_.duration_seconds;
  }

 private:
  void Draw() {
    constexpr size_t kWidth = 24;
    const size_t known = last_.tasks_known;
    const size_t done = std::min(last_.tasks_done, known);
    const double frac = known == 0 ? 0.0 : static_cast<double>(done) / static_cast<double>(known);
    const size_t fill = std::min(kWidth, static_cast<size_t>(frac * static_cast<double>(kWidth)));
    std::string bar(fill, '#');
    bar.append(kWidth - fill, '.');
    std::string line = "[" + bar + "] ";
    char buf[160];
    std::snprintf(buf, sizeof(buf), "%3d%%  %zu/%zu%s segments", static_cast<int>(frac * 100), done,
                  known, last_.ingest_done ? "" : "+");
    line += buf;
    const double elapsed = ElapsedSeconds();
    const double media = last_.media_seconds_done;
    const double made = media - last_.media_seconds_resumed;
    if (elapsed >= 1.0 && made > 0) {
      const double speed = made / elapsed;
      std::snprintf(buf, sizeof(buf), "  %.2fx", speed);
      line += buf;
      const double remaining = std::max(0.0, last_.duration_seconds - media);
      if (last_.ingest_done && speed > 0 && remaining > 0) {
        const long eta = std::lround(remaining / speed);
        std::snprintf(buf, sizeof(buf), "  ETA %ld:%02ld", eta / 60, eta % 60);
        line += buf;
      }
    }
    if (last_.has_audio && !last_.audio_done) line += "  audio pending";
    line += "  " + (last_.phase.empty() ? std::string("ingest") : last_.phase);
    std::fprintf(stderr, "\r%s\033[K", line.c_str());
    drawn_ = true;
  }

  const bool tty_;
  const std::chrono::steady_clock::time_point t0_;
  bool drawn_ = false;
  scheduler::JobProgress last_;
  mutable std::mutex mu_;
};

// Bytes of the regular files under `dir`.
uint64_t TreeBytes(const fs::path& dir) {
  uint64_t total = 0;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec))
    if (it->is_regular_file(ec)) total += it->file_size(ec);
  return total;
}

// Where output must never go: a file system's root, the home folder or the current folder, or
// a folder holding one of them (replacing it would take the user's files or the shell's
// working folder with it). An error naming the reason, Ok otherwise.
Status CheckNotPrecious(const fs::path& out) {
  std::error_code ec;
  const fs::path real = fs::weakly_canonical(out, ec);
  if (ec) return Status::Error(ErrorCode::kInvalidArgument, "cannot resolve " + out.string());
  auto contains = [](const fs::path& outer, const fs::path& inner) {
    auto [o, i] = std::mismatch(outer.begin(), outer.end(), inner.begin(), inner.end());
    return o == outer.end();
  };
  if (real == real.root_path())
    return Status::Error(ErrorCode::kInvalidArgument, "refusing to write into the root folder /");
  struct stat here {
  }, parent{};
  if (::stat(real.c_str(), &here) == 0 && ::stat(real.parent_path().c_str(), &parent) == 0 &&
      here.st_dev != parent.st_dev)
    return Status::Error(ErrorCode::kInvalidArgument,
                         "refusing to write into " + real.string() + ": it is a mount point");
  if (const char* home = std::getenv("HOME"); home && *home) {
    const fs::path h = fs::weakly_canonical(home, ec);
    if (!ec && contains(real, h))
      return Status::Error(ErrorCode::kInvalidArgument,
                           "refusing to write into " + real.string() +
                               ": it is (or holds) the home folder; give a folder of its own");
  }
  const fs::path cwd = fs::current_path(ec);
  if (!ec && contains(real, fs::weakly_canonical(cwd, ec)))
    return Status::Error(ErrorCode::kInvalidArgument,
                         "refusing to write into " + real.string() +
                             ": it is (or holds) the current folder; give a folder of its own");
  return Status::Ok();
}

// What is at the output path now.
enum class OutState { kAbsent, kEmptyFolder, kFullFolder };

// Refuses an output path that is not a folder, is a symbolic link, or is a folder with files in
// it (unless `force`); says what is there otherwise.
Result<OutState> CheckOutputFolder(const fs::path& out, bool force) {
  ZF_RETURN_IF_ERROR(CheckNotPrecious(out));
  std::error_code ec;
  const fs::file_status st = fs::symlink_status(out, ec);
  if (ec || st.type() == fs::file_type::not_found) return OutState::kAbsent;
  if (st.type() == fs::file_type::symlink)
    return Status::Error(ErrorCode::kInvalidArgument,
                         out.string() + " is a symbolic link; give the folder it points to");
  if (st.type() != fs::file_type::directory)
    return Status::Error(ErrorCode::kInvalidArgument, out.string() + " exists and is not a folder");
  fs::directory_iterator it(out, ec);
  if (ec)
    return Status::Error(ErrorCode::kIoError,
                         "cannot read the folder " + out.string() + ": " + ec.message());
  if (it == fs::directory_iterator()) return OutState::kEmptyFolder;
  if (!force)
    return Status::Error(ErrorCode::kInvalidArgument,
                         out.string() +
                             " is not empty (nothing in it was touched); give --force to replace "
                             "it, or an empty or new folder");
  return OutState::kFullFolder;
}

// Gives the finished output's folders the modes any new folder gets (0755 under the usual
// umask 022; mkdtemp made the top one 0700), so that a web server running as another user
// can read them. Files were created with the umask's modes already.
Status OpenUp(const fs::path& dir, mode_t umask_bits) {
  const auto mode = static_cast<mode_t>(0777 & ~umask_bits);
  if (::chmod(dir.c_str(), mode) != 0) return ErrnoError("chmod " + dir.string(), errno);
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    if (it->is_directory(ec) && !it->is_symlink(ec) && ::chmod(it->path().c_str(), mode) != 0)
      return ErrnoError("chmod " + it->path().string(), errno);
  }
  if (ec)
    return Status::Error(ErrorCode::kIoError, "cannot walk " + dir.string() + ": " + ec.message());
  return Status::Ok();
}

// Output appears whole or not at all: the job writes into a staging folder beside OUTDIR,
// which becomes OUTDIR in one rename only after verification. A folder with files in it is
// replaced only with `force`: the two folders are exchanged atomically (RENAME_EXCHANGE; where
// the file system cannot, the old one is renamed away first), then the old one is removed.
Status Publish(const fs::path& staging, const fs::path& out, bool force) {
  auto state = CheckOutputFolder(out, force);  // again: it may have changed during the job
  if (!state.ok()) return state.status();
  if (*state != OutState::kFullFolder) {
    if (::rename(staging.c_str(), out.c_str()) != 0)
      return ErrnoError("cannot move the output into " + out.string(), errno);
    return Status::Ok();
  }
  if (::renameat2(AT_FDCWD, staging.c_str(), AT_FDCWD, out.c_str(), RENAME_EXCHANGE) == 0) {
    std::error_code ec;
    fs::remove_all(staging, ec);  // now the old output
    if (ec)
      std::fprintf(stderr, "zerofarm: warning: the replaced output is left in %s: %s\n",
                   staging.c_str(), ec.message().c_str());
    return Status::Ok();
  }
  if (errno != EINVAL && errno != ENOSYS)
    return ErrnoError("cannot exchange " + staging.string() + " and " + out.string(), errno);
  const fs::path old = staging.string() + "-replaced";
  if (::rename(out.c_str(), old.c_str()) != 0)
    return ErrnoError("cannot move the old " + out.string() + " aside", errno);
  if (::rename(staging.c_str(), out.c_str()) != 0) {
    const int err = errno;
    (void)::rename(old.c_str(), out.c_str());  // put the user's folder back
    return ErrnoError("cannot move the output into " + out.string(), err);
  }
  std::error_code ec;
  fs::remove_all(old, ec);
  if (ec)
    std::fprintf(stderr, "zerofarm: warning: the replaced output is left in %s: %s\n", old.c_str(),
                 ec.message().c_str());
  return Status::Ok();
}

class TempDir {
 public:
  TempDir() = default;
  explicit TempDir(fs::path p) : path_(std::move(p)) {}
  TempDir(TempDir&& o) noexcept : path_(std::exchange(o.path_, {})) {}
  TempDir& operator=(TempDir&& o) noexcept {
    Remove();
    path_ = std::exchange(o.path_, {});
    return *this;
  }
  ~TempDir() { Remove(); }
  const fs::path& path() const { return path_; }
  void Remove() {
    if (!path_.empty()) {
      std::error_code ec;
      fs::remove_all(path_, ec);
      path_.clear();
    }
  }

 private:
  fs::path path_;
};

Result<TempDir> MakeTempDir(const fs::path& parent, const std::string& stem) {
  std::string tmpl = (parent / (stem + "XXXXXX")).string();
  if (!::mkdtemp(tmpl.data())) return ErrnoError("mkdtemp " + tmpl, errno);
  return TempDir(fs::path(tmpl));
}

int Fail(const std::string& input, const Status& s, int code) {
  std::string msg = s.message();
  for (char& c : msg)
    if (c == '\n' || c == '\r') c = ' ';
  std::fprintf(stderr, "zerofarm: error: %s%s%s\n", input.c_str(), input.empty() ? "" : ": ",
               msg.c_str());
  return code;
}

bool IsInputFault(ErrorCode code) {
  return code == ErrorCode::kEmptyInput || code == ErrorCode::kNotMedia ||
         code == ErrorCode::kTruncated || code == ErrorCode::kNoVideoStream ||
         code == ErrorCode::kUnsupportedCodec || code == ErrorCode::kEncrypted ||
         code == ErrorCode::kCorruptContainer || code == ErrorCode::kUndecodable ||
         code == ErrorCode::kBadStream;
}

// What a checked command line asks for.
struct TranscodeOptions {
  std::string input;
  std::string out;                         // as given (error messages name it so)
  fs::path out_path;                       // absolute and normal, without a trailing separator
  std::string ladder_spec, preset, chunk;  // as given: they make the job id
  std::string data;                        // --data, empty for a temporary store
  std::string worker_memory;               // checked by LoadWorker, after the paths
  bool unsandboxed = false;
  bool force = false;
  scheduler::JobOptions job;
};

int BadFlag(const std::string& flag, const std::string& value, const std::string& want) {
  return Fail("",
              Status::Error(ErrorCode::kInvalidArgument,
                            flag + " must be " + want + ", not '" + value + "'"),
              2);
}

// Checks the values of the flags that set the job's options (errors: 2).
std::optional<int> ParseJobOptions(const std::optional<Flags::Named>& slots,
                                   const std::string& task_timeout, TranscodeOptions* o) {
  scheduler::JobOptions& options = o->job;
  auto ladder = transcode::ParseLadder(o->ladder_spec);
  if (!ladder.ok()) return Fail("", ladder.status(), 2);
  options.ladder = *ladder;
  if (!transcode::IsX264Preset(o->preset))
    return Fail(
        "", Status::Error(ErrorCode::kInvalidArgument, "unknown x264 preset '" + o->preset + "'"),
        2);
  options.preset = o->preset;
  auto chunk_seconds = ParseDecimal(o->chunk, 0.5, 60);
  if (!chunk_seconds)
    return BadFlag("--chunk-seconds", o->chunk, "a number of seconds from 0.5 to 60");
  options.chunk_seconds = *chunk_seconds;
  if (slots) {
    auto n = ParseInteger(slots->value, 1, 256);
    if (!n) return BadFlag(slots->flag, slots->value, "a whole number from 1 to 256");
    options.task_slots = static_cast<int>(*n);
  }
  auto timeout = ParseDuration(task_timeout);
  constexpr auto kMaxTaskTimeout = std::chrono::hours(24 * 7);
  if (!timeout || *timeout < std::chrono::seconds(1) || *timeout > kMaxTaskTimeout)
    return BadFlag("--task-timeout", task_timeout,
                   "a duration from 1 s to 7 days (\"300\" seconds, or \"5m\")");
  options.task_timeout_base = std::chrono::duration_cast<std::chrono::seconds>(*timeout);
  return std::nullopt;
}

// Every default and every flag error of zerofarm transcode but --worker-memory's (LoadWorker).
// Returns the exit status to stop with (2), or nullopt to run.
std::optional<int> ParseTranscodeFlags(Flags& flags, TranscodeOptions* o) {
  o->out = flags.Take("output", "o").value_or("");
  o->ladder_spec = flags.Take("ladder").value_or("1080p,720p,480p,360p");
  o->preset = flags.Take("preset").value_or("veryfast");
  o->chunk = flags.Take("chunk-seconds").value_or("4");
  const std::optional<Flags::Named> slots = flags.TakeRenamed("task-slots", {"jobs"});
  o->data = flags.Take("data").value_or("");
  const std::string task_timeout = flags.Take("task-timeout").value_or("300");
  o->worker_memory = flags.Take("worker-memory").value_or("3G");
  o->unsandboxed = flags.Has("unsandboxed");
  if (o->unsandboxed) (void)flags.Take("unsandboxed");
  o->force = flags.Has("force");
  if (o->force) (void)flags.Take("force");
  auto positional = flags.Positional();
  if (!flags.error().empty() || !flags.Unknown().empty() || positional.size() != 1 ||
      o->out.empty()) {
    std::string why = !flags.error().empty()     ? flags.error()
                      : !flags.Unknown().empty() ? "unknown option " + flags.Unknown().front()
                      : positional.size() != 1   ? "exactly one INPUT is needed"
                                                 : "-o OUTDIR is required";
    std::fprintf(stderr, "zerofarm transcode: %s\n%s", why.c_str(), kUsage);
    return 2;
  }
  o->input = positional.front();
  if (auto stop = ParseJobOptions(slots, task_timeout, o)) return *stop;
  o->out_path = fs::absolute(fs::path(o->out)).lexically_normal();
  if (o->out_path.has_filename() == false) o->out_path = o->out_path.parent_path();
  return std::nullopt;
}

// The output folder is checked before any work: a folder with the user's files in it is not
// replaced without --force, and a root, home or working folder never. The input is read
// several times (hashed, probed, chunked): only a regular file will do, and a FIFO or device
// could block the open forever. An exit status when either is refused.
std::optional<int> CheckPaths(const TranscodeOptions& o) {
  if (auto state = CheckOutputFolder(o.out_path, o.force); !state.ok())
    return Fail(o.out, state.status(), 2);
  struct stat input_stat {};
  if (::stat(o.input.c_str(), &input_stat) == 0 && !S_ISREG(input_stat.st_mode)) {
    const char* what = S_ISDIR(input_stat.st_mode)    ? "a folder"
                       : S_ISFIFO(input_stat.st_mode) ? "a FIFO (named pipe)"
                       : S_ISSOCK(input_stat.st_mode) ? "a socket"
                                                      : "a device";
    return Fail(o.input,
                Status::Error(ErrorCode::kInvalidArgument,
                              std::string("not a regular file but ") + what +
                                  ": zerofarm transcode reads its input more than once; save "
                                  "it to a file first"),
                1);
  }
  return std::nullopt;
}

// Checks --worker-memory, then loads and validates the worker into the job's options (an
// unusable verdict cache is given up rather than the job). An exit status on failure.
std::optional<int> LoadWorker(TranscodeOptions* o) {
  scheduler::WorkerRuntimeOptions wo;
  wo.path = scheduler::DefaultWorkerPath();
  wo.isolation =
      o->unsandboxed ? scheduler::Isolation::kUnsandboxed : scheduler::Isolation::kSandbox;
  auto memory = ParseByteSize(o->worker_memory);
  if (!memory || *memory < (uint64_t{64} << 20))
    return Fail(
        "", Status::Error(ErrorCode::kInvalidArgument, "--worker-memory must be at least 64M"), 2);
  wo.memory_bytes = *memory;
  if (const char* home = std::getenv("HOME"); home && *home)
    wo.verdict_cache_dir = fs::path(home) / ".cache" / "zerofarm" / "verdicts";
  auto worker = scheduler::WorkerRuntime::Load(wo);
  if (!worker.ok() && !wo.verdict_cache_dir.empty() &&
      worker.status().code() != ErrorCode::kWorkerRejected) {
    wo.verdict_cache_dir.clear();  // an unusable cache directory must not stop the job
    worker = scheduler::WorkerRuntime::Load(wo);
  }
  if (!worker.ok()) return Fail(wo.path, worker.status(), 3);
  o->job.worker = *worker;
  return std::nullopt;
}

// Opens the store: --data DIR, or a temporary one made into *temp (which must outlive the
// store). An exit status on failure.
std::optional<int> OpenStore(const std::string& data, TempDir* temp,
                             std::unique_ptr<storage::Store>* store) {
  fs::path store_dir = data;
  if (data.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    auto t = MakeTempDir(tmp && *tmp ? tmp : "/tmp", "zerofarm-store-");
    if (!t.ok()) return Fail("", t.status(), 3);
    *temp = std::move(*t);
    store_dir = temp->path();
  }
  storage::Options so;
  so.dir = store_dir;
  auto opened = storage::Store::Open(so);
  if (!opened.ok()) return Fail(store_dir.string(), opened.status(), 3);
  *store = std::move(*opened);
  return std::nullopt;
}

// What the renditions leave out of the source, in the user's words (from the job's report).
void PrintSourceWarnings(const scheduler::JobReport& report) {
  for (const auto& w : report.source.source.warnings)
    std::fprintf(stderr, "zerofarm: warning: %s\n", w.c_str());
}

// One summary line, on a terminal or not. With --data the store keeps the job for reruns; the
// published files are what users keep.
void PrintSummary(const TranscodeOptions& o, const ProgressLine& progress,
                  const std::string& job_id) {
  const double wall = progress.ElapsedSeconds();
  const double media = progress.DurationSeconds();
  const double made = progress.MediaSecondsThisRun();
  char speed[64] = "";
  if (wall > 0 && made > 0) std::snprintf(speed, sizeof(speed), ", %.2fx realtime", made / wall);
  std::fprintf(stderr, "zerofarm: %s -> %s: %.1f s of video in %.1f s%s, %.1f MB (job %s)\n",
               o.input.c_str(), o.out_path.c_str(), media, wall, speed,
               static_cast<double>(TreeBytes(o.out_path)) / 1e6, job_id.c_str());
}

// Runs the job into a staging folder beside OUTDIR and publishes it there; the exit status.
int RunAndPublish(const TranscodeOptions& o, mode_t umask_bits, storage::Store& store,
                  transcode::FileSource& source, const std::string& job_id) {
  std::error_code ec;
  fs::create_directories(o.out_path.parent_path(), ec);
  auto staging =
      MakeTempDir(o.out_path.parent_path(), "." + o.out_path.filename().string() + ".partial-");
  if (!staging.ok()) return Fail(o.out, staging.status(), 3);

  ProgressLine progress;
  auto report = scheduler::RunTranscodeJob(
      store, source, job_id, o.job, staging->path(),
      [&progress](const scheduler::JobProgress& p) { progress.Update(p); });
  progress.Finish();
  if (!report.ok())
    return Fail(o.input, report.status(), IsInputFault(report.status().code()) ? 1 : 3);
  PrintSourceWarnings(*report);
  Status published = OpenUp(staging->path(), umask_bits);
  if (published.ok()) published = Publish(staging->path(), o.out_path, o.force);
  if (!published.ok()) return Fail(o.out, published, 3);
  PrintSummary(o, progress, job_id);
  return 0;
}

}  // namespace

int TranscodeCommand(int argc, char** argv) {
  Flags flags(argc, argv, {"unsandboxed", "force"});
  if (flags.Has("help") || flags.Has("h")) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  const mode_t umask_bits = ::umask(0);  // read it (no threads run yet) and put it back
  ::umask(umask_bits);
  TranscodeOptions o;
  if (auto stop = ParseTranscodeFlags(flags, &o)) return *stop;
  if (auto stop = CheckPaths(o)) return *stop;
  if (auto stop = LoadWorker(&o)) return *stop;

  auto opened = transcode::FileSource::Open(o.input);
  if (!opened.ok()) return Fail(o.input, opened.status(), 1);
  transcode::FileSource& source = **opened;
  const uint64_t size = source.Size().value_or(0);
  if (size == 0)
    return Fail(o.input,
                Status::Error(ErrorCode::kEmptyInput, "not a media file: the file is empty"), 1);
  TempDir temp_store;  // declared first: removed after the store is closed
  std::unique_ptr<storage::Store> store;
  if (auto stop = OpenStore(o.data, &temp_store, &store)) return *stop;
  auto job_id = JobId(source, size, o.ladder_spec + "|" + o.preset + "|" + o.chunk);
  if (!job_id.ok()) return Fail(o.input, job_id.status(), 1);
  return RunAndPublish(o, umask_bits, *store, source, *job_id);
}

}  // namespace zerofarm::cli

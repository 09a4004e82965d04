// VideoService: records, uploads, one job thread per unfinished video (video_service.h).
#include "zerofarm/scheduler/video_service.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "zerofarm/base/hex.h"
#include "zerofarm/base/unique_fd.h"
#include "zerofarm/scheduler/cluster_executor.h"
#include "zerofarm/storage/cluster_store.h"
#include "zerofarm/transcode/ingest.h"
#include "zerofarm/transcode/object_names.h"

namespace zerofarm::scheduler {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr double kBuckets[] = {0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600};
constexpr const char* kStatsKey = "stats/uploads";  // the upload counters, across restarts
constexpr int kMaxEarlyJobs = 32;  // unfinished tus uploads transcoding while they arrive

std::string IsoTime(std::time_t t) {
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}
std::string NowIso() { return IsoTime(std::time(nullptr)); }
std::optional<int64_t> ParseIsoTime(const std::string& s) {
  std::tm tm{};
  const char* end = strptime(s.c_str(), "%Y-%m-%dT%H:%M:%SZ", &tm);
  if (!end || *end) return std::nullopt;
  return static_cast<int64_t>(timegm(&tm));
}

// An unfinished resumable upload: it counts against the caps and expires.
bool IsOpenTus(const VideoRecord& rec) {
  return rec.resumable && rec.status == VideoStatus::kUploading;
}

std::string RecordName(const std::string& id) { return "videos/" + id; }

// Uploads receiving bytes at once (each holds its file open for writing, and its ingest may
// hold a reader beside it). A file is open only while bytes flow; past the limit a new writer
// is refused ("unavailable") instead of the process running out of descriptors. Readers are
// not counted (they serve uploads already accepted; one per job at most). Thread-safe.
class FdBudget {
 public:
  explicit FdBudget(size_t limit) : limit_(limit) {}
  bool full() const { return used_.load() >= limit_; }
  void Take() { ++used_; }
  void Return() { --used_; }

 private:
  const size_t limit_;
  std::atomic<size_t> used_{0};
};

// A descriptor counted in an FdBudget; move-only, Close() is idempotent.
class BudgetFd {
 public:
  BudgetFd() = default;
  BudgetFd(UniqueFd fd, std::shared_ptr<FdBudget> budget)
      : fd_(std::move(fd)), budget_(std::move(budget)) {}
  BudgetFd(BudgetFd&&) noexcept = default;
  BudgetFd& operator=(BudgetFd&& o) noexcept {
    if (this != &o) {
      Close();
      fd_ = std::move(o.fd_);
      budget_ = std::move(o.budget_);
    }
    return *this;
  }
  ~BudgetFd() { Close(); }
  int get() const { return fd_.get(); }
  bool valid() const { return fd_.valid(); }
  void Close() noexcept {
    if (!fd_.valid()) return;
    fd_.Close();
    if (budget_) budget_->Return();
  }

 private:
  UniqueFd fd_;
  std::shared_ptr<FdBudget> budget_;
};

Result<BudgetFd> OpenCounted(const std::shared_ptr<FdBudget>& budget, const fs::path& path,
                             int flags, bool writer) {
  if (writer && budget->full())
    return Status::Error(ErrorCode::kUnavailable,
                         "the server has as many uploads receiving bytes as it allows; retry "
                         "shortly");
  UniqueFd fd(::open(path.c_str(), flags | O_CLOEXEC, 0600));
  if (!fd.valid()) {
    const int err = errno;
    if (err == EMFILE || err == ENFILE)
      return Status::Error(ErrorCode::kUnavailable,
                           "the server is out of file descriptors; retry shortly");
    return ErrnoError("open " + path.string(), err);
  }
  if (!writer) return BudgetFd(std::move(fd), nullptr);
  budget->Take();
  return BudgetFd(std::move(fd), budget);
}

// What the service knows of a video in memory beyond its record: the upload file, the job.
struct Active {
  std::mutex mu;
  std::condition_variable cv;
  fs::path path;  // the upload file
  std::shared_ptr<FdBudget> budget;
  BudgetFd write_fd;  // open only while bytes are written
  bool resumable = false;
  bool early_job = false;  // counted in the service's early jobs (guarded by mu)
  std::chrono::steady_clock::time_point last_sync = std::chrono::steady_clock::now();
  uint64_t written = 0;              // bytes in the file (readable by ingest)
  uint64_t synced = 0;               // bytes fsynced and recorded
  bool ended = false;                // the upload is complete
  std::optional<uint64_t> declared;  // the length announced before the bytes (tus, Content-Length)
  std::optional<ErrorCode> failed_code;  // the upload ended early (AbortUpload)
  bool stop = false;                     // deleted or shutting down: ReadAt returns at once
  std::shared_ptr<std::atomic<bool>> cancel = std::make_shared<std::atomic<bool>>(false);
  std::thread job;
  bool job_done = false;  // the job thread has returned (guarded by mu)
  bool have_progress = false;
  JobProgress progress;  // guarded by mu
  std::set<int> timed;   // tasks already counted in the histogram
};

// The upload as a ByteSource: ReadAt blocks until the bytes are written or the upload ended.
class UploadSource final : public transcode::ByteSource {
 public:
  explicit UploadSource(std::shared_ptr<Active> a) : a_(std::move(a)) {}
  Result<size_t> ReadAt(uint64_t offset, std::span<std::byte> out) override {
    std::unique_lock lock(a_->mu);
    auto ready = [&] { return a_->stop || a_->failed_code || a_->written > offset || a_->ended; };
    if (!ready()) {
      fd_.Close();  // no descriptor is held while the upload waits for its bytes
      a_->cv.wait(lock, ready);
    }
    if (a_->stop) return Status::Error(ErrorCode::kCancelled, "the job was stopped");
    if (a_->failed_code)
      return Status::Error(*a_->failed_code, "the upload ended before the whole file arrived");
    if (offset >= a_->written || out.empty()) return size_t{0};
    const size_t n = static_cast<size_t>(std::min<uint64_t>(out.size(), a_->written - offset));
    lock.unlock();
    if (!fd_.valid()) {
      auto opened = OpenCounted(a_->budget, a_->path, O_RDONLY, /*writer=*/false);
      if (!opened.ok()) return opened.status();
      fd_ = std::move(*opened);
    }
    const int fd = fd_.get();
    size_t done = 0;
    while (done < n) {
      ssize_t r = ::pread(fd, out.data() + done, n - done, static_cast<off_t>(offset + done));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return ErrnoError("pread upload", errno);
      if (r == 0) break;
      done += static_cast<size_t>(r);
    }
    return done;
  }
  std::optional<uint64_t> Size() const override {
    // A declared length counts as known: demuxers that probe the size (MP4) then stop at the
    // end of the last box instead of waiting for bytes past it.
    std::lock_guard lock(a_->mu);
    if (a_->ended) return a_->written;
    return a_->declared;
  }

 private:
  std::shared_ptr<Active> a_;
  BudgetFd fd_;  // used by the job's thread only
};

// Progress that counts what it says: video segments done of known, the audio track apart.
// The fraction counts finished work units (each segment, and the audio track as one) and
// stays below 1 until the video is ready; while ingest still finds segments, below 0.9.
VideoProgress ProgressOf(const JobProgress& p) {
  VideoProgress v;
  for (const auto& t : p.tasks)
    if (t.index >= 0 && t.state == storage::TaskState::kRunning) ++v.tasks_running;
  const double units = static_cast<double>(p.tasks_known) + (p.has_audio ? 1.0 : 0.0);
  const double done = static_cast<double>(p.tasks_done) + (p.audio_done ? 1.0 : 0.0);
  double f = units > 0 ? std::min(1.0, done / units) : 0.0;
  v.fraction = p.ingest_done ? std::min(f, 0.99) : f * 0.9;
  v.phase = p.phase.empty() ? "ingest" : p.phase;
  v.ingest_done = p.ingest_done;
  v.tasks_known = p.tasks_known;
  v.tasks_done = p.tasks_done;
  if (p.source_known) v.audio = !p.has_audio ? "none" : p.audio_done ? "done" : "pending";
  return v;
}

// The farm view of a job's segments, by index, and of its audio track (none when the source
// has none or it is not known yet).
std::vector<TaskProgress> SegmentTasks(const JobProgress& p) {
  std::vector<TaskProgress> out;
  for (const auto& t : p.tasks)
    if (t.index >= 0) out.push_back(t);
  return out;
}
std::optional<TaskProgress> AudioTask(const JobProgress& p) {
  for (const auto& t : p.tasks)
    if (t.index < 0) return t;
  return std::nullopt;
}

// What a finished job's report says of its video, with the API paths of its renditions.
ReadyFacts ReadyFactsOf(const JobReport& report, const std::string& id) {
  ReadyFacts f;
  const transcode::SourceInfo& src = report.source.source;
  f.duration_seconds = report.source.duration_seconds;
  f.task_input_bytes = report.task_input_bytes;
  f.task_input_bytes_remote = report.task_input_bytes_remote;
  f.task_output_bytes_sent = report.task_output_bytes_sent;
  f.width = src.display_width;
  f.height = src.display_height;
  f.fps = src.fps;
  f.warnings = src.warnings;
  for (const auto& r : report.renditions) {
    const transcode::RenditionStats& x = r.made;
    f.renditions.push_back({x.name, x.width, x.height, x.peak_bps,
                            "/v1/videos/" + id + "/hls/" + x.name + "/index.m3u8",
                            "/v1/videos/" + id + "/mp4/" + x.name + ".mp4"});
  }
  return f;
}

class Service final : public VideoService {
 public:
  Service(VideoServiceOptions options, std::unique_ptr<storage::Store> local,
          std::unique_ptr<storage::ClusterStore> cluster, std::shared_ptr<ClusterExecutor> executor)
      : opt_(std::move(options)),
        local_(std::move(local)),
        cluster_(std::move(cluster)),
        executor_(std::move(executor)),
        store_(cluster_ ? static_cast<storage::Store*>(cluster_.get()) : local_.get()) {
    int n = opt_.task_slots > 0 ? opt_.task_slots
                                : static_cast<int>(std::thread::hardware_concurrency());
    if (executor_) n = executor_->slots();
    slots_ = std::make_shared<TaskSlots>(n);
    size_t fds = opt_.max_upload_descriptors;
    if (fds == 0) {
      rlimit rl{};
      fds = ::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY
                ? std::max<size_t>(static_cast<size_t>(rl.rlim_cur / 4), 8)
                : 4096;
    }
    budget_ = std::make_shared<FdBudget>(fds);
  }

  Status RunExec(const ExecJobSpec& spec, const std::atomic<bool>& cancel,
                 ExecProgress* progress) override {
    TaskExecutor* executor = executor_.get();
    if (!executor) {
      std::lock_guard lock(mu_);
      if (!exec_executor_)
        exec_executor_ = MakeLocalExecutor(*store_, opt_.worker,
                                           opt_.node_name.empty() ? Hostname() : opt_.node_name,
                                           slots_->capacity());
      executor = exec_executor_.get();
    }
    ExecJobSpec shared = spec;
    shared.slots = slots_;
    return RunExecJob(shared, *executor, cancel, progress);
  }

  ~Service() override {
    {
      std::lock_guard lock(reaper_mu_);
      reaper_stop_ = true;
    }
    reaper_cv_.notify_all();
    if (reaper_.joinable()) reaper_.join();
    shutting_down_ = true;
    std::vector<std::shared_ptr<Active>> all;
    {
      std::lock_guard lock(mu_);
      for (auto& [id, a] : active_) all.push_back(a);
    }
    for (auto& a : all) Stop(*a);
    for (auto& a : all)
      if (a->job.joinable()) a->job.join();
  }

  Status Recover() {
    std::error_code ec;
    fs::create_directories(UploadsDir(), ec);
    fs::create_directories(VideosDir(), ec);
    if (ec) return Status::Error(ErrorCode::kIoError, "cannot create " + VideosDir().string());
    if (auto stats = store_->GetMeta(kStatsKey); stats.ok() && stats->has_value()) {
      json j = json::parse(**stats, nullptr, false);
      if (j.is_object()) {
        uploads_started_ = j.value("started", uint64_t{0});
        uploads_completed_ = j.value("completed", uint64_t{0});
        upload_bytes_ = j.value("bytes", uint64_t{0});
      }
    }
    auto listed = store_->ListMeta("videos/");
    if (!listed.ok()) return listed.status();
    std::lock_guard lock(mu_);
    for (const auto& [key, value] : *listed) {
      auto parsed = VideoRecordFromJson(value);
      if (!parsed.ok()) continue;
      const std::string id = parsed->id;
      const VideoRecord& rec = records_[id] = std::move(*parsed);
      if (!rec.upload_id.empty()) uploads_[rec.upload_id] = id;
      fs::remove_all(VideosDir() / ("." + id + ".partial"), ec);
      const VideoStatus status = rec.status;
      if (status == VideoStatus::kReady || status == VideoStatus::kFailed) continue;
      const bool resumable = rec.resumable;
      if (status == VideoStatus::kUploading && !resumable) {
        MarkFailed(records_[id], ErrorCode::kUploadIncomplete,
                   "the server stopped before the upload finished; upload the file again");
        fs::remove(UploadsDir() / id, ec);
        continue;
      }
      auto a = NewActive(id, resumable);
      // Bytes past the recorded offset were never acknowledged: the file is cut back to it.
      const uint64_t received = rec.bytes_received;
      if (::truncate(a->path.c_str(), static_cast<off_t>(received)) != 0 &&
          !(errno == ENOENT && received == 0)) {
        MarkFailed(records_[id], ErrorCode::kUploadLost,
                   ErrnoError("truncate " + a->path.string(), errno).message());
        continue;
      }
      a->written = a->synced = received;
      a->declared = rec.size;
      a->ended = status == VideoStatus::kProcessing;
      active_[id] = a;
      // An unfinished upload waits for its next bytes with no thread and no descriptor.
      if (a->ended || !resumable) StartJob(id, a);
    }
    reaper_ = std::thread([this] { ReapLoop(); });
    return Status::Ok();
  }

  storage::Store& store() override { return *store_; }

  Result<Video> Create(const NewVideo& v) override {
    VideoRecord rec;
    rec.id = "v_" + RandomHex(8);
    const std::string& id = rec.id;
    rec.tenant = v.tenant;
    rec.filename = v.filename;
    rec.created_at = NowIso();
    rec.created_ns = std::chrono::system_clock::now().time_since_epoch().count();
    rec.size = v.length;
    for (int r : v.ladder) rec.ladder.push_back(std::to_string(r) + "p");
    rec.preset = v.preset;
    rec.resumable = v.resumable;
    rec.playback_policy = v.playback_policy;
    rec.metadata = v.metadata;
    rec.passthrough = v.passthrough;
    if (v.resumable) {
      rec.upload_id = "u_" + RandomHex(12);
      rec.upload_expires_at = IsoTime(std::time(nullptr) + opt_.upload_expiry.count());
    } else if (budget_->full()) {
      return Status::Error(ErrorCode::kUnavailable,
                           "the server has as many uploads receiving bytes as it allows; retry "
                           "shortly");
    }
    // No file yet: it is created by the first bytes, so a refused request leaves nothing.
    auto a = NewActive(id, v.resumable);
    a->declared = v.length;
    std::lock_guard lock(mu_);
    if (v.resumable) ZF_RETURN_IF_ERROR(CheckUploadCaps(v.tenant));
    ZF_RETURN_IF_ERROR(Save(rec));
    records_[id] = rec;
    if (v.resumable) uploads_[rec.upload_id] = id;
    active_[id] = a;
    ++uploads_started_;
    SaveStats();
    if (!v.resumable) StartJob(id, a);  // a resumable upload's job starts with its first bytes
    return ViewLocked(rec, a.get());
  }

  Status Append(const std::string& id, std::span<const std::byte> bytes) override {
    auto a = FindActive(id);
    if (!a) return Status::Error(ErrorCode::kNotFound, "no upload in progress for " + id);
    uint64_t at;
    int fd;
    {
      std::lock_guard lock(a->mu);
      if (a->ended || a->stop) return Status::Error(ErrorCode::kConflict, "the upload has ended");
      if (!a->write_fd.valid()) {
        auto opened = OpenCounted(budget_, a->path, O_WRONLY | O_CREAT, /*writer=*/true);
        if (!opened.ok()) return opened.status();
        a->write_fd = std::move(*opened);
      }
      at = a->written;
      fd = a->write_fd.get();
    }
    std::optional<uint64_t> length = DeclaredLength(id);
    if (length && at + bytes.size() > *length)
      return Status::Error(ErrorCode::kConflict, "more bytes than the declared Upload-Length");
    size_t done = 0;
    while (done < bytes.size()) {
      ssize_t w =
          ::pwrite(fd, bytes.data() + done, bytes.size() - done, static_cast<off_t>(at + done));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) return ErrnoError("write upload", errno);
      done += static_cast<size_t>(w);
    }
    bool sync;
    {
      std::lock_guard lock(a->mu);
      a->written = at + done;
      // A resumable upload's first bytes start its job, so that transcoding overlaps the
      // upload, while few unfinished uploads have one; the others' start when they end.
      if (!a->job.joinable() && !a->stop && (!a->resumable || TakeEarlyJob(*a))) StartJob(id, a);
      sync = a->resumable && (a->written - a->synced >= opt_.sync_every_bytes ||
                              std::chrono::steady_clock::now() - a->last_sync >= opt_.sync_every);
    }
    a->cv.notify_all();
    upload_bytes_ += done;
    // Bytes of a PATCH still streaming survive a crash up to the last sync.
    if (sync) return SyncAndRecord(id, *a, /*final=*/false, /*close=*/false).status();
    return Status::Ok();
  }

  Result<uint64_t> Commit(const std::string& id, bool final) override {
    auto a = FindActive(id);
    if (!a) return Status::Error(ErrorCode::kNotFound, "no upload in progress for " + id);
    return SyncAndRecord(id, *a, final, /*close=*/true);
  }

  void AbortUpload(const std::string& id, ErrorCode code, const std::string& message) override {
    auto a = FindActive(id);
    if (a) {
      std::lock_guard lock(a->mu);
      a->failed_code = code;
      a->write_fd.Close();
    }
    if (a) a->cv.notify_all();
    std::lock_guard lock(mu_);
    auto it = records_.find(id);
    if (it != records_.end()) MarkFailed(it->second, code, message);
  }

  void AwaitProbe(const std::string& id, std::chrono::milliseconds limit) override {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    for (;;) {
      std::shared_ptr<Active> a;
      {
        std::lock_guard lock(mu_);
        auto it = records_.find(id);
        if (it == records_.end() || it->second.status != VideoStatus::kProcessing) return;
        auto at = active_.find(id);
        if (at == active_.end()) return;
        a = at->second;
      }
      {
        std::lock_guard lock(a->mu);
        if (a->have_progress && a->progress.source_known) return;
      }
      if (std::chrono::steady_clock::now() >= deadline) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

  void SetEventListener(VideoEventListener listener) override {
    std::lock_guard lock(listener_mu_);
    listener_ = std::move(listener);
  }

  Result<Video> Get(const std::string& tenant, const std::string& id) override {
    std::lock_guard lock(mu_);
    auto it = records_.find(id);
    if (it == records_.end() || it->second.tenant != tenant)
      return Status::Error(ErrorCode::kNotFound, "no video " + id);
    return ViewLocked(it->second, FindActiveLocked(id).get());
  }

  Result<VideoPage> List(const std::string& tenant, const ListOptions& page) override {
    // The order is (created_ns, id) descending; a cursor names the last video of a page.
    using Key = std::pair<int64_t, std::string>;
    std::optional<Key> after;
    if (!page.cursor.empty()) {
      const size_t sep = page.cursor.find('_');
      const std::string ns = page.cursor.substr(0, sep);
      const std::string id = sep == std::string::npos ? "" : page.cursor.substr(sep + 1);
      if (ns.empty() || ns.size() > 19 || !IsVideoId(id) ||
          !std::all_of(ns.begin(), ns.end(), [](char c) { return c >= '0' && c <= '9'; }))
        return Status::Error(ErrorCode::kInvalidArgument, "the cursor is not one this server made");
      after = Key{std::stoll(ns), id};
    }
    std::lock_guard lock(mu_);
    std::vector<std::pair<Key, const VideoRecord*>> mine;
    for (const auto& [id, rec] : records_)
      if (rec.tenant == tenant) mine.push_back({{rec.created_ns, id}, &rec});
    std::sort(mine.begin(), mine.end(),
              [](const auto& a, const auto& b) { return a.first > b.first; });
    VideoPage out;
    out.total = mine.size();
    const size_t limit = std::clamp<size_t>(page.limit, 1, 1000);
    size_t i = 0;
    if (after)
      while (i < mine.size() && !(mine[i].first < *after)) ++i;
    for (; i < mine.size() && out.videos.size() < limit; ++i)
      out.videos.push_back(
          ViewLocked(*mine[i].second, FindActiveLocked(mine[i].first.second).get()));
    if (i < mine.size() && i > 0)
      out.next_cursor = std::to_string(mine[i - 1].first.first) + "_" + mine[i - 1].first.second;
    return out;
  }

  Result<Video> Update(const std::string& tenant, const std::string& id,
                       const VideoUpdate& update) override {
    std::lock_guard lock(mu_);
    auto it = records_.find(id);
    if (it == records_.end() || it->second.tenant != tenant)
      return Status::Error(ErrorCode::kNotFound, "no video " + id);
    VideoRecord rec = it->second;
    if (update.playback_policy) rec.playback_policy = *update.playback_policy;
    if (update.metadata) rec.metadata = *update.metadata;
    if (update.passthrough) rec.passthrough = *update.passthrough;
    ZF_RETURN_IF_ERROR(Save(rec));
    it->second = std::move(rec);
    return ViewLocked(it->second, FindActiveLocked(id).get());
  }

  Result<PlaybackTarget> Playback(const std::string& id) override {
    std::lock_guard lock(mu_);
    auto it = records_.find(id);
    if (it == records_.end()) return Status::Error(ErrorCode::kNotFound, "no video " + id);
    PlaybackTarget t;
    t.tenant = it->second.tenant;
    t.policy = it->second.playback_policy;
    t.status = std::string(VideoStatusName(it->second.status));
    if (PlayableLocked(id, it->second)) t.dir = VideosDir() / id;
    return t;
  }

  // Whether a video's playlists can be played: ready, or still uploading or processing with
  // its head published (a source read front to back publishes before its upload ends)
  // (requires mu_).
  bool PlayableLocked(const std::string& id, const VideoRecord& rec) const {
    if (rec.status == VideoStatus::kReady) return true;
    if (rec.status != VideoStatus::kProcessing && rec.status != VideoStatus::kUploading)
      return false;
    auto a = active_.find(id);
    if (a == active_.end()) return false;
    {
      std::lock_guard lock(a->second->mu);
      if (a->second->have_progress && a->second->progress.segments_published > 0) return true;
    }
    // Published before a restart, and listed again as soon as the job resumes.
    std::error_code ec;
    return fs::exists(VideosDir() / id / "master.m3u8", ec);
  }

  Status Delete(const std::string& tenant, const std::string& id) override {
    std::shared_ptr<Active> a;
    {
      std::lock_guard lock(mu_);
      auto it = records_.find(id);
      if (it == records_.end() || it->second.tenant != tenant)
        return Status::Error(ErrorCode::kNotFound, "no video " + id);
      if (!it->second.upload_id.empty()) uploads_.erase(it->second.upload_id);
      Emit("video.deleted", it->second);
      records_.erase(it);
      auto at = active_.find(id);
      if (at != active_.end()) {
        a = at->second;
        active_.erase(at);
      }
      // The record goes first: a crash during the rest leaves orphans, never a half video.
      ZF_RETURN_IF_ERROR(store_->DeleteMeta(RecordName(id)));
    }
    if (a) {
      Stop(*a);
      if (a->job.joinable()) a->job.join();
    }
    const std::string prefix = transcode::JobPrefix(id);
    auto removed = store_->DeleteObjects(prefix);
    if (!removed.ok()) return removed.status();
    auto meta = store_->ListMeta(prefix);
    if (!meta.ok()) return meta.status();
    for (const auto& kv : *meta) ZF_RETURN_IF_ERROR(store_->DeleteMeta(kv.first));
    std::error_code ec;
    fs::remove_all(VideosDir() / id, ec);
    fs::remove_all(VideosDir() / ("." + id + ".partial"), ec);
    fs::remove(UploadsDir() / id, ec);
    return Status::Ok();
  }

  Result<fs::path> OutputDir(const std::string& tenant, const std::string& id) override {
    std::lock_guard lock(mu_);
    auto it = records_.find(id);
    if (it == records_.end() || it->second.tenant != tenant)
      return Status::Error(ErrorCode::kNotFound, "no video " + id);
    if (!PlayableLocked(id, it->second))
      return Status::Error(ErrorCode::kNotReady, "video " + id + " is not ready yet");
    return VideosDir() / id;
  }

  Result<UploadState> FindUpload(const std::string& upload_id) override {
    std::lock_guard lock(mu_);
    auto u = uploads_.find(upload_id);
    if (u == uploads_.end()) return Status::Error(ErrorCode::kNotFound, "no upload " + upload_id);
    const VideoRecord& rec = records_.at(u->second);
    UploadState s;
    s.video_id = u->second;
    s.tenant = rec.tenant;
    s.offset = rec.bytes_received;
    s.length = rec.size;
    s.ended = rec.status != VideoStatus::kUploading;
    if (IsOpenTus(rec)) {
      s.expires = ParseIsoTime(rec.upload_expires_at.value_or(""));
      if (s.expires && *s.expires <= std::time(nullptr))
        return Status::Error(ErrorCode::kNotFound, "the upload " + upload_id + " expired");
    }
    return s;
  }

  ServiceMetrics Metrics() override {
    ServiceMetrics m;
    m.uploads_started = uploads_started_;
    m.uploads_completed = uploads_completed_;
    m.upload_bytes = upload_bytes_;
    m.tasks_by_state = {{"queued", 0}, {"running", 0}, {"done", 0}, {"failed", 0}};
    {
      std::lock_guard lock(mu_);
      for (const auto& [id, rec] : records_)
        ++m.videos_by_status[std::string(VideoStatusName(rec.status))];
      m.videos_in_memory = active_.size();
      for (const auto& [id, a] : active_) {
        std::lock_guard alock(a->mu);
        for (const auto& t : a->progress.tasks)
          ++m.tasks_by_state[std::string(storage::TaskStateName(t.state))];
      }
      m.failures_by_reason = failures_;
      m.transcode_buckets.assign(std::begin(kBuckets), std::end(kBuckets));
      m.transcode_bucket_counts = bucket_counts_;
      m.transcode_count = transcode_count_;
      m.transcode_sum = transcode_sum_;
    }
    m.queue_depth = slots_->waiting();
    m.workers_busy = slots_->in_use();
    if (opt_.worker) m.sandbox_refusals = opt_.worker->sandbox_refusals();
    if (cluster_) {
      const uint64_t ring_hash = opt_.ring->hash();
      m.ring_generation = opt_.ring->generation();
      for (const auto& h : cluster_->client().Health())
        m.nodes.push_back({h.endpoint, h.alive, h.load.task_slots, h.load.tasks_running,
                           h.load.disk_full, h.ring_hash == ring_hash});
      m.writes_possible = cluster_->client().WritesPossible();
      const auto traffic = cluster_->traffic();
      m.cluster_bytes_sent = traffic.bytes_sent;
      m.cluster_bytes_received = traffic.bytes_received;
      const auto stats = executor_->stats();
      m.tasks_lost = stats.tasks_lost;
      m.backup_copies = stats.backups_started;
      m.backup_wins = stats.backups_won;
      m.remote_placements = stats.remote_placements;
    }
    return m;
  }

 private:
  fs::path UploadsDir() const { return opt_.data_dir / "uploads"; }
  fs::path VideosDir() const { return opt_.data_dir / "videos"; }

  std::shared_ptr<Active> NewActive(const std::string& id, bool resumable) {
    auto a = std::make_shared<Active>();
    a->path = UploadsDir() / id;
    a->budget = budget_;
    a->resumable = resumable;
    return a;
  }

  // Requires mu_. Whether `tenant` may open one more resumable upload.
  Status CheckUploadCaps(const std::string& tenant) const {
    size_t mine = 0, all = 0;
    for (const auto& [id, rec] : records_) {
      if (!IsOpenTus(rec)) continue;
      ++all;
      if (rec.tenant == tenant) ++mine;
    }
    if (mine >= opt_.max_open_uploads_per_tenant)
      return Status::Error(ErrorCode::kTooManyUploads,
                           "this tenant has " + std::to_string(mine) +
                               " unfinished uploads, the most allowed: finish or delete one");
    if (all >= opt_.max_open_uploads)
      return Status::Error(ErrorCode::kUnavailable,
                           "the server has as many unfinished uploads as it "
                           "allows; retry later");
    return Status::Ok();
  }

  // Requires mu_. The upload counters, kept across restarts.
  void SaveStats() {
    json j = {{"started", uploads_started_.load()},
              {"completed", uploads_completed_.load()},
              {"bytes", upload_bytes_.load()}};
    (void)store_->PutMeta(kStatsKey, j.dump());
  }

  // Syncs the bytes written so far and records them as received (a resumable upload's expiry
  // moves on); `final` ends the upload; `close` drops the writer's descriptor.
  Result<uint64_t> SyncAndRecord(const std::string& id, Active& a, bool final, bool close) {
    uint64_t synced;
    bool start_job = false;
    {
      std::lock_guard lock(a.mu);
      if (a.write_fd.valid() && ::fdatasync(a.write_fd.get()) != 0)
        return ErrnoError("fdatasync upload", errno);
      if (close || final) a.write_fd.Close();
      a.synced = synced = a.written;
      a.last_sync = std::chrono::steady_clock::now();
      if (final) a.ended = true;
      if (final) ReturnEarlyJob(a);
      start_job = final && !a.job.joinable() && !a.job_done && !a.stop;  // not started yet
    }
    a.cv.notify_all();
    std::lock_guard lock(mu_);
    auto it = records_.find(id);
    if (it == records_.end()) return Status::Error(ErrorCode::kNotFound, "the video was deleted");
    VideoRecord& rec = it->second;
    rec.bytes_received = synced;
    if (final) {
      rec.size = synced;
      rec.upload_expires_at.reset();
      ++uploads_completed_;
      if (rec.status == VideoStatus::kUploading) rec.status = VideoStatus::kProcessing;
    } else if (IsOpenTus(rec)) {
      rec.upload_expires_at = IsoTime(std::time(nullptr) + opt_.upload_expiry.count());
    }
    ZF_RETURN_IF_ERROR(Save(rec));
    if (final) SaveStats();
    if (final && rec.status == VideoStatus::kFailed) DiscardUpload(id, a);
    if (auto shared = start_job ? FindActiveLocked(id) : nullptr) {
      std::lock_guard alock(a.mu);
      if (!a.job.joinable() && !a.job_done && !a.stop) StartJob(id, shared);
    }
    return synced;
  }

  // Removes the unfinished uploads whose expiry passed, every quarter of the expiry (at most
  // every 30 s), until the service stops.
  void ReapLoop() {
    using namespace std::chrono;
    const auto every = std::clamp<milliseconds>(duration_cast<milliseconds>(opt_.upload_expiry) / 4,
                                                milliseconds(100), milliseconds(30000));
    std::unique_lock lock(reaper_mu_);
    while (!reaper_cv_.wait_for(lock, every, [&] { return reaper_stop_; })) {
      lock.unlock();
      std::vector<std::pair<std::string, std::string>> expired;  // tenant, id
      {
        std::lock_guard mlock(mu_);
        const int64_t now = std::time(nullptr);
        for (const auto& [id, rec] : records_) {
          if (!IsOpenTus(rec)) continue;
          auto at = ParseIsoTime(rec.upload_expires_at.value_or(""));
          if (at && *at <= now) expired.emplace_back(rec.tenant, id);
        }
      }
      for (const auto& [tenant, id] : expired) {
        std::shared_ptr<Active> a = FindActive(id);
        if (a) {
          std::lock_guard alock(a->mu);
          if (a->write_fd.valid()) continue;  // bytes are flowing: the PATCH moves it on
        }
        (void)Delete(tenant, id);
      }
      ReapFinishedJobs();
      lock.lock();
    }
  }

  // Lets go of the videos whose job has returned and whose upload has ended (or failed): their
  // record holds everything they show from now on. Whoever takes an entry out of active_ joins
  // its thread (here, Delete or the destructor), so a thread is joined once. Each kept one held
  // its thread's stack (8 MiB of address space, about 30 KiB resident) and its progress: a
  // one-hour soak grew serve's RSS 118 -> 206 MiB with 3,349 such stacks.
  void ReapFinishedJobs() {
    std::vector<std::shared_ptr<Active>> done;
    {
      std::lock_guard lock(mu_);
      for (auto it = active_.begin(); it != active_.end();) {
        bool finished;
        {
          std::lock_guard alock(it->second->mu);
          const Active& a = *it->second;
          finished = a.job_done && (a.ended || a.failed_code);
        }
        if (finished) {
          done.push_back(std::move(it->second));
          it = active_.erase(it);
        } else {
          ++it;
        }
      }
    }
    for (auto& a : done)
      if (a->job.joinable()) a->job.join();
  }

  std::shared_ptr<Active> FindActive(const std::string& id) {
    std::lock_guard lock(mu_);
    return FindActiveLocked(id);
  }
  // Requires mu_.
  std::shared_ptr<Active> FindActiveLocked(const std::string& id) {
    auto it = active_.find(id);
    return it == active_.end() ? nullptr : it->second;
  }

  std::optional<uint64_t> DeclaredLength(const std::string& id) {
    std::lock_guard lock(mu_);
    auto it = records_.find(id);
    if (it == records_.end()) return std::nullopt;
    return it->second.size;
  }

  // The upload file of a video that failed: nothing will read it again.
  void DiscardUpload(const std::string& id, Active& a) {
    {
      std::lock_guard lock(a.mu);
      a.write_fd.Close();
    }
    std::error_code ec;
    fs::remove(UploadsDir() / id, ec);
  }

  static void Stop(Active& a) {
    a.cancel->store(true);
    {
      std::lock_guard lock(a.mu);
      a.stop = true;
    }
    a.cv.notify_all();
  }

  // Requires mu_.
  Status Save(const VideoRecord& rec) { return store_->PutMeta(RecordName(rec.id), ToJson(rec)); }

  // Requires mu_.
  void MarkFailed(VideoRecord& rec, ErrorCode code, const std::string& message) {
    if (rec.status == VideoStatus::kFailed || rec.status == VideoStatus::kReady) return;
    rec.status = VideoStatus::kFailed;
    rec.error = VideoError{code, message};
    ++failures_[std::string(ErrorCodeName(code))];
    (void)Save(rec);
    Emit("video.failed", rec);
  }

  // Tells the listener of a change of `rec` (caller holds mu_).
  void Emit(const char* type, const VideoRecord& rec) {
    std::lock_guard lock(listener_mu_);
    if (!listener_) return;
    VideoEvent e;
    e.type = type;
    e.tenant = rec.tenant;
    e.video_id = rec.id;
    e.video = ViewLocked(rec, nullptr);
    listener_(e);
  }

  void StartJob(const std::string& id, const std::shared_ptr<Active>& a) {
    a->job = std::thread([this, id, a] {
      try {
        RunJob(id, a);
      } catch (const std::exception& e) {  // a broken record must not take the server down
        std::lock_guard lock(mu_);
        if (auto it = records_.find(id); it != records_.end())
          MarkFailed(it->second, ErrorCode::kInternal, std::string("internal error: ") + e.what());
      }
      std::lock_guard lock(a->mu);
      ReturnEarlyJob(*a);
      a->job_done = true;
    });
  }

  // Requires a.mu. Unfinished resumable uploads whose job runs before their last byte (each
  // job holds a few threads while it waits for bytes) are at most kMaxEarlyJobs.
  bool TakeEarlyJob(Active& a) {
    if (early_jobs_.fetch_add(1) >= kMaxEarlyJobs) {
      --early_jobs_;
      return false;
    }
    a.early_job = true;
    return true;
  }
  void ReturnEarlyJob(Active& a) {
    if (!a.early_job) return;
    a.early_job = false;
    --early_jobs_;
  }

  void OnProgress(Active& a, const JobProgress& p) {
    std::vector<double> finished;
    {
      std::lock_guard lock(a.mu);
      a.progress = p;
      a.have_progress = true;
      for (const auto& t : p.tasks)
        if (t.state == storage::TaskState::kDone && a.timed.insert(t.index).second &&
            t.wall_seconds > 0)
          finished.push_back(t.wall_seconds);
    }
    if (finished.empty()) return;
    std::lock_guard lock(mu_);
    if (bucket_counts_.empty()) bucket_counts_.assign(std::size(kBuckets), 0);
    for (double s : finished) {
      ++transcode_count_;
      transcode_sum_ += s;
      for (size_t i = 0; i < std::size(kBuckets); ++i)
        if (s <= kBuckets[i]) ++bucket_counts_[i];
    }
  }

  void RunJob(const std::string& id, const std::shared_ptr<Active>& a) {
    JobOptions o;
    {
      std::lock_guard lock(mu_);
      auto found = records_.find(id);
      if (found == records_.end()) return;  // deleted before the job began
      const VideoRecord& rec = found->second;
      o.ladder.clear();
      for (const auto& r : rec.ladder) o.ladder.push_back(std::stoi(r));
      o.preset = rec.preset;
      o.tenant = rec.tenant;
    }
    o.chunk_seconds = opt_.chunk_seconds;
    // Serve only: a head segment shorter than the source's keyframe interval decodes from the
    // chunk before it, which in a farm may be on another node (tasks read only their own
    // node's chunks), and the farm's time to playable is bounded by its audio track anyway.
    if (!opt_.ring)
      for (double h : opt_.head_seconds) o.head_seconds.push_back(std::min(h, opt_.chunk_seconds));
    o.worker = opt_.worker;
    o.slots = slots_;
    o.task_slots = slots_->capacity();
    o.cancel = a->cancel;
    o.node_name = opt_.node_name;
    o.executor = executor_;
    // A farm: the first segment runs alone on its node's cores, so that the video is playable
    // once that one segment is done. Nodes do not report their cores: this machine's stand in
    // (a node may run fewer task slots than it has cores).
    if (executor_)
      o.head_alone_threads =
          std::clamp(static_cast<int>(std::thread::hardware_concurrency()), 1, 16);
    // The renditions are published where they are served, segment by segment while the job
    // runs; a job resumed after a restart keeps what it had published.
    const fs::path out = VideosDir() / id;
    std::error_code ec;
    fs::remove_all(VideosDir() / ("." + id + ".partial"), ec);  // left by older versions
    fs::create_directories(out, ec);
    UploadSource source(a);
    auto report = RunTranscodeJob(*store_, source, id, o, out,
                                  [this, &a](const JobProgress& p) { OnProgress(*a, p); });
    if (shutting_down_ || a->cancel->load()) return;
    std::vector<TaskProgress> done_chunks;
    std::optional<TaskProgress> done_audio;
    {
      std::lock_guard lock(a->mu);
      done_chunks = SegmentTasks(a->progress);
      done_audio = AudioTask(a->progress);
    }
    std::lock_guard lock(mu_);
    auto it = records_.find(id);
    if (it == records_.end()) return;
    VideoRecord& rec = it->second;
    if (!report.ok()) {
      fs::remove_all(out, ec);
      MarkFailed(rec, report.status().code(), report.status().message());
      bool ended;
      {
        std::lock_guard alock(a->mu);
        ended = a->ended;
      }
      if (ended) DiscardUpload(id, *a);  // else when the upload ends (Commit)
      return;
    }
    ReadyFacts f = ReadyFactsOf(*report, id);
    // The ladder that was made: rungs above the source's short side were skipped.
    rec.ladder.clear();
    for (const auto& r : f.renditions) rec.ladder.push_back(r.name);
    f.chunks = std::move(done_chunks);
    f.audio = std::move(done_audio);
    rec.ready = std::move(f);
    rec.status = VideoStatus::kReady;
    (void)Save(rec);
    Emit("video.ready", rec);
    {
      std::lock_guard alock(a->mu);
      a->write_fd.Close();
    }
    fs::remove(UploadsDir() / id, ec);
  }

  // Requires mu_. The video as it stands: its record, and its job's progress while it runs.
  Video ViewLocked(const VideoRecord& rec, Active* a) const {
    Video v;
    v.record = rec;
    const VideoStatus status = rec.status;
    v.progress.phase = status == VideoStatus::kUploading ? "upload" : "ingest";
    if (rec.ready) {
      v.duration_seconds = rec.ready->duration_seconds;
      v.chunks = rec.ready->chunks;
      v.audio = rec.ready->audio;
    }
    double playable_seconds = 0;
    if (a) {
      std::lock_guard lock(a->mu);
      if (a->have_progress) {
        const JobProgress& p = a->progress;
        v.progress = ProgressOf(p);
        if (status != VideoStatus::kReady) {
          v.chunks = SegmentTasks(p);
          v.audio = AudioTask(p);
        }
        // The ladder as it will be made: rungs above the source are skipped.
        if (status == VideoStatus::kProcessing && !p.rungs.empty()) v.record.ladder = p.rungs;
        if (p.duration_seconds > 0 && !v.duration_seconds) v.duration_seconds = p.duration_seconds;
        playable_seconds = p.playable_seconds;
      }
    }
    v.playable = PlayableLocked(rec.id, rec);
    if (rec.ready) playable_seconds = rec.ready->duration_seconds;
    v.playable_seconds = v.playable ? playable_seconds : 0.0;
    if (rec.ready) {
      const size_t n = rec.ready->chunks.size();
      v.progress = VideoProgress{"done", true, n, n, 0, 1.0, rec.ready->audio ? "done" : "none"};
    }
    return v;
  }

  std::mutex listener_mu_;  // after mu_ when both are held
  VideoEventListener listener_;
  VideoServiceOptions opt_;
  std::unique_ptr<storage::Store> local_;           // the embedded store, or the proxy's metas
  std::unique_ptr<storage::ClusterStore> cluster_;  // cluster mode: objects on the nodes
  std::shared_ptr<ClusterExecutor> executor_;       // cluster mode: tasks on the nodes
  storage::Store* store_;                           // what jobs use
  std::shared_ptr<TaskSlots> slots_;
  std::unique_ptr<TaskExecutor> exec_executor_;  // serve: exec jobs' sandboxed programs here
  std::atomic<bool> shutting_down_{false};
  std::mutex mu_;
  std::map<std::string, VideoRecord> records_;
  std::map<std::string, std::string> uploads_;  // upload id -> video id
  std::map<std::string, std::shared_ptr<Active>> active_;
  std::map<std::string, uint64_t> failures_;
  std::vector<uint64_t> bucket_counts_;
  uint64_t transcode_count_ = 0;
  double transcode_sum_ = 0;
  std::atomic<uint64_t> uploads_started_{0}, uploads_completed_{0}, upload_bytes_{0};
  std::shared_ptr<FdBudget> budget_;
  std::atomic<int> early_jobs_{0};
  std::mutex reaper_mu_;
  std::condition_variable reaper_cv_;
  bool reaper_stop_ = false;
  std::thread reaper_;  // removes expired uploads
};

}  // namespace

bool IsVideoId(std::string_view s) { return IsHexId(s, "v_", 16); }
bool IsUploadId(std::string_view s) { return IsHexId(s, "u_", 24); }

Result<std::unique_ptr<VideoService>> VideoService::Open(const VideoServiceOptions& options) {
  if (!options.worker && !options.ring)
    return Status::Error(ErrorCode::kInvalidArgument, "no worker runtime");
  std::error_code ec;
  fs::create_directories(options.data_dir, ec);
  if (ec) return Status::Error(ErrorCode::kIoError, "cannot create " + options.data_dir.string());
  storage::Options so;
  so.dir = options.data_dir / "store";
  auto store = storage::Store::Open(so);
  if (!store.ok()) return store.status();
  std::unique_ptr<storage::ClusterStore> cluster;
  std::shared_ptr<ClusterExecutor> executor;
  if (options.ring) {
    storage::ClusterStoreOptions co;
    co.meta = store->get();
    co.cluster.key = options.farm_key;
    auto cs = storage::ClusterStore::Create(options.ring, co);
    if (!cs.ok()) return cs.status();
    cluster = std::move(*cs);
    ClusterExecutorOptions eo;
    eo.straggler_min = options.backup_after;
    auto ex = MakeClusterExecutor(*cluster, eo);
    if (!ex.ok()) return ex.status();
    executor = std::move(*ex);
  }
  auto service = std::make_unique<Service>(options, std::move(*store), std::move(cluster),
                                           std::move(executor));
  ZF_RETURN_IF_ERROR(service->Recover());
  return std::unique_ptr<VideoService>(std::move(service));
}

}  // namespace zerofarm::scheduler

#include "zerofarm/scheduler/transcode_job.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "zerofarm/base/hex.h"
#include "zerofarm/scheduler/task_executor.h"
#include "zerofarm/storage/content_hash.h"
#include "zerofarm/transcode/ladder.h"
#include "zerofarm/transcode/object_names.h"
#include "zerofarm/transcode/stitcher.h"
#include "zerofarm/transcode/worker_task.h"

namespace zerofarm::scheduler {
namespace {

namespace tc = transcode;
namespace fs = std::filesystem;

constexpr int kAudioTask = kAudioTaskIndex;
constexpr uint64_t kMaxThumbnailBytes = 16 << 20;
constexpr double kThumbnailSeconds = 1.0;
constexpr int kThumbnailShortSide = 360;

std::string TaskKey(const std::string& prefix, int index) {
  return index == kAudioTask ? tc::AudioTaskRecordName(prefix)
                             : tc::TaskRecordName(prefix, static_cast<size_t>(index));
}

// The words a user reads first for a worker's error code.
std::string UserPhrase(ErrorCode code) {
  if (code == ErrorCode::kUndecodable) return "undecodable";
  if (code == ErrorCode::kUnsupportedCodec) return "unsupported codec";
  if (code == ErrorCode::kBadStream) return "corrupt chunk";
  return "transcode failed";
}

using Plan = JobPlan;

// The head of a video's timeline: the audio track and these first segments go first, in
// timeline order, so that the video becomes playable as soon as it can; the rest longest first.
constexpr int kHeadTasks = 4;

bool IsHead(int index) { return index < kHeadTasks; }
constexpr int kHeadNice = 2;  // CPU weight 0.64 of the audio track's and ingest's
constexpr int kTailNice = 5;  // CPU weight 0.33
constexpr size_t kAudioPublishBytes = 32 << 10;  // about 2 s of the audio track

struct QueuedTask {
  int index;    // kAudioTask or a video task index
  double cost;  // among the rest, longest first
  // The heap's top is the greatest.
  bool operator<(const QueuedTask& o) const {
    if (IsHead(index) != IsHead(o.index)) return !IsHead(index);
    if (IsHead(index)) return index > o.index;
    if (cost != o.cost) return cost < o.cost;
    return index > o.index;
  }
};

class Job : public tc::IngestSink {
 public:
  Job(storage::Store& store, std::string job_id, const JobOptions& options,
      const ProgressFn& progress)
      : store_(store),
        prefix_(tc::JobPrefix(job_id)),
        options_(options),
        progress_(progress),
        node_(options.node_name.empty() ? Hostname() : options.node_name),
        t0_(std::chrono::steady_clock::now()),
        cancel_(options.cancel ? options.cancel : std::make_shared<std::atomic<bool>>(false)) {
    slots_ = options.task_slots > 0
                 ? options.task_slots
                 : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
    executor_ = options.executor;
    if (executor_) {
      slots_ = std::max(1, options.task_slots > 0 ? std::min(options.task_slots, executor_->slots())
                                                  : executor_->slots());
    } else {
      // One more than the pool: the audio track runs beside the video tasks.
      executor_ = MakeLocalExecutor(store_, options.worker, node_, slots_ + 1);
    }
    feed_audio_ = executor_->streams();
  }

  Result<JobReport> Run(transcode::ByteSource& source, const fs::path& out_dir) {
    const auto t0 = t0_;
    auto stored = store_.GetMeta(tc::PlanRecordName(prefix_));
    if (!stored.ok()) return stored.status();
    publisher_.emplace(store_, out_dir);
    StartPool();
    Status ingest_status;
    if (stored->has_value()) {
      // Resume: the source was fully ingested by an earlier run.
      auto plan = JobPlanFromJson(**stored);
      if (!plan.ok()) {
        StopPool();
        return plan.status();
      }
      {
        std::lock_guard lock(mu_);
        plan_ = std::move(*plan);
        progress_state_.phase = "transcode";
        progress_state_.tasks_known = plan_.tasks.size();
        progress_state_.duration_seconds = plan_.duration_seconds;
        NoteSource();
      }
      for (const auto& t : plan_.tasks) Enqueue(static_cast<int>(t.index), Cost(t));
      if (plan_.source.audio) Enqueue(kAudioTask, 1e9);
      {
        std::lock_guard lock(mu_);
        ingest_done_ = true;
        progress_state_.ingest_done = true;
        cv_.notify_all();
      }
      // What an earlier run published is listed again right away.
      PublishFinished();
    } else {
      ingest_status = Ingest(source);
    }
    const auto t_ingest = std::chrono::steady_clock::now();
    if (!ingest_status.ok()) Fail(ingest_status);
    StopPool();
    if (!failure_.ok() || Cancelled()) MarkNotRun();
    if (!failure_.ok()) return failure_;
    if (Cancelled()) return Status::Error(ErrorCode::kCancelled, "the job was cancelled");

    Report("stitch");
    tc::StitchInput in;
    in.prefix = prefix_;
    in.rungs = plan_.rungs;
    in.segments = plan_.tasks.size();
    in.has_audio = plan_.source.audio.has_value();
    in.fps = plan_.source.fps;
    in.target_seconds = TargetSeconds();
    auto stitched = StitchBound(in, out_dir);
    if (!stitched.ok()) return stitched.status().WithContext("stitch");
    {
      std::lock_guard lock(mu_);  // every segment is listed now
      progress_state_.segments_published = publisher_->published();
      progress_state_.playable_seconds = publisher_->playable_seconds();
    }
    Report("verify");
    ZF_RETURN_IF_ERROR(Verify(*stitched));
    Report("done");
    const auto t_end = std::chrono::steady_clock::now();
    JobReport report = BuildReport(*stitched, std::chrono::duration<double>(t_ingest - t0).count(),
                                   std::chrono::duration<double>(t_end - t0).count());
    const std::string text = ToJson(report);
    std::FILE* f = std::fopen((out_dir / "report.json").c_str(), "wb");
    if (!f || std::fwrite(text.data(), 1, text.size(), f) != text.size() || std::fclose(f) != 0)
      return Status::Error(ErrorCode::kIoError,
                           "cannot write " + (out_dir / "report.json").string());
    return report;
  }

  // IngestSink: called on the ingest thread.
  void OnSource(const tc::SourceInfo& info) override {
    std::lock_guard lock(mu_);
    plan_.source = info;
    plan_.rungs =
        tc::PlanLadder(options_.ladder, info.display_width, info.display_height, info.fps);
    auto thumb =
        tc::PlanLadder({kThumbnailShortSide}, info.display_width, info.display_height, info.fps);
    plan_.thumb_width = thumb.front().width;
    plan_.thumb_height = thumb.front().height;
    NoteSource();
    Notify();
    // The audio track is encoded while ingest still stores it (fed from ingest, OnAudio: in
    // this process, or sent to the node that runs it), so it never waits for the end of the
    // upload.
    if (feed_audio_ && info.audio) {
      std::lock_guard feed(feed_mu_);
      audio_fed_ = true;
    }
  }
  void OnAudio(std::string_view record) override {
    CarryCancel();
    bool start = false;
    {
      std::lock_guard lock(feed_mu_);
      feed_.append(record);
      start = !audio_started_ && audio_fed_;
      audio_started_ = audio_started_ || start;
    }
    feed_cv_.notify_all();
    if (start) Enqueue(kAudioTask, 1e9);
  }
  void OnChunk(const tc::ChunkInfo&) override { CarryCancel(); }
  void OnTask(const tc::TaskPlan& task) override {
    CarryCancel();
    {
      std::lock_guard lock(mu_);
      plan_.tasks.push_back(task);
      progress_state_.tasks_known = plan_.tasks.size();
      progress_state_.duration_seconds =
          std::max(progress_state_.duration_seconds, TaskStartSeconds(task) + task.seconds);
    }
    Enqueue(static_cast<int>(task.index), Cost(task));
    std::lock_guard lock(mu_);
    Notify();
  }

 private:
  bool Cancelled() const { return cancel_->load(); }
  // An outside cancel reaches the running tasks: ingest's callbacks carry it over while the
  // source streams in, StopPool afterwards.
  void CarryCancel() {
    if (Cancelled()) stop_tasks_ = true;
  }

  std::string ChunkObject(uint32_t chunk) const { return tc::ChunkObjectName(prefix_, chunk); }

  double Elapsed() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
  }

  // Media time where a task's owned frames start (caller holds mu_ or owns plan_).
  double TaskStartSeconds(const tc::TaskPlan& t) const {
    if (!t.start_pts) return 0.0;
    const auto& tb = plan_.source.video;
    return static_cast<double>(*t.start_pts - plan_.source.origin_pts) * tb.time_base_num /
           std::max(1, tb.time_base_den);
  }

  // Output time where a task's owned frames end, as its worker places the next task's first
  // frame: av_rescale_q(end_pts - origin, source time base -> 1/90000), rounded half away from
  // zero (caller holds mu_ or owns plan_). None for the last task.
  std::optional<double> TaskEndSeconds(const tc::TaskPlan& t) const {
    const auto& tb = plan_.source.video;
    if (!t.end_pts || tb.time_base_den <= 0) return std::nullopt;
    __extension__ using Wide = __int128;  // pts x 90000 overflows 64 bits for long sources
    const Wide num = static_cast<Wide>(*t.end_pts - plan_.source.origin_pts) * tb.time_base_num *
                     tc::kOutputTimeBase;
    const Wide den = tb.time_base_den;
    const Wide half = den / 2;
    const Wide ticks = num >= 0 ? (num + half) / den : -((-num + half) / den);
    return static_cast<double>(static_cast<int64_t>(ticks)) / tc::kOutputTimeBase;
  }

  // What the progress says of the probed source (caller holds mu_ or owns plan_).
  void NoteSource() {
    progress_state_.source_known = true;
    progress_state_.has_audio = plan_.source.audio.has_value();
    progress_state_.rungs.clear();
    for (const auto& r : plan_.rungs) progress_state_.rungs.push_back(r.name);
  }

  // Counts a finished task: a video segment, or the audio track (caller holds mu_).
  void CountDone(int index, bool resumed) {
    TaskProgress& tp = Track(index);
    if (index == kAudioTask) {
      progress_state_.audio_done = true;
      audio_resumed_ = resumed;
      return;
    }
    ++progress_state_.tasks_done;
    progress_state_.media_seconds_done += tp.media_seconds;
    if (resumed) {
      ++progress_state_.tasks_resumed;
      progress_state_.media_seconds_resumed += tp.media_seconds;
    }
  }

  // The farm view's record of a task (caller holds mu_).
  TaskProgress& Track(int index) {
    auto [it, inserted] = task_progress_.try_emplace(index);
    if (inserted) {
      it->second.index = index;
      it->second.state = storage::TaskState::kQueued;
      it->second.queued_at = Elapsed();
      if (index == kAudioTask) {
        it->second.media_seconds = plan_.duration_seconds;
      } else {
        for (const auto& t : plan_.tasks)
          if (t.index == static_cast<uint32_t>(index)) {
            it->second.start_seconds = TaskStartSeconds(t);
            it->second.media_seconds = t.seconds;
          }
      }
    }
    return it->second;
  }

  // Calls the progress callback with the task list filled in (caller holds mu_).
  void Notify() {
    if (!progress_) return;
    progress_state_.tasks.clear();
    for (const auto& [index, t] : task_progress_)
      if (index != kAudioTask) progress_state_.tasks.push_back(t);
    if (auto it = task_progress_.find(kAudioTask); it != task_progress_.end())
      progress_state_.tasks.push_back(it->second);
    progress_(progress_state_);
  }

  static double Cost(const tc::TaskPlan& t) {
    // Encoding dominates; pre-roll frames are decoded only.
    return static_cast<double>(t.owned_packets) + 0.1 * static_cast<double>(t.preroll_packets);
  }

  Status Ingest(transcode::ByteSource& source) {
    // A fresh start: forget anything a crashed ingest left behind.
    auto removed = store_.DeleteObjects(prefix_);
    if (!removed.ok()) return removed.status();
    auto old = store_.ListMeta(tc::TaskRecordPrefix(prefix_));
    if (!old.ok()) return old.status();
    for (const auto& kv : *old) ZF_RETURN_IF_ERROR(store_.DeleteMeta(kv.first));
    Report("ingest");
    {
      std::lock_guard lock(mu_);
      plan_.ingest_id = RandomHex(8);
    }
    tc::IngestOptions io;
    io.chunk_seconds = options_.chunk_seconds;
    io.head_seconds = options_.head_seconds;
    io.prefix = prefix_;
    auto result = tc::Ingest(source, store_, io, this);
    // The job's failure is the ingest's, set before the audio task (fed from ingest) can see
    // its input stop and fail in turn.
    if (!result.ok()) Fail(result.status());
    {
      std::lock_guard lock(feed_mu_);
      feed_ended_ = true;
      feed_failed_ = !result.ok();
    }
    feed_cv_.notify_all();
    if (!result.ok()) return result.status();
    {
      std::lock_guard lock(mu_);
      plan_.chunks = result->chunks.size();
      plan_.source_bytes = result->source_bytes;
      plan_.video_packets = result->video_packets;
      plan_.duration_seconds = result->video_duration_seconds;
      progress_state_.duration_seconds = plan_.duration_seconds;
      // The ingest result is authoritative for the task list (the sink saw the same tasks).
      plan_.tasks = result->tasks;
    }
    // From here on a rerun resumes instead of ingesting again.
    ZF_RETURN_IF_ERROR(store_.PutMeta(tc::PlanRecordName(prefix_), ToJson(plan_)));
    bool started;
    {
      std::lock_guard lock(feed_mu_);
      started = audio_started_;
      audio_started_ = true;
    }
    if (plan_.source.audio && !started) Enqueue(kAudioTask, 1e9);
    {
      std::lock_guard lock(mu_);
      ingest_done_ = true;
      progress_state_.ingest_done = true;
      progress_state_.phase = "transcode";
      cv_.notify_all();
    }
    PublishFinished();
    return Status::Ok();
  }

  void Enqueue(int index, double cost) {
    // Tasks finished by an earlier run are not redone.
    auto done = store_.GetMeta(TaskKey(prefix_, index));
    std::lock_guard lock(mu_);
    if (done.ok() && done->has_value()) {
      // An unreadable result, or one without output checksums (its outputs cannot be
      // bound): the task runs again.
      if (auto stored = TaskResultFromJson(**done); stored.ok()) {
        const TaskResult& r = results_[index] = std::move(*stored);
        if (index == 0) head_ended_ = true;
        CountDone(index, /*resumed=*/true);
        TaskProgress& tp = Track(index);
        tp.state = storage::TaskState::kDone;
        tp.node = r.node;
        tp.attempts = r.attempts;
        tp.wall_seconds = r.wall_seconds;
        tp.cpu_seconds = r.cpu_seconds;
        return;
      }
    }
    Track(index);
    ++outstanding_;
    if (index == kAudioTask) {
      // The audio track is light (well under a tenth of a segment's CPU) and every published
      // segment needs it: it runs at once beside the video tasks instead of waiting for a slot.
      ++live_threads_;
      audio_thread_ = std::thread([this] {
        Finish(kAudioTask, RunWithRetries(kAudioTask, 1));
        ThreadEnded();
      });
      return;
    }
    queue_.push_back({index, cost});
    std::push_heap(queue_.begin(), queue_.end());
    cv_.notify_one();
  }

  void StartPool() {
    std::lock_guard lock(mu_);
    live_threads_ += slots_;
    for (int i = 0; i < slots_; ++i)
      threads_.emplace_back([this] {
        PoolLoop();
        ThreadEnded();
      });
  }

  void ThreadEnded() {
    std::lock_guard lock(mu_);
    --live_threads_;
    cv_.notify_all();
  }

  void StopPool() {
    std::unique_lock lock(mu_);
    ingest_done_ = true;
    cv_.notify_all();
    // Until the task threads end, a cancel from outside reaches the tasks they run (the
    // executors watch stop_tasks_, which a failure sets at once).
    while (live_threads_ > 0) {
      CarryCancel();
      cv_.wait_for(lock, std::chrono::milliseconds(100));
    }
    lock.unlock();
    for (auto& t : threads_) t.join();
    threads_.clear();
    if (audio_thread_.joinable()) audio_thread_.join();
  }

  void PoolLoop() {
    for (;;) {
      QueuedTask task;
      int threads = 1;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] {
          return !failure_.ok() || CanTakeLocked() || (ingest_done_ && outstanding_ == 0);
        });
        if (!failure_.ok() || !CanTakeLocked()) return;
        std::pop_heap(queue_.begin(), queue_.end());
        task = queue_.back();
        queue_.pop_back();
        ++running_;
        // Few tasks left: give each encoder more threads so no core idles.
        int busy = running_ + static_cast<int>(queue_.size());
        threads = std::max(1, slots_ / std::max(1, busy));
        if (!ingest_done_) threads = 1;
        if (task.index == 0 && options_.head_alone_threads > 0)
          threads = options_.head_alone_threads;
      }
      if (options_.slots) options_.slots->Acquire(IsHead(task.index) ? 0 : 1, options_.tenant);
      Status s = RunWithRetries(task.index, threads);
      if (options_.slots) options_.slots->Release();
      {
        std::lock_guard lock(mu_);
        --running_;
      }
      Finish(task.index, s);
    }
  }

  // Whether a pool thread may take the queue's top (caller holds mu_). With
  // head_alone_threads, nothing but segment 0 (the top while it waits) is taken before it has
  // ended.
  bool CanTakeLocked() const {
    if (queue_.empty()) return false;
    return options_.head_alone_threads <= 0 || head_ended_ || queue_.front().index == 0;
  }

  // Records how a task ended, then publishes what became playable.
  void Finish(int index, const Status& s) {
    {
      std::lock_guard lock(mu_);
      --outstanding_;
      if (index == 0) head_ended_ = true;  // the other video tasks may start (CanTakeLocked)
      if (!s.ok()) FailLocked(s);
      TaskProgress& tp = Track(index);
      if (s.ok()) {
        CountDone(index, /*resumed=*/false);
        tp.state = storage::TaskState::kDone;
      } else if (s.code() == ErrorCode::kNotRun || s.code() == ErrorCode::kCancelled) {
        tp.state = storage::TaskState::kCancelled;
      } else {
        tp.state = storage::TaskState::kFailed;
        tp.error = s.message();
      }
      Notify();
      cv_.notify_all();
    }
    if (s.ok()) PublishFinished();
  }

  // EXT-X-TARGETDURATION, fixed from the first published playlist on (RFC 8216 wants it never
  // to change): ingest cuts a task at a keyframe up to half a chunk past its grid point, so no
  // task is longer than 1.5 chunks (plus a frame, which rounding absorbs) unless the source's
  // timestamps jump; only such a gap can still raise it. The caller holds mu_ or owns plan_.
  long TargetSeconds() const {
    long target = std::lround(1.5 * options_.chunk_seconds);
    for (const auto& t : plan_.tasks) target = std::max(target, std::lround(t.seconds));
    return std::max(1L, target);
  }

  // Publishes the segments finished in a row from the start (with the audio track, which they
  // need), while the rest of the job runs: the video is playable before it is complete. A
  // segment that fails its checks fails the job; an output holding other bytes than reported
  // is left to the final stitch, which runs its task again.
  void PublishFinished() {
    std::lock_guard publishing(publish_mu_);
    tc::StitchInput in;
    std::string audio_so_far;
    {
      std::lock_guard lock(mu_);
      if (!failure_.ok() || Cancelled() || publish_paused_ || plan_.rungs.empty()) return;
      in.prefix = prefix_;
      in.rungs = plan_.rungs;
      in.has_audio = plan_.source.audio.has_value();
      in.fps = plan_.source.fps;
      in.target_seconds = TargetSeconds();
      while (in.segments < plan_.tasks.size()) {
        auto r = results_.find(static_cast<int>(in.segments));
        if (r == results_.end()) break;
        in.segment_frames.push_back(r->second.frames);
        in.segment_ends.push_back(TaskEndSeconds(plan_.tasks[in.segments]));
        ++in.segments;
      }
      // A finished segment is published on its planned end; without one (the last segment) it
      // waits for the next one or the end of the job.
      const bool end_known = in.segments > 0 && in.segment_ends.back().has_value();
      if (in.segments < publisher_->published() + (end_known ? 1 : 2)) return;
      // The audio track still being encoded: as far as it has been written (copied only when
      // a segment is waiting for it).
      if (plan_.source.audio && !results_.count(kAudioTask)) {
        std::lock_guard alock(audio_mu_);
        if (audio_seen_.empty()) return;
        audio_so_far = audio_seen_;
        in.audio_so_far = &audio_so_far;
      }
      in.checksums = OutputChecksums(nullptr);
    }
    Status s = publisher_->Advance(in, /*complete=*/false);
    std::lock_guard lock(mu_);
    if (!s.ok()) {
      if (s.code() == ErrorCode::kOutputMismatch) {
        publish_paused_ = true;
      } else {
        FailLocked(s.WithContext("publish"));
      }
      return;
    }
    progress_state_.segments_published = publisher_->published();
    progress_state_.playable_seconds = publisher_->playable_seconds();
    Notify();
  }

  // Every finished task's outputs -> the checksum it reported; `owner` (if given) gets the
  // task of each (caller holds mu_ or owns results_).
  std::map<std::string, uint64_t> OutputChecksums(std::map<std::string, int>* owner) const {
    std::map<std::string, uint64_t> sums;
    for (const auto& [index, r] : results_)
      for (const auto& o : r.outputs) {
        sums[o.object] = o.xxh64;
        if (owner) (*owner)[o.object] = index;
      }
    return sums;
  }

  // After a failure or a cancel: the tasks that never ran say so instead of looking queued.
  void MarkNotRun() {
    std::lock_guard lock(mu_);
    for (auto& [index, tp] : task_progress_)
      if (tp.state == storage::TaskState::kQueued) tp.state = storage::TaskState::kCancelled;
    Notify();
  }

  void Fail(const Status& s) {
    std::lock_guard lock(mu_);
    FailLocked(s);
  }
  // The first failure is the job's; the tasks still running are stopped (the audio track
  // would otherwise hold the failed job's answer back until it ended). Requires mu_.
  void FailLocked(const Status& s) {
    if (failure_.ok()) failure_ = s;
    stop_tasks_ = true;
    cv_.notify_all();
  }

  void Report(const std::string& phase) {
    std::lock_guard lock(mu_);
    progress_state_.phase = phase;
    Notify();
  }

  Status RunWithRetries(int index, int threads) {
    Status last;
    for (int attempt = 1; attempt <= 1 + options_.max_retries; ++attempt) {
      {
        std::lock_guard lock(mu_);
        // The job already failed: this task is not run (and does not count as done).
        if (!failure_.ok()) return Status::Error(ErrorCode::kNotRun, "not run: the job failed");
        if (Cancelled()) return Status::Error(ErrorCode::kCancelled, "the job was cancelled");
        TaskProgress& tp = Track(index);
        tp.state = storage::TaskState::kRunning;
        tp.attempts = attempt;
        tp.node.clear();  // known once the executor places it
        tp.started_at = Elapsed();
        Notify();
      }
      bool permanent = false;
      last = RunOnce(index, threads, attempt, &permanent);
      if (last.ok() || permanent) return last;
      if (Cancelled()) return Status::Error(ErrorCode::kCancelled, "the job was cancelled");
      if (stop_tasks_) return Status::Error(ErrorCode::kNotRun, "stopped: the job failed");
      std::lock_guard lock(mu_);
      Track(index).error = last.message();
    }
    return Status::Error(last.code(), last.message() + " (after " +
                                          std::to_string(1 + options_.max_retries) + " attempts)");
  }

  // One attempt. `permanent` is set when the input is at fault and a retry cannot help.
  // What one task needs of the job's plan, copied under mu_.
  struct TaskInputs {
    tc::TaskPlan plan;  // video tasks only
    std::vector<tc::RungSettings> rungs;
    tc::SourceInfo source;
    int thumb_w = 0, thumb_h = 0;
    std::string ingest_id;
    double duration_seconds = 0;
  };

  // One attempt at a task: runs it where the executor places it, judges the outcome and, when
  // it is good, records its result durably. `*permanent` tells the caller not to retry.
  Status RunOnce(int index, int threads, int attempt, bool* permanent) {
    auto in = SnapshotPlan(index);
    if (!in.ok()) return in.status();
    TaskSpec spec;
    spec.job = prefix_;
    spec.threads = threads;
    spec.rerun = attempt > 1 || rerun_.count(index) > 0;
    // Ingest (in this process) and the audio track come first, then the head of the timeline,
    // then the rest: what the video needs to become playable is never starved by its tail or
    // by other videos' tails.
    spec.nice = index == kAudioTask ? 0 : IsHead(index) ? kHeadNice : kTailNice;
    spec.light = index == kAudioTask;  // on a farm: beside the nodes' full task slots
    if (index == kAudioTask) {
      ZF_RETURN_IF_ERROR(PrepareAudioTask(*in, attempt, &spec));
    } else {
      PrepareVideoTask(*in, threads, &spec);
    }
    auto exit = executor_->Run(spec, stop_tasks_, [&](const std::string& node) {
      std::lock_guard lock(mu_);
      TaskProgress& tp = Track(index);
      tp.node = node;
      tp.started_at = Elapsed();
      Notify();
    });
    if (!exit.ok()) {
      // No worker, or the job was cancelled: a retry is futile.
      *permanent = exit.status().code() == ErrorCode::kSpawnFailed || Cancelled() || stop_tasks_;
      return exit.status();
    }
    auto report = tc::WorkerReportFromJson(exit->report);
    ZF_RETURN_IF_ERROR(JudgeOutcome(index, *in, spec, *exit, report, permanent));
    auto result = MakeResult(index, *in, spec, *exit, *report, threads, attempt);
    if (!result.ok()) return result.status();
    return Record(index, std::move(*result));
  }

  Result<TaskInputs> SnapshotPlan(int index) {
    std::lock_guard lock(mu_);
    TaskInputs in;
    if (index != kAudioTask) {
      auto it = std::find_if(plan_.tasks.begin(), plan_.tasks.end(), [&](const tc::TaskPlan& t) {
        return t.index == static_cast<uint32_t>(index);
      });
      if (it == plan_.tasks.end()) return Status::Error(ErrorCode::kInternal, "unknown task");
      in.plan = *it;
    }
    in.rungs = plan_.rungs;
    in.source = plan_.source;
    in.ingest_id = plan_.ingest_id;
    in.thumb_w = plan_.thumb_width;
    in.thumb_h = plan_.thumb_height;
    in.duration_seconds = plan_.duration_seconds;
    return in;
  }

  // The audio track's task: fed from ingest on its first attempt (in this process, or sent to
  // the node that runs it), else from the stored track; published as it is encoded.
  Status PrepareAudioTask(const TaskInputs& in, int attempt, TaskSpec* spec) {
    const int index = kAudioTask;
    tc::AudioTask t;
    t.origin_seconds = in.source.origin_seconds;
    t.output_fd = 3;
    spec->id = tc::AudioSourceObjectName(prefix_) + "@" + in.ingest_id;
    spec->args = {"audio", "--task", tc::ToJson(t)};
    spec->outputs.push_back({tc::AudioObjectName(prefix_), 0});
    spec->inputs.push_back(tc::AudioSourceObjectName(prefix_));
    spec->placement = tc::AudioSourceObjectName(prefix_);
    spec->timeout = options_.task_timeout_base +
                    std::chrono::seconds(static_cast<long>(in.duration_seconds * 2));
    // The first attempt reads the track as ingest stores it, and what it has read is
    // dropped (the feed holds only what the encoder has not taken yet). A retry reads the
    // stored track, once ingest has committed it.
    bool fed = false, fed_while_ingesting = false;
    {
      std::unique_lock lock(feed_mu_);
      fed = audio_fed_ && attempt == 1 && rerun_.count(index) == 0;
      fed_while_ingesting = fed && !feed_ended_;
      while (audio_fed_ && !fed && !feed_ended_) {
        if (Cancelled() || stop_tasks_)
          return Status::Error(ErrorCode::kCancelled, "the job was cancelled");
        feed_cv_.wait_for(lock, std::chrono::milliseconds(200));
      }
      if (feed_failed_) return Status::Error(ErrorCode::kNotRun, "not run: ingest failed");
    }
    if (fed) {
      spec->read_input = [this]() -> Result<std::string> {
        std::unique_lock lock(feed_mu_);
        for (;;) {
          if (feed_failed_) return Status::Error(ErrorCode::kCancelled, "ingest stopped");
          if (!feed_.empty() || feed_ended_) break;
          if (Cancelled() || stop_tasks_)
            return Status::Error(ErrorCode::kCancelled, "the job was cancelled");
          feed_cv_.wait_for(lock, std::chrono::milliseconds(200));
        }
        const size_t n = std::min(feed_.size(), size_t{1} << 20);
        std::string piece = feed_.substr(0, n);
        feed_.erase(0, n);
        return piece;
      };
      // Its input arrives as fast as the upload: no hang deadline before the upload ends.
      if (fed_while_ingesting) spec->timeout = std::chrono::hours(6);
    }
    {
      std::lock_guard lock(audio_mu_);
      audio_seen_.clear();  // an earlier attempt's bytes are not this one's
      audio_seen_at_publish_ = 0;
    }
    // The segments need their audio: publish as it is encoded, about every 2 s of it.
    spec->watch_output = [this](size_t, std::string_view bytes) {
      bool publish = false;
      {
        std::lock_guard lock(audio_mu_);
        audio_seen_.append(bytes);
        if (audio_seen_.size() >= audio_seen_at_publish_ + kAudioPublishBytes) {
          audio_seen_at_publish_ = audio_seen_.size();
          publish = true;
        }
      }
      if (publish) PublishFinished();
    };
    return Status::Ok();
  }

  // A video segment's task: every rung (and the thumbnail for the first), run where its
  // chunk lives.
  void PrepareVideoTask(const TaskInputs& in, int threads, TaskSpec* spec) {
    const int index = static_cast<int>(in.plan.index);
    tc::VideoTask t;
    t.decode_from = in.plan.decode_from;
    t.decode_to = in.plan.decode_to;
    t.start_pts = in.plan.start_pts;
    t.end_pts = in.plan.end_pts;
    t.origin_pts = in.source.origin_pts;
    t.preset = options_.preset;
    t.threads = threads;
    int fd = 3;
    for (const auto& r : in.rungs) {
      t.outputs.push_back({r, fd++});
      spec->outputs.push_back({tc::SegmentObjectName(prefix_, r.name, in.plan.index), 0});
    }
    if (in.plan.index == 0) {
      const auto& tb = in.source.video;
      t.thumbnail_pts =
          in.source.origin_pts + static_cast<int64_t>(kThumbnailSeconds * tb.time_base_den /
                                                      std::max(1, tb.time_base_num));
      t.thumbnail_fd = fd++;
      t.thumbnail_width = in.thumb_w;
      t.thumbnail_height = in.thumb_h;
      spec->outputs.push_back({tc::ThumbnailObjectName(prefix_), kMaxThumbnailBytes});
    }
    spec->id = TaskKey(prefix_, index) + "@" + in.ingest_id;
    spec->args = {"video", "--task", tc::ToJson(t)};
    for (uint32_t c = in.plan.first_chunk; c <= in.plan.last_chunk; ++c)
      spec->inputs.push_back(ChunkObject(c));
    // Task i's outputs are named after chunk i (stitcher.h) and live with it: run it there.
    spec->placement = ChunkObject(in.plan.index);
    spec->timeout = options_.task_timeout_base +
                    std::chrono::seconds(static_cast<long>(options_.task_timeout_per_second *
                                                           std::max(1.0, in.plan.seconds)));
  }

  // Whether the attempt's outcome is a good run: an error says why not, and `*permanent`
  // whether a retry is futile (the input is at fault).
  Status JudgeOutcome(int index, const TaskInputs& in, const TaskSpec& spec,
                      const TaskOutcome& exit, const Result<tc::WorkerReport>& parsed,
                      bool* permanent) {
    const std::string what =
        index == kAudioTask ? std::string("audio") : "segment " + std::to_string(index);
    // A sandbox rule stopped the worker: the same input would meet the same rule again.
    if (sandbox::StopRuleIsInputFault(exit.stopped_by)) {
      if (options_.worker) options_.worker->CountRefusal();
      *permanent = true;
      return Status::Error(
          ErrorCode::kSandboxRefused,
          what + ": the sandbox stopped the worker (" +
              (exit.stopped_detail.empty() ? std::string(sandbox::StopRuleName(exit.stopped_by))
                                           : exit.stopped_detail) +
              ")");
    }
    if (exit.stopped_by == sandbox::StopRule::kCpu)
      return Status::Error(ErrorCode::kWorkerFailed,
                           what + ": the worker used up its CPU time limit");
    if (exit.timed_out)
      return Status::Error(ErrorCode::kWorkerFailed,
                           what + ": the worker hung and was killed after " +
                               std::to_string(spec.timeout.count() / 1000) + " s");
    if (exit.signal != 0)
      return Status::Error(ErrorCode::kWorkerFailed,
                           what + ": the worker died of signal " + std::to_string(exit.signal));
    if (!parsed.ok())
      return Status::Error(ErrorCode::kWorkerFailed, what + ": no report from the worker (exit " +
                                                         std::to_string(exit.exit_code) + ")");
    const tc::WorkerReport& report = *parsed;
    if (!report.ok || exit.exit_code != 0) {
      *permanent = exit.exit_code == 1;
      const ErrorCode code = report.error_code.value_or(ErrorCode::kWorkerFailed);
      return Status::Error(code, UserPhrase(code) + ": " +
                                     (report.error_message.empty() ? what + ": worker failed"
                                                                   : report.error_message));
    }
    if (index != kAudioTask) {
      if (report.frames_output == 0) {
        *permanent = true;
        return Status::Error(ErrorCode::kUndecodable,
                             "undecodable: no frame of " + what + " decodes");
      }
      if (report.rungs.size() != in.rungs.size())
        return Status::Error(ErrorCode::kWorkerFailed, what + ": the report names the wrong rungs");
      for (const auto& r : report.rungs)
        if (r.frames != report.frames_output)
          return Status::Error(ErrorCode::kWorkerFailed,
                               what + ": rung " + r.name + " has " + std::to_string(r.frames) +
                                   " frames, not " + std::to_string(report.frames_output));
      if (in.plan.index == 0 &&
          (exit.output_bytes.size() != spec.outputs.size() || exit.output_bytes.back() == 0))
        return Status::Error(ErrorCode::kWorkerFailed, what + ": no thumbnail");
    }

    return Status::Ok();
  }

  // The result of a good run, with the checksum of each output as the copy that ran reported it.
  Result<TaskResult> MakeResult(int index, const TaskInputs& in, const TaskSpec& spec,
                                const TaskOutcome& exit, const tc::WorkerReport& report,
                                int threads, int attempt) {
    const std::string what =
        index == kAudioTask ? std::string("audio") : "segment " + std::to_string(index);
    TaskResult result;
    result.index = index;
    result.node = exit.node;
    result.attempts = attempt;
    result.frames = report.frames_output;
    result.frames_decoded = report.frames_decoded;
    result.decode_errors = report.decode_errors;
    result.wall_seconds = exit.wall_seconds;
    result.cpu_seconds = exit.cpu_seconds;
    result.peak_rss_kib = exit.peak_rss_kib;
    result.threads = threads;
    result.sandboxed = exit.sandboxed;
    result.input_bytes = exit.input_bytes;
    result.input_bytes_remote = exit.input_bytes_remote;
    result.output_bytes_sent = exit.output_bytes_sent;
    result.backup_copy = exit.backup;
    // What each output holds, as the copy that ran reported it: the stitcher uses an object
    // only if it still holds exactly these bytes.
    if (exit.output_xxh64.size() != spec.outputs.size())
      return Status::Error(ErrorCode::kWorkerFailed,
                           what + ": " + exit.node + " reported no checksum of the task's outputs");
    for (size_t i = 0; i < spec.outputs.size(); ++i)
      result.outputs.push_back(
          {spec.outputs[i].object, exit.output_bytes[i], exit.output_xxh64[i]});
    if (exit.sandboxed) {
      result.spawn_ms = exit.spawn_ms;
      result.layers_missing = exit.layers_missing;
      result.memory_limit_via = exit.memory_limit_via;
    }
    if (index != kAudioTask) {
      for (const auto& r : report.rungs) result.rungs.push_back({r.name, r.frames, r.bytes});
      result.start_seconds = in.plan.start_pts
                                 ? static_cast<double>(*in.plan.start_pts - in.source.origin_pts) *
                                       in.source.video.time_base_num / in.source.video.time_base_den
                                 : 0.0;
      result.seconds = in.plan.seconds;
      result.preroll_packets = in.plan.preroll_packets;
    }
    return result;
  }

  // Keeps a task's result: the task counts as done only once its outputs are durable.
  Status Record(int index, TaskResult result) {
    ZF_RETURN_IF_ERROR(store_.PutMeta(TaskKey(prefix_, index), ToJson(result)));
    std::lock_guard lock(mu_);
    TaskProgress& tp = Track(index);
    tp.node = result.node;
    tp.wall_seconds = result.wall_seconds;
    tp.cpu_seconds = result.cpu_seconds;
    tp.error.clear();
    results_[index] = std::move(result);
    return Status::Ok();
  }

  // Stitches with every output bound to the checksum its task reported. An object holding
  // other bytes (a stale or foreign copy under the task's name) is never published: its task
  // runs again from scratch and the stitch is redone, a few times at most.
  Result<tc::StitchResult> StitchBound(tc::StitchInput in, const fs::path& out_dir) {
    constexpr int kMaxReruns = 3;
    for (int round = 0;; ++round) {
      std::map<std::string, int> owner;
      in.segment_frames.clear();
      for (const auto& t : plan_.tasks)
        in.segment_frames.push_back(results_.at(static_cast<int>(t.index)).frames);
      in.checksums = OutputChecksums(&owner);
      auto stitched = tc::Stitch(store_, in, out_dir, &*publisher_);
      if (stitched.ok() || stitched.status().code() != ErrorCode::kOutputMismatch ||
          round >= kMaxReruns)
        return stitched;
      std::optional<int> index;
      for (const auto& [object, task] : owner)
        if (stitched.status().message().find(object + ": holds") != std::string::npos) index = task;
      if (!index) return stitched;
      std::fprintf(stderr, "zerofarm: %s; running its task again\n",
                   stitched.status().message().c_str());
      ++outputs_rejected_;
      ZF_RETURN_IF_ERROR(store_.DeleteMeta(TaskKey(prefix_, *index)));
      results_.erase(*index);
      rerun_.insert(*index);
      if (options_.slots) options_.slots->Acquire(1, options_.tenant);
      Status s = RunWithRetries(*index, std::max(1, slots_));
      if (options_.slots) options_.slots->Release();
      {
        std::lock_guard lock(mu_);
        TaskProgress& tp = Track(*index);
        tp.state = s.ok() ? storage::TaskState::kDone : storage::TaskState::kFailed;
        if (!s.ok()) tp.error = s.message();
        Notify();
      }
      if (!s.ok()) return s;
    }
  }

  Status Verify(const tc::StitchResult& s) {
    uint64_t expected = 0;
    for (const auto& t : plan_.tasks) expected += results_.at(static_cast<int>(t.index)).frames;
    for (const auto& r : s.renditions) {
      if (r.frames != expected)
        return Status::Error(ErrorCode::kVerifyFailed,
                             "rendition " + r.name + " has " + std::to_string(r.frames) +
                                 " frames, expected " + std::to_string(expected));
      if (r.keyframe_seconds != s.renditions.front().keyframe_seconds)
        return Status::Error(ErrorCode::kVerifyFailed,
                             "rendition " + r.name + " has keyframes at other times");
    }
    return Status::Ok();
  }

  JobReport BuildReport(const tc::StitchResult& s, double ingest_seconds, double total_seconds) {
    JobReport report;
    report.source = plan_;
    report.source.tasks.clear();
    for (const auto& t : plan_.tasks)
      report.chunks.push_back(results_.at(static_cast<int>(t.index)));
    if (auto a = results_.find(kAudioTask); a != results_.end()) report.audio = a->second;
    // How the workers ran: this process's runtime, or what the nodes' task results say.
    if (options_.worker) {
      report.sandboxed = options_.worker->isolation() == Isolation::kSandbox;
      report.worker_sha256 = options_.worker->program_sha256();
    } else {
      report.sandboxed = std::all_of(results_.begin(), results_.end(),
                                     [](const auto& r) { return r.second.sandboxed; });
    }
    for (const auto& c : report.chunks) report.worker_cpu_seconds += c.cpu_seconds;
    if (report.audio) report.worker_cpu_seconds += report.audio->cpu_seconds;
    // What the tasks moved between machines (zero on one machine).
    for (const auto& [index, r] : results_) {
      report.task_input_bytes += r.input_bytes;
      report.task_input_bytes_remote += r.input_bytes_remote;
      report.task_output_bytes_sent += r.output_bytes_sent;
    }
    for (const auto& r : s.renditions) {
      const auto& rung = *std::find_if(plan_.rungs.begin(), plan_.rungs.end(),
                                       [&](const tc::RungSettings& x) { return x.name == r.name; });
      report.renditions.push_back({r, rung.level, rung.maxrate_kbps});
    }
    report.audio_seconds = s.audio_seconds;
    // Every task finished by an earlier run: segments and the audio track.
    report.tasks_resumed = progress_state_.tasks_resumed + (audio_resumed_ ? 1 : 0);
    report.outputs_rejected = outputs_rejected_;
    report.ingest_seconds = ingest_seconds;
    report.total_seconds = total_seconds;
    return report;
  }

  storage::Store& store_;
  const std::string prefix_;
  const JobOptions& options_;
  const ProgressFn& progress_;
  const std::string node_;
  const std::chrono::steady_clock::time_point t0_;
  const std::shared_ptr<std::atomic<bool>> cancel_;
  std::shared_ptr<TaskExecutor> executor_;
  int slots_ = 1;

  std::mutex mu_;
  std::condition_variable cv_;
  Plan plan_;
  bool ingest_done_ = false;
  std::vector<QueuedTask> queue_;
  bool head_ended_ = false;  // segment 0 has ended, or an earlier run finished it
  int outstanding_ = 0;
  int running_ = 0;
  std::map<int, TaskResult> results_;
  std::set<int> rerun_;       // tasks whose earlier outputs were rejected: never reuse a run
  int outputs_rejected_ = 0;  // task outputs that held other bytes than reported
  Status failure_;
  JobProgress progress_state_;
  bool audio_resumed_ = false;  // the audio track was finished by an earlier run
  std::map<int, TaskProgress> task_progress_;
  std::vector<std::thread> threads_;
  std::thread audio_thread_;
  int live_threads_ = 0;  // task threads (the pool's and the audio's) not yet ended
  // Watched by the running tasks' executors: set when the job fails, or once the job is
  // cancelled from outside (see CarryCancel).
  std::atomic<bool> stop_tasks_{false};
  // Publication while the job runs: one Advance at a time, never under mu_.
  std::mutex publish_mu_;
  std::optional<tc::Publisher> publisher_;
  bool publish_paused_ = false;  // an output was rejected: the final stitch publishes the rest
  // The audio track as its running task writes it (locked after mu_ when both are held).
  std::mutex audio_mu_;
  std::string audio_seen_;
  size_t audio_seen_at_publish_ = 0;
  // The audio source as ingest stores it (with an executor that streams a task's input): the
  // audio task reads it while the upload still arrives.
  bool feed_audio_ = false;
  std::mutex feed_mu_;
  std::condition_variable feed_cv_;
  std::string feed_;
  bool audio_fed_ = false;      // set on the ingest thread before the first OnAudio with packets
  bool audio_started_ = false;  // the audio task was enqueued
  bool feed_ended_ = false, feed_failed_ = false;
};

}  // namespace

Result<JobReport> RunTranscodeJob(storage::Store& store, transcode::ByteSource& source,
                                  const std::string& job_id, const JobOptions& options,
                                  const fs::path& out_dir, const ProgressFn& progress) {
  if (!options.worker && !options.executor)
    return Status::Error(ErrorCode::kInvalidArgument, "no worker program configured");
  Job job(store, job_id, options, progress);
  return job.Run(source, out_dir);
}

std::string Hostname() {
  char buf[256] = {};
  if (gethostname(buf, sizeof(buf) - 1) != 0) return "local";
  return buf;
}

}  // namespace zerofarm::scheduler

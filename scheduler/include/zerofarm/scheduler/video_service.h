// VideoService: the job manager behind `zerofarm serve`. It owns the videos of every tenant:
// their records (video_record.h; meta "videos/<id>" in the store), their uploads (a file
// DATA/uploads/<id> growing while bytes arrive), one job thread per unfinished video running
// RunTranscodeJob over an UploadSource that reads the upload as it grows (so the first chunks are
// transcoding before the upload ends), and the published renditions under DATA/videos/<id>/.
// Restart: Open() resumes every unfinished video (processing -> the job reruns and skips
// finished tasks; a resumable upload -> waits for more bytes at its last synced offset, with no
// thread and no open file until they come; an interrupted one-shot upload -> failed
// "upload_incomplete"). Upload files are open only while bytes are written or read.
// Thread safety: every method is safe to call from any thread; calls that touch the disk block,
// so the HTTP layer calls them off its I/O threads. Destroying the service stops every job
// (state is kept for the next Open).
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "zerofarm/base/status.h"
#include "zerofarm/scheduler/exec_job.h"
#include "zerofarm/scheduler/transcode_job.h"
#include "zerofarm/scheduler/video_record.h"
#include "zerofarm/storage/farm_key.h"
#include "zerofarm/storage/live_ring.h"
#include "zerofarm/storage/store.h"

namespace zerofarm::scheduler {

struct VideoServiceOptions {
  std::filesystem::path data_dir;               // store in data_dir/store, uploads/, videos/
  std::shared_ptr<const WorkerRuntime> worker;  // required without `ring` (nodes run workers)
  int task_slots = 0;  // tasks (worker processes) at once for all jobs; 0 = cores
  double chunk_seconds = 4.0;
  // The first segments are shorter (0.5 s, 0.5 s, 1 s, 2 s, each at most chunk_seconds): the
  // head of a video is transcoded and published within a couple of seconds. Without a ring
  // only (a head shorter than a keyframe interval would read the chunk before it, which in a
  // farm may be on another node).
  std::vector<double> head_seconds{0.5, 0.5, 1.0, 2.0};
  std::string node_name;  // "" = the host name
  // Cluster mode (zerofarm proxy): video bytes live on the ring's storage nodes and every task
  // runs on a node holding its chunk (cluster_executor.h); the service keeps only its records,
  // job state and upload files under data_dir (data_dir/store), and the published renditions.
  // Without a ring: one process, embedded store, local workers (zerofarm serve). The service
  // follows the live ring's swaps (each read, write and task placement uses one snapshot).
  std::shared_ptr<storage::LiveRing> ring;
  std::optional<storage::FarmKey> farm_key;  // cluster mode: CURVE on every node connection
  // Cluster mode: a task running this long, and 3x its job's median, gets a backup copy.
  std::chrono::milliseconds backup_after{15000};
  // Unfinished resumable (tus) uploads hold no descriptor and no thread until their bytes flow;
  // a few (32) transcode while their bytes arrive, the others once they are complete.
  // At most `max_open_uploads_per_tenant` per tenant ("too_many_uploads") and `max_open_uploads`
  // in all ("unavailable"); one that received no byte for `upload_expiry` is removed with its
  // bytes (the tus expiration extension).
  size_t max_open_uploads_per_tenant = 100;
  size_t max_open_uploads = 10000;
  std::chrono::seconds upload_expiry{24 * 3600};
  // Uploads receiving bytes at once (each holds up to two descriptors: its writer and its
  // ingest's reader); past it a new upload body is refused with "unavailable" (retry later)
  // instead of the process running out of descriptors. 0 = a quarter of RLIMIT_NOFILE.
  size_t max_upload_descriptors = 0;
  // While a resumable upload's bytes stream in, they are synced and recorded as received at
  // least every `sync_every_bytes` bytes or `sync_every` (what a crash can take of a PATCH).
  uint64_t sync_every_bytes = uint64_t{8} << 20;
  std::chrono::milliseconds sync_every{1000};
};

struct NewVideo {
  std::string tenant;
  std::string filename;
  std::vector<int> ladder{1080, 720, 480, 360};
  std::string preset = "veryfast";
  std::optional<uint64_t> length;  // total bytes when known in advance
  bool resumable = false;          // a tus upload: survives restarts and dropped connections
  std::string playback_policy = "signed";       // "public" or "signed" (see api/playback.h)
  std::map<std::string, std::string> metadata;  // free-form, returned in the record
  std::string passthrough;                      // free-form, returned in the record
};

// A change to a video's record (PATCH); unset fields stay as they are.
struct VideoUpdate {
  std::optional<std::string> playback_policy;
  std::optional<std::map<std::string, std::string>> metadata;
  std::optional<std::string> passthrough;
};

// What playback of a video needs to know, whoever asks.
struct PlaybackTarget {
  std::string tenant;
  std::string policy;  // "public" | "signed"
  std::string status;
  std::filesystem::path dir;  // the published renditions; empty unless status is "ready"
};

// A page of a tenant's videos, newest first.
struct ListOptions {
  size_t limit = 100;  // 1..1000
  std::string cursor;  // "" = from the newest; else a next_cursor of an earlier page
};

// A change of a video's state that integrators hear of (webhooks).
struct VideoEvent {
  std::string type;  // "video.ready", "video.failed", "video.deleted"
  std::string tenant;
  std::string video_id;
  Video video;  // the video at the change (as Get gives it; events leave out its chunks)
};
// Called on the thread that made the change, possibly with the service's lock held: it must
// return quickly (queue the event) and must not call back into the service.
using VideoEventListener = std::function<void(const VideoEvent&)>;

// Counters for /metrics (a consistent copy).
struct ServiceMetrics {
  uint64_t uploads_started = 0;
  uint64_t uploads_completed = 0;
  uint64_t upload_bytes = 0;
  std::map<std::string, uint64_t> tasks_by_state;  // of videos still in memory
  std::map<std::string, uint64_t> failures_by_reason;
  std::map<std::string, uint64_t> videos_by_status;
  std::vector<double> transcode_buckets;          // upper bounds, seconds
  std::vector<uint64_t> transcode_bucket_counts;  // cumulative, same length
  uint64_t transcode_count = 0;
  double transcode_sum = 0;
  uint64_t videos_in_memory = 0;  // uploading, processing, or finished and not yet let go of
  int queue_depth = 0;            // tasks waiting for a worker slot
  int workers_busy = 0;
  uint64_t sandbox_refusals = 0;
  // Cluster mode only.
  struct Node {
    std::string endpoint;
    bool alive = false;
    uint32_t task_slots = 0;
    uint32_t tasks_running = 0;
    bool disk_full = false;  // below its free-space reserve: takes no writes
    bool same_ring = false;  // its last heartbeat carried this proxy's ring hash
  };
  std::vector<Node> nodes;
  uint64_t ring_generation = 0;         // 1 at start, +1 per accepted reload of the ring file
  bool writes_possible = true;          // enough live nodes for a write quorum (ClusterClient)
  uint64_t cluster_bytes_sent = 0;      // by this process to the nodes (ingest, task control)
  uint64_t cluster_bytes_received = 0;  // from the nodes (stitching, replies)
  uint64_t tasks_lost = 0;              // moved off a dead or restarted node
  uint64_t backup_copies = 0;           // straggler backups started
  uint64_t backup_wins = 0;
  uint64_t remote_placements = 0;  // tasks run away from their data (no holder alive)
};

class VideoService {
 public:
  static Result<std::unique_ptr<VideoService>> Open(const VideoServiceOptions& options);
  virtual ~VideoService() = default;

  // The store the service uses (tokens and tests read it; same thread-safety as Store).
  virtual storage::Store& store() = 0;

  // Creates a video in state "uploading" and starts its job (a resumable one: at its first
  // bytes). Returns the video. Errors: "too_many_uploads", "unavailable" (see options).
  virtual Result<Video> Create(const NewVideo& video) = 0;
  // Appends upload bytes (one writer at a time per video). Error "conflict" when the bytes
  // would pass the declared length, "not_found" when the video is gone, "unavailable" when
  // the server holds as many upload files open as it may (retry later).
  virtual Status Append(const std::string& id, std::span<const std::byte> bytes) = 0;
  // Syncs the bytes appended so far and records them as received; returns the synced offset.
  // `final` ends the upload (a one-shot upload, or a resumable one that reached its length).
  virtual Result<uint64_t> Commit(const std::string& id, bool final) = 0;
  // A one-shot upload that will never finish: the video fails with `code`.
  virtual void AbortUpload(const std::string& id, ErrorCode code, const std::string& message) = 0;

  // Waits, at most `limit`, until the video's source has been probed or its job has failed, so
  // that the answer to a finished one-shot upload already says "failed" for a body that is not
  // media. Returns at once for a video with no running job.
  virtual void AwaitProbe(const std::string& id, std::chrono::milliseconds limit) = 0;

  // The video (video_json.h encodes it for the API); "not_found" for another tenant's id.
  virtual Result<Video> Get(const std::string& tenant, const std::string& id) = 0;
  // A page of the tenant's videos, newest first. Error "invalid_argument" for a cursor this
  // service did not make.
  virtual Result<VideoPage> List(const std::string& tenant, const ListOptions& page) = 0;
  // Applies `update` and returns the video; "not_found" for another tenant's id.
  virtual Result<Video> Update(const std::string& tenant, const std::string& id,
                               const VideoUpdate& update) = 0;
  // The tenant, policy and folder of any video (playback without a token); "not_found".
  virtual Result<PlaybackTarget> Playback(const std::string& id) = 0;
  // Cancels its job and removes every byte of it (store objects and meta, files).
  virtual Status Delete(const std::string& tenant, const std::string& id) = 0;
  // The published renditions' folder of a ready video of this tenant.
  virtual Result<std::filesystem::path> OutputDir(const std::string& tenant,
                                                  const std::string& id) = 0;

  // Resumable uploads: the video behind an upload id, with its synced offset and length.
  struct UploadState {
    std::string video_id;
    std::string tenant;
    uint64_t offset = 0;
    std::optional<uint64_t> length;
    bool ended = false;
    std::optional<int64_t> expires;  // unfinished: removed at this time (Unix seconds)
  };
  virtual Result<UploadState> FindUpload(const std::string& upload_id) = 0;

  virtual ServiceMetrics Metrics() = 0;

  // Runs an exec job (exec_job.h) on the executor the video tasks use (this machine's sandbox,
  // or the farm's nodes), sharing their task slots (task_slots.h). Blocks until it ends.
  virtual Status RunExec(const ExecJobSpec& spec, const std::atomic<bool>& cancel,
                         ExecProgress* progress) = 0;

  // Sets the one listener of video events (replacing any earlier one; null removes it).
  virtual void SetEventListener(VideoEventListener listener) = 0;
};

// Ids: "v_" + 16 hex digits (videos), "u_" + 24 hex digits (uploads). Validators for routes.
bool IsVideoId(std::string_view s);
bool IsUploadId(std::string_view s);

}  // namespace zerofarm::scheduler

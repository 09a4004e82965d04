// Task specs and outcomes as JSON, running a task here, the local executor and the node's
// task handler (task_executor.h).
#include "zerofarm/scheduler/task_executor.h"

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <nlohmann/json.hpp>

#include "program_cache.h"
#include "worker_process.h"
#include "zerofarm/storage/content_hash.h"

namespace zerofarm::scheduler {
namespace {

using nlohmann::json;
constexpr size_t kInputPiece = 1 << 20;

Status Cancelled() { return Status::Error(ErrorCode::kCancelled, "the job was cancelled"); }

}  // namespace

std::string ToJson(const TaskSpec& s) {
  json outputs = json::array();
  for (const auto& o : s.outputs)
    outputs.push_back({{"object", o.object}, {"max_bytes", o.max_bytes}});
  json j{{"id", s.id},           {"job", s.job},
         {"args", s.args},       {"inputs", s.inputs},
         {"outputs", outputs},   {"placement", s.placement},
         {"threads", s.threads}, {"timeout_ms", s.timeout.count()},
         {"rerun", s.rerun},     {"nice", s.nice}};
  if (!s.program.empty()) {
    j["program"] = {{"object", s.program}, {"sha256", s.program_sha256}, {"name", s.program_name}};
    j["ok_exit_codes"] = s.ok_exit_codes;
    j["memory_bytes"] = s.memory_bytes;
    j["cpu_seconds"] = s.cpu_seconds;
  }
  if (s.stream_input || s.read_input) j["stream_input"] = true;
  if (s.stream_output || s.watch_output) j["stream_output"] = true;
  if (s.input_offset > 0 || s.input_length > 0 || s.input_lines)
    j["input_range"] = {
        {"offset", s.input_offset}, {"length", s.input_length}, {"lines", s.input_lines}};
  return j.dump();
}

Result<TaskSpec> TaskSpecFromJson(std::string_view text) {
  try {
    json j = json::parse(text);
    TaskSpec s;
    s.id = j.at("id");
    s.job = j.value("job", "");
    s.args = j.at("args").get<std::vector<std::string>>();
    s.inputs = j.at("inputs").get<std::vector<std::string>>();
    for (const auto& o : j.at("outputs"))
      s.outputs.push_back({o.at("object").get<std::string>(), o.value("max_bytes", uint64_t{0})});
    s.placement = j.value("placement", "");
    s.threads = j.value("threads", 1);
    s.timeout = std::chrono::milliseconds(j.at("timeout_ms").get<int64_t>());
    s.rerun = j.value("rerun", false);
    s.nice = std::clamp(j.value("nice", 0), 0, 19);
    s.stream_input = j.value("stream_input", false);
    s.stream_output = j.value("stream_output", false);
    if (j.contains("program")) {
      const json& p = j.at("program");
      s.program = p.at("object");
      s.program_sha256 = p.at("sha256");
      s.program_name = p.value("name", "");
      s.ok_exit_codes = j.value("ok_exit_codes", std::vector<int>{});
      s.memory_bytes = j.value("memory_bytes", uint64_t{0});
      s.cpu_seconds = j.value("cpu_seconds", uint64_t{0});
    }
    if (j.contains("input_range")) {
      const json& r = j.at("input_range");
      s.input_offset = r.at("offset");
      s.input_length = r.at("length");
      s.input_lines = r.value("lines", false);
    }
    return s;
  } catch (const std::exception& e) {
    return Status::Error(ErrorCode::kInvalidArgument, std::string("bad task spec: ") + e.what());
  }
}

std::string ToJson(const TaskOutcome& o) {
  json hashes = json::array();
  for (uint64_t h : o.output_xxh64) hashes.push_back(storage::ContentHashHex(h));
  return json{{"exit_code", o.exit_code},
              {"signal", o.signal},
              {"timed_out", o.timed_out},
              {"report", o.report},
              {"stderr_tail", o.stderr_tail},
              {"wall_seconds", o.wall_seconds},
              {"cpu_seconds", o.cpu_seconds},
              {"peak_rss_kib", o.peak_rss_kib},
              {"stopped_by", sandbox::StopRuleName(o.stopped_by)},
              {"stopped_detail", o.stopped_detail},
              {"spawn_ms", o.spawn_ms},
              {"sandboxed", o.sandboxed},
              {"layers_missing", o.layers_missing},
              {"memory_limit_via", o.memory_limit_via},
              {"node", o.node},
              {"output_bytes", o.output_bytes},
              {"output_xxh64", hashes},
              {"input_bytes", o.input_bytes},
              {"input_bytes_remote", o.input_bytes_remote},
              {"output_bytes_sent", o.output_bytes_sent},
              {"backup", o.backup}}
      .dump();
}

Result<TaskOutcome> TaskOutcomeFromJson(std::string_view text) {
  try {
    json j = json::parse(text);
    TaskOutcome o;
    o.exit_code = j.at("exit_code");
    o.signal = j.at("signal");
    o.timed_out = j.at("timed_out");
    o.report = j.at("report");
    o.stderr_tail = j.value("stderr_tail", "");
    o.wall_seconds = j.at("wall_seconds");
    o.cpu_seconds = j.at("cpu_seconds");
    o.peak_rss_kib = j.value("peak_rss_kib", 0L);
    const auto rule = sandbox::ParseStopRule(j.value("stopped_by", ""));
    if (!rule)
      return Status::Error(ErrorCode::kBadOutcome, "a task outcome names an unknown stop rule");
    o.stopped_by = *rule;
    o.stopped_detail = j.value("stopped_detail", "");
    o.spawn_ms = j.value("spawn_ms", 0.0);
    o.sandboxed = j.at("sandboxed");
    o.layers_missing = j.value("layers_missing", std::vector<std::string>{});
    o.memory_limit_via = j.value("memory_limit_via", "");
    o.node = j.value("node", "");
    o.output_bytes = j.value("output_bytes", std::vector<uint64_t>{});
    for (const auto& h : j.value("output_xxh64", json::array())) {
      auto v = storage::ParseContentHashHex(h.get<std::string>());
      if (!v)
        return Status::Error(ErrorCode::kInvalidArgument, "bad task outcome: bad output checksum");
      o.output_xxh64.push_back(*v);
    }
    o.input_bytes = j.value("input_bytes", uint64_t{0});
    o.input_bytes_remote = j.value("input_bytes_remote", uint64_t{0});
    o.output_bytes_sent = j.value("output_bytes_sent", uint64_t{0});
    o.backup = j.value("backup", false);
    return o;
  } catch (const std::exception& e) {
    return Status::Error(ErrorCode::kInvalidArgument, std::string("bad task outcome: ") + e.what());
  }
}

namespace {

// Where a task's outputs go while its worker runs: a writer and a running hash per output.
struct OutputSinks {
  std::vector<std::unique_ptr<storage::ObjectWriter>> writers;
  std::vector<storage::ContentHash> hashes;
};

// Creates every output object of `spec`, in order; the first failure ends it.
Result<OutputSinks> CreateOutputs(const TaskSpec& spec, storage::Store& store) {
  OutputSinks sinks;
  for (const auto& o : spec.outputs) {
    auto w = store.CreateObject(o.object);
    if (!w.ok()) return w.status();
    sinks.writers.push_back(std::move(*w));
  }
  sinks.hashes.resize(spec.outputs.size());
  return sinks;
}

// The task's input for its worker: spec.read_input's pieces when set, otherwise the input
// objects one after the other, one piece at a time; the bytes are counted in the outcome.
class InputFeed {
 public:
  InputFeed(const TaskSpec& spec, storage::Store& store, const HereOptions& options,
            const std::atomic<bool>& cancel, TaskOutcome* outcome)
      : spec_(spec), store_(store), options_(options), cancel_(cancel), outcome_(outcome) {}

  // The next piece; empty at the end of the last input.
  Result<std::string> Next() {
    if (cancel_.load()) return Cancelled();
    if (spec_.read_input) {
      auto piece = spec_.read_input();
      if (piece.ok()) outcome_->input_bytes += piece->size();
      return piece;
    }
    if (Ranged()) return NextOfRange();
    for (;;) {
      if (!reader_) {
        if (input_index_ >= spec_.inputs.size()) return std::string();
        ZF_RETURN_IF_ERROR(OpenNextInput());
      }
      std::string piece(kInputPiece, '\0');
      auto n = reader_->Read(std::as_writable_bytes(std::span(piece.data(), piece.size())));
      if (!n.ok()) return n.status();
      if (*n == 0) {
        reader_.reset();
        continue;
      }
      piece.resize(*n);
      outcome_->input_bytes += *n;
      if (input_remote_) outcome_->input_bytes_remote += *n;
      return piece;
    }
  }

 private:
  Status OpenNextInput() {
    const std::string& name = spec_.inputs[input_index_++];
    auto r = store_.OpenObject(name);
    if (!r.ok()) return r.status().WithContext("input " + name);
    reader_ = std::move(*r);
    input_remote_ = options_.input_is_remote && options_.input_is_remote(name);
    return Status::Ok();
  }

  bool Ranged() const {
    return spec_.input_offset > 0 || spec_.input_length > 0 || spec_.input_lines;
  }

  // Reads up to `n` bytes at the reader's position, counting them; empty at the end.
  Result<std::string> ReadCounted(size_t n) {
    std::string piece(n, '\0');
    auto got = reader_->Read(std::as_writable_bytes(std::span(piece.data(), piece.size())));
    if (!got.ok()) return got.status();
    piece.resize(*got);
    outcome_->input_bytes += *got;
    if (input_remote_) outcome_->input_bytes_remote += *got;
    return piece;
  }

  // Where a text part's first line starts: `offset` itself when a line ends just before it,
  // else just after the first newline at or past it (the end of the object when none).
  Result<uint64_t> FirstLineStart(uint64_t offset) {
    if (offset == 0) return offset;
    ZF_RETURN_IF_ERROR(reader_->Seek(offset - 1));
    auto before = ReadCounted(1);
    if (!before.ok()) return before.status();
    if (before->empty() || (*before)[0] == '\n') return offset;
    uint64_t pos = offset;
    for (;;) {
      if (cancel_.load()) return Cancelled();
      auto piece = ReadCounted(64 << 10);
      if (!piece.ok()) return piece.status();
      if (piece->empty()) return pos;
      if (size_t nl = piece->find('\n'); nl != std::string::npos) return pos + nl + 1;
      pos += piece->size();
    }
  }

  // The ranged input (TaskSpec::input_offset and friends), one piece at a time.
  Result<std::string> NextOfRange() {
    if (!reader_) {
      if (range_done_) return std::string();
      if (spec_.inputs.size() != 1)
        return Status::Error(ErrorCode::kInvalidArgument, "a ranged input needs exactly one input");
      ZF_RETURN_IF_ERROR(OpenNextInput());
      const uint64_t size = reader_->size();
      range_end_ =
          spec_.input_length > 0 ? std::min(size, spec_.input_offset + spec_.input_length) : size;
      uint64_t start = std::min(spec_.input_offset, size);
      if (spec_.input_lines) {
        auto first = FirstLineStart(start);
        if (!first.ok()) return first.status();
        start = *first;
      }
      if (start >= range_end_) return EndOfRange();
      ZF_RETURN_IF_ERROR(reader_->Seek(start));
      range_pos_ = start;
    }
    if (range_pos_ < range_end_) {
      auto piece = ReadCounted(std::min<uint64_t>(kInputPiece, range_end_ - range_pos_));
      if (!piece.ok()) return piece.status();
      if (piece->empty()) return EndOfRange();
      range_pos_ += piece->size();
      last_byte_ = piece->back();
      return piece;
    }
    // Past the part's end: finish the line it began, if it did not end with it.
    if (!spec_.input_lines || last_byte_ == '\n') return EndOfRange();
    auto piece = ReadCounted(64 << 10);
    if (!piece.ok()) return piece.status();
    if (piece->empty()) return EndOfRange();
    if (size_t nl = piece->find('\n'); nl != std::string::npos) {
      piece->resize(nl + 1);
      last_byte_ = '\n';
    }
    return piece;
  }

  Result<std::string> EndOfRange() {
    reader_.reset();
    range_done_ = true;
    return std::string();
  }

  const TaskSpec& spec_;
  storage::Store& store_;
  const HereOptions& options_;
  const std::atomic<bool>& cancel_;
  TaskOutcome* outcome_;
  uint64_t range_end_ = 0;
  uint64_t range_pos_ = 0;
  char last_byte_ = '\n';
  bool range_done_ = false;
  size_t input_index_ = 0;
  bool input_remote_ = false;
  std::unique_ptr<storage::ObjectReader> reader_;
};

// Takes `data` the worker wrote on output `channel`: counted against the output's limit,
// hashed, appended to its object and shown to spec.watch_output.
Status AcceptOutput(const TaskSpec& spec, const std::atomic<bool>& cancel, size_t channel,
                    std::string_view data, OutputSinks* sinks, TaskOutcome* outcome) {
  if (cancel.load()) return Cancelled();
  if (channel >= sinks->writers.size())
    return Status::Error(ErrorCode::kWorkerFailed, "unknown output channel");
  outcome->output_bytes[channel] += data.size();
  const uint64_t limit = spec.outputs[channel].max_bytes;
  if (limit > 0 && outcome->output_bytes[channel] > limit)
    return Status::Error(ErrorCode::kWorkerFailed, "output " + spec.outputs[channel].object +
                                                       " is larger than " + std::to_string(limit) +
                                                       " bytes");
  sinks->hashes[channel].Update(data);
  ZF_RETURN_IF_ERROR(sinks->writers[channel]->Append(data));
  if (spec.watch_output) spec.watch_output(channel, data);
  return Status::Ok();
}

// The worker's exit, as the task's outcome tells it.
void RecordExit(WorkerExit exit, TaskOutcome* outcome) {
  outcome->exit_code = exit.exit_code;
  outcome->signal = exit.signal;
  outcome->timed_out = exit.timed_out;
  outcome->report = std::move(exit.report);
  outcome->stderr_tail = std::move(exit.stderr_tail);
  outcome->wall_seconds = exit.wall_seconds;
  outcome->cpu_seconds = exit.cpu_seconds;
  outcome->peak_rss_kib = exit.peak_rss_kib;
  outcome->stopped_by = exit.stopped_by;
  outcome->stopped_detail = std::move(exit.stopped_detail);
  outcome->spawn_ms = exit.spawn_ms;
  outcome->sandboxed = exit.sandboxed;
  outcome->layers_missing = std::move(exit.layers_missing);
  outcome->memory_limit_via = std::move(exit.memory_limit_via);
}

// Outputs count only from a worker that finished cleanly (an exit code the spec accepts, 0 by
// default); otherwise they are abandoned.
bool FinishedCleanly(const TaskSpec& spec, const TaskOutcome& outcome) {
  if (outcome.signal != 0 || outcome.stopped_by != sandbox::StopRule::kNone || outcome.timed_out ||
      outcome.exit_code < 0)
    return false;
  if (spec.ok_exit_codes.empty()) return outcome.exit_code == 0;
  return std::find(spec.ok_exit_codes.begin(), spec.ok_exit_codes.end(), outcome.exit_code) !=
         spec.ok_exit_codes.end();
}

// Commits every output in order with its hash and the bytes its copies will send; stops at
// a cancel (e.g. a backup copy that lost the race) or a failing commit.
Status CommitOutputs(const TaskSpec& spec, const HereOptions& options,
                     const std::atomic<bool>& cancel, OutputSinks* sinks, TaskOutcome* outcome) {
  for (size_t i = 0; i < sinks->writers.size(); ++i) {
    if (cancel.load()) return Cancelled();
    ZF_RETURN_IF_ERROR(sinks->writers[i]->Commit());
    outcome->output_xxh64.push_back(sinks->hashes[i].value());
    if (options.output_copies_sent)
      outcome->output_bytes_sent +=
          outcome->output_bytes[i] * options.output_copies_sent(spec.outputs[i].object);
  }
  return Status::Ok();
}

}  // namespace

Result<TaskOutcome> RunTaskHere(const TaskSpec& spec, storage::Store& store,
                                const WorkerRuntime& worker, const HereOptions& options,
                                const std::atomic<bool>& cancel) {
  std::shared_ptr<const UserProgram> program;
  if (!spec.program.empty()) {
    auto loaded = worker.LoadUserProgram(store, spec.program, spec.program_sha256);
    if (!loaded.ok()) return loaded.status();
    program = std::move(*loaded);
  }
  auto sinks = CreateOutputs(spec, store);
  if (!sinks.ok()) return sinks.status();
  TaskOutcome outcome;
  outcome.node = options.node_name;
  outcome.output_bytes.assign(spec.outputs.size(), 0);

  WorkerRun run;
  run.args = spec.args;
  run.outputs = spec.outputs.size();
  run.timeout = spec.timeout;
  run.threads = spec.threads;
  run.nice = spec.nice;
  run.cancel = &cancel;
  if (program) {
    run.user.program = &program->program;
    run.user.verdict = &program->verdict;
    run.user.argv0 = spec.program_name;
    run.user.memory_bytes = spec.memory_bytes;
    run.user.cpu_seconds = spec.cpu_seconds;
    run.user.output_max_bytes = spec.outputs.empty() ? 0 : spec.outputs[0].max_bytes;
  }
  InputFeed input(spec, store, options, cancel, &outcome);
  run.next_input = [&input] { return input.Next(); };
  run.on_output = [&](size_t channel, std::string_view data) {
    return AcceptOutput(spec, cancel, channel, data, &*sinks, &outcome);
  };

  auto exit = RunWorker(worker, run);
  if (!exit.ok()) return cancel.load() ? Cancelled() : exit.status();
  RecordExit(std::move(*exit), &outcome);
  if (cancel.load()) return Cancelled();
  if (FinishedCleanly(spec, outcome))
    ZF_RETURN_IF_ERROR(CommitOutputs(spec, options, cancel, &*sinks, &outcome));
  return outcome;
}

namespace {

class LocalExecutor final : public TaskExecutor {
 public:
  LocalExecutor(storage::Store& store, std::shared_ptr<const WorkerRuntime> worker,
                std::string node_name, int slots)
      : store_(store), worker_(std::move(worker)), slots_(slots < 1 ? 1 : slots) {
    here_.node_name = std::move(node_name);
  }

  Result<TaskOutcome> Run(const TaskSpec& spec, const std::atomic<bool>& cancel,
                          const std::function<void(const std::string&)>& placed) override {
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return running_ < slots_; });
      ++running_;
    }
    if (placed) placed(here_.node_name);
    auto outcome = RunTaskHere(spec, store_, *worker_, here_, cancel);
    std::lock_guard lock(mu_);
    --running_;
    cv_.notify_one();
    return outcome;
  }
  int slots() const override { return slots_; }
  bool streams() const override { return true; }

 private:
  storage::Store& store_;
  std::shared_ptr<const WorkerRuntime> worker_;
  HereOptions here_;
  const int slots_;
  std::mutex mu_;
  std::condition_variable cv_;
  int running_ = 0;
};

}  // namespace

std::unique_ptr<TaskExecutor> MakeLocalExecutor(storage::Store& store,
                                                std::shared_ptr<const WorkerRuntime> worker,
                                                std::string node_name, int slots) {
  return std::make_unique<LocalExecutor>(store, std::move(worker), std::move(node_name), slots);
}

storage::TaskHandler MakeNodeTaskHandler(std::shared_ptr<const WorkerRuntime> worker,
                                         std::shared_ptr<storage::LiveRing> ring,
                                         std::string self) {
  HereOptions here;
  here.node_name = self;
  auto holds = [ring, self](const std::string& object) {
    const auto now = ring->Get();
    const auto& nodes = now->NodesOf(now->PartitionOf(object));
    return std::any_of(nodes.begin(), nodes.end(),
                       [&](uint32_t n) { return now->nodes()[n].endpoint == self; });
  };
  here.input_is_remote = [holds](const std::string& object) { return !holds(object); };
  here.output_copies_sent = [ring, holds](const std::string& object) -> uint64_t {
    const auto replicas = static_cast<uint64_t>(ring->Get()->replicas());
    return holds(object) ? replicas - 1 : replicas;
  };
  return [worker = std::move(worker), here = std::move(here)](
             std::string_view spec_json, storage::Store& objects, const std::atomic<bool>& cancel,
             storage::TaskStream& stream) -> Result<std::string> {
    auto spec = TaskSpecFromJson(spec_json);
    if (!spec.ok()) return spec.status();
    // A streamed task: its input comes from its caller as it runs, and its caller reads its
    // output 0 as it is written.
    if (spec->stream_input)
      spec->read_input = [&stream, &cancel] { return stream.ReadInput(cancel); };
    if (spec->stream_output)
      spec->watch_output = [&stream](size_t output, std::string_view bytes) {
        if (output == 0) stream.WriteOutput(bytes);
      };
    auto outcome = RunTaskHere(*spec, objects, *worker, here, cancel);
    if (!outcome.ok()) return outcome.status();
    return ToJson(*outcome);
  };
}

}  // namespace zerofarm::scheduler

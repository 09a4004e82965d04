// Where a task is in its life, one vocabulary for the scheduler's farm view and the nodes' task
// table (and the node protocol's "task_state"). Pure functions; thread-safe.
#pragma once

#include <optional>
#include <string_view>

namespace zerofarm::storage {

enum class TaskState {
  kQueued,     // waiting for a slot
  kRunning,    // a copy runs
  kDone,       // finished with a result
  kFailed,     // finished with an error
  kCancelled,  // never ran to an end: its job failed first or was cancelled
};

// "queued", "running", "done", "failed", "cancelled": the names on the wire and in the API.
std::string_view TaskStateName(TaskState state);
// The state of a name; nullopt for any other text.
std::optional<TaskState> ParseTaskState(std::string_view name);

}  // namespace zerofarm::storage

// TaskState names (task_state.h).
#include "zerofarm/storage/task_state.h"

#include <array>
#include <utility>

namespace zerofarm::storage {
namespace {

constexpr std::array<std::pair<TaskState, std::string_view>, 5> kNames = {{
    {TaskState::kQueued, "queued"},
    {TaskState::kRunning, "running"},
    {TaskState::kDone, "done"},
    {TaskState::kFailed, "failed"},
    {TaskState::kCancelled, "cancelled"},
}};

}  // namespace

std::string_view TaskStateName(TaskState state) {
  for (const auto& [s, name] : kNames)
    if (s == state) return name;
  return "unknown";
}

std::optional<TaskState> ParseTaskState(std::string_view name) {
  for (const auto& [s, n] : kNames)
    if (n == name) return s;
  return std::nullopt;
}

}  // namespace zerofarm::storage

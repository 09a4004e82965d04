// TaskState names (task_state.h).
#include "zerofarm/storage/task_state.h"

#include <array>
#include <utility>

#include "zerofarm/base/enum_names.h"

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

std::string_view TaskStateName(TaskState state) { return NameIn(kNames, state, "unknown"); }

std::optional<TaskState> ParseTaskState(std::string_view name) {
  return ValueIn<TaskState>(kNames, name);
}

}  // namespace zerofarm::storage

// The real zerofarm-worker of this build, validated and loaded to run sandboxed, for the
// scheduler tests. REQUIREs (Catch) that it loads.
#pragma once

#include <cstdint>
#include <memory>

#include "zerofarm/scheduler/worker_runtime.h"

namespace zerofarm::test {

std::shared_ptr<const scheduler::WorkerRuntime> SandboxedWorker(uint64_t memory_bytes = uint64_t{1}
                                                                                        << 30);

}  // namespace zerofarm::test

// SandboxedWorker (sandboxed_worker.h).
#include "sandboxed_worker.h"

#include <catch2/catch.hpp>

namespace zerofarm::test {

std::shared_ptr<const scheduler::WorkerRuntime> SandboxedWorker(uint64_t memory_bytes) {
  scheduler::WorkerRuntimeOptions wo;
  wo.path = ZF_WORKER_BIN;
  wo.memory_bytes = memory_bytes;
  auto runtime = scheduler::WorkerRuntime::Load(wo);
  INFO(runtime.status().ToString());
  REQUIRE(runtime.ok());
  return *runtime;
}

}  // namespace zerofarm::test

#!/usr/bin/env bash
# Builds the fuzz targets with clang + libFuzzer (-DZEROFARM_FUZZ=ON, into build-fuzz/) and runs
# each listed target for a bounded time (default 45 s each) from its seed corpus. Without clang
# it says so and exits 0 (the targets still build as file replayers under gcc).
#   scripts/fuzz.sh [SECONDS] [TARGET...]     default target: node_protocol_fuzz
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-45}"
shift || true
targets=("$@")
((${#targets[@]})) || targets=(node_protocol_fuzz)
if ! command -v clang++ >/dev/null 2>&1; then
  echo "fuzz: SKIP: clang++ not found (./scripts/setup.sh installs clang)" >&2
  exit 0
fi
cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang \
  -DCMAKE_CXX_COMPILER=clang++ -DZEROFARM_FUZZ=ON -DZEROFARM_STATIC_WORKER=OFF >/dev/null
cmake --build build-fuzz -j"$(nproc)" --target "${targets[@]}"
for t in "${targets[@]}"; do
  corpus="build-fuzz/corpus/$t"
  mkdir -p "$corpus"
  seeds="tests/fuzz/corpus/${t%_fuzz}"
  echo "fuzz: $t for ${seconds}s" >&2
  # Crashes land in build-fuzz/ (crash-*); libFuzzer exits non-zero on any finding.
  "build-fuzz/bin/$t" -max_total_time="$seconds" -max_len=262144 -timeout=10 \
    -rss_limit_mb=2048 -artifact_prefix=build-fuzz/ "$corpus" $([ -d "$seeds" ] && echo "$seeds")
done

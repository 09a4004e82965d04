#!/usr/bin/env bash
# Configures and builds zerofarm into build/ (Release with debug info, warnings as errors).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DZEROFARM_WERROR=ON >/dev/null
cmake --build build -j"$(nproc)"

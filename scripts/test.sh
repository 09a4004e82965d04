#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds, runs every test (unit and
# integration) through CTest. Real media from ZEROFARM_CORPUS (default ../shared/media/corpus)
# is used when present and skipped with a message when absent.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build.sh
cd build
ctest --output-on-failure --timeout 1800 -j"$(nproc)" "$@"

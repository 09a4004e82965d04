#!/usr/bin/env bash
# A soak run of `zerofarm serve` (bench/soak.py says what it does): one hour by default.
#   bench/soak.sh [--duration SECONDS] [--sample SECONDS] [--threads N] [--out FILE]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
exec python3 "$here/soak.py" --zerofarm "${ZEROFARM:-$here/../build/bin/zerofarm}" "$@"

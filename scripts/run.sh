#!/usr/bin/env bash
# The main job on the embedded default: transcodes a clip (the argument, or a generated
# 10-second 1080p30 sample) into out/ with the default ladder, on this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build.sh
input="${1:-}"
if [ -z "$input" ]; then
  ./sample-media/generate.sh --quick >/dev/null
  input=sample-media/out/1080p30-10s.mp4
fi
# out/ is this script's own output: a rerun replaces it whole.
build/bin/zerofarm transcode "$input" -o out --force
echo "out/: master.m3u8, <rung>/index.m3u8 + segments, <rung>.mp4, thumbnail.jpg, report.json"

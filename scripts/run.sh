#!/usr/bin/env bash
# The main job on the embedded default: transcodes a clip (argument, or a generated 1080p30
# sample) into out/ with the default ladder, on this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build.sh
input="${1:-}"
if [ -z "$input" ]; then
  input=build/sample-1080p30-20s.mp4
  [ -f "$input" ] || ./sample-media/generate.sh --quick --out build >/dev/null
  input=$(ls build/sample-1080p30-*.mp4 | head -n 1)
fi
build/bin/zerofarm transcode "$input" -o out
echo "renditions in out/: master.m3u8, <rung>/index.m3u8, <rung>.mp4, thumbnail.jpg, report.json"

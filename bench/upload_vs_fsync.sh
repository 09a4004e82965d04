#!/usr/bin/env bash
# Upload throughput of `zerofarm serve` for a large file, beside writing the same bytes to a
# file with fsync on the same file system. Interleaved A B A B: per round, one raw
# `POST /v1/videos` of FILE with curl (Content-Length; the 201 comes only after the upload is
# synced and ingest has taken it), then `dd ... conv=fsync` of FILE into the same data
# directory. Each uploaded video is deleted right after its upload so transcoding does not
# pile up; its ingest and first tasks do run during the upload, as in production.
#
#   bench/upload_vs_fsync.sh [--repeat N] FILE
#
# Needs build/bin/zerofarm (with the static worker) and curl.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${ZEROFARM_BIN_DIR:-$repo/build/bin}
repeat=3
if [[ ${1:-} == --repeat ]]; then repeat=$2; shift 2; fi
[[ $# -eq 1 ]] || { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
file=$1
size=$(stat -c %s "$file")
work=$(mktemp -d "${TMPDIR:-/tmp}/zerofarm-upload-bench-XXXXXX")
serve_pid=
cleanup() {
  [[ -n $serve_pid ]] && kill "$serve_pid" 2>/dev/null && wait "$serve_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

"$bin/zerofarm" serve --data "$work/data" --listen 127.0.0.1:0 --max-upload 8G \
  >"$work/serve.out" 2>"$work/serve.err" &
serve_pid=$!
for _ in $(seq 1 100); do grep -q "listening on" "$work/serve.out" 2>/dev/null && break; sleep 0.1; done
url=$(sed -n 's/.*listening on \(http:[^ ]*\).*/\1/p' "$work/serve.out")
token=$(sed -n 's/^token: //p' "$work/serve.out")
[[ -n $url && -n $token ]] || { cat "$work/serve.err" >&2; echo "serve did not start" >&2; exit 1; }

echo "file: $file ($size bytes)  repeat: $repeat  cores: $(nproc)  load: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-22s %4s %9s %9s\n' side run seconds MB/s
rows=()
for ((i = 1; i <= repeat; i++)); do
  t0=$(date +%s.%N)
  reply=$(curl -sS --fail-with-body -H "Authorization: Bearer $token" \
    -H "Content-Type: application/octet-stream" --data-binary "@$file" \
    "$url/v1/videos?filename=bench.mp4")
  t1=$(date +%s.%N)
  id=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])' <<<"$reply")
  curl -sS -X DELETE -H "Authorization: Bearer $token" "$url/v1/videos/$id" >/dev/null
  s=$(python3 -c "print(f'{$t1 - $t0:.2f}')")
  printf '%-22s %4d %9s %9.1f\n' "serve upload" "$i" "$s" "$(python3 -c "print($size / 1e6 / $s)")"
  rows+=("serve $s")
  t0=$(date +%s.%N)
  dd if="$file" of="$work/data/fsync-copy" bs=1M conv=fsync status=none
  t1=$(date +%s.%N)
  rm -f "$work/data/fsync-copy"
  s=$(python3 -c "print(f'{$t1 - $t0:.2f}')")
  printf '%-22s %4d %9s %9.1f\n' "file write + fsync" "$i" "$s" "$(python3 -c "print($size / 1e6 / $s)")"
  rows+=("file $s")
done
printf '%s\n' "${rows[@]}" | python3 -c "
import statistics, sys
rows = [l.split() for l in sys.stdin if l.strip()]
med = {k: statistics.median(float(r[1]) for r in rows if r[0] == k) for k in ('serve', 'file')}
size = $size
print('median   serve upload %.1f MB/s | file write + fsync %.1f MB/s | ratio %.2fx' %
      (size / 1e6 / med['serve'], size / 1e6 / med['file'], med['file'] / med['serve']))
"

#!/usr/bin/env bash
# Transcode CPU time inside vs. outside the sandbox: the same zerofarm-worker binary (the static
# one the product runs) does the same ladder on the same clip, once validated and sandboxed (the
# default) and once as a plain child process (--unsandboxed), interleaved A B A B so that the
# machine's load hits both alike. Reports per run the workers' CPU seconds (report.json's
# timing.worker_cpu_seconds, from the sandbox's cgroup/rusage accounting or wait4) and wall
# seconds, then the medians and the ratios sandbox / plain.
#
#   bench/sandbox_overhead.sh [--repeat N] [--ladder L] [--jobs N] CLIP
#
# Needs a built tree (build/bin/zerofarm and build/bin/zerofarm-worker, static).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${ZEROFARM_BIN_DIR:-$repo/build/bin}
repeat=3
ladder=1080p,720p,480p,360p
jobs=0
while [[ $# -gt 1 ]]; do
  case "$1" in
    --repeat) repeat=$2; shift 2 ;;
    --ladder) ladder=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    *) echo "sandbox_overhead.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[[ $# -eq 1 ]] || { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
clip=$1
work=$(mktemp -d "${TMPDIR:-/tmp}/zerofarm-sandbox-overhead-XXXXXX")
trap 'rm -rf "$work"' EXIT

run() {  # mode index -> "cpu wall"
  local mode=$1 i=$2 out="$work/$1-$2" extra=()
  [[ $mode == plain ]] && extra=(--unsandboxed)
  local t0 t1
  t0=$(date +%s.%N)
  ZEROFARM_WORKER="$bin/zerofarm-worker" "$bin/zerofarm" transcode "$clip" -o "$out" \
    --ladder "$ladder" --jobs "$jobs" "${extra[@]}" 2>/dev/null
  t1=$(date +%s.%N)
  python3 - "$out/report.json" "$t0" "$t1" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(r["timing"]["worker_cpu_seconds"], float(sys.argv[3]) - float(sys.argv[2]))
PY
  rm -rf "$out"
}

echo "clip: $clip  ladder: $ladder  repeat: $repeat  cores: $(nproc)  load: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-8s %4s %12s %10s\n' mode run worker_cpu_s wall_s
results=()
for ((i = 1; i <= repeat; i++)); do
  for mode in sandbox plain; do
    read -r cpu wall < <(run "$mode" "$i")
    printf '%-8s %4d %12.2f %10.2f\n' "$mode" "$i" "$cpu" "$wall"
    results+=("$mode $cpu $wall")
  done
done
printf '%s\n' "${results[@]}" | python3 -c '
import statistics, sys
rows = [l.split() for l in sys.stdin if l.strip()]
med = {m: (statistics.median(float(r[1]) for r in rows if r[0] == m),
           statistics.median(float(r[2]) for r in rows if r[0] == m)) for m in ("sandbox", "plain")}
print("median   sandbox cpu %.2f s wall %.2f s | plain cpu %.2f s wall %.2f s" %
      (med["sandbox"][0], med["sandbox"][1], med["plain"][0], med["plain"][1]))
print("ratio sandbox/plain: cpu %.3fx  wall %.3fx" %
      (med["sandbox"][0] / med["plain"][0], med["sandbox"][1] / med["plain"][1]))
'

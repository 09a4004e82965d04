#!/usr/bin/env bash
# zerofarm's whole-pipeline transcode against ONE ffmpeg process encoding the same ladder with
# the same x264 settings, side by side in one run, alternating which goes first.
# `zerofarm bench --scenario ladder` (bench/harness/) runs the same comparison, adds `serve`
# over HTTP and writes the JSON the other scenarios write; this script stays for quick runs.
#
#   bench/ladder_vs_ffmpeg.sh [options] [CLIP]
#
#   CLIP              source clip (default: sample-media/out/1080p30-60s.mp4; make it with
#                     sample-media/generate.sh)
#   --repeat N        runs of each side (default 3); medians are reported
#   --zerofarm PATH   the zerofarm binary (default: $ZEROFARM_BIN, build/bin/zerofarm, PATH)
#   --jobs N          passed to zerofarm transcode --jobs (default: zerofarm's own default)
#   --json FILE       where to write the results (default: ./ladder_vs_ffmpeg-<time>.json)
#   --work DIR        scratch folder for outputs (default: a new folder under $TMPDIR)
#   --keep            keep the outputs of the last run of each side
#
# Both sides: default ladder 1080p,720p,480p,360p (rungs above the source's short side skipped,
# as zerofarm does), libx264 -preset veryfast -profile:v high, CRF 23 capped by a VBV maxrate
# (1080p 6000k L4.0, 720p 3500k L3.1, 480p 1500k L3.0, 360p 800k L3.0; maxrate x1.5 above
# 31 fps; bufsize 2x maxrate), scenecut=0:open-gop=0, an IDR every 4 s, yuv420p, every source
# frame kept, AAC 128k 48 kHz stereo encoded once, HLS with 4 s segments. zerofarm also writes
# progressive MP4s, a thumbnail and a report, and verifies its output: that is counted against
# it. Wall and CPU time (user + sys of the process and every child it waited for) come from
# bash's `time`. The figures mean something only with a Release build on an otherwise idle
# machine.
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_dir=$(cd "${script_dir}/.." && pwd)

clip="${repo_dir}/sample-media/out/1080p30-60s.mp4"
repeat=3
zerofarm_bin="${ZEROFARM_BIN:-}"
jobs=""
json_out="ladder_vs_ffmpeg-$(date -u +%Y%m%dT%H%M%SZ).json"
work_dir=""
keep=0
ffmpeg_bin="${FFMPEG:-ffmpeg}"
ffprobe_bin="${FFPROBE:-ffprobe}"

usage() {
  sed -n '2,26p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

die() {
  echo "ladder_vs_ffmpeg: $*" >&2
  exit 1
}

need_value() {
  [[ $# -ge 2 && -n "$2" ]] || die "$1 needs a value"
}

while [[ $# -gt 0 ]]; do
  case "$1" in
    --repeat)
      need_value "$@"
      repeat="$2"
      shift 2
      ;;
    --zerofarm)
      need_value "$@"
      zerofarm_bin="$2"
      shift 2
      ;;
    --jobs)
      need_value "$@"
      jobs="$2"
      shift 2
      ;;
    --json)
      need_value "$@"
      json_out="$2"
      shift 2
      ;;
    --work)
      need_value "$@"
      work_dir="$2"
      shift 2
      ;;
    --keep)
      keep=1
      shift
      ;;
    -h | --help)
      usage
      exit 0
      ;;
    -*)
      usage >&2
      die "unknown option: $1"
      ;;
    *)
      clip="$1"
      shift
      ;;
  esac
done

[[ "${repeat}" =~ ^[1-9][0-9]*$ ]] || die "--repeat needs a positive integer"
[[ -z "${jobs}" || "${jobs}" =~ ^[1-9][0-9]*$ ]] || die "--jobs needs a positive integer"
[[ -f "${clip}" ]] || die "no clip at ${clip} (make the samples with sample-media/generate.sh)"
command -v "${ffmpeg_bin}" > /dev/null || die "${ffmpeg_bin} not found"
command -v "${ffprobe_bin}" > /dev/null || die "${ffprobe_bin} not found"
if [[ -z "${zerofarm_bin}" ]]; then
  if [[ -x "${repo_dir}/build/bin/zerofarm" ]]; then
    zerofarm_bin="${repo_dir}/build/bin/zerofarm"
  else
    zerofarm_bin=$(command -v zerofarm || true)
  fi
fi
[[ -n "${zerofarm_bin}" && -x "${zerofarm_bin}" ]] ||
  die "no zerofarm binary (use --zerofarm PATH or set ZEROFARM_BIN)"

if [[ -z "${work_dir}" ]]; then
  work_dir=$(mktemp -d "${TMPDIR:-/tmp}/zerofarm-ladder-bench-XXXXXX")
  cleanup_work=1
else
  mkdir -p "${work_dir}"
  cleanup_work=0
fi
cleanup() {
  if [[ ${cleanup_work} -eq 1 && ${keep} -eq 0 ]]; then rm -rf "${work_dir}"; fi
}
trap cleanup EXIT

# --- The source -------------------------------------------------------------------------

# probe_value KEY: one value of the first video stream (or its side data) from ffprobe.
probe_video() {
  "${ffprobe_bin}" -v error -select_streams v:0 \
    -show_entries stream=width,height,sample_aspect_ratio,avg_frame_rate,r_frame_rate:stream_side_data=rotation \
    -of default=noprint_wrappers=1 "${clip}"
}

src_w="" src_h="" sar="1:1" avg_rate="" r_rate="" rotation=0
while IFS='=' read -r key value; do
  case "${key}" in
    width) src_w="${value}" ;;
    height) src_h="${value}" ;;
    sample_aspect_ratio) sar="${value}" ;;
    avg_frame_rate) avg_rate="${value}" ;;
    r_frame_rate) r_rate="${value}" ;;
    rotation) rotation="${value}" ;;
  esac
done < <(probe_video)
[[ -n "${src_w}" && -n "${src_h}" ]] || die "${clip} has no video stream"

has_audio=0
if [[ -n "$("${ffprobe_bin}" -v error -select_streams a:0 -show_entries stream=index -of csv=p=0 "${clip}")" ]]; then
  has_audio=1
fi
duration=$("${ffprobe_bin}" -v error -show_entries format=duration -of csv=p=0 "${clip}")

# Displayed size: sample aspect applied to the width, then a quarter-turn rotation swaps sides.
read -r disp_w disp_h fps < <(awk -v w="${src_w}" -v h="${src_h}" -v sar="${sar}" \
  -v rot="${rotation}" -v avg="${avg_rate}" -v r="${r_rate}" '
  function rate(s,  p) { split(s, p, "/"); return (p[2] > 0) ? p[1] / p[2] : 0 }
  BEGIN {
    split(sar, s, ":"); if (s[1] <= 0 || s[2] <= 0) { s[1] = 1; s[2] = 1 }
    dw = int(w * s[1] / s[2] + 0.5); dh = h
    rot = ((rot % 360) + 360) % 360
    if (rot == 90 || rot == 270) { t = dw; dw = dh; dh = t }
    f = rate(avg); if (f <= 0 || f > 240) f = rate(r)
    printf "%d %d %.3f\n", dw, dh, f
  }')

# --- The ladder (the same plan as zerofarm's) --------------------------------------------

# rung SHORT -> "name width height level maxrate" for this source.
plan_rung() {
  awk -v s="$1" -v dw="${disp_w}" -v dh="${disp_h}" -v fps="${fps}" '
    function even(v) { r = int(v / 2 + 0.5) * 2; return r < 2 ? 2 : r }
    BEGIN {
      short = (dw < dh) ? dw : dh; long = (dw < dh) ? dh : dw
      e = s - s % 2; l = even(e * long / short)
      if (s >= 1080) { lv = "4.0"; m = 6000 } else if (s >= 720) { lv = "3.1"; m = 3500 }
      else if (s >= 480) { lv = "3.0"; m = 1500 } else { lv = "3.0"; m = 800 }
      if (fps > 31) m = int(m * 3 / 2)
      if (dw < dh) printf "%dp %d %d %s %d\n", s, e, l, lv, m
      else printf "%dp %d %d %s %d\n", s, l, e, lv, m
    }'
}

source_short=$((disp_w < disp_h ? disp_w : disp_h))
rungs=()
for s in 1080 720 480 360; do
  if ((s <= source_short)); then rungs+=("$(plan_rung "${s}")"); fi
done
if [[ ${#rungs[@]} -eq 0 ]]; then rungs+=("$(plan_rung "$((source_short - source_short % 2))")"); fi

# --- The two commands --------------------------------------------------------------------

ffmpeg_cmd() {
  local out=$1 n=${#rungs[@]} graph="[0:v:0]split=${#rungs[@]}" i name w h level maxrate
  local -a args=(-nostdin -hide_banner -loglevel error -y -i "${clip}")
  local var_map=""
  for ((i = 0; i < n; i++)); do graph+="[s${i}]"; done
  for ((i = 0; i < n; i++)); do
    read -r name w h level maxrate <<< "${rungs[i]}"
    graph+=";[s${i}]scale=${w}:${h},setsar=1,format=yuv420p[v${i}]"
  done
  args+=(-filter_complex "${graph}")
  for ((i = 0; i < n; i++)); do
    read -r name w h level maxrate <<< "${rungs[i]}"
    args+=(-map "[v${i}]" "-level:v:${i}" "${level}" "-maxrate:v:${i}" "${maxrate}k"
      "-bufsize:v:${i}" "$((maxrate * 2))k")
    var_map+="v:${i},name:${name}"
    if [[ ${has_audio} -eq 1 ]]; then var_map+=",agroup:aac"; fi
    var_map+=" "
  done
  args+=(-c:v libx264 -preset:v veryfast -profile:v high -crf:v 23
    -x264-params scenecut=0:open-gop=0 -force_key_frames:v 'expr:gte(t,n_forced*4)'
    -fps_mode:v passthrough)
  if [[ ${has_audio} -eq 1 ]]; then
    args+=(-map 0:a:0 -c:a aac -b:a 128k -ar 48000 -ac 2)
    var_map+="a:0,agroup:aac,name:audio"
  fi
  args+=(-f hls -hls_time 4 -hls_playlist_type vod -hls_flags independent_segments
    -master_pl_name master.m3u8 -var_stream_map "${var_map% }"
    -hls_segment_filename "${out}/%v/seg%05d.ts" "${out}/%v/index.m3u8")
  "${ffmpeg_bin}" "${args[@]}"
}

zerofarm_cmd() {
  local out=$1
  local -a args=(transcode "${clip}" -o "${out}" --ladder "1080p,720p,480p,360p" --preset veryfast
    --chunk-seconds 4 --data "${out}.data")
  if [[ -n "${jobs}" ]]; then args+=(--jobs "${jobs}"); fi
  "${zerofarm_bin}" "${args[@]}"
}

# timed SIDE RUN: runs one side into a fresh folder; appends "wall user sys" to SIDE.times.
timed() {
  local side=$1 run=$2
  local out="${work_dir}/${side}-${run}"
  rm -rf "${out}" "${out}.data"
  mkdir -p "${out}"
  local log="${work_dir}/${side}-${run}.log" timing="${work_dir}/${side}-${run}.time"
  local TIMEFORMAT='%R %U %S' status=0
  { time "${side}_cmd" "${out}" > "${log}" 2>&1; } 2> "${timing}" || status=$?
  if [[ ${status} -ne 0 ]]; then
    echo "ladder_vs_ffmpeg: ${side} failed (exit ${status}); its output:" >&2
    tail -n 20 "${log}" >&2
    exit 1
  fi
  [[ -f "${out}/master.m3u8" ]] || die "${side} wrote no master.m3u8"
  tail -n 1 "${timing}" >> "${work_dir}/${side}.times"
  read -r wall user sys < <(tail -n 1 "${timing}")
  printf '  run %d  %-8s wall %8.2f s  cpu %8.2f s\n' "${run}" "${side}" "${wall}" \
    "$(awk -v u="${user}" -v s="${sys}" 'BEGIN { print u + s }')"
  if [[ ${keep} -eq 0 || ${run} -lt ${repeat} ]]; then rm -rf "${out}" "${out}.data"; fi
}

# --- Run ---------------------------------------------------------------------------------

echo "clip      ${clip}"
echo "source    ${disp_w}x${disp_h} (shown) at ${fps} fps, ${duration} s, audio: ${has_audio}"
echo "ladder    $(printf '%s; ' "${rungs[@]}")"
echo "zerofarm  ${zerofarm_bin}"
echo "ffmpeg    $("${ffmpeg_bin}" -version | head -n 1)"
echo "cpus      $(nproc)"
echo

cat "${clip}" > /dev/null # the source in the page cache for both sides
rm -f "${work_dir}/zerofarm.times" "${work_dir}/ffmpeg.times"
for ((run = 1; run <= repeat; run++)); do
  # Alternate the order so warm-up and drift fall on both sides alike.
  if ((run % 2 == 1)); then
    timed zerofarm "${run}"
    timed ffmpeg "${run}"
  else
    timed ffmpeg "${run}"
    timed zerofarm "${run}"
  fi
done

# median_of FILE COLUMN: median of a column (1 wall, 2 user, 3 sys, 0 user+sys).
median_of() {
  awk -v c="$2" '{ print (c == 0) ? $2 + $3 : $c }' "$1" | sort -g |
    awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# json_array FILE COLUMN: the column as a JSON array.
json_array() {
  awk -v c="$2" '{ printf "%s%s", (NR > 1 ? ", " : ""), (c == 0) ? $2 + $3 : $c } END { print "" }' "$1" |
    sed 's/^/[/; s/$/]/'
}

zf_wall=$(median_of "${work_dir}/zerofarm.times" 1)
zf_cpu=$(median_of "${work_dir}/zerofarm.times" 0)
ff_wall=$(median_of "${work_dir}/ffmpeg.times" 1)
ff_cpu=$(median_of "${work_dir}/ffmpeg.times" 0)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "null" }'; }
wall_ratio=$(ratio "${zf_wall}" "${ff_wall}")
cpu_ratio=$(ratio "${zf_cpu}" "${ff_cpu}")

echo
printf 'median    %-8s wall %8.2f s  cpu %8.2f s\n' zerofarm "${zf_wall}" "${zf_cpu}"
printf 'median    %-8s wall %8.2f s  cpu %8.2f s\n' ffmpeg "${ff_wall}" "${ff_cpu}"
printf 'ratio     zerofarm/ffmpeg  wall %s  cpu %s\n' "${wall_ratio}" "${cpu_ratio}"

json_string() { printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g')"; }
{
  printf '{\n'
  printf '  "benchmark": "ladder_vs_ffmpeg",\n'
  printf '  "date_utc": %s,\n' "$(json_string "$(date -u +%Y-%m-%dT%H:%M:%SZ)")"
  printf '  "clip": %s,\n' "$(json_string "${clip}")"
  printf '  "source": {"display_width": %d, "display_height": %d, "fps": %s, "duration_s": %s, "audio": %s},\n' \
    "${disp_w}" "${disp_h}" "${fps}" "${duration:-null}" "$([[ ${has_audio} -eq 1 ]] && echo true || echo false)"
  printf '  "ladder": ['
  for ((i = 0; i < ${#rungs[@]}; i++)); do
    read -r name w h level maxrate <<< "${rungs[i]}"
    printf '%s{"name": "%s", "width": %d, "height": %d, "level": "%s", "maxrate_kbps": %d}' \
      "$([[ ${i} -gt 0 ]] && echo ', ')" "${name}" "${w}" "${h}" "${level}" "${maxrate}"
  done
  printf '],\n'
  printf '  "repeat": %d,\n' "${repeat}"
  printf '  "cpus": %d,\n' "$(nproc)"
  printf '  "ffmpeg_version": %s,\n' "$(json_string "$("${ffmpeg_bin}" -version | head -n 1)")"
  printf '  "zerofarm": %s,\n' "$(json_string "${zerofarm_bin}")"
  for side in zerofarm ffmpeg; do
    printf '  "%s": {"wall_s": %s, "user_s": %s, "sys_s": %s, "cpu_s": %s, "median_wall_s": %s, "median_cpu_s": %s},\n' \
      "${side}" "$(json_array "${work_dir}/${side}.times" 1)" "$(json_array "${work_dir}/${side}.times" 2)" \
      "$(json_array "${work_dir}/${side}.times" 3)" "$(json_array "${work_dir}/${side}.times" 0)" \
      "$(median_of "${work_dir}/${side}.times" 1)" "$(median_of "${work_dir}/${side}.times" 0)"
  done
  printf '  "ratio_zerofarm_over_ffmpeg": {"wall": %s, "cpu": %s}\n' "${wall_ratio}" "${cpu_ratio}"
  printf '}\n'
} > "${json_out}"
echo "results   ${json_out}"

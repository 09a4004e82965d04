#!/usr/bin/env bash
# Generates deterministic synthetic benchmark clips: motion, texture, noise with fixed seeds,
# scene cuts, and a stereo tone. See README.md in this folder for what each clip is for.
#
#   sample-media/generate.sh [--out DIR] [--quick | --smoke] [--force] [--checksums]
#
#   --out DIR     where to write the clips (default: sample-media/out next to this script)
#   --quick       only a 10 s 1080p30 clip (1080p30-10s.mp4), for a smoke run
#   --smoke       only a 6 s 720p30 clip (720p30-6s.mp4), for `zerofarm bench --quick`
#   --force       regenerate clips that already exist
#   --checksums   also print the SHA-256 of every clip made or kept (compare with
#                 sample-media/SHA256SUMS to know two machines benchmark the same bytes)
#
# Every clip comes from FFmpeg's lavfi sources with fixed seeds and -bitexact flags, so the
# same FFmpeg build writes the same bytes. Existing files are kept unless --force.
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out_dir="${script_dir}/out"
quick=0
smoke=0
force=0
checksums=0
ffmpeg_bin="${FFMPEG:-ffmpeg}"

usage() {
  sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

while [[ $# -gt 0 ]]; do
  case "$1" in
    --out)
      [[ $# -ge 2 ]] || { echo "generate.sh: --out needs a directory" >&2; exit 2; }
      out_dir="$2"
      shift 2
      ;;
    --out=*)
      out_dir="${1#--out=}"
      shift
      ;;
    --quick)
      quick=1
      shift
      ;;
    --smoke)
      smoke=1
      shift
      ;;
    --force)
      force=1
      shift
      ;;
    --checksums)
      checksums=1
      shift
      ;;
    -h | --help)
      usage
      exit 0
      ;;
    *)
      echo "generate.sh: unknown argument: $1" >&2
      usage >&2
      exit 2
      ;;
  esac
done

command -v "${ffmpeg_bin}" > /dev/null || { echo "generate.sh: ${ffmpeg_bin} not found" >&2; exit 1; }
mkdir -p "${out_dir}"

# Scene length in seconds: a hard cut every 5 s, cycling through four kinds of content.
readonly scene_seconds=5

# scene_chain INDEX W H RATE SECONDS SEED: one labelled filter chain [sINDEX] of exactly
# RATE*SECONDS frames of W x H yuv420p.
scene_chain() {
  local i=$1 w=$2 h=$3 r=$4 s=$5 seed=$6
  local tail="format=yuv420p,setsar=1"
  case $((i % 4)) in
    0) # Test pattern in motion with film-like temporal noise.
      printf 'testsrc2=size=%dx%d:rate=%d:duration=%d,noise=alls=6:allf=t+u:all_seed=%d,%s[s%d];' \
        "$w" "$h" "$r" "$s" "$seed" "$tail" "$i"
      ;;
    1) # A Mandelbrot zoom: fine texture changing every frame.
      printf 'mandelbrot=size=%dx%d:rate=%d:end_pts=%d:end_scale=0.005,trim=duration=%d,' \
        $((w / 4 / 2 * 2)) $((h / 4 / 2 * 2)) "$r" $((r * s)) "$s"
      printf 'scale=%d:%d:flags=bicubic,noise=alls=4:allf=t+u:all_seed=%d,%s[s%d];' \
        "$w" "$h" "$seed" "$tail" "$i"
      ;;
    2) # Game of Life under a moving picture-in-picture window (overlay).
      printf 'life=size=%dx%d:rate=%d:ratio=0.15:random_seed=%d:mold=8:life_color=#d0f050:death_color=#203040:mold_color=#804020,' \
        $((w / 8)) $((h / 8)) "$r" "$seed"
      printf 'trim=duration=%d,scale=%d:%d:flags=neighbor,format=yuv420p[bg%d];' "$s" "$w" "$h" "$i"
      printf 'testsrc2=size=%dx%d:rate=%d:duration=%d[fg%d];' \
        $((w / 3 / 2 * 2)) $((h / 3 / 2 * 2)) "$r" "$s" "$i"
      printf "[bg%d][fg%d]overlay=x='mod(t*W/4,W-w)':y='(H-h)/2+(H-h)/2*sin(t*1.3)':shortest=1," "$i" "$i"
      printf 'noise=alls=3:allf=t+u:all_seed=%d,%s[s%d];' "$seed" "$tail" "$i"
      ;;
    3) # A scrolling 1-D cellular automaton: high-frequency detail in constant motion.
      printf 'cellauto=size=%dx%d:rate=%d:rule=30:random_fill_ratio=0.5:random_seed=%d:scroll=1,' \
        $((w / 4)) $((h / 4)) "$r" "$seed"
      printf 'trim=duration=%d,scale=%d:%d:flags=bicubic,noise=alls=5:allf=t+u:all_seed=%d,%s[s%d];' \
        "$s" "$w" "$h" "$seed" "$tail" "$i"
      ;;
  esac
}

# video_graph W H RATE SECONDS SEED [EXTRA]: the scenes joined by hard cuts into [v], then EXTRA
# (a filter chain, e.g. retiming) applied.
video_graph() {
  local w=$1 h=$2 r=$3 total=$4 seed=$5 extra=${6:-}
  local n=$(((total + scene_seconds - 1) / scene_seconds))
  local graph="" inputs="" i s
  for ((i = 0; i < n; i++)); do
    s=$scene_seconds
    if ((total - i * scene_seconds < s)); then s=$((total - i * scene_seconds)); fi
    graph+=$(scene_chain "$i" "$w" "$h" "$r" "$s" $((seed + i)))
    inputs+="[s${i}]"
  done
  graph+="${inputs}concat=n=${n}:v=1:a=0"
  if [[ -n "${extra}" ]]; then graph+=",${extra}"; fi
  printf '%s[v]' "${graph}"
}

# A stereo tone: 440 Hz left, 660 Hz right with a slow tremolo, 48 kHz.
tone_graph() {
  local seconds=$1
  printf "aevalsrc=exprs='0.3*sin(2*PI*440*t)|0.3*sin(2*PI*660*t)*(0.6+0.4*sin(2*PI*0.5*t))':sample_rate=48000:duration=%s[a]" \
    "${seconds}"
}

# make_clip NAME VIDEO_GRAPH AUDIO_SECONDS X264_PARAMS [EXTRA_OUTPUT_ARGS...]
# Sources are high quality (CRF 20, about 15 Mbit/s at 1080p30). No VBV cap: x264's VBV with
# frame threads depends on thread timing, and these files must come out byte-identical.
make_clip() {
  local name=$1 vgraph=$2 audio_seconds=$3 x264_params=$4
  shift 4
  local out="${out_dir}/${name}"
  if [[ -f "${out}" && ${force} -eq 0 ]]; then
    echo "kept      ${out}"
    made+=("${name}")
    return
  fi
  local tmp="${out_dir}/.partial-${name}"
  echo "making    ${out}"
  "${ffmpeg_bin}" -nostdin -hide_banner -loglevel error -y \
    -filter_complex "${vgraph};$(tone_graph "${audio_seconds}")" \
    -map '[v]' -map '[a]' \
    -c:v libx264 -preset faster -crf 20 -pix_fmt yuv420p -x264-params "${x264_params}" \
    -c:a aac -b:a 192k -ar 48000 -ac 2 \
    -fflags +bitexact -flags:v +bitexact -flags:a +bitexact -map_metadata -1 \
    "$@" -f "$(container_of "${name}")" "${tmp}"
  mv -f "${tmp}" "${out}"
  made+=("${name}")
}

container_of() {
  case "$1" in
    *.mkv) echo matroska ;;
    *) echo mp4 ;;
  esac
}

# Closed GOPs of 2 s with scene-cut detection, the way a camera or an upload usually looks.
gop2() { echo "keyint=$(($1 * 2)):min-keyint=$1:bframes=3"; }

made=()
print_checksums() {
  if [[ ${checksums} -eq 1 && ${#made[@]} -gt 0 ]]; then
    (cd "${out_dir}" && sha256sum "${made[@]}")
  fi
}

if [[ ${quick} -eq 1 ]]; then
  make_clip 1080p30-10s.mp4 "$(video_graph 1920 1080 30 10 1000)" 10 "$(gop2 30)" \
    -movflags +faststart
  print_checksums
  exit 0
fi
if [[ ${smoke} -eq 1 ]]; then
  make_clip 720p30-6s.mp4 "$(video_graph 1280 720 30 6 7000)" 6 "$(gop2 30)" \
    -movflags +faststart
  print_checksums
  exit 0
fi

make_clip 1080p30-60s.mp4 "$(video_graph 1920 1080 30 60 1000)" 60 "$(gop2 30)" \
  -movflags +faststart
make_clip 720p60-30s.mp4 "$(video_graph 1280 720 60 30 2000)" 30 "$(gop2 60)" \
  -movflags +faststart
make_clip 2160p30-10s.mp4 "$(video_graph 3840 2160 30 10 3000)" 10 "$(gop2 30)" \
  -movflags +faststart
# One IDR for the whole clip, B-frames, no keyframe at the cuts: chunking must pre-roll.
make_clip 1080p30-long-gop-30s.mp4 "$(video_graph 1920 1080 30 30 4000)" 30 \
  "keyint=infinite:min-keyint=infinite:scenecut=0:bframes=3"
# Open GOPs: recovery-point I-frames whose leading B-frames reference the previous GOP.
make_clip 1080p30-open-gop-30s.mp4 "$(video_graph 1920 1080 30 30 5000)" 30 \
  "keyint=120:min-keyint=120:open-gop=1:bframes=3:b-adapt=0"
# Variable frame rate: made at 30 fps, retimed to 33 +- 12 ms per frame with a 250 ms stall
# every 300 frames, in a millisecond time base that the encoder passes through.
make_clip 1080p-vfr-30s.mkv \
  "$(video_graph 1920 1080 30 30 6000 "settb=1/1000,setpts='(N*0.033+0.012*sin(N*1.7)+0.25*floor(N/300))/TB'")" \
  30.5 "$(gop2 30)" -fps_mode passthrough -enc_time_base:v 1:1000
print_checksums

#!/usr/bin/env bash
# Builds the static FFmpeg 5.1, x264 and dav1d libraries the statically linked zerofarm-worker
# (zerofarm-worker) links against, from Debian's source packages, with a minimal
# configuration: only the decoders of the worker's allow-list
# (transcode/worker/codec_allowlist.cc), the libx264, aac and mjpeg encoders, libswscale and
# libswresample. No programs, devices, network, filters, hardware acceleration or external
# libraries other than x264 and dav1d.
#
# The result is cached outside the source tree:
#   ${ZEROFARM_CACHE:-$HOME/.cache/zerofarm}/static-ffmpeg/<key>/prefix
# where <key> hashes the three source package versions, the configure flags and this
# script's own text. A complete prefix is reused as is (only its path is printed); anything
# else is rebuilt. The prefix path is the only output on stdout; progress and timings go to
# stderr, and the timings are also kept in <key>/build-times.txt.
#
# Needs deb-src entries for the Debian release in the apt sources, and the packages
# build-essential, dpkg-dev, nasm, meson, ninja-build and pkg-config (scripts/setup.sh).
#
# Environment: ZEROFARM_CACHE (cache root), ZEROFARM_BUILD_JOBS (parallel jobs, default 2),
# ZEROFARM_BUILD_NICE (nice level of the compiles, default 10).
set -euo pipefail

jobs=${ZEROFARM_BUILD_JOBS:-2}
nice_level=${ZEROFARM_BUILD_NICE:-10}
cache_root=${ZEROFARM_CACHE:-$HOME/.cache/zerofarm}/static-ffmpeg
script_path=$(readlink -f "${BASH_SOURCE[0]}")

log() { echo "build-static-ffmpeg: $*" >&2; }
die() { log "error: $*"; exit 1; }

for tool in apt-get dpkg-source nasm meson ninja pkg-config make cc sha256sum flock; do
  command -v "$tool" >/dev/null || die "'$tool' is missing (run scripts/setup.sh)"
done

# The .dsc apt-get would fetch for a source package; its name carries the version.
source_dsc() {
  local dsc
  dsc=$(apt-get source --print-uris -qq "$1" 2>/dev/null |
        awk '{ gsub(/'\''/, "", $1) } $2 ~ /\.dsc$/ { print $2 }' | tail -n 1)
  [ -n "$dsc" ] || die "apt has no source package '$1': add a deb-src entry for the Debian
release to the apt sources (same mirror as the deb entries) and run apt-get update"
  echo "$dsc"
}
dsc_version() { local v=${1%.dsc}; echo "${v#*_}"; }

x264_dsc=$(source_dsc x264)
dav1d_dsc=$(source_dsc dav1d)
ffmpeg_dsc=$(source_dsc ffmpeg)

x264_flags=(
  --enable-static --disable-cli --bit-depth=8
  --disable-opencl --disable-avs --disable-swscale --disable-lavf --disable-ffms
  --disable-gpac --disable-lsmash
)

dav1d_flags=(
  --buildtype=release --default-library=static
  -Denable_tools=false -Denable_examples=false -Denable_tests=false -Denable_docs=false
  -Dlogging=false
)

# The decoders of codec_allowlist.cc that FFmpeg implements natively (AV1 through libdav1d:
# FFmpeg 5.1's own av1 decoder only drives hardware decoders), plus a few that are closely
# related and cost little.
video_decoders=(
  h264 hevc vp8 vp9 libdav1d mpeg4 mpeg2video mpeg1video h263 h263p h263i flv
  msmpeg4v1 msmpeg4v2 msmpeg4v3 wmv1 wmv2 wmv3 vc1 theora mjpeg prores dnxhd
  vp6 vp6f vp6a svq3 ffv1 rawvideo
)
audio_decoders=(
  aac aac_latm mp3float mp3 mp2float mp2 mp1float mp1 ac3 eac3 dca truehd vorbis opus flac
  alac wmav1 wmav2 amrnb amrwb adpcm_ima_wav adpcm_ms
  pcm_s16le pcm_s16be pcm_u8 pcm_s24le pcm_s24be pcm_s32le pcm_s32be pcm_f32le pcm_f32be
  pcm_f64le pcm_alaw pcm_mulaw pcm_dvd pcm_bluray
)
parsers=(
  h264 hevc vp8 vp9 av1 mpeg4video mpegvideo h263 vc1 vp3 mjpeg dnxhd
  aac aac_latm mpegaudio ac3 dca mlp vorbis opus flac
)
encoders=(libx264 aac mjpeg)

join() { local IFS=,; echo "$*"; }
ffmpeg_flags=(
  --disable-everything --disable-autodetect
  --disable-programs --disable-doc --disable-debug
  --disable-avdevice --disable-avfilter --disable-postproc --disable-network
  --disable-hwaccels --disable-iconv
  # --disable-autodetect also drops threads: the decoders and swscale want them.
  --enable-pthreads
  # libavformat is built without a single (de)muxer or protocol, for its headers only: the
  # worker shares headers with the farm process but never links libavformat.
  --enable-avformat
  --enable-avcodec --enable-avutil --enable-swscale --enable-swresample
  --enable-static --disable-shared
  --enable-gpl --enable-libx264 --enable-libdav1d
  --enable-decoder="$(join "${video_decoders[@]}" "${audio_decoders[@]}")"
  --enable-parser="$(join "${parsers[@]}")"
  --enable-encoder="$(join "${encoders[@]}")"
)

key=$(
  {
    echo "x264 $(dsc_version "$x264_dsc")"
    echo "dav1d $(dsc_version "$dav1d_dsc")"
    echo "ffmpeg $(dsc_version "$ffmpeg_dsc")"
    printf '%s\n' "${x264_flags[@]}" "${dav1d_flags[@]}" "${ffmpeg_flags[@]}"
    cat "$script_path"
  } | sha256sum | cut -c1-16
)
work=$cache_root/$key
prefix=$work/prefix

if [ -f "$prefix/.complete" ]; then
  echo "$prefix"
  exit 0
fi

# One build per key at a time; a second caller waits, then finds the finished prefix.
mkdir -p "$work"
exec 9>"$work/.lock"
flock 9
if [ -f "$prefix/.complete" ]; then
  echo "$prefix"
  exit 0
fi

# Everything below, the compiles above all, runs at a lower priority.
renice -n "$nice_level" -p $$ >/dev/null

log "building into $work (x264 $(dsc_version "$x264_dsc"), dav1d $(dsc_version "$dav1d_dsc"), ffmpeg $(dsc_version "$ffmpeg_dsc"))"
mkdir -p "$work/src"
rm -rf "$prefix"
: >"$work/build-times.txt"

# Downloads (once) and unpacks (fresh, with Debian's patches applied) one source package.
unpack() {
  local pkg=$1 dsc=$2 dir=$work/src/$1
  if [ ! -f "$work/src/$dsc" ]; then
    (cd "$work/src" && apt-get source --download-only -qq "$pkg" >&2)
  fi
  [ -f "$work/src/$dsc" ] || die "apt-get source $pkg did not fetch $dsc"
  rm -rf "$dir"
  (cd "$work/src" && dpkg-source --no-check -x "$dsc" "$pkg" >/dev/null)
  echo "$dir"
}

# Runs a build step, recording its wall time and the CPU time (user + system) of every
# process it ran.
timed() {
  local name=$1; shift
  local t0 t1 c0 c1 line
  t0=$(date +%s.%N)
  c0=$(awk '{ print $16 + $17 }' /proc/$$/stat)
  "$@"
  t1=$(date +%s.%N)
  c1=$(awk '{ print $16 + $17 }' /proc/$$/stat)
  line=$(awk -v n="$name" -v t0="$t0" -v t1="$t1" -v c="$((c1 - c0))" -v hz="$(getconf CLK_TCK)" \
             'BEGIN { printf "%s: wall %.1f s, cpu %.1f s", n, t1 - t0, c / hz }')
  echo "$line" >>"$work/build-times.txt"
  log "$line"
}

export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
export PKG_CONFIG_LIBDIR=$prefix/lib/pkgconfig

build_x264() (
  cd "$1"
  ./configure --prefix="$prefix" "${x264_flags[@]}" >&2
  make -j"$jobs" >&2
  make install-lib-static >&2
)

build_dav1d() (
  cd "$1"
  meson setup build --prefix="$prefix" --libdir=lib "${dav1d_flags[@]}" >&2
  # dav1d asks glibc for its minimum thread stack through dlsym(); in a static program that
  # drags in the dynamic loader. Without it dav1d uses its portable estimate.
  sed -i '/HAVE_DLSYM/d' build/config.h
  ninja -C build -j"$jobs" >&2
  meson install -C build --quiet >&2
)

build_ffmpeg() (
  cd "$1"
  ./configure --prefix="$prefix" --pkg-config-flags=--static "${ffmpeg_flags[@]}" >&2
  make -j"$jobs" >&2
  make install >&2
)

x264_dir=$(unpack x264 "$x264_dsc")
dav1d_dir=$(unpack dav1d "$dav1d_dsc")
ffmpeg_dir=$(unpack ffmpeg "$ffmpeg_dsc")

timed x264 build_x264 "$x264_dir"
timed dav1d build_dav1d "$dav1d_dir"
timed ffmpeg build_ffmpeg "$ffmpeg_dir"

for lib in libx264 libdav1d libavcodec libavutil libswscale libswresample; do
  [ -f "$prefix/lib/$lib.a" ] || die "$lib.a was not installed"
done
{
  echo "x264 $(dsc_version "$x264_dsc")"
  echo "dav1d $(dsc_version "$dav1d_dsc")"
  echo "ffmpeg $(dsc_version "$ffmpeg_dsc")"
  cat "$work/build-times.txt"
} >"$prefix/.complete"
echo "$prefix"

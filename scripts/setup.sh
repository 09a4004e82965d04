#!/usr/bin/env bash
# Installs the Debian 12 packages zerofarm needs to build, test and benchmark,
# skipping the ones already present. Safe to run repeatedly.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config ccache clang-format clang
  libavformat-dev libavcodec-dev libavutil-dev libswscale-dev libswresample-dev
  libavfilter-dev ffmpeg
  librocksdb-dev libxxhash-dev libssl-dev
  libboost-dev libboost-system-dev curl
  libzmq3-dev cppzmq-dev libzydis-dev libseccomp-dev
  catch2 nlohmann-json3-dev bubblewrap
  python3 wrk nginx-light gnuplot-nox
  dpkg-dev nasm meson
  tcl  # tclsh generates the SQLite amalgamation (scripts/build-static-tools.sh)
  busybox-static binutils
  clang libclang-rt-dev  # the libFuzzer targets (scripts/fuzz.sh)
)
# The web page's packages come from the npm registry at build time (web/CMakeLists.txt), and
# the browser test drives Debian's Chromium. A Node.js that is already there (NodeSource's
# bundles npm and conflicts with Debian's npm package) is used as it is.
packages+=(chromium)
command -v node >/dev/null 2>&1 || packages+=(nodejs)
command -v npm >/dev/null 2>&1 || packages+=(npm)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  sudo_cmd=()
  [ "$(id -u)" -ne 0 ] && sudo_cmd=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The static worker's FFmpeg, x264 and dav1d, and the sandbox's static grep and sqlite3, are
# built from Debian's source packages (scripts/build-static-ffmpeg.sh,
# scripts/build-static-tools.sh), which needs deb-src entries: when apt knows no source
# package, add deb-src twins of the deb822 "deb" entries already configured.
if ! apt-get source --print-uris -qq ffmpeg 2>/dev/null | grep -q '\.dsc'; then
  src_list=/etc/apt/sources.list.d/zerofarm-debian-src.sources
  echo "setup: adding deb-src entries ($src_list)" >&2
  sudo_cmd=()
  [ "$(id -u)" -ne 0 ] && sudo_cmd=(sudo)
  shopt -s nullglob
  deb822=(/etc/apt/sources.list.d/*.sources)
  shopt -u nullglob
  entries=""
  for f in "${deb822[@]}"; do
    [ "$f" = "$src_list" ] && continue
    entries+=$(awk 'BEGIN { RS = ""; ORS = "\n\n" } /(^|\n)Types:[^\n]*deb([ \n]|$)/ {
                      sub(/Types:[^\n]*/, "Types: deb-src"); print }' "$f")
    entries+=$'\n'
  done
  printf '%s\n' "$entries" | "${sudo_cmd[@]}" tee "$src_list" >/dev/null
  if [ -f /etc/apt/sources.list ] && grep -q '^deb ' /etc/apt/sources.list; then
    sed -n 's/^deb \(.*\)/deb-src \1/p' /etc/apt/sources.list |
      "${sudo_cmd[@]}" tee /etc/apt/sources.list.d/zerofarm-debian-src.list >/dev/null
  fi
  "${sudo_cmd[@]}" apt-get update -qq
fi

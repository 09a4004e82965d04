#!/usr/bin/env bash
# Installs the Debian 12 packages zerofarm needs to build, test and benchmark,
# skipping the ones already present. Safe to run repeatedly.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config ccache clang-format
  libavformat-dev libavcodec-dev libavutil-dev libswscale-dev libswresample-dev
  libavfilter-dev ffmpeg
  librocksdb-dev libxxhash-dev libssl-dev
  libboost-dev libboost-system-dev
  libzmq3-dev cppzmq-dev libzydis-dev libseccomp-dev
  catch2 nlohmann-json3-dev bubblewrap
  dpkg-dev nasm meson
)

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

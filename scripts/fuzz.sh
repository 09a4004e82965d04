#!/usr/bin/env bash
# Builds every libFuzzer target (-DZEROFARM_FUZZ=ON under clang, ASan + UBSan) into build-fuzz/
# and runs each for a bounded time: FUZZ_SECONDS (default 20) per target. A target starts from
# its kept seed corpus, tests/fuzz/corpus/<target>/, when there is one; the inputs it finds go
# to build-fuzz/corpus/<target>/ (the kept corpus is only read). The first crash, leak or
# timeout fails the run; the input that caused it is kept in build-fuzz/artifacts/.
# Usage: scripts/fuzz.sh [TARGET...]   (default: every *_fuzz target the build defines)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${FUZZ_SECONDS:-20}"
build=build-fuzz

have_libfuzzer() {
  command -v clang++ >/dev/null 2>&1 &&
    compgen -G "/usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a" >/dev/null
}
have_libfuzzer || ./scripts/setup.sh
have_libfuzzer || { echo "fuzz: clang with libFuzzer is not available" >&2; exit 1; }

CC=clang CXX=clang++ cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DZEROFARM_FUZZ=ON -DZEROFARM_STATIC_WORKER=OFF -DZEROFARM_WERROR=ON >/dev/null

if (($#)); then
  targets=("$@")
else
  mapfile -t targets < <(cmake --build "$build" --target help |
    sed -n 's/^\([A-Za-z0-9_]*_fuzz\): .*/\1/p' | sort -u)
fi
((${#targets[@]})) || { echo "fuzz: no *_fuzz target in $build" >&2; exit 1; }
cmake --build "$build" -j"$(nproc)" --target "${targets[@]}"

mkdir -p "$build/artifacts"
for t in "${targets[@]}"; do
  bin="$build/bin/$t"
  [ -x "$bin" ] || bin=$(find "$build" -type f -name "$t" -perm -u+x | head -n1)
  [ -x "$bin" ] || { echo "fuzz: no binary for $t" >&2; exit 1; }
  mkdir -p "$build/corpus/$t"
  seeds=()
  [ -d "tests/fuzz/corpus/$t" ] && seeds=("tests/fuzz/corpus/$t")
  echo "fuzz: $t for ${seconds}s" >&2
  "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$build/artifacts/$t-" "$build/corpus/$t" "${seeds[@]}" \
    >"$build/$t.log" 2>&1 || {
    tail -n 60 "$build/$t.log" >&2
    echo "fuzz: $t failed; the input is in $build/artifacts/" >&2
    exit 1
  }
  grep -E "^stat::number_of_executed_units|^stat::new_units_added" "$build/$t.log" |
    sed "s/^/fuzz: $t: /" >&2 || true
done
echo "fuzz: ${#targets[@]} targets ran ${seconds}s each without a failure" >&2

#!/usr/bin/env bash
# ThreadSanitizer run of the api/, scheduler/ and storage/ tests (a nightly job: the TSan build
# is slow to compile and the tests run several times slower than usual). Builds the tsan preset
# into build-tsan/ (its worker is the static one from build/, which ./scripts/build.sh makes),
# runs the three test binaries through CTest with tests/tsan.supp, and exits non-zero when a
# test fails or TSan reports a race (TSan's exit code 66 fails the test that raced).
#   ./scripts/tsan.sh                 # everything
#   ./scripts/tsan.sh -R scheduler    # extra arguments go to ctest
set -euo pipefail
cd "$(dirname "$0")/.."
jobs="${ZEROFARM_TSAN_JOBS:-$(nproc)}"
[ -x build/bin/zerofarm-worker ] || ./scripts/build.sh
cmake --preset tsan >/dev/null
cmake --build --preset tsan -j"$jobs" --target zerofarm zerofarm-worker storage_tests \
  scheduler_tests api_tests
# Every process writes its reports to a file: the servers and nodes the api tests start log
# elsewhere than the test's output, so a race there would otherwise go unseen.
reports="$PWD/build-tsan/tsan-reports"
rm -rf "$reports"
mkdir -p "$reports"
export TSAN_OPTIONS="suppressions=$PWD/tests/tsan.supp exitcode=66 second_deadlock_stack=1 log_path=$reports/race ${TSAN_OPTIONS:-}"
cd build-tsan
# halt_on_error stays off: one run reports every race it meets, each with both stacks.
status=0
ctest --output-on-failure --timeout 3600 -j"$jobs" -R '^(storage|scheduler|api):' "$@" || status=$?
if compgen -G "$reports/race.*" >/dev/null; then
  echo "tsan.sh: ThreadSanitizer reports ($reports):"
  cat "$reports"/race.*
  [ "$status" -ne 0 ] || status=66
fi
exit "$status"

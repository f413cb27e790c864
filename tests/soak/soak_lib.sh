# tests/soak/soak_lib.sh: sourced by the soak scripts. run_soak NAME BUILD TEST_BINARY FILTER PATTERN [GTEST_ARGS...]
# copies ferryd and the test binary (BUILD-relative path) to a temporary directory, so a rebuild during the soak
# does not change what runs, points the test at the copy of ferryd (FERRY_TEST_FERRYD), runs the one test FILTER,
# prints only the lines matching PATTERN, and returns the test's exit status (not grep's). The caller exports the
# soak's own settings (FERRY_POWER_CUTS, FERRY_SOAK_SECONDS, ...) first.
run_soak() {
  local name=$1 build=$2 test_bin=$3 filter=$4 pattern=$5
  shift 5
  local work status start
  work=$(mktemp -d "/tmp/ferry-$name.XXXXXX")
  # shellcheck disable=SC2064  # expand now: $work is local
  trap "rm -rf '$work'" EXIT
  cp "$build/hub/ferryd" "$build/$test_bin" "$work/"
  export FERRY_TEST_FERRYD="$work/ferryd"
  start=$(date +%s)
  set +e
  "$work/$(basename "$test_bin")" "$@" --gtest_filter="$filter" 2>&1 | grep --line-buffered -E "$pattern"
  status=${PIPESTATUS[0]}
  set -e
  echo "$name: $(( $(date +%s) - start )) s, exit $status"
  return "$status"
}

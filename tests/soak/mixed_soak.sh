#!/usr/bin/env bash
# tests/soak/mixed_soak.sh [DURATION] [BUILD_DIR]: a mixed soak of ferryd (default 2h; DURATION is seconds or
# with a unit: 600, 10m, 2h). 16 simulated devices publish 200 events/s (FERRY_SOAK_RATE) through a local
# Mosquitto while the central Mosquitto goes away for 10-60 s every 2-5 min, ferryd is reloaded by SIGHUP every
# 10-30 s (two valid configs differing in reloadable uplink keys) and killed with kill -9 every 4-8 min.
# durability = sync: nothing the local broker acknowledged may be lost. At the end it prints events acknowledged,
# stored, delivered, lost, duplicates, ferryd's peak RSS and the RSS slope over the second half (KiB/hour).
# FERRY_SOAK_KILLS=0 leaves out the kill -9s: one ferryd lifetime, whose RSS slope shows growth over hours (with
# the kills, each 4-8 min lifetime's slope is mostly its warm-up). Not in CI. Exit status: the test's (0: nothing lost, ferryd never died by itself).
#
# It runs Faults.DISABLED_MixedSoak of the fault test binary (tests/integration/fault_test.cc). The binaries are
# copied first (soak_lib.sh), so a rebuild during the soak does not change what runs.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DURATION=${1:-2h}
BUILD=${2:-$ROOT/build/host-release}
case "$DURATION" in
  *h) SECS=$(( ${DURATION%h} * 3600 ));;
  *m) SECS=$(( ${DURATION%m} * 60 ));;
  *s) SECS=${DURATION%s};;
  *) SECS=$DURATION;;
esac
export FERRY_SOAK_SECONDS="$SECS"
echo "mixed soak: ${SECS} s (ferryd $(git -C "$ROOT" rev-parse --short HEAD))"
# shellcheck source=soak_lib.sh
. "$ROOT/tests/soak/soak_lib.sh"
run_soak mixed-soak "$BUILD" tests/integration/ferry_fault_tests 'Faults.DISABLED_MixedSoak' \
  '^\[ soak \]|Failure|Expected|missing|lost|died|OK \]|FAILED' --gtest_also_run_disabled_tests

#!/usr/bin/env bash
# tests/soak/power_cut_soak.sh [KILLS] [BUILD_DIR]: kill -9 of ferryd KILLS times (default 1,000) at random
# moments while 8 firmware-library devices publish 3,000 events/s to its ingest listener, with an uplink to a
# central Mosquitto. Prints events acknowledged, stored, lost, delivered, duplicates and the peak RSS of ferryd.
# Not in CI (about 8 minutes per 1,000 kills on a 2-core machine). Exit status: the test's (0: nothing lost).
#
# The binaries are copied first (soak_lib.sh), so a rebuild during the soak does not change what runs.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
KILLS=${1:-1000}
BUILD=${2:-$ROOT/build/host-release}
export FERRY_POWER_CUTS="$KILLS"
echo "power-cut soak: $KILLS kills (ferryd $(git -C "$ROOT" rev-parse --short HEAD))"
# shellcheck source=soak_lib.sh
. "$ROOT/tests/soak/soak_lib.sh"
run_soak power-cut-soak "$BUILD" tests/listener/ferry_listener_e2e_tests \
  'ListenerE2E.PowerCutsLoseNothingAcknowledged' '^\[ power cut \]|Failure|Expected|missing|lost|OK \]|FAILED'

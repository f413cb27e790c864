#!/usr/bin/env bash
# tests/soak/pipeline_kill_soak.sh [KILLS] [BUILD_DIR]: kill -9 of ferryd KILLS times (default 1,000) while it runs
# four windowed pipelines (tumbling, hopping, sliding, session, with late events, alerts, idle and bound closes)
# over a deterministic input, then compares every output stream with an uninterrupted run, record for record
# (PipelineCrash.KillNineWindowedEqualsUninterruptedRun, which CI runs with 50 kills). Not in CI.
# Exit status: the test's (0: every output equal, no gap, no repeat).
#
# The binaries are copied first (soak_lib.sh), so a rebuild during the soak does not change what runs.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
KILLS=${1:-1000}
BUILD=${2:-$ROOT/build/host-release}
export FERRY_PIPELINE_KILLS="$KILLS"
echo "pipeline kill soak: $KILLS kills (ferryd $(git -C "$ROOT" rev-parse --short HEAD))"
# shellcheck source=soak_lib.sh
. "$ROOT/tests/soak/soak_lib.sh"
run_soak pipeline-kill-soak "$BUILD" tests/integration/ferry_pipeline_integration_tests \
  'PipelineCrash.KillNineWindowedEqualsUninterruptedRun' 'windowed pipeline crash|Failure|Expected|Which is|OK \]|FAILED'

#!/usr/bin/env bash
# The end-to-end suite (tests/integration, built by the host-release preset) run against a board build's ferryd
# and ferryctl under qemu-user; the brokers, the simulator and the test itself are the host's.
# Usage: board_e2e.sh HOST_TEST_BINARY FERRYD FERRYCTL "EMULATOR ARGS"
# Exit 77 (ctest: skipped) when the host test binary has not been built.
set -euo pipefail
tests=$1
if [[ ! -x "$tests" ]]; then
  echo "board_e2e: $tests is not built (build the host-release preset first): skipped"
  exit 77
fi
export FERRY_TEST_FERRYD=$2 FERRY_TEST_FERRYCTL=$3 FERRY_TEST_EMULATOR=$4
# Left out: the heavy tests (100k-event outage, kill -9 loops: too slow emulated), and the tests that open the
# log from the test process while ferryd runs (DiskBudget*, BadInput*, RestartIntoAQueuedBacklog*,
# LocalBrokerDown*): an LMDB lock file holds pthread mutexes, whose layout differs between architectures, so a
# host reader beside a board writer is not a configuration that exists on a board.
filter='*TellsSystemd*:*Tls*:*InflightAbove*:*BadConfig*:*PerEventAndBatched*:*NewestFirst*:*HigherPriority*'
filter+=':*BandwidthCap*:*Ferryctl*'
exec "$tests" --gtest_filter="$filter"

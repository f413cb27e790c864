#!/usr/bin/env bash
# scripts/check-targets-alone.sh [TARGET ...]: builds each product target alone, each in a build directory of
# its own configured from scratch (issue 11: "each target builds alone"), so a target that compiles only
# because another target happened to be built first (a generated header, a missing link dependency, an include
# path borrowed from a sibling) fails here. Default: every library and program of the product. ccache keeps
# the repeated compiles cheap. Not in CI (minutes); prints one line per target and exits non-zero if any fails.
# ferry_paho and ferry_hub are INTERFACE libraries (no build step of their own): their users cover them.
set -uo pipefail
cd "$(dirname "$0")/.."
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  targets=(ferry_storage ferry_config ferry_wire ferry_flow ferry_mqtt ferry_observe ferry_ingest
           ferry_uplink ferry_downlink ferry_central ferry_ctl ferry_daemon ferry_firmware
           ferryd ferryctl ferry-receive ferry-decode ferry-sim)
fi
work=$(mktemp -d /tmp/ferry-targets.XXXXXX)
trap 'rm -rf "$work"' EXIT
failed=0
for t in "${targets[@]}"; do
  dir="$work/$t"
  start=$(date +%s)
  if ! cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release >"$dir.log" 2>&1; then
    echo "target $t: CONFIGURE FAILED (log kept: $dir.log)"; failed=1; cp "$dir.log" "/tmp/ferry-target-$t.log"
    continue
  fi
  if cmake --build "$dir" --target "$t" >>"$dir.log" 2>&1; then
    echo "target $t: builds alone ($(( $(date +%s) - start )) s)"
  else
    cp "$dir.log" "/tmp/ferry-target-$t.log"
    echo "target $t: FAILED alone (log: /tmp/ferry-target-$t.log)"; failed=1
  fi
  rm -rf "$dir"
done
exit "$failed"

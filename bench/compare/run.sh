#!/bin/bash
# bench/compare/run.sh: Ferry against Mosquitto bridges, same machine, same run, same ferry-sim load.
# See bench/README.md.
#
#   bench/compare/run.sh --quick          # ~2 minutes: 20k-event backlog
#   bench/compare/run.sh                  # full: 1,000,000-event backlog
#   OUT=/tmp/cmp bench/compare/run.sh --quick
#   SYSTEMS="ferry-listen bridge" SHIMS=15 bench/compare/run.sh --quick       # a subset
#   LISTEN_ARGS="--commit-max-delay 5ms" bench/compare/run.sh --quick        # ferry-listen's ferryd/ferry-sim knobs
#   PUBLISHER=blast bench/compare/run.sh --quick   # mqtt_blast instead of ferry-sim, for every system
#   bench/compare/run.sh --listen         # issue 9: ferry-listen and the bridge, 15 ms, mqtt_blast, 200k backlog
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build/bench-rel}
MODE=full
[ "${1:-}" = "--quick" ] && MODE=quick
[ "${1:-}" = "--listen" ] && MODE=listen
OUT=${OUT:-$ROOT/build/bench-compare/$(date +%Y%m%d-%H%M%S)-$MODE}
SHIM_MS=${SHIM_MS:-15}

# The durable bridge (autosave_on_changes) rewrites its whole database on every save: it ingests a few hundred
# events/s at best, so it gets a smaller backlog and live phase (its figures are per event).
if [ "$MODE" = listen ]; then
  # The listener's figures: the same lean load generator (mqtt_blast, 16 devices = 16 connections) into
  # ferry-listen and into the bridge, so the CPU ratio compares ferryd with Mosquitto, not two generators. A
  # 100,000-event part 2 lasts seconds at the 20,000 events/s target.
  BACKLOG=${BACKLOG:-200000}; LIVE=${LIVE:-6000}; DURABLE_BACKLOG=${DURABLE_BACKLOG:-2000}; DURABLE_LIVE=${DURABLE_LIVE:-500}
  CAP=${CAP:-60}; STALL=${STALL:-4}; RUN_TIMEOUT=${RUN_TIMEOUT:-300}
  SYSTEMS=${SYSTEMS:-ferry-listen bridge}; SHIMS=${SHIMS:-$SHIM_MS}; PUBLISHER=${PUBLISHER:-blast}
elif [ "$MODE" = quick ]; then
  BACKLOG=${BACKLOG:-20000}; LIVE=${LIVE:-3000}; DURABLE_BACKLOG=${DURABLE_BACKLOG:-2000}; DURABLE_LIVE=${DURABLE_LIVE:-500}
  CAP=${CAP:-20}; STALL=${STALL:-4}; RUN_TIMEOUT=${RUN_TIMEOUT:-75}
else
  BACKLOG=${BACKLOG:-1000000}; LIVE=${LIVE:-20000}; DURABLE_BACKLOG=${DURABLE_BACKLOG:-10000}; DURABLE_LIVE=${DURABLE_LIVE:-1000}
  CAP=${CAP:-120}; STALL=${STALL:-15}; RUN_TIMEOUT=${RUN_TIMEOUT:-900}
fi
LIVE_RATE=${LIVE_RATE:-2000}
SYSTEMS=${SYSTEMS:-ferry ferry-listen bridge bridge-durable}
SHIMS=${SHIMS:-$SHIM_MS 0}
# The load generator: ferry-sim (the firmware library, Paho C: 100-160 us of CPU per event) or mqtt_blast.
PUBLISHER=${PUBLISHER:-sim}
# ferry-listen only (ferry_compare's --commit-max-events/-bytes/-delay, --receive-maximum, --sim-connections,
# --sim-max-inflight); empty: ferryd's and ferry-sim's defaults.
LISTEN_ARGS=${LISTEN_ARGS:-}

for tool in /usr/sbin/mosquitto ss gnuplot python3; do
  command -v "$tool" >/dev/null || { echo "run.sh: $tool is missing (see bench/README.md)" >&2; exit 2; }
done
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
ninja -C "$BUILD_DIR" ferry_compare ferryd ferry-sim ferry_fsync_shim mqtt_blast >/dev/null
mkdir -p "$OUT"

# Every child is killed on exit; ferry_compare kills its own children (brokers die with it: PDEATHSIG).
child=
cleanup() { [ -n "$child" ] && kill -9 "$child" 2>/dev/null || true; }
trap cleanup EXIT INT TERM

run() {  # run SYSTEM SHIM_MS
  local backlog=$BACKLOG live=$LIVE extra=${EXTRA_ARGS:-}
  [ "$1" = bridge-durable ] && backlog=$DURABLE_BACKLOG live=$DURABLE_LIVE
  [ "$1" = ferry-listen ] && extra="$extra $LISTEN_ARGS"
  timeout -s KILL "$RUN_TIMEOUT" "$BUILD_DIR/bench/compare/ferry_compare" --system "$1" --shim-ms "$2" \
    --backlog "$backlog" --live "$live" --live-rate "$LIVE_RATE" --cap-seconds "$CAP" --stall-seconds "$STALL" \
    --publisher "$PUBLISHER" --out "$OUT" $extra 2>>"$OUT/run.log" &
  child=$!
  wait "$child" || echo "run.sh: $1 with ${2} ms shim failed (exit $?), see $OUT/run.log" >&2
  child=
}

echo "ferry compare ($MODE): backlog $BACKLOG, live $LIVE at $LIVE_RATE/s, shim $SHIM_MS ms, publisher $PUBLISHER, out $OUT" >&2
[ -n "$LISTEN_ARGS" ] && echo "  ferry-listen: $LISTEN_ARGS" >&2
# The shim setting first (the figures), then without it.
for shim in $SHIMS; do
  for sys in $SYSTEMS; do
    echo "  $sys, shim ${shim} ms" >&2
    run "$sys" "$shim"
  done
done
python3 "$ROOT/bench/compare/report.py" "$OUT" --shim-ms "$SHIM_MS" --mode "$MODE"

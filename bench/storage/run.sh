#!/bin/sh
# bench/storage/run.sh: runs the storage benchmarks and prints their figures and ratios against the targets
# of DESIGN.md. Builds a Release tree first (build/storage-release) unless BUILD_DIR points to one.
#
#   bench/storage/run.sh                 # from the repository root
#   EVENTS=2000000 SINGLE_EVENTS=5000 bench/storage/run.sh
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build/storage-release}
EVENTS=${EVENTS:-1000000}
SINGLE_EVENTS=${SINGLE_EVENTS:-3000}
PAYLOAD=${PAYLOAD:-200}
DELAY_MS=${DELAY_MS:-15}

if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
ninja -C "$BUILD_DIR" ferry_storage_bench ferry_fsync_shim >/dev/null
BENCH=$BUILD_DIR/bench/storage/ferry_storage_bench
SHIM=$BUILD_DIR/bench/shim/libferry_fsync_shim.so
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ferry-bench-XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# run NAME DELAY ARGS...: runs one mode on a fresh log with the shim preloaded; output in $WORK/NAME.out
run() {
  name=$1 delay=$2
  shift 2
  LD_PRELOAD=$SHIM FERRY_FSYNC_DELAY_MS=$delay "$BENCH" --dir="$WORK/$name" --payload="$PAYLOAD" "$@" >"$WORK/$name.out"
}
get() { awk -v k="$2" '$1 == k { print $2 }' "$WORK/$1.out"; }

echo "ferry storage benchmarks: payload $PAYLOAD B, fsync on, $(nproc) CPUs, $(uname -r)"
run batched 0 --mode=batched --events="$EVENTS"
run single 0 --mode=single --events="$SINGLE_EVENTS"
run steady 0 --mode=steady
run slow "$DELAY_MS" --mode=batched --events="$EVENTS"

awk -v b_eps="$(get batched events_per_sec)" -v b_fpe="$(get batched fsync_per_event)" \
    -v b_epc="$(get batched events_per_commit)" \
    -v s_eps="$(get single events_per_sec)" -v s_fpe="$(get single fsync_per_event)" \
    -v wb="$(get steady write_bytes_per_event)" -v wc="$(get steady wchar_per_event)" \
    -v pages0="$(get steady file_pages_start)" -v pages1="$(get steady file_pages_end)" \
    -v sl_eps="$(get slow events_per_sec)" -v sl_epc="$(get slow events_per_commit)" \
    -v payload="$PAYLOAD" -v delay="$DELAY_MS" 'BEGIN {
  ok = 1
  printf "\n%-52s %14s %14s %6s\n", "figure", "value", "target", ""
  row("batched append, durable events/s", b_eps, ">= 200000", b_eps >= 200000)
  row("  events per commit", b_epc, "", -1)
  row("one commit per event, events/s", s_eps, "", -1)
  row("ratio batched / one-commit throughput", b_eps / s_eps, "", -1)
  row("sync calls per event, batched (fdatasync+O_DSYNC)", b_fpe, "", -1)
  row("sync calls per event, one commit per event", s_fpe, "", -1)
  row("ratio sync calls batched / one-commit", b_fpe / s_fpe, "<= 0.005", b_fpe / s_fpe <= 0.005)
  row("steady state w/ retention: write_bytes per event", wb, "", -1)
  row("  write_bytes / payload", wb / payload, "<= 3.0", wb / payload <= 3.0)
  row("  wchar (bytes LMDB writes) / payload", wc / payload, "", -1)
  row("  data file pages start -> end (flat = reuse)", pages0 "->" pages1, "flat", pages1 <= pages0 * 1.05)
  row("durable events/s with " delay " ms per sync call", sl_eps, ">= 20000", sl_eps >= 20000)
  row("  events per commit", sl_epc, "", -1)
  exit(ok ? 0 : 1)
}
function row(name, v, target, pass) {
  mark = pass < 0 ? "" : (pass ? "ok" : "MISS")
  if (pass == 0) ok = 0
  if (v ~ /->/) printf "%-52s %14s %14s %6s\n", name, v, target, mark
  else if (v + 0 >= 100) printf "%-52s %14.0f %14s %6s\n", name, v, target, mark
  else printf "%-52s %14.6g %14s %6s\n", name, v, target, mark
}'

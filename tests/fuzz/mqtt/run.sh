#!/bin/sh
# Builds the ferry_mqtt libFuzzer target with clang-14 into /tmp/ferry-mqtt-fuzz (or $FUZZ_OUT) and runs it.
#   tests/fuzz/mqtt/run.sh [seconds]     default 60; new inputs go to $FUZZ_OUT/corpus, crashes to $FUZZ_OUT
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
seconds=${1:-60}
out=${FUZZ_OUT:-${TMPDIR:-/tmp}/ferry-mqtt-fuzz}
mkdir -p "$out/corpus"
clang++-14 -std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -I"$root/hub/mqtt/include" -I"$root/storage/include" -I/usr/include \
  "$root"/hub/mqtt/src/*.cc "$here/mqtt_packet_fuzz.cc" -o "$out/mqtt_packet_fuzz"
# The seeds stay read-only in the repository: the fuzzer writes what it finds to the first directory only.
cd "$out"
exec ./mqtt_packet_fuzz -max_total_time="$seconds" -max_len=4096 -timeout=5 -rss_limit_mb=1024 \
  -print_final_stats=1 "$out/corpus" "$here/corpus"

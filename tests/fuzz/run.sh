#!/bin/sh
# Builds Ferry's libFuzzer targets with clang-14 and runs each for a while. See tests/fuzz/README.md.
#
#   tests/fuzz/run.sh [seconds] [target ...]     seconds: per target, default 30; targets: default all
#
# Each target is compiled straight from the product sources it needs (no CMake) into $FUZZ_OUT/<target>/
# (default build/fuzz/). Before fuzzing, every checked-in seed runs once as is: a `crash-*` seed is the
# reproducer of a reported bug and fails the target until the bug is fixed. The fuzzer then works on a scratch
# copy of the seeds, so the repository's corpus never grows by itself. One line per target at the end:
#   fuzz <target>: <execs> execs in <s> s, <status>
# and the exit status is 1 if any target failed to build, failed a seed, or crashed.
#
# Environment:
#   FUZZ_OUT      where binaries, scratch corpora, logs and crash artifacts go (default <repo>/build/fuzz)
#   FUZZ_SRC      the tree whose product sources are compiled (default this repository): fuzz a patched copy
#                 or another worktree with these harnesses and seeds
#   FUZZ_JOBS     targets run at once (default 1; each libFuzzer process uses one core)
#   FUZZ_REBUILD  1: rebuild even when the binary is newer than its sources
#   FUZZ_KNOWN    names of crash-* seeds to leave out of the seed check (a reported bug whose fix is pending),
#                 e.g. FUZZ_KNOWN="crash-toml-deep-dotted-key"; the summary line lists them
#   FUZZ_IGNORELIST  the clang -fsanitize-ignorelist file (default tests/fuzz/ubsan_ignorelist.txt)
#   FUZZ_CXXFLAGS further compiler flags for every target, e.g. -D'RAPIDJSON_ASSERT(x)=((void)0)' as in release
#   FUZZ_CXX, FUZZ_CC  the compilers (default clang++-14, clang-14)
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
src=$(cd "${FUZZ_SRC:-$root}" && pwd)
out=${FUZZ_OUT:-$root/build/fuzz}
case $out in /*) ;; *) out=$PWD/$out ;; esac  # the runs cd into it: a relative path would not survive that
jobs=${FUZZ_JOBS:-1}
CXX=${FUZZ_CXX:-clang++-14}
CC=${FUZZ_CC:-clang-14}
ALL="mqtt ingest_route wire_batch cloudevents config storage_record firmware_boot central_receiver http_head"

seconds=30
if [ $# -gt 0 ]; then
  case $1 in
    '' | *[!0-9]*) ;;
    *) seconds=$1; shift ;;
  esac
fi
targets=${*:-$ALL}

SAN="-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined"
SAN="$SAN -fsanitize-ignorelist=${FUZZ_IGNORELIST:-$here/ubsan_ignorelist.txt}"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}

# What each target compiles. sources and includes are relative to $src, the harness to tests/fuzz/.
# max_len: the largest input the fuzzer makes (seeds run whole in the seed check whatever their size).
describe() {
  lang=c++ sources= includes= defines= libs= max_len=4096 dict=
  harness=$1/$1_fuzz.cc
  case $1 in
    mqtt)
      harness=mqtt/mqtt_packet_fuzz.cc
      sources="hub/mqtt/src/*.cc storage/src/utf8.cc"
      includes="hub/mqtt/include storage/include" ;;
    ingest_route)
      sources="hub/ingest/src/ingest_router.cc hub/config/src/*.cc hub/flow/src/flow_control.cc
               hub/wire/src/wire_cloudevents.cc storage/src/record.cc storage/src/crc32c.cc storage/src/error.cc
               storage/src/utf8.cc storage/src/rfc3339.cc"
      includes="hub/ingest/include hub/config/include hub/flow/include hub/wire/include storage/include"
      # The config is parsed once per process: toml++ as ferryd links it is enough.
      defines=-DTOML_HEADER_ONLY=0 libs=-ltomlplusplus max_len=8192 ;;
    wire_batch)
      sources="hub/wire/src/*.cc storage/src/error.cc storage/src/utf8.cc storage/src/rfc3339.cc"
      includes="hub/wire/include storage/include"
      libs="-lzstd -lmbedcrypto" max_len=16384 ;;
    cloudevents)
      sources="hub/wire/src/wire_cloudevents.cc storage/src/error.cc storage/src/utf8.cc storage/src/rfc3339.cc"
      includes="hub/wire/include storage/include" ;;
    config)
      sources="hub/config/src/*.cc storage/src/error.cc storage/src/rfc3339.cc"
      includes="hub/config/include storage/include"
      # toml++ header-only, so the parser itself is instrumented and its branches guide the fuzzer. ferryd links
      # Debian's libtomlplusplus.so, built from these headers by GCC with NDEBUG: its internal asserts are off
      # (and its TOML_ASSUME a no-op), so they are off here too; its TOML_UNREACHABLE stays checked.
      defines="-DTOML_HEADER_ONLY=1 -DTOML_ASSERT(expr)=(void)0" max_len=8192 ;;
    storage_record)
      sources="storage/src/record.cc storage/src/crc32c.cc storage/src/error.cc"
      includes="storage/include storage/src" ;;
    firmware_boot)
      lang=c harness=firmware_boot/firmware_boot_fuzz.c
      sources=  # the harness #includes firmware/src/ferry_id.c to reach its static parser
      includes="firmware/include firmware/src" max_len=256 ;;
    central_receiver)
      sources="central/src/receiver.cc hub/wire/src/*.cc storage/src/error.cc storage/src/utf8.cc storage/src/rfc3339.cc"
      includes="central/include hub/wire/include storage/include"
      libs="-lpaho-mqttpp3 -lpaho-mqtt3as -lzstd -lmbedcrypto" max_len=16384 ;;
    http_head)
      sources="hub/observe/src/http_head.cc"
      includes="hub/observe/include storage/include" max_len=8192 ;;
    *) return 1 ;;
  esac
  [ -f "$here/$1/$1.dict" ] && dict=$here/$1/$1.dict
  return 0
}

build() {
  t=$1 bin=$out/$1/$1_fuzz
  files= incflags= deps="$here/$harness $here/fuzz_bytes.h $here/fryb_sign.h $here/run.sh"
  deps="$deps ${FUZZ_IGNORELIST:-$here/ubsan_ignorelist.txt}"
  set -f  # expand the patterns under $src, not under the current directory
  for pattern in $sources; do
    set +f
    for f in "$src"/$pattern; do files="$files $f"; done
    set -f
  done
  set +f
  for d in $includes; do incflags="$incflags -I$src/$d" deps="$deps $src/$d"; done
  mkdir -p "$out/$t"
  if [ "${FUZZ_REBUILD:-0}" != 1 ] && [ -x "$bin" ] &&
     [ -z "$(find $files $deps -newer "$bin" 2>/dev/null | head -n 1)" ]; then
    return 0
  fi
  echo "build $t" >&2
  if [ "$lang" = c ]; then
    # shellcheck disable=SC2086
    $CC -std=c99 -g -O1 $SAN ${FUZZ_CXXFLAGS:-} $incflags "$here/$harness" -o "$bin" $libs
  else
    # shellcheck disable=SC2086
    $CXX -std=c++17 -g -O1 $SAN ${FUZZ_CXXFLAGS:-} $defines $incflags -I"$here" $files "$here/$harness" -o "$bin" $libs
  fi
}

# Runs one target; writes its summary line to $out/<t>/summary and returns non-zero on any failure.
run_one() {
  t=$1 work=$out/$1 bin=$out/$1/$1_fuzz
  mkdir -p "$work"
  if ! describe "$t"; then
    echo "fuzz $t: 0 execs in 0 s, UNKNOWN TARGET (known: $ALL)" | tee "$work/summary"
    return 1
  fi
  if ! build "$t" >"$work/build.log" 2>&1; then
    echo "fuzz $t: 0 execs in 0 s, BUILD FAILED (see $work/build.log)" | tee "$work/summary"
    return 1
  fi
  rm -rf "$work/corpus" "$work/artifacts"
  mkdir -p "$work/corpus" "$work/artifacts"
  seeds=$here/$t/corpus
  # The seed check: each seed whole (not cut to max_len). The seeds run together; each crash-* reproducer runs
  # alone, so every one still failing is named. Reproducers stay out of the scratch corpus: they guard a fix.
  plain= repros= skipped= failing=
  for f in "$seeds"/*; do
    [ -f "$f" ] || continue
    name=${f##*/}
    case " ${FUZZ_KNOWN:-} " in
      *" $name "*) skipped="$skipped $name"; continue ;;
    esac
    case $name in
      crash-*) repros="$repros $f" ;;
      *) plain="$plain $f"; cp "$f" "$work/corpus/" ;;
    esac
  done
  : >"$work/seeds.log"
  # shellcheck disable=SC2086
  if [ -n "$plain" ] && ! (cd "$work/artifacts" && "$bin" -timeout=25 -rss_limit_mb=2048 $plain \
      >>"$work/seeds.log" 2>&1); then
    bad=$(sed -n 's/^Running: //p' "$work/seeds.log" | tail -n 1)
    failing=" ${bad##*/}"
  fi
  for f in $repros; do
    if ! (cd "$work/artifacts" && "$bin" -timeout=25 -rss_limit_mb=2048 "$f" >>"$work/seeds.log" 2>&1); then
      failing="$failing ${f##*/}"
    fi
  done
  note=
  [ -n "$skipped" ] && note=" (known, not run:$skipped)"
  if [ -n "$failing" ]; then
    echo "fuzz $t: 0 execs in 0 s, SEEDS FAIL:$failing (see $work/seeds.log)$note" | tee "$work/summary"
    return 1
  fi
  dictflag=
  [ -n "$dict" ] && dictflag=-dict=$dict
  start=$(date +%s)
  rc=0
  # shellcheck disable=SC2086
  (cd "$work" && "$bin" -max_total_time="$seconds" -max_len="$max_len" -timeout=25 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$work/artifacts/" $dictflag "$work/corpus" >"$work/fuzz.log" 2>&1) || rc=$?
  elapsed=$(($(date +%s) - start))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/fuzz.log" | tail -n 1)
  if [ -z "$execs" ]; then  # a crash ends the run before the final stats: take the last progress line
    execs=$(sed -n 's/^#\([0-9][0-9]*\).*/\1/p' "$work/fuzz.log" | tail -n 1)
  fi
  if [ "$rc" -eq 0 ]; then
    status=ok$note
  else
    artifact=$(ls -t "$work/artifacts" 2>/dev/null | head -n 1)
    status="CRASHED (exit $rc): $work/artifacts/$artifact, log $work/fuzz.log"
  fi
  echo "fuzz $t: ${execs:-0} execs in $elapsed s, $status" | tee "$work/summary"
  [ "$rc" -eq 0 ]
}

mkdir -p "$out"
failed=0
running=0
for t in $targets; do
  rm -f "$out/$t/summary"
  if [ "$jobs" -le 1 ]; then
    run_one "$t" || failed=1
  else
    run_one "$t" >/dev/null &
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then wait || true; running=0; fi
  fi
done
wait || true

echo "---"
for t in $targets; do
  if [ -f "$out/$t/summary" ]; then
    cat "$out/$t/summary"
    grep -q ', ok' "$out/$t/summary" || failed=1
  else
    echo "fuzz $t: 0 execs in 0 s, NO RESULT"
    failed=1
  fi
done
exit "$failed"

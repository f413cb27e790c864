#!/usr/bin/env bash
# Installs what is missing, builds and runs every test: host (release and ASan+UBSan), then the aarch64 and armhf
# cross builds with their tests under qemu-user. Also builds the three .deb packages. Exits non-zero if any fails.
set -uo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh --cross || { echo "test-all.sh: installing dependencies failed" >&2; exit 1; }

presets=(${FERRY_PRESETS:-host-release host-asan aarch64 armhf})
declare -A result
failed=0
failed_presets=()
for p in "${presets[@]}"; do
  start=$(date +%s)
  echo "=== $p: configure, build"
  if cmake --preset "$p" >/dev/null; then
    if cmake --build --preset "$p"; then
      echo "=== $p: tests"
      if ctest --preset "$p"; then result[$p]="passed"; else
        result[$p]="TESTS FAILED: $(tr '\n' ' ' < "build/$p/Testing/Temporary/LastTestsFailed.log" 2>/dev/null)"
        failed_presets+=("$p"); failed=1
      fi
      case "$p" in
        host-release|aarch64|armhf)
          (cd "build/$p" && cpack -G DEB >/dev/null) && result[$p]+=", $(ls build/$p/packages/*.deb | xargs -n1 basename)" ||
            { result[$p]+=", PACKAGE FAILED"; failed=1; } ;;
      esac
    else
      result[$p]="BUILD FAILED"; failed=1
    fi
  else
    result[$p]="CONFIGURE FAILED"; failed=1
  fi
  result[$p]+=" ($(( $(date +%s) - start )) s)"
done

# CI keeps only the end of what we print: repeat the tail of each failed test's output here, just before the
# summary, so the reason for a failure is always in view.
for p in "${failed_presets[@]}"; do
  log="build/$p/Testing/Temporary/LastTest.log"
  [[ -f "build/$p/Testing/Temporary/LastTestsFailed.log" && -f "$log" ]] || continue
  while IFS=: read -r _ name; do
    echo
    echo "=== $p: $name failed; the last 40 lines of its output"
    awk -v t="$name" '$0 ~ /^[0-9]+\/[0-9]+ Test: / { sub(/^[0-9]+\/[0-9]+ Test: /, ""); on = ($0 == t); next }
                      on && /^<end of output>/ { on = 0 } on' "$log" | tail -n 40
  done < "build/$p/Testing/Temporary/LastTestsFailed.log"
done

echo
echo "=== summary"
for p in "${presets[@]}"; do printf '%-14s %s\n' "$p" "${result[$p]}"; done
exit $failed

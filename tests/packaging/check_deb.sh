#!/usr/bin/env bash
# Builds the package in BUILD_DIR, unpacks it with dpkg -x and checks its files, control and conffiles.
set -euo pipefail
trap 'echo "check_deb: line $LINENO failed (status $?): $BASH_COMMAND" >&2' ERR  # never fail without a word
build=${1:?usage: check_deb.sh BUILD_DIR}
cd "$build"
cpack -G DEB >/dev/null
deb=$(ls packages/ferry_*.deb | head -n 1)
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
dpkg-deb -x "$deb" "$work/root"
dpkg-deb -e "$deb" "$work/control"

fail() { echo "check_deb: $deb: $*" >&2; exit 1; }
for f in usr/bin/ferryd usr/bin/ferryctl etc/ferry/ferry.toml lib/systemd/system/ferryd.service; do
  [ -e "$work/root/$f" ] || fail "missing /$f"
done
[ -x "$work/root/usr/bin/ferryd" ] || fail "/usr/bin/ferryd is not executable"
grep -qx /etc/ferry/ferry.toml "$work/control/conffiles" || fail "ferry.toml is not a conffile"
unit="$work/root/lib/systemd/system/ferryd.service"
for want in Type=notify WatchdogSec= DynamicUser=yes StateDirectory=ferry ProtectSystem=strict NoNewPrivileges=yes; do
  grep -q "^$want" "$unit" || fail "unit lacks $want"
done
control="$work/control/control"
grep -q '^Architecture: amd64' "$control" || fail "control: Architecture is not amd64"
for dep in liblmdb0 libpaho-mqttpp3-1 libzstd1 libmbedcrypto7; do
  grep -q "^Depends:.*$dep" "$control" || fail "control: Depends lacks $dep"
done
# Every library a packaged binary needs comes from a package Depends names (libgcc-s1 comes with libstdc++6; a
# sanitizer build's runtimes are exempt, its package is never shipped):
# the list in cmake/FerryPackaging.cmake is written by hand and must not drift from what the linker recorded.
depends=$(sed -n 's/^Depends: //p' "$control" | tr ',' '\n' | sed 's/^ *//; s/[ (].*//')  # package names
owner() { { dpkg -S "$1" 2>/dev/null || true; } | awk -F: '!n++ {print $1}'; }  # merged /usr: try both names
for bin in "$work"/root/usr/bin/*; do
  for so in $(objdump -p "$bin" | awk '/NEEDED/ {print $2}'); do
    path=$(ldconfig -p | awk -v s="$so" '$1 == s && /x86-64/ && !n++ {print $NF}')  # reads it all: no SIGPIPE
    [ -n "$path" ] || fail "$(basename "$bin") needs $so, which is not installed here"
    pkg=$(owner "$path"); [ -n "$pkg" ] || pkg=$(owner "$(readlink -f "$path")")
    [ -n "$pkg" ] || fail "no package owns $path ($so, needed by $(basename "$bin"))"
    case "$pkg" in libgcc-s1|libasan*|libubsan*|liblsan*|libtsan*) continue ;; esac  # sanitizer builds: not shipped
    grep -qxF "$pkg" <<<"$depends" || fail "$(basename "$bin") needs $so from $pkg, which Depends lacks"
  done
done
"$work/root/usr/bin/ferryd" --version | grep -q '^ferryd ' || fail "ferryd --version failed"
"$work/root/usr/bin/ferryd" --check-config "$work/root/etc/ferry/ferry.toml" || fail "the packaged config does not check"
echo "check_deb: $deb ok"

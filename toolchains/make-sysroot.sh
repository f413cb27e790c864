#!/usr/bin/env bash
# Builds build/sysroot-<arch> (arch = arm64 | armhf) from Debian's packages, without installing any
# foreign-architecture package on the host: apt-get download + dpkg -x. Co-installing them would hit
# multiarch version skew between the archive's suites; extracting them never touches dpkg's database.
#
# The sysroot holds the -dev packages Ferry builds against and the whole runtime closure (libc included), so
# it is both the link sysroot and the library prefix qemu-user runs the ARM binaries with (qemu -L).
#
# Usage: toolchains/make-sysroot.sh ARCH [OUTDIR]      (idempotent: a stamp records the package list)
set -euo pipefail

arch=${1:?usage: make-sysroot.sh arm64|armhf [outdir]}
case "$arch" in arm64|armhf) ;; *) echo "make-sysroot.sh: unknown arch '$arch' (arm64 or armhf)" >&2; exit 2;; esac
here=$(cd "$(dirname "$0")" && pwd)
out=${2:-$here/../build/sysroot-$arch}
mkdir -p "$out"
out=$(cd "$out" && pwd)

# What Ferry compiles and links against. Header-only libraries are Architecture: all.
dev_packages=(
  libc6-dev libstdc++-12-dev
  libpaho-mqttpp-dev libpaho-mqtt-dev liblmdb-dev libmbedtls-dev librdkafka-dev libzstd-dev libsqlite3-dev
  liblua5.4-dev libmicrohttpd-dev
  libtomlplusplus-dev libgtest-dev libgmock-dev libbenchmark-dev
)
header_packages=(libexpected-dev rapidjson-dev libcli11-dev)   # Architecture: all

# A mirror mid-sync can fail one index; retry, then go on with what apt has (the packages still resolve).
apt_update() {
  for i in 1 2 3; do apt-get update -qq && return 0; echo "apt-get update failed (try $i)" >&2; sleep 5; done
  echo "make-sysroot.sh: warning: apt-get update incomplete, using the package lists apt has" >&2
}
if ! dpkg --print-foreign-architectures | grep -qx "$arch"; then
  dpkg --add-architecture "$arch"
  apt_update
elif ! apt-cache show --no-all-versions "libc6:$arch" >/dev/null 2>&1; then
  apt_update
fi

# Dependency closure of the -dev packages for $arch (Depends and Pre-Depends only), as name:arch.
closure=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
            --no-replaces --no-enhances "${dev_packages[@]/%/:$arch}" 2>/dev/null |
          awk '/^[a-z0-9]/ {print $1}' | grep -v '^<' | sort -u)
# Keep real packages only (virtual names have no stanza); Architecture: all ones are fetched without suffix.
skip='^(debconf|perl-base|dpkg|install-info|tar|sensible-utils|adduser|passwd|login|libpam.*)$'
names=$(printf '%s\n' $closure "${header_packages[@]}" | sed 's/:.*//' | grep -Ev "$skip" | sort -u)
show() { apt-cache show --no-all-versions "$@" 2>/dev/null | awk '/^Package:/ {p=$2} /^Architecture:/ {print p, $2}'; }
found=$( { show $(printf '%s:'"$arch"' ' $names); show $(printf '%s:all ' $names); } | sort -u)
mapfile -t pkgs < <(awk -v a="$arch" '{print ($2=="all") ? $1 : $1 ":" a}' <<<"$found" | sort -u)

stamp="$out/.ferry-sysroot-stamp"
want=$(printf '%s\n' "${pkgs[@]}" | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "sysroot-$arch: up to date ($out, ${#pkgs[@]} packages)"
  exit 0
fi

debs="$here/../build/debs-$arch"
mkdir -p "$debs"
echo "sysroot-$arch: downloading ${#pkgs[@]} packages"
(cd "$debs" && apt-get download -qq -o APT::Sandbox::User=root "${pkgs[@]}")
rm -rf "$out"; mkdir -p "$out"
for deb in "$debs"/*.deb; do dpkg -x "$deb" "$out"; done

# Absolute symlinks inside the sysroot (e.g. libfoo.so -> /lib/<triple>/libfoo.so.1) must point into it.
while IFS= read -r link; do
  target=$(readlink "$link")
  case "$target" in /*) ln -sfn "$out$target" "$link";; esac
done < <(find "$out" -type l)
# Debian 12 packages are not usr-merged yet; give the linker and qemu both layouts.
for d in lib lib64; do
  if [ -d "$out/$d" ] && [ ! -L "$out/$d" ]; then
    mkdir -p "$out/usr/$d"
    cp -an "$out/$d/." "$out/usr/$d/" 2>/dev/null || true
  fi
done
echo "$want" > "$stamp"
echo "sysroot-$arch: ready ($out)"

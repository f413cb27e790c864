#!/usr/bin/env bash
# Installs what Ferry needs on a Debian 12 host, from Debian's packages only: `apt-get update` once, then one
# `apt-get install -y`. With --cross it also builds the arm64 and armhf sysroots (toolchains/make-sysroot.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

cross=0
for a in "$@"; do
  case "$a" in
    --cross) cross=1;;
    *) echo "install-deps.sh: unknown option '$a' (known: --cross)" >&2; exit 2;;
  esac
done

sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi

packages=(
  # build
  build-essential cmake ninja-build pkg-config ccache file dpkg-dev git
  # libraries (headers + runtime)
  libpaho-mqttpp-dev libpaho-mqtt-dev liblmdb-dev lmdb-utils libmbedtls-dev librdkafka-dev libzstd-dev
  libtomlplusplus-dev libcli11-dev rapidjson-dev libexpected-dev libsqlite3-dev liblua5.4-dev libmicrohttpd-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  # libFuzzer targets (tests/fuzz)
  clang-14 libclang-rt-14-dev
  # the brokers the tests and the demo start on loopback, and tools they use
  mosquitto mosquitto-clients python3 python3-paho-mqtt iproute2 procps strace gnuplot-nox openssl
  # fault tests: ferryd's wall clock stepped by LD_PRELOAD (host only; never in the cross sysroots)
  faketime
  # the console's browser test (ConsoleBrowser.Chromium): headless Chromium driven over the DevTools protocol
  # on a pipe by plain Node (tests/integration/cdp_pipe.mjs; nothing from npm), and curl for its readiness wait
  chromium nodejs curl
)
if [ "$cross" = 1 ]; then
  packages+=(g++-aarch64-linux-gnu g++-arm-linux-gnueabihf qemu-user)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed' || missing+=("$p")
done

# A mirror mid-sync can fail one index file; retry, then go on with the lists apt has.
apt_update() {
  for i in 1 2 3; do $sudo apt-get update -qq && return 0; echo "apt-get update failed (try $i)" >&2; sleep 5; done
  echo "install-deps.sh: warning: apt-get update incomplete; using the package lists apt has" >&2
}
if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-deps.sh: installing ${missing[*]}"
  apt_update
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "install-deps.sh: host packages present"
fi

if [ "$cross" = 1 ]; then
  $sudo toolchains/make-sysroot.sh arm64
  $sudo toolchains/make-sysroot.sh armhf
fi

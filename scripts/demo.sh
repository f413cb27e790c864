#!/usr/bin/env bash
# The store-and-forward demo: installs what is missing, builds, then runs scripts/demo.py on loopback:
# a local and a central Mosquitto, ferryd, the sensor simulator, an uplink outage, the drain, a summary.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake --preset host-release >/dev/null
cmake --build --preset host-release --target ferryd ferry-sim ferry-receive ferryctl
exec python3 scripts/demo.py --build build/host-release "$@"

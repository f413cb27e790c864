#!/usr/bin/env bash
# The console in headless Chromium: ferryd (console on 0.0.0.0 with a token) and Mosquitto on free ports, then
# console_browser.mjs, which speaks the DevTools protocol over a pipe (cdp_pipe.mjs: nothing from npm).
# Skips (exit 77, printed reason) without chromium or node; scripts/install-deps.sh installs both, so CI runs it.
# Usage: console_browser_test.sh FERRYD BUILD_DIR
set -euo pipefail
ferryd=$1; build=$(cd "$2" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
# FERRY_REQUIRE_BROWSER=1 (set by scripts/test-all.sh, after install-deps.sh): a missing browser fails instead.
chromium=${CHROMIUM:-/usr/bin/chromium}
skip() { if [ "${FERRY_REQUIRE_BROWSER:-0}" = 1 ]; then echo "FAIL: $1 (FERRY_REQUIRE_BROWSER=1)"; exit 1; fi
         echo "SKIP: $1"; exit 77; }
[ -x "$chromium" ] || skip "$chromium not installed (Debian package chromium; scripts/install-deps.sh)"
command -v node >/dev/null || skip "node not installed (Debian package nodejs; scripts/install-deps.sh)"
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
dir=$(mktemp -d /tmp/ferry-console-browser.XXXXXX)
shots=$build/console-screenshots; mkdir -p "$shots"
bport=$(free_port); cport=$(free_port); mport=$(free_port)
cleanup() { [ -n "${fpid:-}" ] && kill "$fpid" 2>/dev/null; [ -n "${bpid:-}" ] && kill "$bpid" 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$bport" > "$dir/m.conf"
mosquitto -c "$dir/m.conf" > "$dir/mosquitto.log" 2>&1 & bpid=$!
head -c 24 /dev/urandom | base64 > "$dir/token"
cat > "$dir/ferry.toml" <<EOT
[gateway]
id = "gw-browser"
[storage]
path = "$dir/log"
map_size = "64MiB"
[ingest]
address = "tcp://127.0.0.1:$bport"
client_id = "ferryd-browser"
backoff.min = "100ms"
[metrics]
listen = "127.0.0.1:$mport"
[console]
enabled = true
listen = "0.0.0.0:$cport"
token_file = "$dir/token"
[[stream]]
name = "telemetry"
[[route]]
filter = "telemetry/{device}/#"
stream = "telemetry"
subject = "{device}"
content_type = "application/json"
EOT
"$ferryd" -c "$dir/ferry.toml" > "$dir/ferryd.log" 2>&1 & fpid=$!
# Wait until ferryd's console is on and its ingest subscribed (the broker drops earlier publishes), then store
# three events. 30 s: ferryd's start plus its first connect and subscribe, on a loaded machine.
up=0
for i in $(seq 1 600); do
  if grep -q "console on" "$dir/ferryd.log" && grep -q "ingest up" <(curl -s "http://127.0.0.1:$mport/healthz"); then up=1; break; fi
  kill -0 "$fpid" 2>/dev/null || break
  sleep 0.05
done
[ "$up" = 1 ] || { echo "FAIL: ferryd's console and ingest were not up within 30 s"; cat "$dir/ferryd.log"; exit 1; }
for d in 0 1 2; do mosquitto_pub -h 127.0.0.1 -p "$bport" -q 1 -t "telemetry/dev-$d/x" -m "{\"temp\":2$d}"; done
CHROMIUM=$chromium node "$here/console_browser.mjs" "http://127.0.0.1:$cport/" "$(cat "$dir/token")" "$bport" "$shots" ||
  { echo "ferryd log:"; cat "$dir/ferryd.log"; exit 1; }
echo "screenshots in $shots"

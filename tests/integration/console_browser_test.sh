#!/usr/bin/env bash
# The console in headless Chromium: ferryd (console on 0.0.0.0 with a token) and Mosquitto on free ports, then
# console_browser.mjs. Skips (exit 77, printed reason) without chromium, node, or puppeteer-core (installed
# once, pinned, into the build directory from npm).
# Usage: console_browser_test.sh FERRYD BUILD_DIR
set -euo pipefail
ferryd=$1; build=$(cd "$2" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
PUPPETEER_VERSION=25.16.0
chromium=${CHROMIUM:-/usr/bin/chromium}
[ -x "$chromium" ] || { echo "SKIP: $chromium not installed (Debian package chromium)"; exit 77; }
command -v node >/dev/null || { echo "SKIP: node not installed"; exit 77; }
prefix=$build/console-browser
if [ ! -f "$prefix/node_modules/puppeteer-core/package.json" ]; then
  mkdir -p "$prefix"
  npm install --silent --no-audit --no-fund --prefix "$prefix" "puppeteer-core@$PUPPETEER_VERSION" >/dev/null 2>&1 ||
    { echo "SKIP: npm could not install puppeteer-core@$PUPPETEER_VERSION"; exit 77; }
fi
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
# Wait (with a deadline) until ferryd is subscribed, then store three events.
for i in $(seq 1 200); do grep -q "console on" "$dir/ferryd.log" && curl -s -o /dev/null "http://127.0.0.1:$mport/healthz" && grep -q "ingest up" <(curl -s "http://127.0.0.1:$mport/healthz") && break; sleep 0.05; done
for d in 0 1 2; do mosquitto_pub -h 127.0.0.1 -p "$bport" -q 1 -t "telemetry/dev-$d/x" -m "{\"temp\":2$d}"; done
CHROMIUM=$chromium node "$here/console_browser.mjs" "http://127.0.0.1:$cport/" "$(cat "$dir/token")" "$bport" "$shots" "$prefix" ||
  { echo "ferryd log:"; cat "$dir/ferryd.log"; exit 1; }
echo "screenshots in $shots"

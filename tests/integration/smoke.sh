#!/usr/bin/env bash
# Smoke test of ferryd (native, or an ARM build under qemu-user): a local and a central Mosquitto on free
# loopback ports, ferryd between them, 200 events in, 200 events out. Usage: smoke.sh FERRYD [EMULATOR...]
set -euo pipefail
ferryd=$1
emu=${2:-}
work=$(mktemp -d /tmp/ferry-smoke.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do { kill -9 "$p"; wait "$p"; } 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {  # polls until the port accepts, up to 20 s
  for _ in $(seq 1 400); do
    if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$1),0.2)" 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  return 1
}

# The emulator prefix, word-split on purpose ("qemu-aarch64 -L /sysroot"); ferryd then runs as a direct child.
read -r -a ferryd_cmd <<< "$emu $ferryd"
"${ferryd_cmd[@]}" --version

local_port=$(free_port); central_port=$(free_port); metrics_port=$(free_port)
for p in $local_port $central_port; do
  printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 0\n' "$p" > "$work/m$p.conf"
  mosquitto -c "$work/m$p.conf" > "$work/m$p.log" 2>&1 & pids+=($!)
  wait_port "$p"
done
cat > "$work/ferry.toml" <<TOML
[gateway]
id = "smoke"
[storage]
path = "$work/log"
map_size = "64MiB"
[ingest]
address = "tcp://127.0.0.1:$local_port"
[metrics]
listen = "127.0.0.1:$metrics_port"
[[stream]]
name = "telemetry"
[[route]]
filter = "telemetry/{device}/#"
stream = "telemetry"
subject = "{device}"
content_type = "application/json"
[[uplink]]
name = "central"
address = "tcp://127.0.0.1:$central_port"
mode = "batched"
batch.max_delay = "20ms"
TOML
metric() { python3 - "$metrics_port" "$1" <<'PY'
import sys, urllib.request
body = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=2).read().decode()
for line in body.splitlines():
    if line.startswith(sys.argv[2] + " "): print(int(float(line.split()[-1]))); break
else: print(0)
PY
}
"${ferryd_cmd[@]}" --check-config "$work/ferry.toml"
mosquitto_sub -p "$central_port" -V mqttv5 -t 'ferry/#' -C 1000000 -W 120 -F '%l' > "$work/central.txt" 2>/dev/null & sub=$!; pids+=($sub)
"${ferryd_cmd[@]}" -c "$work/ferry.toml" > "$work/ferryd.log" 2>&1 & pids+=($!)
wait_port "$metrics_port" || { cat "$work/ferryd.log"; exit 1; }
# Publish only once ferryd is subscribed: a first-ever session gets nothing published before that.
for _ in $(seq 1 600); do   # up to 60 s under emulation
  [ "$(metric ferry_ingest_link_up)" = 1 ] && break
  sleep 0.1
done
[ "$(metric ferry_ingest_link_up)" = 1 ] || { echo "smoke: ferryd never subscribed"; cat "$work/ferryd.log"; exit 1; }
for i in $(seq 1 200); do echo "{\"id\":\"smoke-$i\",\"v\":$i}"; done |
  mosquitto_pub -p "$local_port" -V mqttv5 -q 1 -t telemetry/dev-1/engine -l
acked=0
for _ in $(seq 1 1200); do   # up to 60 s under emulation
  acked=$(metric 'ferry_uplink_acked_total{uplink="central",stream="telemetry"}')
  [ "$acked" -ge 200 ] && break
  sleep 0.05
done
echo "smoke: stored $(metric 'ferry_stream_stored_total{stream="telemetry"}'), acked by central $acked"
[ "$acked" -ge 200 ] || { cat "$work/ferryd.log"; exit 1; }
[ -s "$work/central.txt" ] || { echo "smoke: central received nothing"; exit 1; }
echo "smoke: ok ($(file -b "$ferryd" | cut -d, -f1-2))"

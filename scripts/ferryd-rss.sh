#!/usr/bin/env bash
# ferryd's memory and descriptors at rest, for docs/console.md ("Memory and sockets"; issue 14, acceptance 4).
#   scripts/ferryd-rss.sh FERRYD MODE [RUNS]     MODE: none (metrics and console off) | metrics | console
# Per run: a Mosquitto on a free port, ferryd subscribed to it with one stream and the MODE's HTTP listeners,
# 5 s of rest (one request to each listener after 4 s), then one line: VmRSS, RssAnon, RssFile (KiB, from
# /proc/PID/status), of RssAnon what lies in mappings of files (AnonInLibs: pages of shared libraries and of
# ferryd written at load, relocations and .data/.bss; from /proc/PID/smaps) and the rest (AnonOther: heap,
# thread stacks, anonymous mmaps), open descriptors, sockets among them, threads. FERRY_RSS_SMAPS=PREFIX keeps
# /proc/PID/smaps as PREFIX.MODE.RUN (per-library breakdown).
set -u
ferryd=$1; mode=$2; runs=${3:-3}
case "$mode" in none|metrics|console) ;; *) echo "mode: none, metrics or console" >&2; exit 2;; esac
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
for r in $(seq 1 "$runs"); do
  dir=$(mktemp -d /tmp/ferry-rss.XXXXXX)
  bport=$(free_port); mport=$(free_port); cport=$(free_port)
  printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$bport" > "$dir/m.conf"
  mosquitto -c "$dir/m.conf" > "$dir/mosquitto.log" 2>&1 & bpid=$!
  menabled=false; [ "$mode" != none ] && menabled=true
  cat > "$dir/ferry.toml" <<EOT
[gateway]
id = "gw-rss"
[storage]
path = "$dir/log"
map_size = "64MiB"
[ingest]
address = "tcp://127.0.0.1:$bport"
client_id = "ferryd-rss"
[metrics]
enabled = $menabled
listen = "127.0.0.1:$mport"
[[stream]]
name = "telemetry"
[[route]]
filter = "telemetry/{device}/#"
stream = "telemetry"
subject = "{device}"
EOT
  [ "$mode" = console ] && printf '[console]\nenabled = true\nlisten = "127.0.0.1:%s"\n' "$cport" >> "$dir/ferry.toml"
  sleep 0.3
  "$ferryd" -c "$dir/ferry.toml" > "$dir/ferryd.log" 2>&1 & fpid=$!
  sleep 4
  [ "$mode" != none ] && curl -s -o /dev/null "http://127.0.0.1:$mport/metrics"
  [ "$mode" = console ] && curl -s -o /dev/null "http://127.0.0.1:$cport/api/overview"
  sleep 1
  s=/proc/$fpid/status
  # A mapping's header line has an address range first; its "Anonymous:" line follows. A file mapping names a
  # path (/...); [heap], [stack], [vdso] and unnamed ones are not files.
  anon_libs=$(awk '/^[0-9a-f]+-[0-9a-f]+ /{file = ($6 ~ /^\//)} /^Anonymous:/{if (file) t += $2} END{print t+0}' \
    /proc/$fpid/smaps)
  printf '%s %s VmRSS=%s RssAnon=%s RssFile=%s AnonInLibs=%s AnonOther=%s fds=%s sockets=%s threads=%s\n' \
    "$(basename "$ferryd")" "$mode" \
    "$(awk '/^VmRSS/{print $2}' $s)" "$(awk '/^RssAnon/{print $2}' $s)" "$(awk '/^RssFile/{print $2}' $s)" \
    "$anon_libs" "$(( $(awk '/^RssAnon/{print $2}' $s) - anon_libs ))" \
    "$(ls /proc/$fpid/fd | wc -l)" "$(ls -l /proc/$fpid/fd | grep -c socket:)" "$(awk '/^Threads/{print $2}' $s)"
  [ -n "${FERRY_RSS_SMAPS:-}" ] && cp "/proc/$fpid/smaps" "$FERRY_RSS_SMAPS.$mode.$r"
  kill "$fpid"; wait "$fpid" 2>/dev/null; kill "$bpid"; wait "$bpid" 2>/dev/null
  rm -rf "$dir"
done

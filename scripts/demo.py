#!/usr/bin/env python3
"""Ferry's store-and-forward demo, on loopback, in about a minute.

Starts ferryd with its ingest listener (the devices' MQTT endpoint: each PUBACK after the commit), a central
Mosquitto with ferry-receive on it (deduplicating by event id, as the centre would) and ferry-sim (16 devices
on the firmware library) publishing to ferryd. Cuts the uplink for a while; in the middle of the outage cuts
ferryd's power (kill -9) and restarts it; shows the backlog growing and draining, then prints a summary in
which every event a device saw acknowledged is delivered. Cleans up after itself, Ctrl-C too.

One pipeline runs in ferryd (docs/processing.md): per-engine 10 s averages of the coolant temperature and an
over-temperature alert. Both streams have a higher uplink priority than the raw telemetry, so when the link
returns they reach the centre before the raw backlog: the demo checks that order in what the centre received,
and its summary shows the alerts raised and the bytes the summaries save over the raw readings.
--subscribe runs the older layout instead: devices publish to a local Mosquitto that ferryd subscribes to
(weaker: docs/guarantees.md).
"""
import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


PIPELINE = "engine10s"


class Arrivals:
    """The centre's id log (ferry-receive --id-log: each new id as it arrives), read as it grows. Raw events
    have device ids (dev-0001/b1/000000042); the pipeline's results and alerts start with its name."""

    def __init__(self, path):
        self.path, self.offset, self.partial = path, 0, ""
        self.order = []  # "raw" | "summary" | "alert", in arrival order
        self.raw = self.summaries = self.alerts = 0

    def poll(self):
        try:
            with open(self.path) as f:
                f.seek(self.offset)
                chunk = f.read()
                self.offset = f.tell()
        except OSError:
            return
        lines = (self.partial + chunk).split("\n")
        self.partial = lines.pop()
        for line in lines:
            if not line:
                continue
            if not line.startswith(PIPELINE + "/"):
                kind = "raw"
                self.raw += 1
            elif "/alert/" in line:
                kind = "alert"
                self.alerts += 1
            else:
                kind = "summary"
                self.summaries += 1
            self.order.append(kind)


class Demo:
    def __init__(self, build, events_per_s, run_s, cut_at, cut_for, subscribe=False):
        self.build = build
        self.subscribe = subscribe
        self.rate, self.run_s, self.cut_at, self.cut_for = events_per_s, run_s, cut_at, cut_for
        self.overtemp = 105  # C; the simulated coolant temperatures wander between 60 and 112
        self.dir = tempfile.mkdtemp(prefix="ferry-demo.")
        os.chmod(self.dir, 0o755)  # the brokers run as the mosquitto user
        self.procs = {}
        self.delivered_at_cut = 0
        self.local_port, self.central_port, self.metrics_port = free_port(), free_port(), free_port()
        self.arrivals = Arrivals(self.path("delivered.txt"))

    def path(self, name):
        return os.path.join(self.dir, name)

    def bin(self, name):
        for sub in ("hub", "central", "firmware/sim"):
            p = os.path.join(self.build, sub, name)
            if os.path.exists(p):
                return p
        sys.exit(f"demo: {name} not found under {self.build}: build it first (scripts/demo.sh does)")

    def spawn(self, name, argv):
        log = open(self.path(name + ".log"), "ab")
        self.procs[name] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        return self.procs[name]

    def stop(self, name, sig=signal.SIGTERM, timeout=10):
        p = self.procs.pop(name, None)
        if p and p.poll() is None:
            p.send_signal(sig)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def broker(self, name, port, persistent):
        conf = self.path(name + ".conf")
        with open(conf, "w") as f:
            f.write(f"listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\n")
            if persistent:
                os.makedirs(self.path(name + "-db"), exist_ok=True)
                # Mosquitto started as root drops to its own user: it must be able to write its database.
                os.chmod(self.path(name + "-db"), 0o777)
                f.write(f"persistence true\npersistence_location {self.path(name + '-db')}/\n")
            else:
                f.write("persistence false\n")
        self.spawn(name, ["mosquitto", "-c", conf])
        if not wait_port(port):
            sys.exit(f"demo: {name} broker did not start: see {self.path(name + '.log')}")

    def metrics(self):
        try:
            body = urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2).read().decode()
        except OSError:
            return {}
        out = {}
        for line in body.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                out[name] = float(value)
        return out

    def receiver(self):
        try:
            with open(self.path("receiver.json")) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def write_config(self):
        with open(self.path("ferry.toml"), "w") as f:
            f.write(f"""[gateway]
id = "demo-gw"
[storage]
path = "{self.path('log')}"
map_size = "512MiB"
[ingest]
mode = "{'subscribe' if self.subscribe else 'listen'}"
listen.address = "127.0.0.1:{self.local_port}"
address = "tcp://127.0.0.1:{self.local_port}"
durability = "batch"
[metrics]
listen = "127.0.0.1:{self.metrics_port}"
[[stream]]
name = "telemetry"
[[stream]]
name = "summaries"
priority = 10
[[stream]]
name = "alerts"
priority = 20
[[stream]]
name = "dead_letter"
[[route]]
filter = "telemetry/{{device}}/#"
stream = "telemetry"
subject = "{{device}}"
content_type = "application/json"
dead_letter = "dead_letter"
id_json_field = "id"
time_json_field = "ts"
time_format = "unix_ms"
[[uplink]]
name = "central"
address = "tcp://127.0.0.1:{self.central_port}"
mode = "batched"
streams = ["telemetry", "summaries", "alerts"]  # listed raw first: the priorities decide the order
topic = "ferry/{{gateway}}/{{stream}}"
batch.max_events = 1000
batch.max_delay = "200ms"
backoff.min = "200ms"
backoff.max = "2s"
# Per-engine 10 s averages and an over-temperature alert (docs/processing.md); the streams' priorities send
# both before the raw backlog.
[[pipeline]]
name = "{PIPELINE}"
input = ["telemetry"]
output = "summaries"
dead_letter = "dead_letter"
[[pipeline.step]]
type = "filter"
where = "temp_c ~= nil"
[[pipeline.step]]
type = "window"
window = "tumbling"
size = "10s"
field = "temp_c"
aggregates = ["avg", "max"]
allowed_lateness = "1s"
idle_timeout = "15s"
[[pipeline.step]]
type = "threshold"
name = "overtemp"
where = "max >= {self.overtemp}"
output = "alerts"
""")

    def start_ferryd(self):
        self.spawn("ferryd", [self.bin("ferryd"), "-c", self.path("ferry.toml")])
        deadline = time.monotonic() + 30
        while self.metrics().get("ferry_ingest_link_up") != 1:
            if time.monotonic() > deadline or self.procs["ferryd"].poll() is not None:
                sys.exit(f"demo: ferryd did not come up: see {self.path('ferryd.log')}")
            time.sleep(0.05)

    def power_cut(self):
        """kill -9 of ferryd under load, then a restart: what a power cut does to the process."""
        p = self.procs.pop("ferryd")
        p.kill()
        p.wait()
        t0 = time.monotonic()
        self.start_ferryd()
        self.power_cut_restart_s = time.monotonic() - t0

    def status(self, t, phase):
        m, r = self.metrics(), self.receiver()
        self.arrivals.poll()
        a = self.arrivals
        link = "up" if m.get('ferry_uplink_link_up{uplink="central"}', 0) == 1 else "DOWN"
        stored = int(m.get('ferry_stream_stored_total{stream="telemetry"}', 0))
        backlog = int(m.get('ferry_uplink_backlog_events{uplink="central",stream="telemetry"}', 0))
        line = (f"\r t={t:5.1f}s  {phase:<26} uplink {link:<4}  ingested {int(m.get('ferry_ingest_messages_total', 0)):>7}"
                f"  stored {stored:>7}  backlog {backlog:>7}  delivered {a.raw:>7} + {a.summaries} summaries,"
                f" {a.alerts} alerts")
        if sys.stdout.isatty():
            sys.stdout.write(line + "   ")
        elif int(t * 4) % 8 == 0:  # a log, not a terminal: one line every 2 s
            sys.stdout.write(line.lstrip("\r") + "\n")
        sys.stdout.flush()
        return m, r

    def run(self):
        print(f"Ferry demo in {self.dir}")
        where = "local broker" if self.subscribe else "ferryd's ingest listener"
        print(f"  devices publish to {where} 127.0.0.1:{self.local_port}, central broker 127.0.0.1:{self.central_port}, "
              f"metrics http://127.0.0.1:{self.metrics_port}/metrics")
        if self.subscribe:
            self.broker("local", self.local_port, persistent=False)
        self.broker("central", self.central_port, persistent=True)
        self.spawn("receiver", [self.bin("ferry-receive"), "-a", f"tcp://127.0.0.1:{self.central_port}",
                                "-t", "ferry/#", "--id-log", self.path("delivered.txt"),
                                "--status-file", self.path("receiver.json")])
        self.write_config()
        self.start_ferryd()
        print(f"  ferryd up; {self.rate} events/s from 16 simulated devices for {self.run_s} s; "
              f"uplink cut at t={self.cut_at}s for {self.cut_for}s\n")
        count = int(self.rate * self.run_s)
        self.spawn("sim", [self.bin("ferry-sim"), "--port", str(self.local_port), "--devices", "16",
                           "--rate", str(self.rate), "--count", str(count), "--seed", "42", "--dup-rate", "0.01",
                           "--clock-faults", "0.125", "--state-dir", self.path("sim-state"),
                           "--id-log", self.path("produced.txt")])
        t0 = time.monotonic()
        phase, cut_done, restored_at, drained_at, backlog_at_restore = "live", False, None, None, 0
        power_cut_at, self.power_cut_done = self.cut_at + self.cut_for / 2, False
        stored_base = 0  # ferryd's counters restart with it
        while True:
            t = time.monotonic() - t0
            if not self.power_cut_done and t >= power_cut_at:
                stored_base += int(self.metrics().get('ferry_stream_stored_total{stream="telemetry"}', 0))
                print(f"\n  POWER CUT: kill -9 of ferryd at t={t:.1f}s (16 devices publishing), restarting")
                self.power_cut()
                self.power_cut_done = True
                phase = "UPLINK CUT; after kill -9"
            if not cut_done and t >= self.cut_at:
                self.arrivals.poll()
                self.delivered_at_cut = self.arrivals.raw
                self.stop("central")
                phase, cut_done = "UPLINK CUT (outage)", True
                print()
            if cut_done and restored_at is None and t >= self.cut_at + self.cut_for:
                m = self.metrics()
                backlog_at_restore = stored_base + int(m.get('ferry_stream_stored_total{stream="telemetry"}', 0))
                # What waits besides the raw backlog (the uplink's gauges lag by up to a second).
                self.derived_waiting = sum(int(m.get(f'ferry_uplink_backlog_events{{uplink="central",stream="{s}"}}', 0))
                                           for s in ("summaries", "alerts"))
                self.arrivals.poll()
                self.arrived_before_restore = len(self.arrivals.order)
                self.broker("central", self.central_port, persistent=True)
                restored_at, phase = time.monotonic(), "link back: draining"
                print()
            m, r = self.status(t, phase)
            delivered = self.arrivals.raw
            stored = stored_base + m.get('ferry_stream_stored_total{stream="telemetry"}', 0)
            # Drained: everything stored up to the moment the link came back has reached the centre.
            if restored_at and drained_at is None and delivered >= backlog_at_restore:
                drained_at = time.monotonic()
                phase = "drained; live again"
            if self.procs["sim"].poll() is not None and drained_at and delivered >= stored > 0:
                break
            if t > self.run_s + self.cut_for + 60:
                print("\ndemo: timed out waiting for the drain")
                break
            time.sleep(0.25)
        self.backlog_events = max(backlog_at_restore - self.delivered_at_cut, 0)
        print("\n")
        time.sleep(1.0)  # let the receiver's last status and id log flush (it rewrites them every 200 ms)
        self.arrivals.poll()
        self.summary(restored_at, drained_at)

    def priority_order(self):
        """After the link came back: how many raw events reached the centre before the last of the summaries and
        alerts that were waiting. None when the demo did not get that far."""
        waiting = getattr(self, "derived_waiting", None)
        if waiting is None or not hasattr(self, "arrived_before_restore"):
            return None
        raw_before, derived = 0, 0
        for kind in self.arrivals.order[self.arrived_before_restore:]:
            if derived >= waiting:
                break
            if kind == "raw":
                raw_before += 1
            else:
                derived += 1
        return (waiting, raw_before) if derived >= waiting else None

    def sql_row(self, query):
        """One row of `ferryctl sql` over the running ferryd's log, as numbers."""
        out = subprocess.run([self.bin("ferryctl"), "-c", self.path("ferry.toml"), "sql", "--format", "csv", query],
                             capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            print(f"demo: ferryctl sql: {out.stderr.strip()}")
            return None
        last = out.stdout.strip().splitlines()[-1].split(",")
        return [int(float(v)) if v else 0 for v in last]

    def summary(self, restored_at, drained_at):
        m, r = self.metrics(), self.receiver()
        produced = [l.strip() for l in open(self.path("produced.txt")) if l.strip()]
        delivered = set(l.strip() for l in open(self.path("delivered.txt"))
                        if l.strip() and not l.startswith(PIPELINE + "/"))  # raw events only
        lost = [i for i in produced if i not in delivered]
        stored = int(m.get('ferry_stream_stored_total{stream="telemetry"}', 0))
        sent_bytes = m.get('ferry_uplink_bytes_total{uplink="central"}', 0)
        ingest_dups = int(m.get('ferry_ingest_duplicates_dropped_total{stream="telemetry"}', 0))
        dead = int(m.get('ferry_stream_stored_total{stream="dead_letter"}', 0))
        payload = os.path.getsize(self.path("log/data.mdb")) if os.path.exists(self.path("log/data.mdb")) else 0
        rows = [
            ("produced (unique ids, acked by " + ("the local broker)" if self.subscribe else "ferryd: on disk)"),
             f"{len(produced)}"),
            ("stored by ferryd since its last start", f"{stored}"),
            ("power cut (kill -9 under load): restart to ready",
             f"{self.power_cut_restart_s:.2f} s" if getattr(self, "power_cut_restart_s", None) else "n/a"),
            ("dead-lettered", f"{dead}"),
            ("delivered to the centre (unique ids)", f"{len(delivered)}"),
            ("duplicates dropped (ferryd ingest / centre)", f"{ingest_dups} / {int(r.get('duplicates', 0))}"),
            ("lost", f"{len(lost)}"),
            ("uplink bytes per event (zstd batches, MQTT payload)",
             f"{sent_bytes / max(len(delivered), 1):.1f}"),
            ("backlog when the link came back (events)", f"{self.backlog_events}"),
            ("drain time of that backlog",
             f"{drained_at - restored_at:.1f} s" if restored_at and drained_at else "n/a"),
            ("log file on disk", f"{payload / 1e6:.1f} MB"),
        ]
        # The pipeline, from the log (its counters restarted with ferryd after the power cut).
        raw = self.sql_row("SELECT count(*), sum(length(payload)) FROM telemetry "
                           "WHERE json_extract(payload, '$.temp_c') IS NOT NULL")
        summ = self.sql_row("SELECT count(*), sum(length(payload)) FROM summaries")
        alerts = self.sql_row("SELECT count(*) FROM alerts")
        if raw and summ and alerts:
            saved = raw[1] - summ[1]
            rows += [
                (f"over-temperature alerts raised (10 s max >= {self.overtemp} C)", f"{alerts[0]}"),
                ("10 s engine summaries written", f"{summ[0]}"),
                (f"bytes: {raw[0]} engine readings -> the summaries", f"{raw[1]} -> {summ[1]}"),
                ("bytes saved by sending summaries instead",
                 f"{saved} ({100.0 * saved / max(raw[1], 1):.1f} %)"),
            ]
        order = self.priority_order()
        self.order_ok = order is not None and order[1] == 0
        rows.append(("link back: summaries + alerts waiting / raw events sent before them",
                     f"{order[0]} / {order[1]}" if order else "n/a"))
        width = max(len(a) for a, _ in rows)
        print("Summary")
        print("-" * (width + 14))
        for a, b in rows:
            print(f"{a:<{width}}  {b:>10}")
        print("-" * (width + 14))
        if lost:
            print(f"LOST {len(lost)} events, e.g. {lost[:3]}")
        if not self.order_ok:
            print("PRIORITY: the summaries and alerts waiting when the link came back did not all reach the centre "
                  "before the raw backlog")
        self.lost = len(lost)

    def cleanup(self):
        for name in list(self.procs):
            self.stop(name, timeout=5)
        shutil.rmtree(self.dir, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--build", default="build/host-release", help="build directory with ferryd, ferry-sim, ...")
    ap.add_argument("--rate", type=int, default=2000, help="events/s from the simulator")
    ap.add_argument("--seconds", type=int, default=40, help="how long the simulator runs")
    ap.add_argument("--cut-at", type=int, default=8, help="when the uplink is cut (s)")
    ap.add_argument("--cut-for", type=int, default=20, help="how long the outage lasts (s)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs, the event log)")
    ap.add_argument("--subscribe", action="store_true",
                    help="devices publish to a local Mosquitto that ferryd subscribes to (the weaker layout)")
    args = ap.parse_args()
    if shutil.which("mosquitto") is None and not os.path.exists("/usr/sbin/mosquitto"):
        sys.exit("demo: mosquitto is not installed (scripts/install-deps.sh installs it)")
    os.environ["PATH"] += ":/usr/sbin"
    demo = Demo(args.build, args.rate, args.seconds, args.cut_at, args.cut_for, args.subscribe)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(130))
    code = 1
    try:
        demo.run()
        code = 0 if getattr(demo, "lost", 1) == 0 and getattr(demo, "order_ok", False) else 1
    except KeyboardInterrupt:
        print("\ndemo: interrupted; cleaning up")
        code = 130
    finally:
        if args.keep:
            for name in list(demo.procs):
                demo.stop(name, timeout=5)
            print(f"demo: kept {demo.dir}")
        else:
            demo.cleanup()
    sys.exit(code)


if __name__ == "__main__":
    main()

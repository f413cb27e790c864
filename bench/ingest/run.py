#!/usr/bin/env python3
"""Ingest rate per durability mode and uplink bytes per event per uplink mode, on the same simulator telemetry.

    python3 bench/ingest/run.py [--build build/host-release] [--events 50000]

1. For ingest.durability = batch and = sync: a local Mosquitto, ferryd (no uplink), ferry-sim publishing
   --events as fast as it can; the rate is events / (time from the simulator's start until ferryd has stored
   them all). The simulator's own produce rate is printed beside it: it bounds what batch mode can show.
2. For uplink mode = per_event and = batched: the same events stored during an outage, then the central broker
   comes back; drain time until ferry-receive has every id, and the bytes on the wire of ferryd's upstream
   TCP connection from `ss -ti` (bytes_sent + bytes_received + 52 bytes of TCP/IP header per segment each way,
   loopback with timestamps), per delivered event.
"""
import argparse, json, os, re, shutil, signal, socket, subprocess, sys, tempfile, time, urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait(pred, timeout, step=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


class Run:
    def __init__(self, build):
        self.build, self.dir, self.procs = build, tempfile.mkdtemp(prefix="ferry-bench."), []
        os.chmod(self.dir, 0o755)

    def bin(self, name):
        for sub in ("hub", "central", "firmware/sim"):
            p = os.path.join(self.build, sub, name)
            if os.path.exists(p):
                return p
        sys.exit(f"{name} not built in {self.build}")

    def spawn(self, argv, log):
        p = subprocess.Popen(argv, stdout=open(os.path.join(self.dir, log), "ab"), stderr=subprocess.STDOUT)
        self.procs.append(p)
        return p

    def broker(self, port, name, persistent=False):
        conf = os.path.join(self.dir, name + ".conf")
        db = os.path.join(self.dir, name + "-db")
        os.makedirs(db, exist_ok=True)
        os.chmod(db, 0o777)
        with open(conf, "w") as f:
            f.write(f"listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\n")
            f.write(f"persistence true\npersistence_location {db}/\n" if persistent else "persistence false\n")
        p = self.spawn(["/usr/sbin/mosquitto", "-c", conf], name + ".log")
        wait(lambda: self._accepts(port), 10)
        return p

    @staticmethod
    def _accepts(port):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return True
        except OSError:
            return False

    def metric(self, port, sample):
        try:
            body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
        except OSError:
            return -1
        for line in body.splitlines():
            if line.startswith(sample + " "):
                return float(line.split()[-1])
        return 0

    def ferryd(self, local, central, metrics, durability, mode):
        toml = os.path.join(self.dir, f"ferry-{durability}-{mode}.toml")
        log = os.path.join(self.dir, f"log-{durability}-{mode}")
        with open(toml, "w") as f:
            f.write(f'[gateway]\nid = "bench"\n[storage]\npath = "{log}"\nmap_size = "1GiB"\n'
                    f'[ingest]\naddress = "tcp://127.0.0.1:{local}"\ndurability = "{durability}"\n'
                    f'[metrics]\nlisten = "127.0.0.1:{metrics}"\n'
                    '[[stream]]\nname = "telemetry"\n'
                    '[[route]]\nfilter = "telemetry/{device}/#"\nstream = "telemetry"\nsubject = "{device}"\n'
                    'content_type = "application/json"\nid_json_field = "id"\n')
            if central:
                f.write(f'[[uplink]]\nname = "central"\naddress = "tcp://127.0.0.1:{central}"\nmode = "{mode}"\n'
                        'inflight = 64\nbatch.max_events = 1000\nbatch.max_delay = "50ms"\n'
                        'backoff.min = "50ms"\nbackoff.max = "200ms"\n')
        p = self.spawn([self.bin("ferryd"), "-c", toml], f"ferryd-{durability}-{mode}.log")
        wait(lambda: self.metric(metrics, "ferry_ingest_link_up") == 1, 20)
        return p

    def sim(self, port, events, seed):
        out = subprocess.run([self.bin("ferry-sim"), "--port", str(port), "--count", str(events), "--rate", "0",
                              "--devices", "16", "--payload-size", "200", "--seed", str(seed), "--state-dir",
                              os.path.join(self.dir, "sim-state"), "--id-log", os.path.join(self.dir, f"ids-{seed}.txt"),
                              "--quiet"], capture_output=True, text=True, timeout=600)
        m = re.search(r"produce_rate=(\d+)", out.stderr + out.stdout)
        return int(m.group(1)) if m else 0

    def stop_all(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        self.procs = []


def wire_bytes(central_port, pid):
    """Bytes on the wire, both directions, of `pid`'s TCP connections to the central broker."""
    out = subprocess.run(["ss", "-tinpH", "dst", f"127.0.0.1:{central_port}"], capture_output=True, text=True).stdout
    total = 0
    blocks = out.split("\n")
    for i, line in enumerate(blocks):
        if f"pid={pid}," not in line:
            continue
        info = blocks[i + 1] if i + 1 < len(blocks) else ""
        get = lambda k: int(re.search(rf"\b{k}:(\d+)", info).group(1)) if re.search(rf"\b{k}:(\d+)", info) else 0
        total += get("bytes_sent") + get("bytes_received") + 52 * (get("segs_out") + get("segs_in"))
    return total


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build/host-release")
    ap.add_argument("--events", type=int, default=50000)
    ap.add_argument("--json", help="also write the results here")
    a = ap.parse_args()
    results = {}
    r = Run(a.build)
    try:
        for durability in ("batch", "sync"):
            local, metrics = free_port(), free_port()
            r.broker(local, f"local-{durability}")
            r.ferryd(local, None, metrics, durability, "none")
            t0 = time.monotonic()
            produce = r.sim(local, a.events, 1)
            wait(lambda: r.metric(metrics, 'ferry_stream_stored_total{stream="telemetry"}') >= a.events, 600)
            secs = time.monotonic() - t0
            results[f"ingest_{durability}_events_per_s"] = round(a.events / secs)
            results[f"ingest_{durability}_sim_produce_rate"] = produce
            print(f"ingest durability={durability:<5}  {a.events / secs:>9.0f} events/s stored "
                  f"(simulator produced at {produce}/s)")
            r.stop_all()
        for mode in ("per_event", "batched"):
            local, central, metrics = free_port(), free_port(), free_port()
            r.broker(local, f"local-{mode}")
            fd = r.ferryd(local, central, metrics, "batch", mode)
            r.sim(local, a.events, 2)
            wait(lambda: r.metric(metrics, 'ferry_stream_stored_total{stream="telemetry"}') >= a.events, 600)
            r.broker(central, f"central-{mode}", persistent=True)
            status = os.path.join(r.dir, f"rx-{mode}.json")
            r.spawn([r.bin("ferry-receive"), "-a", f"tcp://127.0.0.1:{central}", "-t", "ferry/#", "-i", f"rx-{mode}",
                     "--status-file", status], f"rx-{mode}.log")
            t0 = time.monotonic()

            def delivered():
                try:
                    return json.load(open(status)).get("unique", 0)
                except (OSError, ValueError):
                    return 0
            # The receiver subscribes a moment after the broker starts; the uplink may have sent by then, so
            # the count is taken from ferryd's acks, and the receiver confirms the ids it got.
            wait(lambda: r.metric(metrics, 'ferry_uplink_acked_total{uplink="central",stream="telemetry"}') >= a.events, 600)
            drain = time.monotonic() - t0
            wire = wire_bytes(central, fd.pid)
            payload = r.metric(metrics, 'ferry_uplink_bytes_total{uplink="central"}')
            results[f"uplink_{mode}_drain_s"] = round(drain, 2)
            results[f"uplink_{mode}_wire_bytes_per_event"] = round(wire / a.events, 1)
            results[f"uplink_{mode}_payload_bytes_per_event"] = round(payload / a.events, 1)
            print(f"uplink mode={mode:<9}  drain {drain:6.2f} s ({a.events / drain:>8.0f} events/s)  "
                  f"wire {wire / a.events:7.1f} B/event  MQTT payload {payload / a.events:7.1f} B/event  "
                  f"(receiver saw {delivered()})")
            r.stop_all()
        if "uplink_batched_wire_bytes_per_event" in results and results["uplink_per_event_wire_bytes_per_event"]:
            ratio = results["uplink_batched_wire_bytes_per_event"] / results["uplink_per_event_wire_bytes_per_event"]
            print(f"batched / per_event wire bytes: {ratio:.3f}")
        if a.json:
            with open(a.json, "w") as f:
                json.dump(results, f, indent=2)
    finally:
        r.stop_all()
        shutil.rmtree(r.dir, ignore_errors=True)


if __name__ == "__main__":
    main()

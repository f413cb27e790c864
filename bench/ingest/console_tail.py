#!/usr/bin/env python3
"""Ingest with the console closed vs open with a live tail attached (issue 14, acceptance 3: at most 5 % lower).

    python3 bench/ingest/console_tail.py [--build build/host-release] [--events 100000] [--rounds 8]

Two ferryds run side by side for the whole bench, each with its ingest listener (durability batch, no uplink,
metrics on): "closed" with console.enabled = false, "open" with the console on, a client reading
/api/tail?stream=telemetry (Server-Sent Events: every stored event is encoded and sent to it) and /api/overview
fetched every 5 s, as the page does. The load is mqtt_blast (bench/compare: raw MQTT 5, 16 connections x 512
in flight, about 0.5 us of CPU per event; ferry-sim costs 100+ us per event itself and its noise swamps the
effect). Each round blasts --events into one ferryd, then the same into the other; the order alternates
(closed-open, open-closed, ...) so that a drift in the machine's load hits both alike.

Per round and ferryd: events/s (mqtt_blast's, from its first CONNECT to the last PUBACK, and a PUBACK is sent
after the commit that holds the event) and ferryd's CPU per event (the sum of its threads' run time from
/proc/PID/task/*/schedstat, in ns, from before the blast until the tail has received every event: what the tail
costs is counted, as its encoding may lag the ingest). CPU time is much steadier than wall time on a shared
machine: it does not count time spent waiting for a core. Printed: every round, then per configuration the
median, min and max, and the median of the paired differences (open vs closed of the same round).
--control runs the same with the second ferryd closed too (A/A): the differences it prints are the harness's
own noise on this machine at that time, the band within which the open/closed difference cannot be told.
"""
import argparse, json, os, re, socket, statistics, subprocess, sys, threading, time, urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import Run, free_port, wait  # noqa: E402


def cpu_ns(pid):
    """ferryd's CPU time so far: the sum over its live threads of schedstat's run time (ns)."""
    total = 0
    task_dir = f"/proc/{pid}/task"
    for tid in os.listdir(task_dir):
        try:
            with open(f"{task_dir}/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except OSError:
            pass  # the thread ended between listdir and open
    return total


class TailClient:
    """Reads /api/tail as HTTP/1.0 (no chunked framing: the body is the SSE text). `covered`: records sent plus
    records the tail said it skipped (it sends at most 1,000 a second, docs/console.md): once it reaches the
    stream's count, the tail has caught up."""
    SKIPPED = re.compile(rb'event: skipped\ndata: \{"from":(\d+),"to":(\d+)\}')

    def __init__(self, port):
        self.records = self.skipped = 0
        self.sock = socket.create_connection(("127.0.0.1", port), 10)
        self.sock.settimeout(None)  # the tail is quiet while the other ferryd is measured
        self.sock.sendall(b"GET /api/tail?stream=telemetry&n=0 HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    @property
    def covered(self):
        return self.records + self.skipped

    def _read(self):
        buf = b""
        while True:
            try:
                b = self.sock.recv(1 << 20)
            except OSError:
                return
            if not b:
                return
            buf += b
            end = buf.rfind(b"\n\n")
            if end < 0:
                continue
            done, buf = buf[:end + 2], buf[end + 2:]
            self.records += done.count(b"event: record\n")
            for m in self.SKIPPED.finditer(done):
                self.skipped += int(m.group(2)) - int(m.group(1)) + 1

    def close(self):
        self.sock.close()

    class Absent:
        """--control: no console, no tail."""
        covered, records = float("inf"), 0

        def close(self):
            pass


class ConsoleBench(Run):
    def start_ferryd(self, tag, console_port):
        listen, metrics = free_port(), free_port()
        toml = os.path.join(self.dir, f"ferry-{tag}.toml")
        with open(toml, "w") as f:
            f.write(f'[gateway]\nid = "bench"\n[storage]\npath = "{self.dir}/log-{tag}"\nmap_size = "4GiB"\n'
                    f'[ingest]\nmode = "listen"\nlisten.address = "127.0.0.1:{listen}"\ndurability = "batch"\n'
                    f'[metrics]\nlisten = "127.0.0.1:{metrics}"\n[log]\nlevel = "warn"\n'
                    '[[stream]]\nname = "telemetry"\nmax_age = "0"\n'
                    '[[route]]\nfilter = "telemetry/{device}/#"\nstream = "telemetry"\nsubject = "{device}"\n'
                    'content_type = "application/json"\nid_json_field = "id"\n')
            if console_port:
                f.write(f'[console]\nenabled = true\nlisten = "127.0.0.1:{console_port}"\n')
        p = self.spawn([self.bin("ferryd"), "-c", toml], f"ferryd-{tag}.log")
        if not wait(lambda: self._accepts(listen), 30):
            sys.exit(f"ferryd {tag} did not listen on {listen}: see {self.dir}/ferryd-{tag}.log")
        return p, listen, metrics

    def blast(self, port, events, run):
        exe = os.path.join(self.build, "bench", "compare", "mqtt_blast")
        out = subprocess.run([exe, "--port", str(port), "--count", str(events), "--run", run],
                             capture_output=True, text=True, timeout=900)
        m = re.search(r"eps=(\d+)", out.stdout)
        if out.returncode != 0 or not m or "refused=0" not in out.stdout:
            sys.exit(f"mqtt_blast failed: {out.stdout} {out.stderr}")
        return float(m.group(1))


def spread(xs):
    return f"median {statistics.median(xs):9.1f}  min {min(xs):9.1f}  max {max(xs):9.1f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build/host-release")
    ap.add_argument("--events", type=int, default=100000)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--json", help="also write every round's figures here")
    ap.add_argument("--control", action="store_true",
                    help="the second ferryd without console and tail too: the harness's own spread (A/A)")
    a = ap.parse_args()
    r = ConsoleBench(a.build)
    stop = threading.Event()
    try:
        closed_p, closed_listen, closed_metrics = r.start_ferryd("closed", 0)
        cport = free_port()
        open_p, open_listen, open_metrics = r.start_ferryd("open", 0 if a.control else cport)
        if a.control:
            tail = TailClient.Absent()
        elif not wait(lambda: r._accepts(cport), 10):
            sys.exit("the console did not listen")
        else:
            tail = TailClient(cport)

        def overview():
            while not stop.wait(5):
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{cport}/api/overview", timeout=5).read()
                except OSError:
                    pass
        if not a.control:
            threading.Thread(target=overview, daemon=True).start()

        rows = []
        stored = {"closed": 0, "open": 0}
        # Warm-up: one unmeasured blast into each (page cache, LMDB's first pages, libmicrohttpd loaded).
        for tag, port in (("closed", closed_listen), ("open", open_listen)):
            r.blast(port, a.events // 4, f"warm-{tag}")
            stored[tag] += a.events // 4
        if not wait(lambda: tail.covered >= stored["open"], 60):
            sys.exit(f"the tail covered {tail.covered} of {stored['open']} records")
        print(f"{a.rounds} rounds of {a.events} events into each ferryd; load average "
              f"{os.getloadavg()[0]:.1f} at the start", flush=True)
        for i in range(a.rounds):
            order = ("closed", "open") if i % 2 == 0 else ("open", "closed")
            row = {"round": i}
            for tag in order:
                pid, port = (closed_p.pid, closed_listen) if tag == "closed" else (open_p.pid, open_listen)
                metrics = closed_metrics if tag == "closed" else open_metrics
                c0, t0, k0 = cpu_ns(pid), tail.records, r.metric(metrics, "ferry_storage_commits_total")
                eps = r.blast(port, a.events, f"r{i}-{tag}")
                stored[tag] += a.events
                if tag == "open" and not wait(lambda: tail.covered >= stored["open"], 120):
                    sys.exit(f"round {i}: the tail covered {tail.covered} of {stored['open']} records")
                commits = r.metric(metrics, "ferry_storage_commits_total") - k0
                row[tag] = {"events_per_s": eps, "cpu_us_per_event": (cpu_ns(pid) - c0) / 1e3 / a.events,
                            "events_per_commit": a.events / max(commits, 1)}
                if tag == "open":
                    row["tail_records"] = tail.records - t0
            row["load"] = os.getloadavg()[0]
            rows.append(row)
            print(f"round {i}: closed {row['closed']['events_per_s']:8.0f} ev/s {row['closed']['cpu_us_per_event']:6.2f} us/ev"
                  f" {row['closed']['events_per_commit']:5.0f} ev/commit"
                  f"   open+tail {row['open']['events_per_s']:8.0f} ev/s {row['open']['cpu_us_per_event']:6.2f} us/ev"
                  f" {row['open']['events_per_commit']:5.0f} ev/commit"
                  f"   (tail sent {row['tail_records']}; load {row['load']:.1f})", flush=True)
        tail.close()

        def col(tag, k):
            return [x[tag][k] for x in rows]
        print("\nevents/s            closed     " + spread(col("closed", "events_per_s")))
        print("events/s            open+tail  " + spread(col("open", "events_per_s")))
        print("CPU us per event    closed     " + spread(col("closed", "cpu_us_per_event")))
        print("CPU us per event    open+tail  " + spread(col("open", "cpu_us_per_event")))
        summary = {}
        for k, name in (("events_per_s", "events/s"), ("cpu_us_per_event", "CPU per event")):
            c, o = statistics.median(col("closed", k)), statistics.median(col("open", k))
            paired = [100 * (x["open"][k] - x["closed"][k]) / x["closed"][k] for x in rows]
            summary[k] = {"closed_median": c, "open_median": o, "medians_pct": 100 * (o - c) / c,
                          "paired_pct": paired, "paired_median_pct": statistics.median(paired)}
            print(f"{name:<16} open vs closed: medians {100 * (o - c) / c:+.1f} %; paired differences: median "
                  f"{statistics.median(paired):+.1f} %, from {min(paired):+.1f} to {max(paired):+.1f} %")
        if a.json:
            with open(a.json, "w") as f:
                json.dump({"events": a.events, "control": a.control, "rounds": rows, "summary": summary}, f, indent=1)
    finally:
        stop.set()
        r.stop_all()
        import shutil
        shutil.rmtree(r.dir, ignore_errors=True)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Ingest events/s with the console closed vs open with a live tail attached (issue 14, acceptance 3: at most
5 % lower).

    python3 bench/ingest/console_tail.py [--build build/host-release] [--events 50000] [--pairs 3]

Each run: a local Mosquitto, ferryd (durability batch, no uplink), ferry-sim publishing --events as fast as it
can (as bench/ingest/run.py); the rate is events / (time from the simulator's start until ferryd has stored
them all). "closed": console.enabled = false. "open": console on, a client reading /api/tail?stream=telemetry
(Server-Sent Events: every stored event is sent to it) and /api/overview fetched every 5 s, as the page does.
Runs alternate closed/open --pairs times, so that drift in the machine's load hits both; medians are compared.
"""
import argparse, os, statistics, subprocess, sys, threading, time, urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import Run, free_port, wait  # noqa: E402


class ConsoleRun(Run):
    def ferryd_console(self, local, metrics, console_port, tag):
        toml = os.path.join(self.dir, f"ferry-{tag}.toml")
        log = os.path.join(self.dir, f"log-{tag}")
        with open(toml, "w") as f:
            f.write(f'[gateway]\nid = "bench"\n[storage]\npath = "{log}"\nmap_size = "1GiB"\n'
                    f'[ingest]\naddress = "tcp://127.0.0.1:{local}"\ndurability = "batch"\n'
                    f'[metrics]\nlisten = "127.0.0.1:{metrics}"\n'
                    '[[stream]]\nname = "telemetry"\n'
                    '[[route]]\nfilter = "telemetry/{device}/#"\nstream = "telemetry"\nsubject = "{device}"\n'
                    'content_type = "application/json"\nid_json_field = "id"\n')
            if console_port:
                f.write(f'[console]\nenabled = true\nlisten = "127.0.0.1:{console_port}"\n')
        p = self.spawn([self.bin("ferryd"), "-c", toml], f"ferryd-{tag}.log")
        wait(lambda: self.metric(metrics, "ferry_ingest_link_up") == 1, 30)
        return p


def one(r, events, open_console, tag, seed):
    local, metrics, cport = free_port(), free_port(), free_port()
    r.broker(local, f"local-{tag}")
    r.ferryd_console(local, metrics, cport if open_console else 0, tag)
    stop = threading.Event()
    tail_bytes = [0]
    if open_console:
        wait(lambda: r._accepts(cport), 10)
        tail = subprocess.Popen(["curl", "-sN", f"http://127.0.0.1:{cport}/api/tail?stream=telemetry&n=1"],
                                stdout=subprocess.PIPE)
        r.procs.append(tail)

        def drain():
            while True:
                b = tail.stdout.read(65536)
                if not b:
                    return
                tail_bytes[0] += len(b)

        def overview():
            while not stop.wait(5):
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{cport}/api/overview", timeout=5).read()
                except OSError:
                    pass
        threading.Thread(target=drain, daemon=True).start()
        threading.Thread(target=overview, daemon=True).start()
        time.sleep(0.5)  # the tail's headers are out and its listener registered
    t0 = time.monotonic()
    r.sim(local, events, seed)
    ok = wait(lambda: r.metric(metrics, 'ferry_stream_stored_total{stream="telemetry"}') >= events, 600)
    secs = time.monotonic() - t0
    stop.set()
    r.stop_all()
    if not ok:
        sys.exit(f"{tag}: ferryd did not store {events} events")
    return events / secs, tail_bytes[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build/host-release")
    ap.add_argument("--events", type=int, default=50000)
    ap.add_argument("--pairs", type=int, default=3)
    a = ap.parse_args()
    r = ConsoleRun(a.build)
    closed, opened = [], []
    try:
        for i in range(a.pairs):
            rate, _ = one(r, a.events, False, f"closed-{i}", 10 + i)
            closed.append(rate)
            print(f"pair {i}: console closed       {rate:9.0f} events/s", flush=True)
            rate, tb = one(r, a.events, True, f"open-{i}", 10 + i)
            opened.append(rate)
            print(f"pair {i}: console open + tail  {rate:9.0f} events/s (the tail received {tb} bytes)", flush=True)
        c, o = statistics.median(closed), statistics.median(opened)
        print(f"median: closed {c:.0f} events/s, open with a live tail {o:.0f} events/s: {100 * (o - c) / c:+.1f} %")
    finally:
        r.stop_all()
        import shutil
        shutil.rmtree(r.dir, ignore_errors=True)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""bench/compare/report.py OUT_DIR: merges the per-run JSON files of ferry_compare into OUT_DIR/results.json,
prints the table (Ferry, each peer, the ratio, the targets) and plots RSS and backlog over time (gnuplot).
Standard library only. Compare two runs: report.py --compare OLD/results.json NEW/results.json"""
import argparse, glob, json, os, platform, subprocess, sys, time

PAYLOAD = 200
SYSTEMS = ["ferry", "ferry-listen", "bridge", "bridge-durable"]
FERRIES = ["ferry", "ferry-listen"]  # ferryd behind a local broker (subscribe mode); ferryd's own ingest listener
PEERS = ["bridge", "bridge-durable"]
# ferry-listen's own goals (issue 9, acceptance point 4): PUBACK after the commit, yet this fast and this cheap.
LISTEN_MIN_EPS = 20000
LISTEN_MAX_CPU_RATIO = 0.7


def load(out):
    runs = {}
    for p in sorted(glob.glob(os.path.join(out, "*.json"))):
        if os.path.basename(p) == "results.json":
            continue
        with open(p) as f:
            r = json.load(f)
        runs[(r["system"], r["shim_ms"])] = r
    return runs


def ratio(a, b):
    return a / b if b else float("inf") if a else float("nan")


def fmt(v):
    if isinstance(v, str):
        return v
    if v is None:
        return "-"
    if v != v:
        return "n/a"
    if v == float("inf"):
        return "inf"
    av = abs(v)
    if av >= 1000:
        return f"{v:,.0f}"
    if av >= 10:
        return f"{v:.1f}"
    if av >= 0.01 or av == 0:
        return f"{v:.3f}"
    return f"{v:.2e}"


def targets(runs, shim, system="ferry"):
    f = runs.get((system, shim))
    b, d = (runs.get((s, shim)) for s in PEERS)
    if not f:
        return []
    t = []
    listen = system == "ferry-listen"

    def add(name, value, ratio_txt, goal, met, note=""):
        t.append({"target": name, "value": value, "ratio": ratio_txt, "goal": goal, "met": met, "note": note})

    if listen:
        add("durable events/s, 16 devices, PUBACK after commit", f["ingest_eps"], None, f">= {LISTEN_MIN_EPS:,}",
            f["ingest_eps"] >= LISTEN_MIN_EPS, "2 shared cores; %s events/commit in part 2" %
            fmt(f.get("part2_events_per_commit")))
    if b:
        r = ratio(f["cpu_s_per_event"], b["cpu_s_per_event"])
        goal = LISTEN_MAX_CPU_RATIO if listen else 1.0
        note = ("us/event, ferryd only (no local broker); part 2 alone: %s us" %
                fmt((f.get("part2_cpu_s_per_event") or 0) * 1e6)) if listen else \
            ("us/event, ferryd only; + local broker: %s us" %
             fmt((f["cpu_s"] + f["local_broker_cpu_s"]) / f["events_ingested"] * 1e6))
        add("CPU per durable event vs bridge's per relayed msg", f["cpu_s_per_event"] * 1e6, r, f"<= {goal}x",
            r <= goal, note)
    if d:
        r = ratio(f["fsync_per_event"], d["fsync_per_event"])
        add("fsync per event vs durable bridge", f["fsync_per_event"], r, "<= 0.005x", r <= 0.005)
    add("disk bytes per event vs payload", f["disk_bytes_per_event"], f["disk_bytes_per_event"] / PAYLOAD,
        "<= 3x", f["disk_bytes_per_event"] <= 3 * PAYLOAD, "write_bytes - cancelled, /proc/PID/io")
    add("peak VmRSS (MB)", f["rss_peak_kb"] / 1024, None, "<= 16 MB", f["rss_peak_kb"] <= 16384,
        "includes mapped LMDB pages (page cache)")
    add("peak RssAnon (MB)", f["rss_anon_peak_kb"] / 1024, None, "<= 16 MB", f["rss_anon_peak_kb"] <= 16384, "heap")
    # "Flat while the backlog builds" means the backlog does not grow the process: at most 1 KB per 1,000 queued
    # events (1 MB per million). RSS that falls as the backlog grows (heap trimmed after start-up) meets it.
    add("VmRSS slope, KB per 1000 queued", f["rss_slope_kb_per_1000"],
        ratio(f["rss_slope_kb_per_1000"], b["rss_slope_kb_per_1000"]) if b else None, "no growth (<= 1)",
        f["rss_slope_kb_per_1000"] <= 1.0)
    add("RssAnon slope, KB per 1000 queued", f["rss_anon_slope_kb_per_1000"],
        ratio(f["rss_anon_slope_kb_per_1000"], b["rss_anon_slope_kb_per_1000"]) if b else None, "no growth (<= 1)",
        f["rss_anon_slope_kb_per_1000"] <= 1.0)
    if b:
        r = ratio(f["uplink_bytes_per_event"], b["uplink_bytes_per_event"])
        add("uplink wire bytes per event vs bridge", f["uplink_bytes_per_event"], r, "<= 0.25x", r <= 0.25)
    r = f["drain_eps"] / f["live_rate"] if f["live_rate"] else 0
    add("drain rate vs live ingest rate", f["drain_eps"], r, ">= 10x", r >= 10,
        "vs Ferry's full-speed ingest: %sx" % fmt(ratio(f["drain_eps"], f["ingest_eps"])))
    dl = d["lost"] if d else None
    bl = b["lost"] if b else None
    add("events lost across kill -9 mid-outage", f["lost"], None, "0 (bridge %s, durable bridge %s)" % (bl, dl),
        f["lost"] == 0)
    return t


def print_table(runs, shim, mode):
    rows = [
        ("durable events/s (outage, full speed)", "ingest_eps", 1),
        ("CPU us per event", "cpu_s_per_event", 1e6),
        ("  part 2 alone (ingest, central down)", "part2_cpu_s_per_event", 1e6),
        ("fsync calls per event", "fsync_per_event", 1),
        ("disk bytes written per event", "disk_bytes_per_event", 1),
        ("events per group commit (part 2)", "part2_events_per_commit", 1),
        ("fsync calls per commit (part 2)", "part2_fsyncs_per_commit", 1),
        ("steady VmRSS MB (live)", "rss_steady_kb", 1 / 1024),
        ("peak VmRSS MB", "rss_peak_kb", 1 / 1024),
        ("VmRSS slope KB/1000 queued", "rss_slope_kb_per_1000", 1),
        ("steady RssAnon MB", "rss_anon_steady_kb", 1 / 1024),
        ("peak RssAnon MB", "rss_anon_peak_kb", 1 / 1024),
        ("RssAnon slope KB/1000 queued", "rss_anon_slope_kb_per_1000", 1),
        ("peak backlog (events)", "backlog_peak", 1),
        ("uplink wire bytes per event", "uplink_bytes_per_event", 1),
        ("drain time s (central up -> last id)", "drain_s", 1),
        ("drain events/s", "drain_eps", 1),
        ("events lost (kill -9 mid-outage)", "lost", 1),
        ("events in backlog", "backlog_events", 1),
    ]
    present = [s for s in SYSTEMS if (s, shim) in runs]
    if not present:
        return
    pairs = [(f, p) for f in FERRIES if f in present for p in PEERS if p in present]
    print(f"\n== fsync delay {shim} ms ({mode}) ==")
    hdr = f"{'figure':40s}" + "".join(f"{s:>15s}" for s in present)
    hdr += "".join(f"{f + '/' + p:>{max(15, len(f + p) + 3)}s}" for f, p in pairs)
    print(hdr)

    def value(s, key, scale):
        r = runs[(s, shim)]
        if key == "backlog_events":
            return r["part1_produced"] + r["part2_produced"]
        v = r.get(key)  # figures added later are missing from older results
        if v is None or (key.startswith("part2_") and key.endswith("_commit") and s in PEERS):
            return None
        return v * scale

    for label, key, scale in rows:
        vals = {s: value(s, key, scale) for s in present}
        line = f"{label:40s}" + "".join(f"{fmt(vals[s]):>15s}" for s in present)
        line += "".join(f"{fmt(ratio(vals[f], vals[p]) if vals[f] is not None and vals[p] is not None else None):>{max(15, len(f + p) + 3)}s}"
                        for f, p in pairs)
        print(line)
    if ("bridge", shim) in runs:
        print("  (bridge = default autosave: its events/s are NOT durable; it saves only at autosave/shutdown)")
    for system in FERRIES:
        t = targets(runs, shim, system)
        if not t:
            continue
        print(f"\n{'target (' + system + ')':52s}{'value':>12s}{'ratio':>10s}  {'goal':28s} result")
        for x in t:
            print(f"{x['target']:52s}{fmt(x['value']):>12s}{fmt(x['ratio']) if x['ratio'] is not None else '':>10s}  "
                  f"{x['goal']:28s} {'met' if x['met'] else 'MISSED'}  {x['note']}")
        c = runs[(system, shim)].get("config") or {}
        tuned = {k: v for k, v in c.items() if v not in ("", 0, None)}
        if tuned:
            print(f"  ({system} tuned: " + ", ".join(f"{k}={v}" for k, v in tuned.items()) + ")")


def plot(out, runs, shim):
    present = [s for s in SYSTEMS if (s, shim) in runs]
    if not present:
        return None
    png = os.path.join(out, f"rss-backlog-{shim}ms.png")
    lines = ["set terminal pngcairo size 1200,800 noenhanced" if has_cairo() else "set terminal png size 1200,800",
             f"set output '{png}'", "set datafile separator ','", "set key outside right",
             "set multiplot layout 2,1 title 'RSS and backlog over time, fsync delay %d ms'" % shim,
             "set ylabel 'VmRSS (MB)'", "set grid"]
    plots = []
    for s in present:
        csv = runs[(s, shim)]["samples_csv"]
        plots.append(f"'{csv}' using 1:($3/1024) every ::1 with lines title '{s} VmRSS'")
        plots.append(f"'{csv}' using 1:($4/1024) every ::1 with lines dt 2 title '{s} RssAnon'")
    lines.append("plot " + ", ".join(plots))
    lines += ["set ylabel 'backlog (events)'", "set xlabel 'seconds since start of the system''s run'"]
    plots = [f"'{runs[(s, shim)]['samples_csv']}' using 1:($5 < 0 ? NaN : $5) every ::1 with lines title '{s}'"
             for s in present]
    lines.append("plot " + ", ".join(plots))
    lines.append("unset multiplot")
    try:
        subprocess.run(["gnuplot"], input="\n".join(lines) + "\n", text=True, check=True, timeout=60,
                       capture_output=True)
        return png
    except (subprocess.SubprocessError, OSError) as e:
        print(f"report.py: gnuplot failed: {e}", file=sys.stderr)
        return None


def has_cairo():
    try:
        r = subprocess.run(["gnuplot", "-e", "set terminal"], capture_output=True, text=True, timeout=10)
        return "pngcairo" in (r.stdout + r.stderr)
    except (subprocess.SubprocessError, OSError):
        return False


def compare(old_path, new_path):
    with open(old_path) as f:
        old = json.load(f)
    with open(new_path) as f:
        new = json.load(f)
    o = {(r["system"], r["shim_ms"]): r for r in old["runs"]}
    keys = ["ingest_eps", "cpu_s_per_event", "fsync_per_event", "disk_bytes_per_event", "rss_peak_kb",
            "rss_anon_slope_kb_per_1000", "uplink_bytes_per_event", "drain_eps", "lost", "part2_events_per_commit"]
    print(f"{'run':24s}{'figure':30s}{'old':>14s}{'new':>14s}{'new/old':>10s}")
    for r in new["runs"]:
        p = o.get((r["system"], r["shim_ms"]))
        if not p:
            continue
        for k in keys:
            if k not in r or k not in p:
                continue
            print(f"{r['name']:24s}{k:30s}{fmt(p[k]):>14s}{fmt(r[k]):>14s}{fmt(ratio(r[k], p[k])):>10s}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out", nargs="?")
    ap.add_argument("--shim-ms", type=int, default=15)
    ap.add_argument("--mode", default="?")
    ap.add_argument("--compare", nargs=2, metavar=("OLD", "NEW"))
    a = ap.parse_args()
    if a.compare:
        compare(*a.compare)
        return
    runs = load(a.out)
    shims = sorted({k[1] for k in runs}, key=lambda s: (s != a.shim_ms, s))
    result = {"mode": a.mode, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "host": platform.node(),
              "kernel": platform.release(), "cpus": os.cpu_count(), "payload_bytes": PAYLOAD,
              "runs": list(runs.values()), "targets": {}, "plots": []}
    for shim in shims:
        print_table(runs, shim, a.mode)
        result["targets"][f"{shim}ms"] = targets(runs, shim)
        result["targets"][f"{shim}ms/ferry-listen"] = targets(runs, shim, "ferry-listen")
        png = plot(a.out, runs, shim)
        if png:
            result["plots"].append(png)
            print(f"plot: {png}")
    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump(result, f, indent=1, default=lambda v: None)
    print(f"results: {os.path.join(a.out, 'results.json')}")


if __name__ == "__main__":
    main()

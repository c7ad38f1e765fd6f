#!/usr/bin/env python3
"""Helper of integration/bench.sh for the cases beyond wrk's closed loop:
the fixed-rate latency run, the pinned worker, two balancers over the same
pools, idle keep-alive clients, and HTTP/2 (h2c). Kept apart from
report.py, which owns the wrk tables.

  extra.py hey    --db EXTRA.jsonl --case C --balancer B --csv HEY.csv --seconds S
                  --rate R [--ticks-before T --ticks-after T --clk HZ] [--note TEXT]...
  extra.py h2load --db EXTRA.jsonl --case C --balancer B --out H2LOAD.out --log H2LOAD.log
                  [--ticks-before T --ticks-after T --clk HZ] [--note TEXT]...
  extra.py idle   --db EXTRA.jsonl --case C --balancer B --clients READY.json
                  --rss-before KIB --rss-after KIB [--note TEXT]...
  extra.py final  --db EXTRA.jsonl --md OUT.md [--json OUT.json]

hey's CSV (-o csv) lists each answered request (latency, status code);
requests that failed at the transport level are not in it, so the
shortfall against the rate asked (connections x per-connection rate x
seconds) is reported as "missing": errors and requests a slow balancer
never got to send alike.
"""

import argparse
import json
import math
import os
import re
import sys

LABEL = {
    "fpmlb": "fpmlb",
    "fpmlb-1": "fpmlb (workers: 1)",
    "fpmlb-tls": "fpmlb (TLS)",
    "fpmlb-a": "fpmlb A",
    "fpmlb-b": "fpmlb B",
    "nginx": "nginx (conn/request)",
    "nginx-ka": "nginx (keepalive 32, open_file_cache)",
    "haproxy": "HAProxy (keep-conn)",
    "nginx-tls": "nginx (TLS)",
    "haproxy-tls": "HAProxy (TLS)",
    "haproxy-beside": "HAProxy (keep-conn, maxconn 2) beside fpmlb",
    "fpmlb-beside": "fpmlb beside HAProxy",
}
PEERS = ("nginx", "nginx-ka", "haproxy")


def pct(sorted_vals, q):
    if not sorted_vals:
        return None
    i = min(len(sorted_vals) - 1, max(0, int(math.ceil(q * len(sorted_vals))) - 1))
    return sorted_vals[i]


def latency_fields(lat_ms):
    lat_ms.sort()
    return {
        "p50_ms": pct(lat_ms, 0.50),
        "p99_ms": pct(lat_ms, 0.99),
        "p999_ms": pct(lat_ms, 0.999),
        "max_ms": lat_ms[-1] if lat_ms else None,
    }


def cpu_fields(a, answered):
    if a.ticks_before < 0 or a.ticks_after < 0:
        return {"cpu_s": None, "cpu_s_per_100k": None}
    cpu = (a.ticks_after - a.ticks_before) / float(a.clk)
    return {"cpu_s": round(cpu, 2), "cpu_s_per_100k": round(cpu / answered * 1e5, 3) if answered else None}


def append(db, rec):
    with open(db, "a") as f:
        f.write(json.dumps(rec) + "\n")


def cmd_hey(a):
    lat, bad = [], 0
    if os.path.exists(a.csv):
        with open(a.csv, errors="replace") as f:
            for line in f:
                parts = line.strip().split(",")
                if len(parts) < 7 or not re.match(r"^[0-9.]+$", parts[0]):
                    continue
                lat.append(float(parts[0]) * 1000.0)
                if not parts[6].startswith("2"):
                    bad += 1
    expected = int(a.rate * a.seconds)
    rec = {"case": a.case, "balancer": a.balancer, "tool": "hey", "rate_asked": a.rate,
           "seconds": a.seconds, "answered": len(lat), "non_2xx": bad,
           "missing": max(0, expected - len(lat)), "rps": round(len(lat) / a.seconds, 1),
           "notes": a.note or []}
    rec.update(latency_fields(lat))
    rec.update(cpu_fields(a, len(lat)))
    append(a.db, rec)
    print("  %s [%s]: %.0f req/s of %d asked, p50 %s, p99 %s, p99.9 %s, max %s ms, non-2xx %d, missing %d"
          % (a.balancer, a.case, rec["rps"], a.rate, fmt(rec["p50_ms"]), fmt(rec["p99_ms"]),
             fmt(rec["p999_ms"]), fmt(rec["max_ms"]), bad, rec["missing"]))


def cmd_h2load(a):
    text = open(a.out, errors="replace").read() if os.path.exists(a.out) else ""
    lat, bad = [], 0
    if os.path.exists(a.log):
        with open(a.log) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3:
                    lat.append(int(parts[2]) / 1000.0)
                    if not parts[1].startswith("2"):
                        bad += 1
    m = re.search(r"finished in ([0-9.]+)(s|ms), ([0-9.]+) req/s", text)
    secs = float(m.group(1)) / (1000.0 if m and m.group(2) == "ms" else 1.0) if m else 0.0
    m2 = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                   r"(\d+) errored, (\d+) timeout", text)
    failed = int(m2.group(5)) + int(m2.group(6)) + int(m2.group(7)) if m2 else 0
    rec = {"case": a.case, "balancer": a.balancer, "tool": "h2load", "answered": len(lat),
           "non_2xx": bad, "failed": failed, "seconds": round(secs, 2),
           "rps": round(len(lat) / secs, 1) if secs else 0.0, "notes": a.note or []}
    if not text:
        rec["notes"].append("no h2load output")
    rec.update(latency_fields(lat))
    rec.update(cpu_fields(a, len(lat)))
    append(a.db, rec)
    print("  %s [%s]: %.0f req/s, p50 %s, p99 %s, max %s ms, failed %d, non-2xx %d, cpu %s s/100k"
          % (a.balancer, a.case, rec["rps"], fmt(rec["p50_ms"]), fmt(rec["p99_ms"]), fmt(rec["max_ms"]),
             failed, bad, rec["cpu_s_per_100k"]))


def cmd_idle(a):
    clients = {}
    if os.path.exists(a.clients):
        with open(a.clients) as f:
            lines = [ln for ln in f if ln.strip()]
        if lines:
            clients = json.loads(lines[-1])
    held = int(clients.get("held") or 0)
    grown = a.rss_after - a.rss_before
    rec = {"case": a.case, "balancer": a.balancer, "clients": clients, "rss_before_kib": a.rss_before,
           "rss_after_kib": a.rss_after, "kib_per_conn": round(grown / held, 3) if held else None,
           "notes": a.note or []}
    append(a.db, rec)
    print("  %s [%s]: %d connections held, RSS %d -> %d KiB: %s KiB per connection"
          % (a.balancer, a.case, held, a.rss_before, a.rss_after, fmt(rec["kib_per_conn"], 2)))


def fmt(v, nd=1):
    if v is None:
        return "-"
    return "%.*f" % (nd, v)


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def fr(v):
    return "-" if v is None else ("%.2f" % v if v >= 0.1 else "%.3f" % v)


def rows_of(runs, case):
    return [r for r in runs if r["case"] == case]


def clean(r):
    return not r.get("non_2xx") and not r.get("missing") and not r.get("failed")


def latency_table(rows, ref_name, ref):
    out = ["| balancer | req/s | p50 ms | p99 ms | p99.9 ms | max ms | non-2xx | missing/failed "
           "| CPU s/100k | p99 vs %s | max vs %s |" % (ref_name, ref_name),
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        out.append("| %s | %s | %s | %s | %s | %s | %d | %d | %s | %s | %s |" % (
            LABEL.get(r["balancer"], r["balancer"]), fmt(r["rps"], 0), fmt(r["p50_ms"], 2), fmt(r["p99_ms"], 2),
            fmt(r["p999_ms"], 2), fmt(r["max_ms"], 1), r.get("non_2xx", 0), r.get("missing", r.get("failed", 0)),
            fmt(r.get("cpu_s_per_100k"), 2),
            fr(ratio(r["p99_ms"], ref["p99_ms"])) if ref and r is not ref else "",
            fr(ratio(r["max_ms"], ref["max_ms"])) if ref and r is not ref else ""))
    notes = [(r["balancer"], n) for r in rows for n in r.get("notes") or []]
    if notes:
        out.append("")
        out.extend("* %s: %s" % (LABEL.get(b, b), n) for b, n in notes)
    out.append("")
    return out


def final_markdown(runs):
    out = []
    summary = []
    rate = rows_of(runs, "rate")
    if rate:
        ref = next((r for r in rate if r["balancer"] == "nginx"), None)
        asked = rate[0].get("rate_asked")
        out += ["### Fixed rate: hello at %s req/s (hey), every balancer at the same rate" % asked, ""]
        out += latency_table(rate, "nginx", ref)
        for fp in [r for r in rate if r["balancer"].startswith("fpmlb")]:
            if ref:
                summary.append(("fixed rate %s/s, %s" % (asked, LABEL[fp["balancer"]]), "nginx (conn/request)",
                                "p99 %s ms vs %s ms" % (fmt(fp["p99_ms"], 2), fmt(ref["p99_ms"], 2)),
                                ratio(fp["p99_ms"], ref["p99_ms"]), "<= 1.5"))
    for case, title in (("pinned", "One worker of web01 held by an outside FastCGI client (hold_worker.py), "
                                   "fixed rate"),):
        rows = rows_of(runs, case)
        if rows:
            ref = next((r for r in rows if r["balancer"] == "nginx"), None)
            out += ["### %s" % title, ""]
            out += latency_table(rows, "nginx", ref)
            fp = next((r for r in rows if r["balancer"] == "fpmlb"), None)
            if fp:
                summary.append(("pinned worker", "-", "max %s ms" % fmt(fp["max_ms"], 1),
                                None, "max < 1000 ms"))
    pair = rows_of(runs, "pair")
    if pair:
        out += ["### Two fpmlb over the same pools, both loaded (fixed rate, half each)", ""]
        out += latency_table(pair, "-", None)
        worst = max((r["max_ms"] or 0) for r in pair)
        summary.append(("two fpmlb instances", "-", "max %s ms" % fmt(worst, 1), None, "max < 1000 ms"))
    beside = rows_of(runs, "beside")
    if beside:
        out += ["### fpmlb beside HAProxy keep-conn over the same pools, both loaded (fixed rate, half each)", ""]
        out += latency_table(beside, "-", None)
        fp = next((r for r in beside if r["balancer"].startswith("fpmlb")), None)
        if fp:
            summary.append(("beside HAProxy keep-conn", "-", "max %s ms" % fmt(fp["max_ms"], 1), None,
                            "max < 1000 ms"))
    h2 = rows_of(runs, "h2")
    if h2:
        out += ["### HTTP/2 over cleartext (h2c, h2load)", ""]
        peers = [r for r in h2 if r["balancer"] in PEERS and r["answered"]]
        good = [r for r in peers if clean(r)] or peers
        best = max(good, key=lambda r: r["rps"]) if good else None
        out.append("| balancer | req/s | p50 ms | p99 ms | max ms | failed | non-2xx | CPU s/100k "
                   "| req/s ratio | p99 ratio | CPU ratio |")
        out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in h2:
            is_fp = r["balancer"].startswith("fpmlb")
            rat = [fr(ratio(r["rps"], best["rps"])), fr(ratio(r["p99_ms"], best["p99_ms"])),
                   fr(ratio(r.get("cpu_s_per_100k"), best.get("cpu_s_per_100k")))] if is_fp and best else ["", "", ""]
            name = LABEL.get(r["balancer"], r["balancer"]) + (" (best peer)" if r is best else "")
            out.append("| %s | %s | %s | %s | %s | %d | %d | %s | %s | %s | %s |" % (
                name, fmt(r["rps"], 0), fmt(r["p50_ms"], 2), fmt(r["p99_ms"], 2), fmt(r["max_ms"], 1),
                r.get("failed", 0), r.get("non_2xx", 0), fmt(r.get("cpu_s_per_100k"), 2), *rat))
            if is_fp and best:
                summary.append(("h2c, %s" % LABEL[r["balancer"]], LABEL[best["balancer"]],
                                "%s vs %s req/s" % (fmt(r["rps"], 0), fmt(best["rps"], 0)),
                                ratio(r["rps"], best["rps"]), ">= 1.2"))
        notes = [(r["balancer"], n) for r in h2 for n in r.get("notes") or []]
        out += [""] + ["* %s: %s" % (LABEL.get(b, b), n) for b, n in notes] + [""]
    idle = rows_of(runs, "idle")
    if idle:
        out += ["### Idle HTTP/1.1 keep-alive clients (each sent one request, then waits)", ""]
        out.append("| balancer | connections held | closed by server | RSS before MiB | RSS after MiB "
                   "| KiB per connection |")
        out.append("|---|---:|---:|---:|---:|---:|")
        for r in idle:
            c = r.get("clients") or {}
            out.append("| %s | %s | %s | %s | %s | %s |" % (
                LABEL.get(r["balancer"], r["balancer"]), c.get("held", "-"), c.get("closed_by_server", "-"),
                fmt(r["rss_before_kib"] / 1024.0), fmt(r["rss_after_kib"] / 1024.0), fmt(r["kib_per_conn"], 2)))
        # Cleartext against the cleartext peers, TLS against the TLS ones.
        for fp, peer_names, target in (("fpmlb", PEERS, "< 2 KiB"),
                                       ("fpmlb-tls", ("nginx-tls", "haproxy-tls"), "<= 1.0x")):
            peers = [r for r in idle if r["balancer"] in peer_names and r["kib_per_conn"] is not None]
            best = min(peers, key=lambda r: r["kib_per_conn"]) if peers else None
            for r in idle:
                if r["balancer"] == fp and r["kib_per_conn"] is not None:
                    summary.append(("idle clients, %s" % LABEL[fp], LABEL[best["balancer"]] if best else "-",
                                    "%s vs %s KiB" % (fmt(r["kib_per_conn"], 2),
                                                      fmt(best["kib_per_conn"], 2) if best else "-"),
                                    ratio(r["kib_per_conn"], best["kib_per_conn"]) if best else None, target))
        notes = [(r["balancer"], n) for r in idle for n in r.get("notes") or []]
        out += [""] + ["* %s: %s" % (LABEL.get(b, b), n) for b, n in notes] + [""]
    if summary:
        out += ["### The other cases at a glance", "",
                "| case | against | measured | ratio | target |", "|---|---|---|---:|---|"]
        for case, peer, measured, rat, target in summary:
            out.append("| %s | %s | %s | %s | %s |" % (case, peer, measured, fr(rat), target))
        out.append("")
    return "\n".join(out)


def cmd_final(a):
    runs = []
    if os.path.exists(a.db):
        with open(a.db) as f:
            runs = [json.loads(ln) for ln in f if ln.strip()]
    md = final_markdown(runs)
    with open(a.md, "w") as f:
        f.write(md)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(runs, f, indent=2)
            f.write("\n")
    print(md)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    def common(s):
        s.add_argument("--db", required=True)
        s.add_argument("--case", required=True)
        s.add_argument("--balancer", required=True)
        s.add_argument("--note", action="append")
        s.add_argument("--ticks-before", type=int, default=-1)
        s.add_argument("--ticks-after", type=int, default=-1)
        s.add_argument("--clk", type=int, default=100)

    s = sub.add_parser("hey")
    common(s)
    s.add_argument("--csv", required=True)
    s.add_argument("--seconds", type=float, required=True)
    s.add_argument("--rate", type=int, required=True)
    s.set_defaults(func=cmd_hey)
    s = sub.add_parser("h2load")
    common(s)
    s.add_argument("--out", required=True)
    s.add_argument("--log", required=True)
    s.set_defaults(func=cmd_h2load)
    s = sub.add_parser("idle")
    common(s)
    s.add_argument("--clients", required=True)
    s.add_argument("--rss-before", type=int, required=True)
    s.add_argument("--rss-after", type=int, required=True)
    s.set_defaults(func=cmd_idle)
    s = sub.add_parser("final")
    s.add_argument("--db", required=True)
    s.add_argument("--md", required=True)
    s.add_argument("--json")
    s.set_defaults(func=cmd_final)
    a = p.parse_args()
    return a.func(a)


if __name__ == "__main__":
    sys.exit(main())

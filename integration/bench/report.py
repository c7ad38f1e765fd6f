#!/usr/bin/env python3
"""Helper of integration/bench.sh: records one wrk or h2load run, prints the tables.

  report.py add    --db RUNS.jsonl --balancer B --script S --conc N --wrk OUTPUT
                   [--transport plain|tls|h2] [--coding C]
                   --ticks-before T --ticks-after T --clk HZ --rss-kb K [--note TEXT]...
  report.py case   --db RUNS.jsonl --script S --conc N      (Markdown table of one case)
  report.py final  --db RUNS.jsonl --meta META.json --json OUT.json --md OUT.md

The wrk output must come from a run with integration/bench/wrk-report.lua, which
prints one `BENCHJSON {...}` line from wrk's done() hook; the human readable
wrk text is parsed as a fallback (and kept in the raw results). h2load's text
is parsed for HTTP/2 runs (it gives no percentiles: p50/p99 are "-").
"""

import argparse
import json
import os
import re
import sys

BALANCER_ORDER = ["fpmlb", "nginx", "nginx-ka", "haproxy"]
BALANCER_LABEL = {
    "fpmlb": "fpmlb",
    "nginx": "nginx (conn/request)",
    "nginx-ka": "nginx (keepalive 32, open_file_cache)",
    "haproxy": "HAProxy (keep-conn)",
}
SCRIPT_ORDER = ["hello", "session", "64k", "1m", "static1k", "static100k", "static10m",
                "tls-hello", "tls-64k", "h2-hello", "h2-64k", "h2-1conn", "gzip", "br", "zstd"]
SCRIPT_LABEL = {
    "hello": "hello (/hello.php)",
    "session": "session (/session.php, new session per request)",
    "64k": "64 KiB (/big.php?bytes=65536)",
    "1m": "1 MiB (/big.php?bytes=1048576)",
    "tls-hello": "hello over TLS, HTTP/1.1 (wrk)",
    "tls-64k": "64 KiB over TLS, HTTP/1.1 (wrk)",
    "h2-hello": "hello over TLS, HTTP/2 (h2load, 8 streams per connection)",
    "h2-64k": "64 KiB over TLS, HTTP/2 (h2load, 8 streams per connection)",
    "h2-1conn": "hello over TLS, HTTP/2, one connection of N streams (h2load -c1 -mN)",
    "gzip": "64 KiB HTML, Accept-Encoding: gzip (/html.php?bytes=65536)",
    "br": "64 KiB HTML, Accept-Encoding: br (fpmlb only)",
    "zstd": "64 KiB HTML, Accept-Encoding: zstd (fpmlb only)",
    "static1k": "static file, 1 KiB (/static/1k.bin)",
    "static100k": "static file, 100 KiB (/static/100k.bin)",
    "static10m": "static file, 10 MiB (/static/10m.bin)",
}


# ------------------------------------------------------------------ parsing

UNIT_US = {"us": 1.0, "ms": 1000.0, "s": 1e6, "m": 60e6, "h": 3600e6}


def to_us(text):
    m = re.fullmatch(r"([0-9.]+)(us|ms|s|m|h)", text.strip())
    if not m:
        return None
    return float(m.group(1)) * UNIT_US[m.group(2)]


def parse_wrk(text):
    """Numbers of one wrk run: from the BENCHJSON line, else from the text."""
    res = None
    for line in text.splitlines():
        if line.startswith("BENCHJSON "):
            try:
                res = json.loads(line[len("BENCHJSON "):])
            except ValueError:
                res = None
    if res is not None:
        res["source"] = "lua"
        return res
    # Fallback: wrk's text output.
    res = {"source": "text", "requests": 0, "duration_us": 0, "bytes": 0,
           "connect": 0, "read": 0, "write": 0, "status": 0, "timeout": 0,
           "p50_us": None, "p90_us": None, "p99_us": None, "max_us": None, "mean_us": None}
    m = re.search(r"(\d+) requests in ([0-9.]+)(us|ms|s|m)", text)
    if m:
        res["requests"] = int(m.group(1))
        res["duration_us"] = to_us(m.group(2) + m.group(3))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        for k, v in zip(("connect", "read", "write", "timeout"), m.groups()):
            res[k] = int(v)
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if m:
        res["status"] = int(m.group(1))
    for pct, key in (("50", "p50_us"), ("90", "p90_us"), ("99", "p99_us")):
        m = re.search(r"^\s+%s%%\s+(\S+)" % pct, text, re.M)
        if m:
            res[key] = to_us(m.group(1))
    return res


SIZE_UNIT = {"B": 1, "KB": 1024, "MB": 1024 ** 2, "GB": 1024 ** 3}


def parse_h2load(text):
    """Numbers of one h2load run, in parse_wrk's shape."""
    res = {"source": "h2load", "requests": 0, "duration_us": 0, "bytes": 0,
           "connect": 0, "read": 0, "write": 0, "status": 0, "timeout": 0,
           "p50_us": None, "p90_us": None, "p99_us": None, "max_us": None, "mean_us": None}
    m = re.search(r"finished in ([0-9.]+)(us|ms|s|m),", text)
    if m:
        res["duration_us"] = to_us(m.group(1) + m.group(2))
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                  r"(\d+) errored, (\d+) timeout", text)
    if m:
        total, started, done, ok, failed, errored, timeout = (int(x) for x in m.groups())
        res["requests"] = done
        # h2load's "failed" includes the non-2xx counted below; "errored" are
        # stream or connection errors.
        res["read"] = errored
        res["timeout"] = timeout
    m = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text)
    if m:
        res["status"] = int(m.group(2)) + int(m.group(3)) + int(m.group(4))
    m = re.search(r"traffic: \S+ \((\d+)\) total", text)
    if m:
        res["bytes"] = int(m.group(1))
    m = re.search(r"time for request:\s+(\S+)\s+(\S+)\s+(\S+)", text)
    if m:
        res["max_us"] = to_us(m.group(2))
        res["mean_us"] = to_us(m.group(3))
    return res


# ------------------------------------------------------------------ commands

def load_db(path):
    runs = []
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line:
                    runs.append(json.loads(line))
    return runs


def cmd_add(a):
    with open(a.wrk, errors="replace") as f:
        text = f.read()
    w = parse_h2load(text) if a.transport == "h2" else parse_wrk(text)
    secs = (w.get("duration_us") or 0) / 1e6
    reqs = int(w.get("requests") or 0)
    errors = sum(int(w.get(k) or 0) for k in ("connect", "read", "write", "status", "timeout"))
    # wrk counts a timeout only when the late response finally arrives; a request
    # still unanswered when the run ends is counted nowhere. Little's law tells
    # how many connections were busy on average: requests x mean latency / time.
    busy = None
    stalled = 0
    if secs > 0 and reqs and w.get("mean_us") is not None:
        busy = reqs * (w["mean_us"] / 1e6) / secs
        # h2-1conn: the balancer's concurrent-stream limit (128 fpmlb and
        # nginx, 100 HAProxy) keeps the streams beyond it unopened in h2load,
        # by design: not stalls.
        if busy < 0.9 * a.conc and a.script != "h2-1conn":
            stalled = int(round(a.conc - busy))
    cpu_s = (a.ticks_after - a.ticks_before) / float(a.clk) if a.ticks_after >= 0 and a.ticks_before >= 0 else None
    host_cpu_s = host_busy = None
    try:
        (b0, t0), (b1, t1) = [map(int, v.split()) for v in (a.host_before, a.host_after)]
        if t1 > t0:
            host_cpu_s, host_busy = (b1 - b0) / float(a.clk), (b1 - b0) / float(t1 - t0)
    except (AttributeError, TypeError, ValueError):
        pass
    run = {
        "balancer": a.balancer,
        "script": a.script,
        "path": a.path,
        "transport": a.transport,
        "coding": a.coding or None,
        "concurrency": a.conc,
        "requests": reqs,
        "duration_s": round(secs, 3),
        "rps": round(reqs / secs, 1) if secs > 0 else 0.0,
        "p50_ms": None if w.get("p50_us") is None else round(w["p50_us"] / 1000.0, 3),
        "p90_ms": None if w.get("p90_us") is None else round(w["p90_us"] / 1000.0, 3),
        "p99_ms": None if w.get("p99_us") is None else round(w["p99_us"] / 1000.0, 3),
        "max_ms": None if w.get("max_us") is None else round(w["max_us"] / 1000.0, 3),
        "mean_ms": None if w.get("mean_us") is None else round(w["mean_us"] / 1000.0, 3),
        "errors": errors,
        "busy_connections_est": None if busy is None else round(busy, 1),
        "stalled_connections_est": stalled,
        "errors_detail": {k: int(w.get(k) or 0) for k in ("status", "connect", "read", "write", "timeout")},
        "bytes": int(w.get("bytes") or 0),
        "bytes_per_response": round(int(w.get("bytes") or 0) / reqs, 1) if reqs else None,
        "cpu_s": None if cpu_s is None else round(cpu_s, 2),
        "cpu_s_per_100k": round(cpu_s / reqs * 100000, 3) if cpu_s is not None and reqs else None,
        "host_cpu_s_per_100k": round(host_cpu_s / reqs * 100000, 3) if host_cpu_s is not None and reqs else None,
        "host_busy": None if host_busy is None else round(host_busy, 3),
        "host_cpus": os.cpu_count(),
        "peak_rss_kib": a.rss_kb if a.rss_kb >= 0 else None,
        "loadavg_before": a.load,
        "notes": a.note or [],
        "parsed_from": w.get("source"),
        "wrk_output": text,
    }
    with open(a.db, "a") as f:
        f.write(json.dumps(run) + "\n")
    if stalled:
        run["notes"].append("~%d of %d connections got no response for most of the run (requests x mean "
                            "latency / duration = %.1f busy connections); wrk counts them nowhere"
                            % (stalled, a.conc, busy))
    print("  %s: %.0f req/s, p50 %s ms, p99 %s ms, errors %d%s, cpu %s s/100k, rss %s KiB"
          % (a.balancer, run["rps"], run["p50_ms"], run["p99_ms"], errors,
             " (+~%d stalled connections)" % stalled if stalled else "",
             run["cpu_s_per_100k"], run["peak_rss_kib"]))


# A p99 over this left one request in a hundred waiting for seconds: in
# this bench, nginx keepalive's requests queued in php-fpm's backlog behind
# the workers its kept connections pin (issue 11's "no request waits behind
# a pinned worker", whose own bound for the slowest request is 1 s).
STARVED_P99_MS = 1000.0


def starved(r):
    """A p99 over STARVED_P99_MS (h2load gives none)."""
    return (r.get("p99_ms") or 0) > STARVED_P99_MS


def is_clean(r):
    """No errors, no stalled connections, not starved."""
    return r["errors"] == 0 and not r.get("stalled_connections_est") and not starved(r)


def best_peer(rows):
    # fpmlb-1 is fpmlb itself (workers: 1), never a peer.
    peers = [r for r in rows if not r["balancer"].startswith("fpmlb") and r["requests"] > 0]
    if not peers:
        return None
    clean = [r for r in peers if is_clean(r)]
    pool = clean or peers  # "best peer": highest req/s among the clean ones, else overall
    return max(pool, key=lambda r: r["rps"])


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def fmt(v, nd=1):
    if v is None:
        return "-"
    return "%.*f" % (nd, v)


def fmt_ratio(v):
    if v is None:
        return "-"
    return "%.2f" % v if v >= 0.1 else "%.3f" % v


def fmt_errors(r):
    stalled = r.get("stalled_connections_est") or 0
    tail = " +~%d stalled conns" % stalled if stalled else ""
    if starved(r):
        tail += " (p99 over 1 s)"
    if r["errors"] == 0:
        return "0" + tail
    d = r["errors_detail"]
    parts = []
    names = {"status": "non-2xx", "connect": "connect", "read": "read", "write": "write", "timeout": "timeout"}
    for k in ("status", "timeout", "connect", "read", "write"):
        if d.get(k):
            parts.append("%s %d" % (names[k], d[k]))
    return "%d (%s)%s" % (r["errors"], ", ".join(parts), tail)


def case_rows(runs, script, conc):
    rows = [r for r in runs if r["script"] == script and r["concurrency"] == conc]
    rows.sort(key=lambda r: BALANCER_ORDER.index(r["balancer"]) if r["balancer"] in BALANCER_ORDER else 99)
    return rows


# A run whose host was at least this busy was bound by the machine's CPU.
HOST_BOUND = 0.95
TARGET_RATIO = 1.2


def cpu_for_target(fp, bp):
    """The balancer CPU (s per 100k requests) that TARGET_RATIO x the peer's
    req/s would leave room for on a CPU-bound host: its capacity (all CPUs)
    at that rate, less what the rest of the host (php-fpm, the load tool,
    the kernel's work for them) spent per request in fpmlb's own run. None
    when fpmlb's run did not keep the host busy (something else bound it)."""
    host, own, busy, cpus = (fp.get("host_cpu_s_per_100k"), fp.get("cpu_s_per_100k"),
                             fp.get("host_busy"), fp.get("host_cpus"))
    if None in (host, own, busy, cpus) or busy < HOST_BOUND or not bp["rps"]:
        return None
    capacity = cpus / (TARGET_RATIO * bp["rps"]) * 100000
    return round(capacity - (host - own), 2)


def comparison(rows, who="fpmlb"):
    fp = next((r for r in rows if r["balancer"] == who), None)
    bp = best_peer(rows)
    if fp is None or bp is None:
        return None
    return {
        "best_peer": bp["balancer"],
        "rps_ratio": ratio(fp["rps"], bp["rps"]),
        "p99_ratio": ratio(fp["p99_ms"], bp["p99_ms"]),
        "cpu_ratio": ratio(fp["cpu_s_per_100k"], bp["cpu_s_per_100k"]),
        "cpu_for_target_s_per_100k": cpu_for_target(fp, bp),
    }


def case_markdown(runs, script, conc):
    rows = case_rows(runs, script, conc)
    if not rows:
        return ""
    cmp_ = comparison(rows)
    cmp1 = comparison(rows, "fpmlb-1")
    out = ["### %s, %d connections" % (SCRIPT_LABEL.get(script, script), conc), ""]
    out.append("| balancer | req/s | p50 ms | p99 ms | errors | CPU s/100k req | peak RSS MiB "
               "| KiB/resp | req/s ratio | p99 ratio | CPU ratio |")
    out.append("|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        name = BALANCER_LABEL.get(r["balancer"], r["balancer"])
        if cmp_ and r["balancer"] == cmp_["best_peer"]:
            name += " (best peer)"
        rss = None if r["peak_rss_kib"] is None else r["peak_rss_kib"] / 1024.0
        mine = {"fpmlb": cmp_, "fpmlb-1": cmp1}.get(r["balancer"])
        if mine:
            rat = [fmt_ratio(mine["rps_ratio"]), fmt_ratio(mine["p99_ratio"]), fmt_ratio(mine["cpu_ratio"])]
        else:
            rat = ["", "", ""]
        kib = None if r.get("bytes_per_response") is None else r["bytes_per_response"] / 1024.0
        out.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            name, fmt(r["rps"], 0), fmt(r["p50_ms"], 2), fmt(r["p99_ms"], 2), fmt_errors(r),
            fmt(r["cpu_s_per_100k"], 2), fmt(rss, 1), fmt(kib, 1), rat[0], rat[1], rat[2]))
    notes = [(r["balancer"], n) for r in rows for n in r.get("notes") or []]
    if notes:
        out.append("")
        for b, n in notes:
            out.append("* %s: %s" % (b, n))
    out.append("")
    return "\n".join(out)


def cases_in(runs):
    seen = []
    for r in runs:
        k = (r["script"], r["concurrency"])
        if k not in seen:
            seen.append(k)
    seen.sort(key=lambda k: (SCRIPT_ORDER.index(k[0]) if k[0] in SCRIPT_ORDER else 99, k[1]))
    return seen


def summary_markdown(runs):
    out = ["### fpmlb against the best peer (highest req/s without errors or stalls)", "",
           "Peers are nginx and HAProxy; fpmlb-1 is fpmlb with `workers: 1`, compared with the same peer.", "",
           "| case | best peer | fpmlb req/s | peer req/s | req/s ratio | p99 ratio | CPU ratio "
           "| fpmlb-1 req/s ratio | p99 ratio | CPU ratio |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    any_row = False
    for script, conc in cases_in(runs):
        rows = case_rows(runs, script, conc)
        c = comparison(rows)
        if not c:
            continue
        any_row = True
        fp = next(r for r in rows if r["balancer"] == "fpmlb")
        bp = next(r for r in rows if r["balancer"] == c["best_peer"])
        c1 = comparison(rows, "fpmlb-1") or {}
        out.append("| %s @%d | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            script, conc, BALANCER_LABEL.get(bp["balancer"], bp["balancer"]), fmt(fp["rps"], 0), fmt(bp["rps"], 0),
            fmt_ratio(c["rps_ratio"]), fmt_ratio(c["p99_ratio"]), fmt_ratio(c["cpu_ratio"]),
            fmt_ratio(c1.get("rps_ratio")), fmt_ratio(c1.get("p99_ratio")), fmt_ratio(c1.get("cpu_ratio"))))
    out.append("")
    out += headroom_markdown(runs)
    return "\n".join(out) if any_row else ""


def headroom_markdown(runs):
    """The cases under TARGET_RATIO x the best peer's req/s, with what the
    host had left: how busy fpmlb's run kept it, and the balancer CPU per
    request at which TARGET_RATIO would fit in the host's CPUs given what
    the rest of the host spent per request."""
    out = []
    for script, conc in cases_in(runs):
        rows = case_rows(runs, script, conc)
        c = comparison(rows)
        if not c or c["rps_ratio"] is None or c["rps_ratio"] >= TARGET_RATIO:
            continue
        fp = next(r for r in rows if r["balancer"] == "fpmlb")
        need = c["cpu_for_target_s_per_100k"]
        busy = fp.get("host_busy")
        own = fp.get("cpu_s_per_100k")
        if busy is None:
            verdict = "-"
        elif busy < HOST_BOUND:
            verdict = "host not CPU-bound"
        elif need is None:
            verdict = "-"
        elif need <= 0:
            verdict = "out of reach: the rest of the host alone needs more"
        else:
            verdict = "%s s/100k (%s of fpmlb's)" % (fmt(need, 2), fmt_ratio(need / own) if own else "-")
        out.append("| %s @%d | %s | %s | %s | %s | %s |" % (
            script, conc, fmt_ratio(c["rps_ratio"]), fmt(busy * 100 if busy is not None else None, 0),
            fmt(fp.get("host_cpu_s_per_100k"), 2), fmt(fp["cpu_s_per_100k"], 2), verdict))
    if not out:
        return []
    return ["#### Cases under %.1fx: what the host had left" % TARGET_RATIO, "",
            "Host busy: all CPUs, fpmlb's run (/proc/stat). %.1fx the peer's req/s fits in the host's CPUs "
            "when fpmlb's CPU per request is at most: CPUs / (%.1f x peer req/s) - (host - fpmlb CPU per "
            "request in fpmlb's run), the rest of the host's work per request taken as it was."
            % (TARGET_RATIO, TARGET_RATIO), "",
            "| case | req/s ratio | host busy %% | host CPU s/100k | fpmlb CPU s/100k | fpmlb CPU for %.1fx |"
            % TARGET_RATIO, "|---|---:|---:|---:|---:|---|"] + out + [""]


def cmd_case(a):
    print(case_markdown(load_db(a.db), a.script, a.conc))


def cmd_final(a):
    runs = load_db(a.db)
    meta = {}
    if a.meta and os.path.exists(a.meta):
        with open(a.meta) as f:
            meta = json.load(f)
    parts = ["## fpmlb benchmark", ""]
    if meta:
        parts.append("%s; wrk -t2 -d%ss --timeout 5s; php-fpm: %s nodes x %s children (pm static), "
                     "sessions in memcached; balancers: 2 threads/workers each; host: %s CPUs, Linux %s, "
                     "TCP congestion control %s (BBR paces loopback flows: see README, Performance)."
                     % (meta.get("date", "?"), meta.get("seconds", "?"), meta.get("nodes", "?"),
                        meta.get("children", "?"), meta.get("cpus", "?"), meta.get("kernel", "?"),
                        meta.get("tcp_congestion_control", "?")))
        parts.append("%s, %s, %s, %s, %s, %s." % (
            meta.get("fpmlb_version", "?"), meta.get("nginx_version", "?"), meta.get("haproxy_version", "?"),
            meta.get("wrk_version", "?"), meta.get("h2load_version", "?"), meta.get("openssl_version", "?")))
        parts.append("TLS cases: each balancer terminates TLS (self-signed ECDSA P-256); HTTP/2 with %s. "
                     "Compressed cases: gzip level %s for fpmlb and nginx, HAProxy's libslz."
                     % (meta.get("h2load", "h2load"), meta.get("gzip_level", "?")))
        parts.append("errors = non-2xx + socket errors (incl. timeouts); \"stalled conns\": connections that got no "
                     "answer for most of the run (estimated: connections - requests x mean latency / duration), which "
                     "wrk does not count; a peer with stalls, or with a p99 over 1 s (requests left waiting seconds), "
                     "is not \"clean\" when picking the best peer.")
        parts.append("CPU = utime+stime of the balancer's processes during the measured run; "
                     "ratios are fpmlb / best peer (req/s: higher is better; p99, CPU: lower is better).")
        parts.append("")
    for script, conc in cases_in(runs):
        parts.append(case_markdown(runs, script, conc))
    parts.append(summary_markdown(runs))
    if meta.get("total_seconds") is not None:
        parts.append("Total run time: %d s." % meta["total_seconds"])
        parts.append("")
    md = "\n".join(parts)
    with open(a.md, "w") as f:
        f.write(md)
    cases = []
    for script, conc in cases_in(runs):
        rows = case_rows(runs, script, conc)
        c = comparison(rows)
        cases.append({"script": script, "concurrency": conc, "runs": rows,
                      "fpmlb_vs_best_peer": c})
    with open(a.json, "w") as f:
        json.dump({"meta": meta, "cases": cases}, f, indent=2)
        f.write("\n")
    print(md)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("add")
    s.add_argument("--db", required=True)
    s.add_argument("--balancer", required=True)
    s.add_argument("--script", required=True)
    s.add_argument("--path", default="")
    s.add_argument("--conc", type=int, required=True)
    s.add_argument("--wrk", required=True)
    s.add_argument("--transport", default="plain", choices=["plain", "tls", "h2"])
    s.add_argument("--coding", default="")
    s.add_argument("--ticks-before", type=int, default=-1)
    s.add_argument("--ticks-after", type=int, default=-1)
    s.add_argument("--clk", type=int, default=100)
    s.add_argument("--host-before", help="host busy and total CPU ticks (/proc/stat) before the run")
    s.add_argument("--host-after")
    s.add_argument("--rss-kb", type=int, default=-1)
    s.add_argument("--load", default="")
    s.add_argument("--note", action="append")
    s.set_defaults(func=cmd_add)
    s = sub.add_parser("case")
    s.add_argument("--db", required=True)
    s.add_argument("--script", required=True)
    s.add_argument("--conc", type=int, required=True)
    s.set_defaults(func=cmd_case)
    s = sub.add_parser("final")
    s.add_argument("--db", required=True)
    s.add_argument("--meta")
    s.add_argument("--json", required=True)
    s.add_argument("--md", required=True)
    s.set_defaults(func=cmd_final)
    a = p.parse_args()
    a.func(a)


if __name__ == "__main__":
    sys.exit(main())

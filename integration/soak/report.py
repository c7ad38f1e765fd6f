#!/usr/bin/env python3
"""The verdict of integration/soak.sh: RSS at start, peak and end, whether
memory kept growing, and every answer that was not the client's fault.
Prints a short report; exits 1 when the soak failed (see soak.sh --help).
"""

import argparse
import json
import re
import sys


def mib(kib):
    return kib / 1024


def mean(values):
    return sum(values) / len(values) if values else 0.0


def tagged_json(path, tag):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith(tag + " "):
                    return json.loads(line[len(tag) + 1 :])
    except OSError:
        pass
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rss", required=True)
    ap.add_argument("--wrk", required=True)
    ap.add_argument("--clients", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--load-start", type=float, required=True)
    ap.add_argument("--load-end", type=float, required=True)
    ap.add_argument("--max-growth-mib", type=float, required=True)
    ap.add_argument("--after", default="ok")
    ap.add_argument("--out")
    a = ap.parse_args()

    failures = []
    samples = []
    with open(a.rss) as f:
        for line in f:
            try:
                t, kib = line.split()
                samples.append((float(t), int(kib)))
            except ValueError:
                continue
    load = [kib for t, kib in samples if a.load_start <= t <= a.load_end]
    if len(load) < 6:
        failures.append(f"only {len(load)} RSS samples during the load")
    third = max(1, len(load) // 3)
    first, middle, last = load[:third], load[third : 2 * third], load[2 * third :]
    rss = {
        "start_mib": round(mib(load[0]), 1) if load else None,
        "peak_mib": round(mib(max(kib for _, kib in samples)), 1) if samples else None,
        "end_mib": round(mib(samples[-1][1]), 1) if samples else None,
        "first_third_mean_mib": round(mib(mean(first)), 1),
        "middle_third_mean_mib": round(mib(mean(middle)), 1),
        "last_third_mean_mib": round(mib(mean(last)), 1),
        "samples": len(samples),
    }
    growth = mib(mean(last) - mean(middle)) if middle and last else 0.0
    rss["growth_mib"] = round(growth, 2)
    if growth > a.max_growth_mib:
        failures.append(
            f"memory keeps growing: last third's mean RSS is {growth:.1f} MiB above the middle "
            f"third's (limit {a.max_growth_mib:g} MiB)"
        )

    wrk = tagged_json(a.wrk, "SOAK-WRK")
    if wrk is None:
        failures.append(f"no summary from wrk (see {a.wrk})")
    else:
        bad = {s: n for s, n in wrk["status"].items() if not s.startswith("2")}
        if bad:
            failures.append(f"wrk: answers that are not 2xx: {bad}")
        errs = {k: v for k, v in wrk["errors"].items() if v}
        if errs:
            failures.append(f"wrk: socket errors: {errs}")

    clients = tagged_json(a.clients, "SOAK-CLIENTS")
    if clients is None:
        failures.append(f"no summary from clients.py (see {a.clients})")
    elif clients["problems"]:
        shown = "; ".join(f"{k}: {d}" for k, d in clients["first_problems"][:10])
        failures.append(f"clients: {clients['problems']} answers not the client's fault: {shown}")

    if a.after != "ok":
        failures.append(a.after)

    # What fpmlb logged (informational): lines per level and event.
    levels = {}
    events = {}
    try:
        with open(a.log, encoding="utf-8", errors="replace") as f:
            for line in f:
                line = re.sub(r"\x1b\[[0-9;]*m", "", line)
                m = re.search(r"\b(ERROR|WARN|INFO|DEBUG)\b\s+(\S+:)?\s*(.*)", line)
                if not m:
                    continue
                levels[m.group(1)] = levels.get(m.group(1), 0) + 1
                event = re.split(r"\s+\w+=", m.group(3), maxsplit=1)[0][:80]
                key = f"{m.group(1)} {event}"
                events[key] = events.get(key, 0) + 1
    except OSError:
        pass

    report = {
        "ok": not failures,
        "failures": failures,
        "rss": rss,
        "load_seconds": round(a.load_end - a.load_start, 1),
        "wrk": wrk,
        "clients": clients and clients["outcomes"],
        "log_levels": levels,
        "log_events": dict(sorted(events.items(), key=lambda kv: -kv[1])[:15]),
    }
    if a.out:
        with open(a.out, "w") as f:
            json.dump(report, f, indent=2)

    print(
        f"soak: RSS start {rss['start_mib']} MiB, peak {rss['peak_mib']} MiB, end {rss['end_mib']} MiB; "
        f"thirds of the load {rss['first_third_mean_mib']} / {rss['middle_third_mean_mib']} / "
        f"{rss['last_third_mean_mib']} MiB (growth {rss['growth_mib']} MiB, limit {a.max_growth_mib:g})"
    )
    if wrk:
        print(
            f"soak: wrk {wrk['requests']} requests in {wrk['duration_us'] / 1e6:.0f} s, "
            f"status {wrk['status']}, errors {wrk['errors']}, p99 {wrk['p99_ms']} ms, max {wrk['max_ms']} ms"
        )
    if clients:
        for kind, seen in sorted(clients["outcomes"].items()):
            print(f"soak: {kind:14} {seen}")
    if events:
        print("soak: fpmlb log: " + ", ".join(f"{k} x{n}" for k, n in report["log_events"].items()))
    for failure in failures:
        print(f"soak: FAIL: {failure}")
    print("soak: " + ("PASS" if not failures else "FAIL"))
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())

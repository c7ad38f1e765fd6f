#!/usr/bin/env python3
"""Idle HTTP/1.1 keep-alive clients for integration/bench.sh (the idle case).

  idle_clients.py --target IP:PORT --count N [--path /hello.php]
                  [--sources 127.0.20.100 --source-count 40] [--hold SECONDS]
                  [--ready FILE] [--timeout SECONDS] [--tls]

Opens COUNT connections (spread over SOURCE-COUNT source addresses starting
at --sources, so a per-client-address cap does not refuse them), sends one
GET with keep-alive on each, reads its whole response, then keeps the
connection open and silent. When every connection has its answer (or
--timeout passed), it writes one JSON line to --ready (and stdout) and
holds the connections for --hold seconds, counting those the server closed
meanwhile; then it writes a second JSON line and closes everything.

With --tls the connections are TLS (certificate not verified: loopback,
a throwaway certificate).

Bounded: at most --timeout seconds to connect and get the answers, then
--hold seconds; loopback only.
"""

import argparse
import asyncio
import ipaddress
import json
import resource
import ssl
import sys
import time


async def one(target, path, source, results, held, tls):
    host, port = target
    try:
        reader, writer = await asyncio.open_connection(host, port, local_addr=(source, 0), ssl=tls,
                                                       server_hostname="bench" if tls else None)
    except OSError as e:
        results["connect_errors"] += 1
        results.setdefault("first_error", str(e))
        return
    try:
        writer.write(("GET %s HTTP/1.1\r\nHost: bench\r\nUser-Agent: idle_clients\r\n\r\n" % path).encode())
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        length = None
        chunked = False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value.strip())
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if chunked:
            while True:
                size_line = await reader.readuntil(b"\r\n")
                size = int(size_line.split(b";")[0].strip(), 16)
                await reader.readexactly(size + 2)
                if size == 0:
                    break
        elif length is not None:
            await reader.readexactly(length)
        status = head.split(b" ", 2)[1]
        if status != b"200":
            results["bad_status"] += 1
        else:
            results["answered"] += 1
    except (OSError, asyncio.IncompleteReadError, ValueError, ssl.SSLError) as e:
        results["request_errors"] += 1
        results.setdefault("first_error", repr(e))
        writer.close()
        return
    held.append((reader, writer))


async def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--target", required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--path", default="/hello.php")
    p.add_argument("--sources", default="127.0.0.1")
    p.add_argument("--source-count", type=int, default=1)
    p.add_argument("--hold", type=float, default=5.0)
    p.add_argument("--timeout", type=float, default=60.0)
    p.add_argument("--batch", type=int, default=500, help="connections opened at once")
    p.add_argument("--ready")
    p.add_argument("--tls", action="store_true")
    a = p.parse_args()
    tls = None
    if a.tls:
        tls = ssl.create_default_context()
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE
    host, _, port = a.target.rpartition(":")
    target = (host, int(port))
    first = ipaddress.ip_address(a.sources)
    sources = [str(first + i) for i in range(a.source_count)]

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = a.count + 256
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))

    results = {"count": a.count, "answered": 0, "bad_status": 0, "connect_errors": 0, "request_errors": 0}
    held = []
    t0 = time.monotonic()

    async def run_all():
        for start in range(0, a.count, a.batch):
            tasks = [one(target, a.path, sources[i % len(sources)], results, held, tls)
                     for i in range(start, min(a.count, start + a.batch))]
            await asyncio.gather(*tasks)

    try:
        await asyncio.wait_for(run_all(), a.timeout)
    except asyncio.TimeoutError:
        results["timed_out"] = True
    results["seconds_to_answer"] = round(time.monotonic() - t0, 2)
    results["held"] = len(held)
    line = json.dumps(results)
    print(line, flush=True)
    if a.ready:
        with open(a.ready, "w") as f:
            f.write(line + "\n")

    # Hold: a connection the server closed shows as EOF on a read.
    async def closed(reader):
        try:
            data = await reader.read(1)
            return data == b""
        except OSError:
            return True

    watch = [asyncio.ensure_future(closed(r)) for r, _ in held]
    await asyncio.sleep(a.hold)
    results["closed_by_server"] = sum(1 for t in watch if t.done() and t.result())
    for t in watch:
        t.cancel()
    for _, w in held:
        w.close()
    print(json.dumps(results), flush=True)
    if a.ready:
        with open(a.ready, "a") as f:
            f.write(json.dumps(results) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

#!/usr/bin/env python3
"""Holds php-fpm workers for integration/bench.sh (the pinned-worker case):
what an nginx `keepalive` connection, a monitoring check or a cron job over
cgi-fcgi does to a pool.

  hold_worker.py --pool IP:PORT --script /path/on/node/hello.php
                 [--count 1] [--hold SECONDS] [--ready FILE]

Opens COUNT FastCGI connections to the pool, runs one request with
FCGI_KEEP_CONN on each (so php-fpm's worker stays with the connection),
reads its answer to END_REQUEST, then keeps every connection open and
silent for --hold seconds: each pins one worker. Writes "held N" to
--ready (and stdout) once the requests are answered. Bounded: 10 s to get
the answers, then --hold seconds.
"""

import argparse
import socket
import struct
import sys
import time

BEGIN, END, PARAMS, STDIN, STDOUT = 1, 3, 4, 5, 6


def record(rtype, rid, content=b""):
    pad = (8 - len(content) % 8) % 8
    return struct.pack(">BBHHBx", 1, rtype, rid, len(content), pad) + content + b"\0" * pad


def pairs(items):
    out = b""
    for k, v in items:
        k, v = k.encode(), v.encode()
        for n in (len(k), len(v)):
            out += bytes([n]) if n < 128 else struct.pack(">I", n | 0x80000000)
        out += k + v
    return out


def request(script):
    params = pairs([
        ("SCRIPT_FILENAME", script), ("SCRIPT_NAME", "/" + script.rsplit("/", 1)[-1]),
        ("REQUEST_METHOD", "GET"), ("REQUEST_URI", "/hold"), ("QUERY_STRING", ""),
        ("SERVER_PROTOCOL", "HTTP/1.1"), ("GATEWAY_INTERFACE", "CGI/1.1"),
        ("REMOTE_ADDR", "127.0.0.1"), ("SERVER_NAME", "bench"), ("SERVER_PORT", "80"),
    ])
    keep_conn = 1
    return (record(BEGIN, 1, struct.pack(">HB5x", 1, keep_conn)) + record(PARAMS, 1, params)
            + record(PARAMS, 1) + record(STDIN, 1))


def read_to_end(sock):
    buf = b""
    while True:
        while len(buf) >= 8:
            _, rtype, _, clen, pad = struct.unpack(">BBHHBx", buf[:8])
            if len(buf) < 8 + clen + pad:
                break
            buf = buf[8 + clen + pad:]
            if rtype == END:
                return True
        chunk = sock.recv(65536)
        if not chunk:
            return False
        buf += chunk


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pool", required=True)
    p.add_argument("--script", required=True)
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--hold", type=float, default=30.0)
    p.add_argument("--ready")
    a = p.parse_args()
    host, _, port = a.pool.rpartition(":")
    held = []
    for _ in range(a.count):
        s = socket.create_connection((host, int(port)), timeout=10)
        s.sendall(request(a.script))
        if not read_to_end(s):
            print("the pool closed the connection before END_REQUEST", file=sys.stderr)
            return 1
        held.append(s)
    line = "held %d" % len(held)
    print(line, flush=True)
    if a.ready:
        with open(a.ready, "w") as f:
            f.write(line + "\n")
    time.sleep(a.hold)
    for s in held:
        s.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

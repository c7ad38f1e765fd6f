#!/usr/bin/env python3
"""The hostile half of integration/soak.sh: clients that are slow, that give
up, that send too much, each kind in its own threads, in a loop until the
deadline. Every outcome is checked against what that kind may get back:

  slow-head       trickles a GET's head a few bytes at a time: 200 when it
                  finishes, or fpmlb's 408 / a close when it runs out of time
  stalled-head    sends half a head and nothing more: 408 or a close
  slow-body       trickles a POST body below body_buffer_size: 200 with
                  the body's length and SHA-256 echoed by upload.php, or 408
  slow-big-body   the same above body_buffer_size (streamed by fpmlb)
  cut-body        sends part of a POST body, then closes (no answer read)
  cut-response    asks for 1 MiB, reads a little, then closes (half of them
                  with an RST)
  too-big         Content-Length above max_body_size: 413
  missing         a .php script that does not exist: 404
  climbing        a path above the document root: 400

A 5xx is never the client's fault: it is a server error, and so is any
outcome not listed for the kind. The summary is one JSON line on stdout,
"SOAK-CLIENTS {...}"; problems are listed (the first ones with details).

usage: clients.py HOST:PORT SECONDS [KIND=THREADS ...]
"""

import hashlib
import http.client
import json
import socket
import struct
import sys
import threading
import time

MAX_BODY = 1024 * 1024  # fpmlb's max_body_size in soak.sh's config
BUFFER = 64 * 1024  # fpmlb's body_buffer_size (the default)

DEFAULT_THREADS = {
    "slow-head": 3,
    "stalled-head": 2,
    "slow-body": 2,
    "slow-big-body": 2,
    "cut-body": 2,
    "cut-response": 2,
    "too-big": 1,
    "missing": 1,
    "climbing": 1,
    "head": 1,
}

lock = threading.Lock()
outcomes = {}  # kind -> {outcome: count}
problems = []  # (kind, detail)


def record(kind, outcome, ok, detail=""):
    with lock:
        outcomes.setdefault(kind, {})
        outcomes[kind][outcome] = outcomes[kind].get(outcome, 0) + 1
        if not ok:
            problems.append((kind, f"{outcome}: {detail}"[:300]))


def connect(addr, timeout=30):
    host, port = addr.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_response(s, method="GET"):
    """(status, body) of the answer on s, or (None, why) when the server
    closed without one."""
    resp = http.client.HTTPResponse(s, method=method)
    try:
        resp.begin()
        return resp.status, resp.read()
    except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as e:
        return None, type(e).__name__
    except http.client.IncompleteRead as e:
        return resp.status, f"incomplete body ({len(e.partial)} bytes)"
    finally:
        resp.close()


def classify(kind, status, body, allowed, closed_ok, check=None):
    if status is None:
        record(kind, "closed", closed_ok, str(body))
    elif status >= 500:
        record(kind, str(status), False, f"server error: {body[:200]!r}")
    elif status not in allowed:
        record(kind, str(status), False, f"unexpected: {body[:200]!r}")
    elif check is not None and status == 200 and not check(body):
        record(kind, "bad-body", False, f"{body[:200]!r}")
    else:
        record(kind, str(status), True)


def trickle(s, data, piece, pause, deadline):
    """Sends data piece bytes every pause seconds; False when the server
    closed or the run is over."""
    for at in range(0, len(data), piece):
        if time.monotonic() > deadline:
            return False
        try:
            s.sendall(data[at : at + piece])
        except (BrokenPipeError, ConnectionResetError):
            return True  # closed by the server: read what it said
        time.sleep(pause)
    return True


def slow_head(addr, deadline):
    s = connect(addr)
    try:
        head = b"GET /hello.php?slow=1 HTTP/1.1\r\nHost: soak\r\nUser-Agent: slow\r\nConnection: close\r\n\r\n"
        if trickle(s, head, 8, 0.25, deadline):
            status, body = read_response(s)
            classify("slow-head", status, body, {200, 408}, True)
    finally:
        s.close()


def stalled_head(addr, deadline):
    s = connect(addr, timeout=120)
    try:
        s.sendall(b"GET /hello.php HTTP/1.1\r\nHost: soak\r\nX-Half: ")
        s.settimeout(max(1.0, deadline - time.monotonic()))
        try:
            status, body = read_response(s)
        except (socket.timeout, TimeoutError):
            return  # still open at the end of the run: nothing to judge
        classify("stalled-head", status, body, {408}, True)
    finally:
        s.close()


def upload(kind, addr, deadline, size, piece, pause):
    data = bytes((i * 7) & 0xFF for i in range(size))
    want = {"len": size, "sha256": hashlib.sha256(data).hexdigest()}
    s = connect(addr)
    try:
        head = (
            f"POST /upload.php HTTP/1.1\r\nHost: soak\r\nContent-Type: application/octet-stream\r\n"
            f"Content-Length: {size}\r\nConnection: close\r\n\r\n"
        ).encode()
        s.sendall(head)
        if trickle(s, data, piece, pause, deadline):
            status, body = read_response(s, "POST")

            def check(b):
                try:
                    return json.loads(b) == want
                except ValueError:
                    return False

            classify(kind, status, body, {200, 408}, True, check)
    finally:
        s.close()


def slow_body(addr, deadline):
    upload("slow-body", addr, deadline, BUFFER // 2, 2048, 0.25)


def slow_big_body(addr, deadline):
    upload("slow-big-body", addr, deadline, 3 * BUFFER, 16384, 0.25)


def cut_body(addr, deadline):
    s = connect(addr)
    try:
        s.sendall(
            b"POST /upload.php HTTP/1.1\r\nHost: soak\r\nContent-Length: 200000\r\n\r\n" + b"z" * 20000
        )
        time.sleep(0.2)
        record("cut-body", "sent-and-closed", True)
    finally:
        s.close()


def cut_response(addr, deadline):
    s = connect(addr)
    try:
        s.sendall(b"GET /big.php?bytes=1048576 HTTP/1.1\r\nHost: soak\r\n\r\n")
        got = 0
        while got < 16384:
            chunk = s.recv(4096)
            if not chunk:
                break
            got += len(chunk)
        if got < 16384:
            record("cut-response", "short", False, f"only {got} bytes before the close")
            return
        if int(time.monotonic() * 10) % 2:
            # RST instead of FIN.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        record("cut-response", "read-and-closed", True)
    finally:
        s.close()


def simple(kind, request, allowed, method="GET"):
    def run(addr, deadline):
        s = connect(addr)
        try:
            s.sendall(request)
            status, body = read_response(s, method)
            classify(kind, status, body, allowed, False)
        finally:
            s.close()
        time.sleep(0.05)

    return run


KINDS = {
    "slow-head": slow_head,
    "stalled-head": stalled_head,
    "slow-body": slow_body,
    "slow-big-body": slow_big_body,
    "cut-body": cut_body,
    "cut-response": cut_response,
    "too-big": simple(
        "too-big",
        f"POST /upload.php HTTP/1.1\r\nHost: soak\r\nContent-Length: {2 * MAX_BODY}\r\nConnection: close\r\n\r\n".encode(),
        {413},
        "POST",
    ),
    "missing": simple(
        "missing", b"GET /no-such-script.php HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n", {404}
    ),
    "climbing": simple(
        "climbing", b"GET /a/../../etc/passwd HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n", {400}
    ),
    "head": simple(
        "head", b"HEAD /big.php?bytes=100000 HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n", {200}, "HEAD"
    ),
}


def worker(kind, addr, deadline):
    run = KINDS[kind]
    while time.monotonic() < deadline:
        try:
            run(addr, deadline)
        except (socket.timeout, TimeoutError):
            record(kind, "client-timeout", False, "no answer within 30 s")
        except ConnectionRefusedError as e:
            record(kind, "refused", False, str(e))
            time.sleep(0.5)
        except OSError as e:
            record(kind, "os-error", False, repr(e))
            time.sleep(0.5)


def main():
    addr, seconds = sys.argv[1], float(sys.argv[2])
    threads = dict(DEFAULT_THREADS)
    for arg in sys.argv[3:]:
        kind, n = arg.split("=", 1)
        if kind not in KINDS:
            sys.exit(f"clients.py: unknown kind {kind!r} (one of {', '.join(KINDS)})")
        threads[kind] = int(n)
    deadline = time.monotonic() + seconds
    running = []
    for kind, n in threads.items():
        for _ in range(n):
            t = threading.Thread(target=worker, args=(kind, addr, deadline), daemon=True)
            t.start()
            running.append(t)
    for t in running:
        t.join(timeout=max(0.0, deadline - time.monotonic()) + 40)
    with lock:
        summary = {
            "outcomes": outcomes,
            "problems": len(problems),
            "first_problems": problems[:20],
        }
        print("SOAK-CLIENTS " + json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()

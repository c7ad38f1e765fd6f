#!/usr/bin/env python3
"""Seeds from real php-fpm output (run by fuzz/capture.sh, which starts the node).

usage: capture.py HOST:PORT DOCROOT CORPUS_DIR

For each request below: one FastCGI request (BEGIN_REQUEST, PARAMS, STDIN),
the raw answer read until php-fpm closes the connection, stored as
CORPUS_DIR/fastcgi_record/php-NAME; its STDOUT up to the end of the CGI head
plus a few body bytes as CORPUS_DIR/cgi_head/php-NAME. A GET_VALUES query
is stored too. The client is written here, not taken from fpmlb, so the
seeds do not depend on the codec they test.
"""

import socket
import struct
import sys

REQUESTS = [
    # (name, script, query, method, body)
    ("hello", "/hello.php", "", "GET", b""),
    ("cookies", "/cookies.php", "", "GET", b""),
    ("missing-script", "/no-such.php", "", "GET", b""),
    ("big-70000", "/big.php", "bytes=70000&cl=1", "GET", b""),
    ("upload", "/upload.php", "", "POST", b"a=1&b=" + b"x" * 300),
    ("status-404", "/heads.php", "case=status", "GET", b""),
    ("location", "/heads.php", "case=location", "GET", b""),
    ("created", "/heads.php", "case=created", "GET", b""),
    ("set-cookie", "/heads.php", "case=cookies", "GET", b""),
    ("length", "/heads.php", "case=length", "GET", b""),
    ("hop-by-hop", "/heads.php", "case=hop", "GET", b""),
    ("warning", "/heads.php", "case=warning", "GET", b""),
    ("fatal", "/heads.php", "case=fatal", "GET", b""),
    ("stderr", "/heads.php", "case=stderr", "GET", b""),
    ("head", "/hello.php", "", "HEAD", b""),
]


def record(kind, request_id, content):
    out = b""
    for at in range(0, max(len(content), 1), 65535):
        chunk = content[at : at + 65535]
        out += struct.pack(">BBHHBB", 1, kind, request_id, len(chunk), 0, 0) + chunk
        if not content:
            break
    return out


def pair(name, value):
    def length(n):
        return struct.pack(">B", n) if n < 128 else struct.pack(">I", n | 0x80000000)

    return length(len(name)) + length(len(value)) + name + value


def exchange(addr, payload, one_record=False):
    """Sends payload, reads until php-fpm closes (or, with one_record, until
    one whole record is in: php-fpm keeps the connection after GET_VALUES)."""
    host, port = addr.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(payload)
        answer = b""
        while True:
            if one_record and len(answer) >= 8:
                _, _, _, length, padding, _ = struct.unpack(">BBHHBB", answer[:8])
                if len(answer) >= 8 + length + padding:
                    return answer
            chunk = s.recv(65536)
            if not chunk:
                return answer
            answer += chunk


def stdout_of(stream):
    out, at = b"", 0
    while at + 8 <= len(stream):
        _, kind, _, length, padding, _ = struct.unpack(">BBHHBB", stream[at : at + 8])
        if kind == 6:
            out += stream[at + 8 : at + 8 + length]
        at += 8 + length + padding
    return out


def main():
    addr, docroot, corpus = sys.argv[1:4]
    for name, script, query, method, body in REQUESTS:
        params = {
            "SCRIPT_FILENAME": docroot + script,
            "SCRIPT_NAME": script,
            "REQUEST_URI": script + ("?" + query if query else ""),
            "DOCUMENT_URI": script,
            "DOCUMENT_ROOT": docroot,
            "QUERY_STRING": query,
            "REQUEST_METHOD": method,
            "CONTENT_TYPE": "application/x-www-form-urlencoded" if body else "",
            "CONTENT_LENGTH": str(len(body)) if body else "",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "GATEWAY_INTERFACE": "CGI/1.1",
            "REMOTE_ADDR": "127.0.0.1",
            "SERVER_NAME": "seed.test",
            "REDIRECT_STATUS": "200",
            "HTTP_HOST": "seed.test",
        }
        pairs = b"".join(pair(k.encode(), v.encode()) for k, v in params.items())
        payload = record(1, 1, struct.pack(">HB5x", 1, 0))  # BEGIN_REQUEST, responder, close
        payload += record(4, 1, pairs) + record(4, 1, b"")
        if body:
            payload += record(5, 1, body)
        payload += record(5, 1, b"")
        stream = exchange(addr, payload)
        if not stream:
            sys.exit(f"capture.py: no answer for {name}")
        with open(f"{corpus}/fastcgi_record/php-{name}", "wb") as f:
            f.write(stream)
        stdout = stdout_of(stream)
        end = stdout.find(b"\r\n\r\n")
        with open(f"{corpus}/cgi_head/php-{name}", "wb") as f:
            f.write(stdout[: end + 4 + 16] if end >= 0 else stdout[:4096])
        print(f"capture.py: {name}: {len(stream)} bytes of records")

    # GET_VALUES on a connection of its own.
    names = [b"FCGI_MAX_CONNS", b"FCGI_MAX_REQS", b"FCGI_MPXS_CONNS"]
    stream = exchange(addr, record(9, 0, b"".join(pair(n, b"") for n in names)), one_record=True)
    with open(f"{corpus}/fastcgi_record/php-get-values", "wb") as f:
        f.write(stream)
    print(f"capture.py: get-values: {len(stream)} bytes")


if __name__ == "__main__":
    main()

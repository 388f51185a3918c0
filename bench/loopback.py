#!/usr/bin/env python3
"""Loopback ceiling for bench/data.sh: the least an HTTP server can do with the same curl commands.

    python3 bench/loopback.py PORT FILE

PUT <any path>: reads Content-Length bytes into one reused 1 MiB buffer (no hashing, no disk),
answers 204. GET <any path>: answers 200 with FILE, sent with sendfile(2) from page cache.
One connection at a time, HTTP/1.1, exits on SIGTERM. Information only: it shows what curl and
loopback cost on this machine, so a slow imaged figure can be told apart from a slow client.
"""
import os
import signal
import socket
import sys


def serve(port: int, path: str) -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    listener = socket.create_server(("127.0.0.1", port), reuse_port=False)
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    while True:
        conn, _ = listener.accept()
        with conn:
            rest = b""
            while True:
                while b"\r\n\r\n" not in rest:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    rest += chunk
                if b"\r\n\r\n" not in rest:
                    break
                head, rest = rest.split(b"\r\n\r\n", 1)
                lines = head.decode("latin-1").split("\r\n")
                method = lines[0].split(" ", 1)[0]
                headers = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:] if ":" in l)}
                length = int(headers.get("content-length", "0"))
                left = length - len(rest)
                rest = b""
                while left > 0:
                    n = conn.recv_into(view[: min(left, len(buf))])
                    if n == 0:
                        break
                    left -= n
                if method == "GET":
                    size = os.path.getsize(path)
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                                 b"Content-Length: %d\r\n\r\n" % size)
                    with open(path, "rb") as f:
                        conn.sendfile(f)
                else:
                    conn.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")


if __name__ == "__main__":
    serve(int(sys.argv[1]), sys.argv[2])

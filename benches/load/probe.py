#!/usr/bin/env python3
"""A minimal keep-alive ICAP RESPMOD load probe, the yardstick `icap-client bench` is compared
with in BENCHMARKS.md: N processes, one connection each, the same body over and over, for a
fixed time. It reads each answer's head and, for a 200, its chunked body, and counts scans.

usage: probe.py HOST PORT SERVICE BODY_BYTES CONNECTIONS SECONDS
"""
import multiprocessing as mp
import socket
import sys
import time


def request(host, service, size):
    http_req = b"GET /probe.bin HTTP/1.1\r\nHost: probe\r\n\r\n"
    http_res = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size
    head = (
        b"RESPMOD icap://%s/%s ICAP/1.0\r\nHost: %s\r\nAllow: 204\r\n"
        b"Encapsulated: req-hdr=0, res-hdr=%d, res-body=%d\r\n\r\n"
        % (host.encode(), service.encode(), host.encode(), len(http_req), len(http_req) + len(http_res))
    )
    body = b"a" * size
    chunk = (b"%x\r\n" % size + body + b"\r\n") if size else b""
    return head + http_req + http_res + chunk + b"0\r\n\r\n"


def read_answer(s, buf):
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        if not d:
            raise EOFError
        buf += d
    end = buf.index(b"\r\n\r\n") + 4
    head, buf = buf[:end], buf[end:]
    if b"null-body" in head or b" 204 " in head.split(b"\r\n", 1)[0] + b" " or b"body=" not in head:
        return buf
    while b"\r\n0\r\n\r\n" not in buf and not buf.startswith(b"0\r\n\r\n"):
        d = s.recv(65536)
        if not d:
            raise EOFError
        buf += d
    i = buf.index(b"0\r\n\r\n") + 5 if buf.startswith(b"0\r\n\r\n") else buf.index(b"\r\n0\r\n\r\n") + 7
    return buf[i:]


def worker(host, port, service, size, seconds, out):
    msg = request(host, service, size)
    s = socket.create_connection((host, port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    n, buf = 0, b""
    end = time.monotonic() + seconds
    reconnects = 0
    while time.monotonic() < end:
        try:
            s.sendall(msg)
            buf = read_answer(s, buf)
            n += 1
        except (EOFError, OSError):
            # The server closed the connection (c-icap recycles its children): reconnect.
            reconnects += 1
            s.close()
            s = socket.create_connection((host, port))
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            buf = b""
    out.put(n)


def main():
    host, port, service, size, conns, seconds = sys.argv[1:7]
    port, size, conns, seconds = int(port), int(size), int(conns), float(seconds)
    out = mp.Queue()
    ps = [mp.Process(target=worker, args=(host, port, service, size, seconds, out)) for _ in range(conns)]
    t0 = time.monotonic()
    for p in ps:
        p.start()
    total = sum(out.get() for _ in ps)
    for p in ps:
        p.join()
    el = time.monotonic() - t0
    print("probe: %d scans in %.2f s: %.0f scans/s" % (total, el, total / el))


if __name__ == "__main__":
    main()

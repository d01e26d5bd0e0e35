#!/usr/bin/env python3
"""Transparent TCP tap for capturing real ICAP traffic byte for byte.

usage: icap-tap.py LISTEN_PORT UPSTREAM_PORT OUTDIR [PREFIX]

Listens on 127.0.0.1:LISTEN_PORT, forwards every connection to 127.0.0.1:UPSTREAM_PORT and writes
what each side sent to OUTDIR/PREFIX-N.request.icap (client to server) and
OUTDIR/PREFIX-N.response.icap (server to client), N counting connections from 1. Prints "ready"
once listening; runs until killed. It does not parse anything: it only copies bytes.
"""
import os
import socket
import sys
import threading


def pump(src, dst, path, done):
    with open(path, "wb") as log:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                log.write(data)
                log.flush()
                dst.sendall(data)
        except OSError:
            pass
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    done.release()


def serve(conn, upstream_port, base):
    up = socket.create_connection(("127.0.0.1", upstream_port), timeout=30)
    up.settimeout(None)
    conn.settimeout(None)
    done = threading.Semaphore(0)
    threading.Thread(target=pump, args=(conn, up, base + ".request.icap", done), daemon=True).start()
    threading.Thread(target=pump, args=(up, conn, base + ".response.icap", done), daemon=True).start()
    done.acquire()
    done.acquire()
    conn.close()
    up.close()


def main():
    listen_port, upstream_port, outdir = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    prefix = sys.argv[4] if len(sys.argv) > 4 else "conn"
    os.makedirs(outdir, exist_ok=True)
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", listen_port))
    srv.listen(16)
    print("ready", flush=True)
    n = 0
    while True:
        conn, _ = srv.accept()
        n += 1
        base = os.path.join(outdir, "%s-%d" % (prefix, n))
        threading.Thread(target=serve, args=(conn, upstream_port, base), daemon=True).start()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Misbehaving peers for perf/soak.sh: a bad origin and hostile clients.

    soak_peers.py origin PORT SECONDS
        An origin whose answers go wrong in turn, by request path:
        /reset (closes mid-body), /garbage (not HTTP), /short (body shorter
        than Content-Length, then close), /silent (never answers until the
        client or the deadline gives up), /close-idle (answers, then closes
        the idle connection without saying so); anything else: 200 "ok".

    soak_peers.py clients PROXY_PORT SECONDS
        Hostile and careless clients, in a loop until SECONDS pass: slow heads
        (one byte at a time, then given up), clients that leave mid-response,
        malformed and smuggling-shaped requests, pipelined bursts, requests to
        the bad origin. Prints one line of counters at the end.

Only 127.0.0.1 is used; every socket has a timeout; everything stops by itself.
"""
import random
import socket
import sys
import threading
import time


def origin(port, seconds):
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(512)
    srv.settimeout(0.5)
    end = time.time() + seconds

    def serve(conn):
        conn.settimeout(5)
        buf = b""
        try:
            while time.time() < end:
                while b"\r\n\r\n" not in buf:
                    d = conn.recv(65536)
                    if not d:
                        return
                    buf += d
                head, _, buf = buf.partition(b"\r\n\r\n")
                path = head.split(b" ")[1] if b" " in head else b"/"
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    k, _, v = line.partition(b":")
                    if k.strip().lower() == b"content-length":
                        length = int(v.strip() or b"0")
                while len(buf) < length:
                    d = conn.recv(65536)
                    if not d:
                        return
                    buf += d
                buf = buf[length:]
                if path.startswith(b"/bad/reset"):
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 1000)
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    return
                if path.startswith(b"/bad/garbage"):
                    conn.sendall(b"HTTP/9 nonsense\r\n\x00\x01\r\n\r\n")
                    return
                if path.startswith(b"/bad/short"):
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\nonly this")
                    return
                if path.startswith(b"/bad/silent"):
                    time.sleep(3)
                    return
                body = b"ok"
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n" + body)
                if path.startswith(b"/bad/close-idle"):
                    return
        except OSError:
            pass
        finally:
            conn.close()

    while time.time() < end:
        try:
            conn, _ = srv.accept()
        except socket.timeout:
            continue
        threading.Thread(target=serve, args=(conn,), daemon=True).start()
    srv.close()


def clients(port, seconds):
    end = time.time() + seconds
    counts = {}
    lock = threading.Lock()

    def count(kind):
        with lock:
            counts[kind] = counts.get(kind, 0) + 1

    def connect():
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.settimeout(5)
        return s

    def status_of(s):
        data = b""
        while b"\r\n" not in data:
            d = s.recv(4096)
            if not d:
                break
            data += d
        parts = data.split(b" ", 2)
        return parts[1].decode() if len(parts) > 1 else "none"

    def slow_head():
        s = connect()
        for b in b"GET /good/size/100 HTTP/1.1\r\nHo":
            s.send(bytes([b]))
            time.sleep(0.05)
        s.close()
        count("slow_head_abandoned")

    def leave_mid_response():
        s = connect()
        s.sendall(b"GET /good/size/1048576 HTTP/1.1\r\nHost: soak\r\n\r\n")
        s.recv(1000)
        s.close()
        count("left_mid_response")

    def malformed():
        req = random.choice([
            b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"POST /good/ HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
            b"\x00\x01\x02 garbage\r\n\r\n",
            b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\n\r\n",
        ])
        s = connect()
        s.sendall(req)
        count("malformed_" + status_of(s))
        s.close()

    def pipelined():
        s = connect()
        s.sendall(b"GET /good/size/100 HTTP/1.1\r\nHost: soak\r\n\r\n" * 20)
        got = b""
        while got.count(b"HTTP/1.1 200") < 20:
            d = s.recv(65536)
            if not d:
                break
            got += d
        count("pipelined_ok" if got.count(b"HTTP/1.1 200") == 20 else "pipelined_short")
        s.close()

    def bad_origin():
        path = random.choice([b"reset", b"garbage", b"short", b"silent", b"close-idle", b"fine"])
        s = connect()
        s.sendall(b"GET /bad/" + path + b" HTTP/1.1\r\nHost: soak\r\n\r\n")
        try:
            count("bad_" + path.decode() + "_" + status_of(s))
        except OSError:
            count("bad_" + path.decode() + "_closed")
        s.close()

    kinds = [slow_head, leave_mid_response, malformed, pipelined, bad_origin, bad_origin]

    def loop():
        while time.time() < end:
            try:
                random.choice(kinds)()
            except OSError as e:
                count("client_error_" + type(e).__name__)

    threads = [threading.Thread(target=loop, daemon=True) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 10)
    print(" ".join(f"{k}={v}" for k, v in sorted(counts.items())))


if __name__ == "__main__":
    role, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    {"origin": origin, "clients": clients}[role](port, seconds)

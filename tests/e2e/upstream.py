#!/usr/bin/env python3
"""A real HTTP/1.1 upstream for the end-to-end tests, run as its own process.

usage: upstream.py PORT NAME [HOST]   (HOST: the loopback address to bind, 127.0.0.1)

Thread per connection, keep-alive, CL and chunked request bodies. It records
every request it receives (GET /__requests) and counts connections
(GET /__stats), so tests can assert what crossed the gateway.

Paths:
  /__stats            {"connections": N, "requests": M}
  /__requests         the recorded requests (method, target, headers, body_len)
  /__reset            forget recorded requests and counters
  /__fail?status=NNN  from now on answer every other path with NNN (0: stop)
  /status/NNN         answers status NNN
  /big?n=BYTES        a body of n bytes (Content-Length), streamed
  /chunked?n=BYTES    the same, chunked
  /sse?events=N&gap=S server-sent events, one every S seconds
  /slow?delay=S       waits S seconds, then answers
  /die-mid            announces 1000 bytes, sends 100, closes
  /die-head           closes after a partial status line
  /close              answers, then closes (Connection: close)
  /upload             reads the body, answers its length and sha256
  anything else       200 JSON describing the request
"""
import hashlib
import json
import socket
import sys
import threading
import time
import urllib.parse

LOCK = threading.Lock()
STATS = {"connections": 0, "requests": 0}
FAIL = [0]   # /__fail: the status every request gets, 0 = behave
RECORDED = []


class Closed(Exception):
    pass


class Conn:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise Closed()
        self.buf += data

    def read_until(self, marker, limit=1 << 20):
        while marker not in self.buf:
            if len(self.buf) > limit:
                raise Closed()
            self.fill()
        i = self.buf.index(marker) + len(marker)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def read_n(self, n, sink=None):
        left = n
        while left > 0:
            if not self.buf:
                self.fill()
            take = self.buf[:left]
            self.buf = self.buf[len(take):]
            left -= len(take)
            if sink:
                sink(take)


def read_request(c):
    head = c.read_until(b"\r\n\r\n").decode("latin-1")
    lines = head.split("\r\n")
    method, target, version = lines[0].split(" ", 2)
    headers = []
    for line in lines[1:]:
        if line:
            k, v = line.split(":", 1)
            headers.append((k.strip(), v.strip()))
    h = {k.lower(): v for k, v in headers}
    digest = hashlib.sha256()
    size = [0]

    def sink(b):
        size[0] += len(b)
        digest.update(b)

    if h.get("transfer-encoding", "").lower() == "chunked":
        while True:
            line = c.read_until(b"\r\n").strip()
            n = int(line.split(b";")[0], 16)
            if n == 0:
                c.read_until(b"\r\n")
                break
            c.read_n(n, sink)
            c.read_until(b"\r\n")
    elif "content-length" in h:
        c.read_n(int(h["content-length"]), sink)
    return method, target, version, headers, size[0], digest.hexdigest()


def send(sock, status, body=b"", ctype="application/json", extra=(), head_only=False):
    if status in (204, 304) or status < 200:
        head = "HTTP/1.1 %d X\r\nX-Upstream: %s\r\n" % (status, NAME)
        body = b""
    else:
        head = "HTTP/1.1 %d X\r\nContent-Type: %s\r\nContent-Length: %d\r\nX-Upstream: %s\r\n" % (
            status, ctype, len(body), NAME)
    if head_only:
        body = b""
    for k, v in extra:
        head += "%s: %s\r\n" % (k, v)
    sock.sendall(head.encode() + b"\r\n" + body)


def handle(sock):
    c = Conn(sock)
    with LOCK:
        STATS["connections"] += 1
    try:
        while True:
            method, target, version, headers, body_len, sha = read_request(c)
            url = urllib.parse.urlsplit(target)
            q = dict(urllib.parse.parse_qsl(url.query))
            path = url.path
            with LOCK:
                STATS["requests"] += 1
                if not path.startswith("/__"):
                    RECORDED.append({"method": method, "target": target, "headers": headers,
                                     "body_len": body_len})
            hl = {k.lower(): v for k, v in headers}
            if path == "/__stats":
                with LOCK:
                    send(sock, 200, json.dumps(STATS).encode())
            elif path == "/__requests":
                with LOCK:
                    send(sock, 200, json.dumps(RECORDED).encode())
            elif path == "/__reset":
                with LOCK:
                    RECORDED.clear()
                    STATS["connections"] = 1
                    STATS["requests"] = 0
                send(sock, 200, b"{}")
            elif path == "/__fail":
                FAIL[0] = int(q.get("status", "0"))
                send(sock, 200, b"{}")
            elif FAIL[0]:
                send(sock, FAIL[0], json.dumps({"server": NAME, "failing": True}).encode())
            elif path.startswith("/status/"):
                send(sock, int(path[8:]), json.dumps({"server": NAME}).encode())
            elif path == "/big" or path == "/chunked":
                n = int(q.get("n", "1024"))
                block = b"x" * 65536
                if path == "/big":
                    sock.sendall(("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                                  "Content-Length: %d\r\n\r\n" % n).encode())
                    while n > 0 and method != "HEAD":
                        part = block[:min(n, len(block))]
                        sock.sendall(part)
                        n -= len(part)
                else:
                    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                                 b"Transfer-Encoding: chunked\r\n\r\n")
                    while n > 0:
                        part = block[:min(n, len(block))]
                        sock.sendall(b"%x\r\n" % len(part) + part + b"\r\n")
                        n -= len(part)
                    sock.sendall(b"0\r\n\r\n")
            elif path == "/sse":
                events = int(q.get("events", "5"))
                gap = float(q.get("gap", "0.3"))
                sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                             b"Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n")
                for i in range(events):
                    ev = ("data: event %d at %.3f\n\n" % (i, time.time())).encode()
                    sock.sendall(b"%x\r\n" % len(ev) + ev + b"\r\n")
                    time.sleep(gap)
                sock.sendall(b"0\r\n\r\n")
            elif path == "/slow":
                time.sleep(float(q.get("delay", "2")))
                send(sock, 200, json.dumps({"server": NAME, "slow": True}).encode())
            elif path == "/die-mid":
                sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"y" * 100)
                time.sleep(0.1)
                return
            elif path == "/die-head":
                sock.sendall(b"HTTP/1.1 20")
                return
            elif path == "/close":
                send(sock, 200, json.dumps({"server": NAME}).encode(), extra=[("Connection", "close")])
                return
            elif path == "/raw":
                # answers whatever bytes the test asked for (hex in ?b=), then closes
                sock.sendall(bytes.fromhex(q.get("b", "")))
                time.sleep(0.1)
                return
            elif path == "/upload":
                send(sock, 200, json.dumps({"server": NAME, "body_len": body_len, "sha256": sha}).encode())
            else:
                info = {"server": NAME, "method": method, "path": path, "query": url.query,
                        "target": target, "headers": hl, "body_len": body_len}
                send(sock, 200, json.dumps(info).encode())
            if hl.get("connection", "").lower() == "close" or version == "HTTP/1.0":
                return
    except (Closed, ConnectionError, OSError, ValueError):
        pass
    finally:
        try:
            sock.close()
        except OSError:
            pass


def main():
    global NAME
    port = int(sys.argv[1])
    NAME = sys.argv[2] if len(sys.argv) > 2 else "upstream"
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((sys.argv[3] if len(sys.argv) > 3 else "127.0.0.1", port))
    srv.listen(1024)
    print("READY", flush=True)
    while True:
        s, _ = srv.accept()
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=handle, args=(s,), daemon=True).start()


NAME = "upstream"
if __name__ == "__main__":
    main()

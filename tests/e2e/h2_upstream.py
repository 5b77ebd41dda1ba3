#!/usr/bin/env python3
"""A real HTTP/2 (h2c prior knowledge) upstream for the end-to-end tests,
built on hyper-h2 and run as its own process.

usage: h2_upstream.py PORT

One thread per connection, each a small event loop over one socket that
honours HTTP/2 flow control, so large bodies stream both ways.

Paths:
  /__stats            {"connections": N, "streams": M, "resets": R}
  /big?n=BYTES        n bytes (with content-length), streamed
  /trailers           "hello" then trailers x-checksum: abc, x-count: 1
  /status/NNN         answers status NNN
  /slow?delay=S       waits S seconds, then answers
  /drip?n=N&gap=S     N chunks "chunk i\\n", one every S seconds
  /rst-head           sends the head, then RST_STREAM (INTERNAL_ERROR)
  /rst                RST_STREAM (REFUSED_STREAM) without a head
  /goaway             answers, then GOAWAY and closes the connection
  /close              answers, then closes the TCP connection abruptly
  /upload             reads the body, answers its length and sha256
  anything else       200 JSON: method, path, authority, scheme, headers, body_len
"""
import hashlib
import json
import select
import socket
import sys
import threading
import time
import urllib.parse

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions

LOCK = threading.Lock()
STATS = {"connections": 0, "streams": 0, "resets": 0}


def bump(key, n=1):
    with LOCK:
        STATS[key] += n


class Conn:
    def __init__(self, sock):
        self.sock = sock
        cfg = h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        self.h2 = h2.connection.H2Connection(config=cfg)
        self.reqs = {}        # stream id -> {"headers": [...], "body": bytearray}
        self.out = {}         # stream id -> [bytearray, trailers or None, complete]
        self.timers = []      # (when, fn)
        self.closing = None   # "goaway" / "close" after the next flush

    # -- sending ----------------------------------------------------------
    def respond(self, sid, status, body=b"", headers=(), trailers=None, length=True):
        hdrs = [(":status", str(status))] + list(headers)
        if length and trailers is None:
            hdrs.append(("content-length", str(len(body))))
        end = not body and trailers is None
        self.h2.send_headers(sid, hdrs, end_stream=end)
        if not end:
            self.out[sid] = [bytearray(body), trailers, True]

    def json(self, sid, obj, status=200):
        self.respond(sid, status, json.dumps(obj).encode(), [("content-type", "application/json")])

    def pump(self):
        for sid in list(self.out):
            buf, trailers, complete = self.out[sid]
            try:
                while buf:
                    win = min(self.h2.local_flow_control_window(sid), self.h2.max_outbound_frame_size)
                    if win <= 0:
                        break
                    chunk = bytes(buf[:win])
                    del buf[:win]
                    self.h2.send_data(sid, chunk)
                if not buf and complete:
                    if trailers:
                        self.h2.send_headers(sid, trailers, end_stream=True)
                    else:
                        self.h2.end_stream(sid)
                    del self.out[sid]
            except (h2.exceptions.StreamClosedError, KeyError, h2.exceptions.ProtocolError):
                self.out.pop(sid, None)

    def flush(self):
        data = self.h2.data_to_send()
        if data:
            self.sock.sendall(data)

    # -- requests ---------------------------------------------------------
    def handle(self, sid):
        req = self.reqs[sid]
        hdrs = req["headers"]
        pseudo = {k: v for k, v in hdrs if k.startswith(":")}
        target = pseudo.get(":path", "/")
        u = urllib.parse.urlsplit(target)
        q = dict(urllib.parse.parse_qsl(u.query))
        path = u.path
        if path == "/__stats":
            with LOCK:
                self.json(sid, dict(STATS))
        elif path == "/big":
            n = int(q.get("n", "0"))
            body = (bytes(range(251)) * (n // 251 + 1))[:n]
            self.respond(sid, 200, body, [("content-type", "application/octet-stream")])
        elif path == "/trailers":
            self.respond(sid, 200, b"hello", [("content-type", "text/plain")],
                         trailers=[("x-checksum", "abc"), ("x-count", "1")])
        elif path.startswith("/status/"):
            self.json(sid, {"status": int(path[8:])}, status=int(path[8:]))
        elif path == "/slow":
            delay = float(q.get("delay", "1"))
            self.timers.append((time.time() + delay, lambda: self.json(sid, {"slow": delay})))
        elif path == "/drip":
            n, gap = int(q.get("n", "3")), float(q.get("gap", "0.2"))
            self.h2.send_headers(sid, [(":status", "200"), ("content-type", "text/plain")])
            state = {"i": 0}
            buf = bytearray()

            def more():
                if sid not in self.out:
                    return
                buf.extend(b"chunk %d\n" % state["i"])
                state["i"] += 1
                if state["i"] < n:
                    self.timers.append((time.time() + gap, more))
                else:
                    self.out[sid][2] = True
            self.out[sid] = [buf, None, False]
            more()
        elif path == "/rst-head":
            self.h2.send_headers(sid, [(":status", "200"), ("content-type", "text/plain")])
            self.h2.send_data(sid, b"partial")
            self.h2.reset_stream(sid, h2.errors.ErrorCodes.INTERNAL_ERROR)
        elif path == "/rst":
            self.h2.reset_stream(sid, h2.errors.ErrorCodes.REFUSED_STREAM)
        elif path == "/goaway":
            self.json(sid, {"goaway": True})
            self.closing = "goaway"
        elif path == "/close":
            self.json(sid, {"close": True})
            self.closing = "close"
        elif path == "/upload":
            body = bytes(req["body"])
            self.json(sid, {"length": len(body), "sha256": hashlib.sha256(body).hexdigest()})
        else:
            headers = {}
            for k, v in hdrs:
                if not k.startswith(":"):
                    headers[k] = headers[k] + ", " + v if k in headers else v
            self.json(sid, {"method": pseudo.get(":method"), "path": u.path, "query": u.query,
                            "target": target, "authority": pseudo.get(":authority"),
                            "scheme": pseudo.get(":scheme"), "headers": headers,
                            "body_len": len(req["body"]), "stream": sid})

    def on_event(self, ev):
        if isinstance(ev, h2.events.RequestReceived):
            bump("streams")
            self.reqs[ev.stream_id] = {"headers": list(ev.headers), "body": bytearray()}
        elif isinstance(ev, h2.events.DataReceived):
            req = self.reqs.get(ev.stream_id)
            if req is not None:
                req["body"].extend(ev.data)
            self.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        elif isinstance(ev, h2.events.StreamEnded):
            if ev.stream_id in self.reqs:
                self.handle(ev.stream_id)
        elif isinstance(ev, h2.events.StreamReset):
            bump("resets")
            self.out.pop(ev.stream_id, None)
            self.reqs.pop(ev.stream_id, None)
        elif isinstance(ev, h2.events.ConnectionTerminated):
            raise EOFError()

    def run(self):
        self.h2.initiate_connection()
        self.flush()
        while True:
            now = time.time()
            due = [t for t in self.timers if t[0] <= now]
            self.timers = [t for t in self.timers if t[0] > now]
            for _, fn in due:
                try:
                    fn()
                except h2.exceptions.ProtocolError:
                    pass   # the gateway reset it meanwhile (a timeout): only that stream is gone
            self.pump()
            self.flush()
            if self.closing == "goaway":
                self.h2.close_connection(last_stream_id=max(self.reqs) if self.reqs else 0)
                self.flush()
                time.sleep(0.05)
                return
            if self.closing == "close":
                return
            wait = min([t[0] for t in self.timers], default=now + 1.0) - time.time()
            r, _, _ = select.select([self.sock], [], [], max(0.0, min(wait, 1.0)))
            if r:
                data = self.sock.recv(65536)
                if not data:
                    return
                for ev in self.h2.receive_data(data):
                    self.on_event(ev)


def serve_conn(sock):
    bump("connections")
    try:
        Conn(sock).run()
    except (EOFError, OSError, h2.exceptions.ProtocolError) as e:
        print("connection closed: %r" % e, file=sys.stderr, flush=True)
    finally:
        try:
            sock.close()
        except OSError:
            pass


def main():
    port = int(sys.argv[1])
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(128)
    print("READY", flush=True)
    while True:
        sock, _ = srv.accept()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=serve_conn, args=(sock,), daemon=True).start()


if __name__ == "__main__":
    main()

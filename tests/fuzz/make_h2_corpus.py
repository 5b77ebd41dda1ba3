#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_h2 (tests/fuzz/corpus/fuzz_h2/): client bytes
after the connection preface (the harness prepends it), made with hyper-h2.

usage: make_h2_corpus.py [OUTDIR]

fuzz_h2's target picks its behaviour from an FNV-1a hash of :path (answer,
problem, read the body, read it slowly, stream, trailers, abort, silent);
MODE_PATHS holds one path per behaviour so the seeds reach all of them.
"""
import os
import struct
import sys

import h2.config
import h2.connection
import h2.settings

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
MODES = ["respond", "problem", "read_all", "read_slow", "stream", "trailers", "abort", "silent"]


def fnv1a32(b):
    h = 2166136261
    for c in b:
        h = ((h ^ c) * 16777619) & 0xFFFFFFFF
    return h


def mode_paths():
    out, i = {}, 0
    while len(out) < len(MODES):
        p = "/m%d" % i
        m = MODES[fnv1a32(p.encode()) % len(MODES)]
        out.setdefault(m, p)
        i += 1
    return out


MODE_PATHS = mode_paths()


def client(settings=None):
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    c.initiate_connection()
    if settings:
        c.update_settings(settings)
    return c


def out(c):
    data = c.data_to_send()
    return data[len(PREFACE):] if data.startswith(PREFACE) else data


def req(path, method="GET", extra=()):
    return [(":method", method), (":scheme", "http"), (":path", path), (":authority", "gw.test")] + list(extra)


def frame(ftype, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", sid) + payload


def seeds():
    s = {}
    c = client()
    c.send_headers(1, req("/"), end_stream=True)
    s["get"] = out(c)

    for mode, path in MODE_PATHS.items():
        c = client()
        c.send_headers(1, req(path, "POST", [("content-length", "20")]))
        c.send_data(1, b"0123456789" * 2, end_stream=True)
        c.send_headers(3, req(path + "?again"), end_stream=True)
        s["mode_" + mode] = out(c)

    c = client()
    c.send_headers(1, req(MODE_PATHS["read_slow"], "POST"))
    for i in range(4):
        c.send_data(1, bytes([65 + i]) * 300)
    c.end_stream(1)
    c.increment_flow_control_window(65535)
    s["post_chunks_no_length"] = out(c)

    c = client()
    c.send_headers(1, req(MODE_PATHS["read_all"], "POST", [("content-length", "5")]))
    c.send_data(1, b"hello")
    c.send_headers(1, [("x-checksum", "abc")], end_stream=True)
    s["post_trailers"] = out(c)

    c = client()
    c.ping(b"12345678")
    s["ping"] = out(c)

    c = client()
    c.send_headers(1, req(MODE_PATHS["silent"]), end_stream=True)
    c.reset_stream(1)
    c.send_headers(3, req(MODE_PATHS["stream"]), end_stream=True)
    c.reset_stream(3, error_code=8)
    s["rst"] = out(c)

    c = client({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 10,
                h2.settings.SettingCodes.MAX_FRAME_SIZE: 16384,
                h2.settings.SettingCodes.HEADER_TABLE_SIZE: 0})
    c.send_headers(1, req(MODE_PATHS["stream"]), end_stream=True)
    c.send_headers(3, req(MODE_PATHS["trailers"], extra=[("content-type", "application/grpc"), ("te", "trailers")]),
                   end_stream=True)
    data = out(c)
    data += frame(4, 1, 0)                                          # SETTINGS ACK
    for _ in range(3):
        data += frame(8, 0, 1, struct.pack(">I", 40000)) + frame(8, 0, 3, struct.pack(">I", 40000))
    data += frame(8, 0, 0, struct.pack(">I", 1 << 20))
    s["small_window_stream"] = data

    c = client()
    for sid in range(1, 21, 2):
        c.send_headers(sid, req("/p%d" % sid, extra=[("cookie", "a=%d" % sid), ("cookie", "b=2")]), end_stream=True)
    s["many_streams"] = out(c)

    c = client()
    c.send_headers(1, req(MODE_PATHS["respond"], extra=[("x-h%d" % i, "v" * 40) for i in range(60)]),
                   end_stream=True)
    s["many_headers"] = out(c)

    c = client()
    c.send_headers(1, req(MODE_PATHS["abort"]), end_stream=True)
    c.close_connection()
    s["goaway"] = out(c)

    c = client()
    c.send_headers(1, req(MODE_PATHS["respond"]), end_stream=True, priority_weight=16, priority_depends_on=0,
                   priority_exclusive=False)
    c.prioritize(1, weight=200)
    s["priority"] = out(c)

    # a header block split over CONTINUATION frames, built by hand
    c = client()
    init = out(c)
    block = c.encoder.encode(req(MODE_PATHS["read_all"], "POST", [("x-long", "z" * 100)]))
    s["continuation"] = (init + frame(1, 0, 1, block[:10]) + frame(9, 0, 1, block[10:40]) +
                         frame(9, 4, 1, block[40:]) + frame(0, 1, 1, b"body"))

    # malformed: missing :path, connection-specific header, uppercase name
    c = client()
    init = out(c)
    enc = c.encoder
    s["malformed"] = (init +
                      frame(1, 5, 1, enc.encode([(":method", "GET"), (":scheme", "http"), (":authority", "x")])) +
                      frame(1, 5, 3, enc.encode(req("/c", extra=[("connection", "keep-alive")]))) +
                      frame(1, 5, 5, enc.encode(req("/u", extra=[("X-Up", "1")]))) +
                      frame(1, 5, 7, enc.encode(req("/ok"))))
    return s


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                                 "corpus", "fuzz_h2")
    os.makedirs(outdir, exist_ok=True)
    for name, data in sorted(seeds().items()):
        with open(os.path.join(outdir, name), "wb") as f:
            f.write(data)
        print("%-24s %5d bytes" % (name, len(data)))


if __name__ == "__main__":
    main()

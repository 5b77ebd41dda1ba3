"""Issue 11, the access log's fast path end to end: fields are copied a word
at a time when they need no escaping, and escaped in full otherwise. A
client (header values, the request target) or a configuration (route and
upstream names) that puts quotes, backslashes, control bytes or bytes that
are not UTF-8 into a field must not break the line out of its JSON string,
whatever the field's length or where the byte sits; the timestamp, now
derived from the exchange's end on the monotonic clock, stays on the wall
clock."""
import datetime
import json
import time

from conftest import raw_exchange

CONFIG = r"""
listen: [ { address: "127.0.0.1:{port}" } ]
log: { access: stdout }
upstreams:
  'up "q" \ é':
    targets: [ "{up}" ]
routes:
  - { name: "r \"x\", \"y\": \x07 \\ é", match: { prefix: / }, upstream: 'up "q" \ é' }
"""

# what needs care in a header value (control bytes and DEL are refused by the
# parser before any field exists; the route name below carries one)
SPECIALS = [b'"', b"\\", b"\xff", b"\x80", b"\xc3", b"\xc3\xa9", b"\xe2\x82\xac", b'"}{"injected":1']


def expected(raw):
    """What the line must decode to: the bytes as UTF-8, each byte that is
    not UTF-8 replaced by U+FFFD."""
    return raw.decode("utf-8", errors="replace")


def lines_of(g, n):
    """The access log's lines once there are n, every one a JSON object
    (the log is read as strict UTF-8)."""
    lines = g.access_log(wait_for=n, timeout=10)
    assert len(lines) >= n, lines
    with open(g.out_path, "rb") as f:
        text = f.read().decode("utf-8")   # strict: the line must be valid UTF-8
    objs = [json.loads(l) for l in text.splitlines() if l.startswith("{")]
    assert len(objs) == len(lines) and all(isinstance(o, dict) for o in objs)
    return objs


def test_fields_that_need_escaping_at_every_length_stay_in_their_string(gatehouse, upstreams):
    up = upstreams("up")
    g = gatehouse(CONFIG, subst={"up": up.address}, workers=1)
    sent = []
    before = time.time()
    n = 0
    for length in (1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 40):
        for sp in SPECIALS:
            if len(sp) > length:
                continue
            for pos in sorted({0, (length - len(sp)) // 2, length - len(sp)}):
                ua = (b"a" * pos + sp + b"b" * (length - pos - len(sp)))[:length]
                assert len(ua) == length
                path = "/p%d" % n
                raw_exchange(g.port, b"GET " + path.encode() + b" HTTP/1.1\r\nHost: h\r\nUser-Agent: " + ua
                             + b"\r\nConnection: close\r\n\r\n")
                sent.append((path, ua))
                n += 1
    # a long value that is all quotes: six times bigger escaped, still one line
    big = b'"' * 6000
    raw_exchange(g.port, b"GET /big HTTP/1.1\r\nHost: h\r\nUser-Agent: " + big + b"\r\nConnection: close\r\n\r\n")
    sent.append(("/big", big))
    lines = lines_of(g, len(sent))
    after = time.time()
    by_path = {l["path"]: l for l in lines}
    for path, ua in sent:
        line = by_path[path]
        assert line["user_agent"] == expected(ua), (ua, line)
        assert "injected" not in line
    assert len(lines) == len(sent)
    # names from the configuration, escaped the same way
    for l in lines:
        assert l["status"] == 200, l
        assert l["route"] == 'r "x", "y": \x07 \\ é' and l["upstream"] == 'up "q" \\ é', l
        assert l["target"] == up.address and l["method"] == "GET" and l["client"] == "127.0.0.1"
        assert len(l["request_id"]) == 32 and l["host"] == "h"
    # the timestamp: wall clock, milliseconds, within the test's window
    for l in lines:
        ts = datetime.datetime.strptime(l["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
            tzinfo=datetime.timezone.utc).timestamp()
        assert before - 1.0 <= ts <= after + 1.0, (before, l["ts"], after)

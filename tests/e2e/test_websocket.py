"""WebSocket through the gateway: HTTP/1.1 Upgrade, then a tunnel (SPEC §8)."""
import asyncio
import os
import socket
import subprocess
import sys
import time

import pytest
import websockets

from conftest import HERE, free_port, wait_port

CONFIG = """
listen: [ { address: "127.0.0.1:{port}" } ]
limits: { idle_timeout: 2s }
upstreams:
  ws: { targets: [ "127.0.0.1:{ws}" ] }
routes:
  - { name: ws, match: { prefix: /ws }, upstream: ws }
"""


@pytest.fixture
def ws_server():
    port = free_port()
    p = subprocess.Popen([sys.executable, os.path.join(HERE, "ws_server.py"), str(port)],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    p.stdout.readline()
    wait_port(port, proc=p)
    yield port
    p.kill()
    p.wait()


def test_echo_text_and_binary_and_close(gatehouse, ws_server):
    g = gatehouse(CONFIG, subst={"ws": ws_server}, workers=1)

    async def talk():
        async with websockets.connect("ws://127.0.0.1:%d/ws/chat" % g.port) as ws:
            await ws.send("hello")
            assert await ws.recv() == "hello"
            blob = bytes(range(256)) * 400
            await ws.send(blob)
            assert await ws.recv() == blob
            for i in range(50):
                await ws.send("m%d" % i)
            got = [await ws.recv() for _ in range(50)]
            assert got == ["m%d" % i for i in range(50)]
            await ws.close()
            assert ws.close_code == 1000

    asyncio.run(talk())
    lines = g.access_log(wait_for=1)
    assert any(l["status"] == 101 and l["path"] == "/ws/chat" for l in lines)


def test_idle_tunnel_is_closed(gatehouse, ws_server):
    g = gatehouse(CONFIG, subst={"ws": ws_server}, workers=1)

    async def idle():
        ws = await websockets.connect("ws://127.0.0.1:%d/ws" % g.port, ping_interval=None)
        t0 = time.time()
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 6)
        return time.time() - t0

    elapsed = asyncio.run(idle())
    assert 1.5 < elapsed < 5


def test_upgrade_refused_by_upstream_is_a_normal_response(gatehouse, upstreams):
    up = upstreams("plain")
    cfg = CONFIG.replace("127.0.0.1:{ws}", up.address)
    g = gatehouse(cfg, workers=1)
    s = socket.create_connection(("127.0.0.1", g.port), timeout=5)
    s.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
              b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
    resp = s.recv(65536)
    s.close()
    assert resp.startswith(b"HTTP/1.1 200")
    # the upstream was asked to switch (the gateway forwards the upgrade)
    rec = up.requests()[-1]
    hdrs = {k.lower(): v for k, v in rec["headers"]}
    assert hdrs["upgrade"] == "websocket" and hdrs["connection"].lower() == "upgrade"


def test_drain_closes_tunnels(gatehouse, ws_server):
    g = gatehouse(CONFIG, subst={"ws": ws_server}, workers=1)

    async def run():
        ws = await websockets.connect("ws://127.0.0.1:%d/ws" % g.port, ping_interval=None)
        await ws.send("x")
        assert await ws.recv() == "x"
        g.proc.send_signal(15)
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)

    asyncio.run(run())
    g.proc.wait(timeout=5)
    assert g.proc.returncode == 0

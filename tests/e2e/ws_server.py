#!/usr/bin/env python3
"""A real WebSocket echo server for the tests (Debian's python3-websockets).
usage: ws_server.py PORT"""
import asyncio
import sys

import websockets


async def echo(ws, path=None):
    async for msg in ws:
        await ws.send(msg)


async def main(port):
    async with websockets.serve(echo, "127.0.0.1", port):
        print("READY", flush=True)
        await asyncio.Future()


asyncio.run(main(int(sys.argv[1])))

#!/usr/bin/env python3
"""A minimal JSON-RPC 2.0 echo server on Python `websockets`: the baseline
that scripts/daemon-bench loads with the same client as twofactord.

Each request is parsed and answered with its params as the result (so the
server does the JSON work a real method call needs, and nothing else).

  py_echo_server.py --unix /tmp/echo.sock      (or --tcp 127.0.0.1:6001)

Prints "ready" on stdout once listening.
"""

import argparse
import asyncio
import json
import sys

import websockets


async def handler(ws, *_path):  # websockets < 13 also passes the path
    async for message in ws:
        req = json.loads(message)
        await ws.send(json.dumps({"jsonrpc": "2.0", "result": req.get("params", []), "id": req.get("id")}))


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--unix")
    p.add_argument("--tcp")
    a = p.parse_args()
    if a.unix:
        server = await websockets.unix_serve(handler, a.unix, compression=None, ping_interval=None)
    else:
        host, port = a.tcp.rsplit(":", 1)
        server = await websockets.serve(handler, host, int(port), compression=None, ping_interval=None)
    print("ready", flush=True)
    async with server:
        await asyncio.Future()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)

"""A WebSocket client (Python `websockets`) run against the proxy:
`ws_client.py URL SCENARIO [ARG]`. Prints one JSON object with what it saw.

Scenarios: messages (text, binary, 1 MB, fragmented, ping/pong),
close CODE (the client closes with CODE), server-close CODE (asks the echo
server to close with CODE), concurrent N (N tunnels at once, each echoing
its own messages), idle (sends nothing and waits for the close), refused
(expects the handshake to fail and reports the status)."""

import asyncio
import json
import os
import sys
import time

from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

OPTS = dict(ping_interval=None, max_size=None, open_timeout=10, close_timeout=10)


async def messages(url):
    out = {}
    async with connect(url, **OPTS) as ws:
        await ws.send("hello")
        out["text"] = await ws.recv() == "hello"
        blob = os.urandom(1000)
        await ws.send(blob)
        out["binary"] = await ws.recv() == blob
        big = os.urandom(1_000_000)
        await ws.send(big)
        out["big"] = await ws.recv() == big
        await ws.send(["frag-", "ment", "ed"])
        out["fragmented"] = await ws.recv() == "frag-mented"
        pong = await ws.ping(b"are you there")
        await asyncio.wait_for(pong, 10)
        out["pong"] = True
    out["close_code"] = ws.close_code
    return out


async def close(url, code):
    async with connect(url, **OPTS) as ws:
        await ws.send("before close")
        await ws.recv()
        await ws.close(code, "client says bye")
    rcvd = ws.protocol.close_rcvd
    return {"echoed_code": rcvd.code if rcvd else None}


async def server_close(url, code):
    async with connect(url, **OPTS) as ws:
        await ws.send(f"close:{code}")
        await asyncio.wait_for(ws.wait_closed(), 10)
    rcvd = ws.protocol.close_rcvd
    return {"code": rcvd.code if rcvd else None, "reason": rcvd.reason if rcvd else None}


async def one(url, i):
    async with connect(url, **OPTS) as ws:
        for k in range(5):
            msg = f"tunnel {i} message {k} " + "x" * (i * 100)
            await ws.send(msg)
            if await ws.recv() != msg:
                return False
    return True


async def concurrent(url, n):
    results = await asyncio.gather(*(one(url, i) for i in range(n)), return_exceptions=True)
    errors = [repr(r) for r in results if r is not True]
    return {"ok": sum(1 for r in results if r is True), "errors": errors[:3]}


async def idle(url):
    async with connect(url, **OPTS) as ws:
        start = time.monotonic()
        try:
            await asyncio.wait_for(ws.wait_closed(), 15)
            closed = True
        except asyncio.TimeoutError:
            closed = False
        return {"closed": closed, "after": time.monotonic() - start}


async def refused(url):
    try:
        async with connect(url, **OPTS):
            return {"status": 101}
    except InvalidStatus as e:
        return {"status": e.response.status_code}


async def main():
    url, scenario = sys.argv[1], sys.argv[2]
    arg = int(sys.argv[3]) if len(sys.argv) > 3 else None
    try:
        if scenario == "messages":
            out = await messages(url)
        elif scenario == "close":
            out = await close(url, arg)
        elif scenario == "server-close":
            out = await server_close(url, arg)
        elif scenario == "concurrent":
            out = await concurrent(url, arg)
        elif scenario == "idle":
            out = await idle(url)
        elif scenario == "refused":
            out = await refused(url)
        else:
            out = {"error": f"unknown scenario {scenario}"}
    except Exception as e:  # reported, for the test to show
        out = {"error": repr(e)}
    print(json.dumps(out), flush=True)


asyncio.run(main())

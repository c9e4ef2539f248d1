"""A WebSocket echo server on 127.0.0.1:0 (Python `websockets`), for the
proxy's tunnel tests. Prints {"port": N} first, then one JSON line per
connection as it opens and as it closes (the close code and reason it got).
A text message "close:CODE" makes it close the connection with that code.
It runs until killed."""

import asyncio
import json

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed


def say(obj):
    print(json.dumps(obj), flush=True)


async def echo(ws):
    req = ws.request
    say({
        "event": "open",
        "path": req.path,
        "upgrade": req.headers.get("Upgrade"),
        "connection": req.headers.get("Connection"),
        "x_forwarded_for": req.headers.get("X-Forwarded-For"),
    })
    try:
        async for msg in ws:
            if isinstance(msg, str) and msg.startswith("close:"):
                await ws.close(int(msg[6:]), "server says bye")
                break
            await ws.send(msg)
    except ConnectionClosed:
        pass
    finally:
        await ws.wait_closed()
        rcvd = ws.protocol.close_rcvd
        say({
            "event": "closed",
            "code": rcvd.code if rcvd else None,
            "reason": rcvd.reason if rcvd else None,
        })


async def main():
    async with serve(echo, "127.0.0.1", 0, ping_interval=None, max_size=None) as server:
        say({"port": server.sockets[0].getsockname()[1]})
        await asyncio.Future()


asyncio.run(main())

"""WebSocket peers for the `ws` scenario of perf/run.sh (Python `websockets`,
from the virtualenv the integration tests use).

    ws_peers.py server PORT
        An echo server on 127.0.0.1:PORT: every message comes back as sent.
        Prints "listening PORT" once it accepts; runs until killed.

    ws_peers.py client URL CONNS SECONDS SIZE WINDOW [MAX_MESSAGES]
        CONNS connections to URL; on each, WINDOW binary messages of SIZE
        bytes are sent, then their WINDOW echoes awaited, over and over, for
        SECONDS (or until MAX_MESSAGES echoes per connection). Prints
        "messages N seconds S failed F bad B": echoes received, the time from
        the first connection's start to the last one's end, connections that
        failed to open or broke, and echoes that were not what was sent.

Both sides run without permessage-deflate (a proxy passes frames through,
compression would only measure zlib). Python is much slower per message
than any of the proxies: with the client and the server sharing one CPU,
messages/s is capped by them, and the figure to compare is the proxy's CPU
time per message.
"""

import asyncio
import sys
import time

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve


async def echo(ws):
    try:
        async for msg in ws:
            await ws.send(msg)
    except Exception:
        pass


async def server(port):
    async with serve(echo, "127.0.0.1", port, compression=None, max_size=None, ping_interval=None):
        print("listening", port, flush=True)
        await asyncio.Future()


async def one_client(url, deadline, size, window, max_msgs, out):
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    got = bad = 0
    try:
        async with connect(url, compression=None, max_size=None, ping_interval=None,
                           open_timeout=10, close_timeout=2) as ws:
            while time.monotonic() < deadline and got < max_msgs:
                for _ in range(window):
                    await ws.send(payload)
                for _ in range(window):
                    m = await asyncio.wait_for(ws.recv(), 10)
                    got += 1
                    if m != payload:
                        bad += 1
    except Exception as e:
        out["failed"] += 1
        out["why"] = repr(e)
    out["messages"] += got
    out["bad"] += bad


async def client(url, conns, secs, size, window, max_msgs):
    out = {"messages": 0, "failed": 0, "bad": 0, "why": ""}
    t0 = time.monotonic()
    deadline = t0 + secs
    await asyncio.gather(*(one_client(url, deadline, size, window, max_msgs, out) for _ in range(conns)))
    t1 = time.monotonic()
    print("messages %d seconds %.3f failed %d bad %d" % (out["messages"], t1 - t0, out["failed"], out["bad"]))
    if out["why"]:
        print("last error:", out["why"])


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "server":
        asyncio.run(server(int(sys.argv[2])))
    elif len(sys.argv) >= 7 and sys.argv[1] == "client":
        url, conns, secs, size, window = sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
        max_msgs = int(sys.argv[7]) if len(sys.argv) > 7 else 1 << 62
        asyncio.run(client(url, conns, secs, size, window, max_msgs))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()

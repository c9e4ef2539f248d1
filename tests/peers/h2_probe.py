"""A raw HTTP/2 client for ringway's tests: well-formed requests, malformed
ones and floods, over cleartext (prior knowledge) or TLS (ALPN h2).

    h2_probe.py SCENARIO PORT [ARG...] [--tls]

Prints one JSON object on its last line: what the server sent back
(responses, resets, GOAWAY, how many frames went out before the cut).
Every socket wait is bounded, so a broken server makes the probe end, not
hang.
"""

import json
import os
import socket
import ssl
import sys
import time

import h2.config
import h2.connection
import h2.events
import h2.settings
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    HeadersFrame,
    PingFrame,
    PriorityFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

ENHANCE_YOUR_CALM = 0xB
WAIT = 10.0


def connect(port, tls):
    s = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(["h2"])
        s = ctx.wrap_socket(s, server_hostname="localhost")
        assert s.selected_alpn_protocol() == "h2", s.selected_alpn_protocol()
    return s


def new_conn(sock, settings=None):
    cfg = h2.config.H2Configuration(
        client_side=True,
        validate_outbound_headers=False,
        normalize_outbound_headers=False,
        validate_inbound_headers=False,
    )
    c = h2.connection.H2Connection(config=cfg)
    c.initiate_connection()
    if settings:
        c.update_settings(settings)
    sock.sendall(c.data_to_send())
    return c


class Collector:
    """Reads frames until every stream of interest ended or the server
    closed, and records what happened."""

    def __init__(self, sock, conn):
        self.sock, self.conn = sock, conn
        self.streams = {}
        self.goaway = None
        self.closed = False
        self.settings = {}

    def stream(self, sid):
        return self.streams.setdefault(
            sid, {"status": None, "headers": {}, "informational": [], "body": b"", "reset": None, "ended": False, "trailers": {}}
        )

    def pump(self, until, deadline=WAIT):
        end = time.time() + deadline
        while not until(self) and not self.closed and time.time() < end:
            self.sock.settimeout(max(0.05, end - time.time()))
            try:
                data = self.sock.recv(65536)
            except (socket.timeout, TimeoutError):
                break
            except (ConnectionResetError, BrokenPipeError, ssl.SSLError, OSError):
                self.closed = True
                break
            if not data:
                self.closed = True
                break
            try:
                events = self.conn.receive_data(data)
            except Exception as e:  # a protocol error on our side ends the probe
                self.closed = True
                self.error = repr(e)
                break
            for ev in events:
                self.event(ev)
            out = self.conn.data_to_send()
            if out:
                try:
                    self.sock.sendall(out)
                except OSError:
                    self.closed = True
        return self

    def event(self, ev):
        if isinstance(ev, h2.events.ResponseReceived):
            st = self.stream(ev.stream_id)
            hdrs = {k.decode(): v.decode() for k, v in ev.headers}
            st["status"] = int(hdrs.pop(":status"))
            st["headers"] = hdrs
        elif isinstance(ev, h2.events.InformationalResponseReceived):
            hdrs = {k.decode(): v.decode() for k, v in ev.headers}
            self.stream(ev.stream_id)["informational"].append(hdrs)
        elif isinstance(ev, h2.events.DataReceived):
            st = self.stream(ev.stream_id)
            st["body"] += ev.data
            self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        elif isinstance(ev, h2.events.TrailersReceived):
            self.stream(ev.stream_id)["trailers"] = {k.decode(): v.decode() for k, v in ev.headers}
        elif isinstance(ev, h2.events.StreamEnded):
            self.stream(ev.stream_id)["ended"] = True
        elif isinstance(ev, h2.events.StreamReset):
            self.stream(ev.stream_id)["reset"] = int(ev.error_code)
        elif isinstance(ev, h2.events.ConnectionTerminated):
            self.goaway = {"code": int(ev.error_code), "last_stream": ev.last_stream_id}
        elif isinstance(ev, h2.events.RemoteSettingsChanged):
            for k, v in ev.changed_settings.items():
                self.settings[int(k)] = v.new_value

    def done(self, sids):
        """All of `sids` ended or were reset, or a GOAWAY said they will
        not be processed (a graceful GOAWAY names the last stream kept)."""

        def check(c):
            if all(c.stream(s)["ended"] or c.stream(s)["reset"] is not None for s in sids):
                return True
            return c.goaway is not None and c.goaway["last_stream"] < min(sids)

        return check

    def result(self, **extra):
        out = {
            "streams": {
                str(k): dict(v, body=v["body"].decode("latin-1"), body_len=len(v["body"]))
                for k, v in self.streams.items()
            },
            "goaway": self.goaway,
            "closed": self.closed,
            "settings": {str(k): v for k, v in self.settings.items()},
            "error": getattr(self, "error", None),
        }
        out.update(extra)
        return out


def request_headers(path, method="GET", authority="test.local", extra=()):
    return [(":method", method), (":scheme", "http"), (":authority", authority), (":path", path)] + list(extra)


def scenario_get(port, tls, path="/", *hdrs):
    sock = connect(port, tls)
    c = new_conn(sock)
    extra = [tuple(h.split(":", 1)) for h in hdrs]
    c.send_headers(1, request_headers(path, extra=[(k.strip(), v.strip()) for k, v in extra]), end_stream=True)
    sock.sendall(c.data_to_send())
    col = Collector(sock, c).pump(Collector.done(None, [1]))
    return col.result()


def scenario_malformed(port, tls, kind):
    sock = connect(port, tls)
    c = new_conn(sock)
    hdrs = request_headers("/m")
    end = True
    body = None
    if kind == "host_mismatch":
        hdrs.append(("host", "other.example"))
    elif kind == "connection_header":
        hdrs.append(("connection", "keep-alive"))
    elif kind == "uppercase":
        hdrs.append(("X-Upper", "1"))
    elif kind == "pseudo_after_regular":
        hdrs = [(":method", "GET"), (":scheme", "http"), ("x-a", "1"), (":path", "/m"), (":authority", "test.local")]
    elif kind == "te_gzip":
        hdrs.append(("te", "gzip"))
    elif kind == "unknown_pseudo":
        hdrs.append((":foo", "bar"))
    elif kind == "no_path":
        hdrs = [(":method", "GET"), (":scheme", "http"), (":authority", "test.local")]
    elif kind == "cl_mismatch":
        hdrs = request_headers("/m", method="POST", extra=[("content-length", "10")])
        end, body = False, b"abc"
    else:
        raise SystemExit("unknown kind " + kind)
    c.send_headers(1, hdrs, end_stream=end)
    if body is not None:
        c.send_data(1, body, end_stream=True)
    sock.sendall(c.data_to_send())
    col = Collector(sock, c).pump(Collector.done(None, [1]))
    return col.result()


def scenario_concurrent(port, tls, n, path):
    """Opens n streams at once, written as raw frames (h2 itself would hold
    back streams beyond the server's limit); reports which were refused."""
    from hpack import Encoder

    n = int(n)
    sock = raw_start(port, tls)
    enc = Encoder()
    sids = [1 + 2 * i for i in range(n)]
    frames = [HeadersFrame(sid, data=enc.encode(request_headers(path)), flags=["END_HEADERS", "END_STREAM"]) for sid in sids]
    sock.sendall(b"".join(f.serialize() for f in frames))
    return raw_collect(sock, sids)


def raw_collect(sock, sids, deadline=WAIT, want_goaway=False, dec=None):
    """Reads frames with a bare parser (the `h2` state machine gives up at
    the first GOAWAY, even a graceful one); reports statuses, bodies and
    resets per stream and the last GOAWAY. Ends when every stream in `sids`
    ended (and, with `want_goaway`, a GOAWAY came), when a GOAWAY says a
    stream will not be served, or when the server closed."""
    from hpack import Decoder
    from hyperframe.frame import Frame

    if dec is None:
        # One decoder per connection: pass it again to read on (HPACK state).
        dec = Decoder()
        dec.max_header_list_size = 1 << 20
    buf = b""
    streams = {s: {"status": None, "reset": None, "ended": False, "body": ""} for s in sids}
    goaway = None
    end = time.time() + deadline
    closed = False

    def finished():
        pending = [k for k, v in streams.items() if not v["ended"] and v["reset"] is None]
        if goaway is not None and pending and goaway["last_stream"] < min(pending):
            return True
        return not pending and (goaway is not None or not want_goaway)

    while time.time() < end and not finished() and not closed:
        sock.settimeout(max(0.05, end - time.time()))
        try:
            data = sock.recv(65536)
        except (socket.timeout, TimeoutError):
            break
        except OSError:
            closed = True
            break
        if not data:
            closed = True
        buf += data
        while len(buf) >= 9:
            f, length = Frame.parse_frame_header(memoryview(buf[:9]))
            if len(buf) < 9 + length:
                break
            f.parse_body(memoryview(buf[9 : 9 + length]))
            buf = buf[9 + length :]
            st = streams.get(f.stream_id)
            name = type(f).__name__
            if name == "HeadersFrame":
                hdrs = dict((k.decode() if isinstance(k, bytes) else k, v) for k, v in dec.decode(f.data))
                status = int(hdrs.get(":status", 0))
                if st is not None and status >= 200:
                    st["status"] = status
                if st is not None and "END_STREAM" in f.flags:
                    st["ended"] = True
            elif name == "DataFrame":
                if st is not None:
                    st["body"] += f.data.decode("latin-1")
                    if "END_STREAM" in f.flags:
                        st["ended"] = True
                if f.flow_controlled_length:
                    try:
                        sock.sendall(WindowUpdateFrame(0, window_increment=f.flow_controlled_length).serialize())
                        sock.sendall(WindowUpdateFrame(f.stream_id, window_increment=f.flow_controlled_length).serialize())
                    except OSError:
                        pass
            elif name == "RstStreamFrame" and st is not None:
                st["reset"] = f.error_code
            elif name == "GoAwayFrame":
                goaway = {"code": f.error_code, "last_stream": f.last_stream_id}
            elif name == "SettingsFrame" and "ACK" not in f.flags:
                try:
                    sock.sendall(SettingsFrame(0, flags=["ACK"]).serialize())
                except OSError:
                    pass
            elif name == "PingFrame" and "ACK" not in f.flags:
                try:
                    sock.sendall(PingFrame(0, opaque_data=f.opaque_data, flags=["ACK"]).serialize())
                except OSError:
                    pass
    return {
        "streams": {str(k): v for k, v in streams.items()},
        "goaway": goaway,
        "closed": closed,
        "refused": sum(1 for v in streams.values() if v["reset"] == 7),
        "ok": sum(1 for v in streams.values() if v["status"] == 200 and v["ended"]),
    }


def raw_get(port, tls, paths):
    """Sends GETs for `paths` on streams 1, 3, ... as raw frames."""
    from hpack import Encoder

    sock = raw_start(port, tls)
    enc = Encoder()
    sids = [1 + 2 * i for i in range(len(paths))]
    sock.sendall(b"".join(HeadersFrame(sid, data=enc.encode(request_headers(p)), flags=["END_HEADERS", "END_STREAM"]).serialize() for sid, p in zip(sids, paths)))
    return sock, sids


PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def raw_start(port, tls):
    sock = connect(port, tls)
    sock.sendall(PREFACE + SettingsFrame(0).serialize())
    return sock


def goaway_in(sock, pending):
    """Reads what the server sent so far without waiting; returns
    (GOAWAY or None, closed, bytes left over)."""
    sock.setblocking(False)
    closed = False
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                closed = True
                break
            pending += data
    except (BlockingIOError, ssl.SSLWantReadError):
        pass
    except OSError:
        closed = True
    finally:
        sock.setblocking(True)
        sock.settimeout(WAIT)
    goaway = None
    while len(pending) >= 9:
        length = int.from_bytes(pending[:3], "big")
        if len(pending) < 9 + length:
            break
        if pending[3] == 7:
            goaway = {"code": int.from_bytes(pending[13:17], "big"), "last_stream": int.from_bytes(pending[9:13], "big") & 0x7FFFFFFF}
        pending = pending[9 + length :]
    return goaway, closed, pending


def scenario_flood(port, tls, kind, count="100000"):
    """Sends one kind of frame as fast as the socket takes it, reading what
    comes back between batches; reports whether the server cut the
    connection with ENHANCE_YOUR_CALM, and how many frames (and bytes) went
    out before it did."""
    from hpack import Encoder

    count = int(count)
    sock = raw_start(port, tls)
    enc = Encoder()
    sent = 0
    sent_bytes = 0
    sid = 1
    batch = []
    pending = b""
    goaway, closed = None, False
    # One HPACK encoder, and every block it makes is sent, in order: the
    # server's decoder must see the same dynamic table.
    head = lambda: enc.encode(request_headers("/flood"))  # noqa: E731
    for i in range(count):
        if kind == "ping":
            f = [PingFrame(0, opaque_data=b"12345678")]
        elif kind == "settings":
            f = [SettingsFrame(0, settings={SettingsFrame.INITIAL_WINDOW_SIZE: 65535})]
        elif kind == "priority":
            f = [PriorityFrame(sid, depends_on=0, stream_weight=16)]
            sid += 2
        elif kind == "window_update":
            f = [WindowUpdateFrame(0, window_increment=1)]
        elif kind == "stream_window_update":
            f = [WindowUpdateFrame(1, window_increment=1)] if i else [HeadersFrame(1, data=head(), flags=["END_HEADERS"])]
        elif kind == "empty_data":
            f = [DataFrame(1, data=b"")] if i else [HeadersFrame(1, data=head(), flags=["END_HEADERS"])]
        elif kind == "rapid_reset":
            f = [HeadersFrame(sid, data=enc.encode(request_headers("/flood")), flags=["END_HEADERS", "END_STREAM"]), RstStreamFrame(sid, error_code=8)]
            sid += 2
        elif kind == "made_you_reset":
            # MadeYouReset (CVE-2025-8671): a frame that makes the server
            # reset the stream itself (a WINDOW_UPDATE that overflows the
            # stream's window is a stream error, RFC 9113 §6.9.1), stream
            # after stream.
            f = [HeadersFrame(sid, data=enc.encode(request_headers("/flood")), flags=["END_HEADERS", "END_STREAM"]), WindowUpdateFrame(sid, window_increment=0x7FFFFFFF)]
            sid += 2
        elif kind == "continuation":
            f = [ContinuationFrame(1, data=b"\x00\x01a\x01b")] if i else [HeadersFrame(1, data=head())]
        else:
            raise SystemExit("unknown flood " + kind)
        batch.extend(x.serialize() for x in f)
        sent += 1
        if len(batch) >= 64 or i == count - 1:
            data = b"".join(batch)
            batch = []
            try:
                sock.sendall(data)
                sent_bytes += len(data)
            except OSError:
                closed = True
            g, c, pending = goaway_in(sock, pending)
            goaway = goaway or g
            if goaway or c or closed:
                closed = closed or c
                break
    if not goaway and not closed:
        end = time.time() + 5
        while time.time() < end and not goaway and not closed:
            time.sleep(0.05)
            goaway, closed, pending = goaway_in(sock, pending)
    return {"goaway": goaway, "closed": closed, "sent": sent, "sent_bytes": sent_bytes}


def scenario_paced_reset(port, tls, n):
    """Opens streams one at a time and resets each once it had time to reach
    the upstream (a paced rapid reset): the server must cut the connection
    after a bounded number."""
    from hpack import Encoder

    n = int(n)
    sock = raw_start(port, tls)
    enc = Encoder()
    sid = 1
    opened = 0
    pending, goaway = b"", None
    for i in range(n):
        try:
            sock.sendall(HeadersFrame(sid, data=enc.encode(request_headers("/slow")), flags=["END_HEADERS", "END_STREAM"]).serialize())
            # Paced below the RST_STREAM budget, so that what cuts the
            # connection is the count of resets after an upstream was reached.
            time.sleep(0.025)
            sock.sendall(RstStreamFrame(sid, error_code=8).serialize())
        except OSError:
            break
        opened += 1
        sid += 2
        g, c, pending = goaway_in(sock, pending)
        goaway = goaway or g
        if goaway or c:
            break
    end = time.time() + 3
    closed = False
    while not goaway and not closed and time.time() < end:
        time.sleep(0.05)
        goaway, closed, pending = goaway_in(sock, pending)
    return {"goaway": goaway, "closed": closed, "opened": opened}


def scenario_hpack_bomb(port, tls, size="4000", repeats="2000"):
    """A small header block that decodes huge: one large field added to the
    dynamic table, then referenced by index over and over."""
    size, repeats = int(size), int(repeats)
    from hpack import Encoder

    sock = raw_start(port, tls)
    enc = Encoder()
    block = enc.encode(request_headers("/bomb"))
    value = b"v" * size
    # Literal with incremental indexing, new name "x-bomb" (RFC 7541 §6.2.1).
    lit = b"\x40" + bytes([len(b"x-bomb")]) + b"x-bomb" + encode_int(len(value), 7) + value
    block += lit + b"\xbe" * repeats  # index 62: the entry just added
    frames = []
    first, rest = block[:16000], block[16000:]
    frames.append(HeadersFrame(1, data=first, flags=["END_STREAM"] + ([] if rest else ["END_HEADERS"])))
    while rest:
        chunk, rest = rest[:16000], rest[16000:]
        frames.append(ContinuationFrame(1, data=chunk, flags=[] if rest else ["END_HEADERS"]))
    try:
        sock.sendall(b"".join(f.serialize() for f in frames))
    except OSError:
        pass
    res = raw_collect(sock, [1])
    res["encoded"] = len(block)
    return res


def encode_int(n, prefix):
    limit = (1 << prefix) - 1
    if n < limit:
        return bytes([n])
    out = [limit]
    n -= limit
    while n >= 128:
        out.append((n % 128) + 128)
        n //= 128
    out.append(n)
    return bytes(out)


def scenario_slow_read(port, tls, path):
    """Asks for a large response with a one-byte window and never opens it
    further: the server must reset the stream, not hold it forever."""
    sock = connect(port, tls)
    c = new_conn(sock, settings={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1})
    c.send_headers(1, request_headers(path), end_stream=True)
    sock.sendall(c.data_to_send())
    col = Collector(sock, c)
    # Do not acknowledge data: override the collector's window updates.
    col.conn.acknowledge_received_data = lambda *a, **k: None
    col.pump(Collector.done(None, [1]), deadline=20)
    return col.result()


def scenario_post(port, tls, path, size, with_length):
    size = int(size)
    sock = connect(port, tls)
    c = new_conn(sock)
    extra = [("content-length", str(size))] if with_length == "1" else []
    c.send_headers(1, request_headers(path, method="POST", extra=extra), end_stream=False)
    body = bytes(i % 251 for i in range(size))
    col = Collector(sock, c)
    off = 0
    while off < size:
        window = min(c.local_flow_control_window(1), c.max_outbound_frame_size)
        if window <= 0:
            sock.sendall(c.data_to_send())
            col.pump(lambda col: c.local_flow_control_window(1) > 0, deadline=5)
            if c.local_flow_control_window(1) <= 0:
                break
            continue
        chunk = body[off : off + window]
        c.send_data(1, chunk, end_stream=off + len(chunk) >= size)
        off += len(chunk)
        sock.sendall(c.data_to_send())
    if size == 0:
        c.end_stream(1)
        sock.sendall(c.data_to_send())
    col.pump(Collector.done(None, [1]))
    return col.result(sent=off)


def scenario_trailers(port, tls, path):
    """POSTs a body with request trailers; reports the response, its body
    and its trailers."""
    sock = connect(port, tls)
    c = new_conn(sock)
    c.send_headers(1, request_headers(path, method="POST", extra=[("te", "trailers")]), end_stream=False)
    c.send_data(1, b"x" * 1000)
    c.send_headers(1, [("x-req-trailer", "from-client")], end_stream=True)
    sock.sendall(c.data_to_send())
    col = Collector(sock, c).pump(Collector.done(None, [1]))
    return col.result()


def scenario_goaway_on_idle(port, tls):
    """Sends one request, then waits for the server's GOAWAY."""
    sock, sids = raw_get(port, tls, ["/idle"])
    return raw_collect(sock, sids, deadline=20, want_goaway=True)


def scenario_goaway_after(port, tls, path):
    """Sends one request; reports its response and the GOAWAY that follows
    (keepalive_requests reached, or a shutdown the test starts meanwhile)."""
    sock, sids = raw_get(port, tls, [path])
    print("started", flush=True)
    return raw_collect(sock, sids, deadline=20, want_goaway=True)


def scenario_reset_inflight(port, tls, path):
    """Starts a request, waits for the server's SETTINGS, then resets the
    stream; the test checks that the upstream work stopped."""
    sock = connect(port, tls)
    c = new_conn(sock)
    c.send_headers(1, request_headers(path), end_stream=True)
    sock.sendall(c.data_to_send())
    time.sleep(0.3)
    c.reset_stream(1, error_code=8)
    sock.sendall(c.data_to_send())
    # A second request on the same connection must still be served.
    c.send_headers(3, request_headers("/after"), end_stream=True)
    sock.sendall(c.data_to_send())
    col = Collector(sock, c).pump(Collector.done(None, [3]))
    return col.result()


def scenario_second_after_file(port, tls, flag):
    """Sends one request and reads its response; then waits (bounded) for
    the file `flag` to exist, sends a second request on the same connection
    and reports both responses and the GOAWAY that follows (a reload that
    removed the listener). Raw frames, as a graceful GOAWAY ends the `h2`
    state machine."""
    from hpack import Decoder, Encoder

    sock = raw_start(port, tls)
    enc, dec = Encoder(), Decoder()
    dec.max_header_list_size = 1 << 20
    sock.sendall(HeadersFrame(1, data=enc.encode(request_headers("/first")), flags=["END_HEADERS", "END_STREAM"]).serialize())
    first = raw_collect(sock, [1], dec=dec)
    end = time.time() + WAIT
    while not os.path.exists(flag) and time.time() < end:
        time.sleep(0.02)
    sock.sendall(HeadersFrame(3, data=enc.encode(request_headers("/second")), flags=["END_HEADERS", "END_STREAM"]).serialize())
    second = raw_collect(sock, [3], want_goaway=True, dec=dec)
    second["streams"].update(first["streams"])
    return second


SCENARIOS = {
    "get": scenario_get,
    "malformed": scenario_malformed,
    "concurrent": scenario_concurrent,
    "flood": scenario_flood,
    "paced_reset": scenario_paced_reset,
    "hpack_bomb": scenario_hpack_bomb,
    "slow_read": scenario_slow_read,
    "post": scenario_post,
    "trailers": scenario_trailers,
    "goaway_on_idle": scenario_goaway_on_idle,
    "goaway_after": scenario_goaway_after,
    "reset_inflight": scenario_reset_inflight,
    "second_after_file": scenario_second_after_file,
}


def main():
    args = sys.argv[1:]
    tls = "--tls" in args
    args = [a for a in args if a != "--tls"]
    name, port, rest = args[0], int(args[1]), args[2:]
    print(json.dumps(SCENARIOS[name](port, tls, *rest)))


if __name__ == "__main__":
    main()

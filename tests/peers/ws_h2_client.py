"""WebSocket over HTTP/2 (RFC 8441) with the Python `h2` codec, against the
proxy over h2c: `ws_h2_client.py HOST PORT PROTOCOL`. Waits for the server's
SETTINGS, opens an extended CONNECT with `:protocol PROTOCOL`, and, on a
200, exchanges WebSocket frames (built here by hand, masked as a client
must) inside DATA: a text message, a 200 kB binary one, a ping, then a
close with code 4001. Prints one JSON object with what it saw."""

import json
import os
import socket
import struct
import sys

import h2.config
import h2.connection
import h2.events
import h2.settings


def frame(opcode, payload, fin=True):
    head = bytes([(0x80 if fin else 0) | opcode])
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


def parse(buf):
    """One unmasked server frame from the front of buf: (opcode, payload, rest) or None."""
    if len(buf) < 2:
        return None
    opcode, n = buf[0] & 0x0F, buf[1] & 0x7F
    pos = 2
    if n == 126:
        if len(buf) < 4:
            return None
        n, pos = struct.unpack("!H", buf[2:4])[0], 4
    elif n == 127:
        if len(buf) < 10:
            return None
        n, pos = struct.unpack("!Q", buf[2:10])[0], 10
    if len(buf) < pos + n:
        return None
    return opcode, buf[pos:pos + n], buf[pos + n:]


class Peer:
    def __init__(self, host, port):
        self.sock = socket.create_connection((host, port), timeout=10)
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        self.flush()
        self.remote_settings = None
        self.status = None
        self.data = b""
        self.ended = False
        self.reset = None

    def flush(self):
        out = self.conn.data_to_send()
        if out:
            self.sock.sendall(out)

    def pump(self, stream_id=None):
        raw = self.sock.recv(65536)
        if not raw:
            raise ConnectionError("connection closed")
        for ev in self.conn.receive_data(raw):
            if isinstance(ev, h2.events.RemoteSettingsChanged):
                self.remote_settings = {int(k): v.new_value for k, v in ev.changed_settings.items()}
            elif isinstance(ev, h2.events.ResponseReceived):
                self.status = int(dict(ev.headers)[b":status"])
                self.headers = {k.decode(): v.decode() for k, v in ev.headers}
            elif isinstance(ev, h2.events.DataReceived):
                self.data += ev.data
                self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                self.ended = True
            elif isinstance(ev, h2.events.StreamReset):
                self.reset = int(ev.error_code)
        self.flush()

    def send(self, sid, data):
        while data:
            window = min(self.conn.local_flow_control_window(sid), self.conn.max_outbound_frame_size)
            if window == 0:
                self.pump()
                continue
            self.conn.send_data(sid, data[:window])
            data = data[window:]
            self.flush()

    def next_frame(self):
        while True:
            got = parse(self.data)
            if got:
                self.data = got[2]
                return got[0], got[1]
            if self.ended or self.reset is not None:
                return None
            self.pump()


def main():
    host, port, protocol = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    out = {}
    p = Peer(host, port)
    while p.remote_settings is None:
        p.pump()
    out["enable_connect_protocol"] = p.remote_settings.get(
        int(h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL), 0)
    sid = p.conn.get_next_available_stream_id()
    p.conn.send_headers(sid, [
        (":method", "CONNECT"),
        (":protocol", protocol),
        (":scheme", "http"),
        (":path", "/chat?room=1"),
        (":authority", f"{host}:{port}"),
        ("sec-websocket-version", "13"),
    ])
    p.flush()
    while p.status is None and p.reset is None:
        p.pump()
    out["status"] = p.status
    out["reset"] = p.reset
    if p.status != 200:
        print(json.dumps(out), flush=True)
        return
    out["accept_header_kept"] = "sec-websocket-accept" in p.headers
    p.send(sid, frame(0x1, b"hello over h2"))
    op, payload = p.next_frame()
    out["text"] = op == 0x1 and payload == b"hello over h2"
    blob = os.urandom(200_000)
    p.send(sid, frame(0x2, blob))
    op, payload = p.next_frame()
    out["binary"] = op == 0x2 and payload == blob
    # A fragmented message: echoed whole by the server.
    p.send(sid, frame(0x1, b"frag-", fin=False) + frame(0x0, b"mented"))
    op, payload = p.next_frame()
    out["fragmented"] = op == 0x1 and payload == b"frag-mented"
    p.send(sid, frame(0x9, b"ping!"))
    op, payload = p.next_frame()
    out["pong"] = op == 0xA and payload == b"ping!"
    p.send(sid, frame(0x8, struct.pack("!H", 4001) + b"h2 bye"))
    got = p.next_frame()
    out["close_echo"] = struct.unpack("!H", got[1][:2])[0] if got and got[0] == 0x8 else None
    # The server closes the TCP connection after the close handshake: the
    # proxy ends the stream.
    p.conn.end_stream(sid)
    p.flush()
    while not p.ended and p.reset is None:
        p.pump()
    out["ended"] = p.ended
    print(json.dumps(out), flush=True)


try:
    main()
except Exception as e:  # reported, for the test to show
    print(json.dumps({"error": repr(e)}), flush=True)

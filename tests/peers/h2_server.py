"""A cleartext HTTP/2 server (prior knowledge) for ringway's tests of HTTP/2
upstreams: it answers each stream, once the request ended, with a JSON body
that tells what it received (path, body size, fields, trailers), and sends
response trailers. Prints {"port": N} first, then an event line per request
served; serves until stdin closes.
"""

import json
import socket
import sys
import threading

import h2.config
import h2.connection
import h2.events


def serve_conn(sock):
    conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=False, validate_inbound_headers=False))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    streams = {}
    while True:
        try:
            data = sock.recv(65536)
        except OSError:
            return
        if not data:
            return
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.RequestReceived):
                streams[ev.stream_id] = {"headers": {k.decode(): v.decode() for k, v in ev.headers}, "body": 0, "trailers": {}}
            elif isinstance(ev, h2.events.DataReceived):
                streams[ev.stream_id]["body"] += len(ev.data)
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.TrailersReceived):
                streams[ev.stream_id]["trailers"] = {k.decode(): v.decode() for k, v in ev.headers}
            elif isinstance(ev, h2.events.StreamEnded):
                st = streams.pop(ev.stream_id)
                print(json.dumps({"event": "request", "path": st["headers"].get(":path"), "user-agent": st["headers"].get("user-agent")}), flush=True)
                body = json.dumps(st).encode()
                conn.send_headers(ev.stream_id, [(":status", "200"), ("content-type", "application/json")])
                conn.send_data(ev.stream_id, body)
                conn.send_headers(ev.stream_id, [("x-trailer", "from-upstream")], end_stream=True)
        out = conn.data_to_send()
        if out:
            sock.sendall(out)


def main():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    print(json.dumps({"port": srv.getsockname()[1]}), flush=True)

    def accept():
        while True:
            s, _ = srv.accept()
            threading.Thread(target=serve_conn, args=(s,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    sys.stdin.read()


if __name__ == "__main__":
    main()

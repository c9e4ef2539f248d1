"""A real gRPC server and client (grpcio) for ringway's tests, with raw
bytes as messages, so no generated code is needed.

    grpc_peer.py server            # prints {"port": N}, serves until stdin closes
    grpc_peer.py client HOST:PORT CASE [ARG]

Service `test.Echo`:
  Unary         echoes the request
  ServerStream  answers with the request's bytes, one per message
  ClientStream  answers with all requests joined by "|"
  Bidi          answers each request as it comes, upper-cased
  Slow          sleeps for the number of milliseconds in the request
  Fail          aborts with INVALID_ARGUMENT and the request as details,
                and a trailing metadata entry

The client prints one JSON object: the responses, the final status code
and details, and the trailing metadata.
"""

import json
import sys
import threading
import time
from concurrent import futures

import grpc

ident = lambda b: b  # noqa: E731


def serve():
    def unary(req, ctx):
        return req

    def server_stream(req, ctx):
        for b in req:
            yield bytes([b])

    def client_stream(reqs, ctx):
        return b"|".join(reqs)

    def bidi(reqs, ctx):
        for r in reqs:
            yield r.upper()

    def slow(req, ctx):
        time.sleep(int(req.decode()) / 1000)
        return b"late"

    def fail(req, ctx):
        ctx.set_trailing_metadata((("x-why", "on-purpose"),))
        ctx.abort(grpc.StatusCode.INVALID_ARGUMENT, req.decode())

    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(unary, ident, ident),
        "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream, ident, ident),
        "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream, ident, ident),
        "Bidi": grpc.stream_stream_rpc_method_handler(bidi, ident, ident),
        "Slow": grpc.unary_unary_rpc_method_handler(slow, ident, ident),
        "Fail": grpc.unary_unary_rpc_method_handler(fail, ident, ident),
    }
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Echo", handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(json.dumps({"port": port}), flush=True)
    # Runs until the test closes stdin (or dies, which closes it too).
    sys.stdin.read()
    server.stop(0)


def client(target, case, arg=None):
    ch = grpc.insecure_channel(target)
    out = {"responses": [], "code": "OK", "details": None, "trailers": {}}
    timeout = 20
    try:
        if case == "unary":
            fn = ch.unary_unary("/test.Echo/Unary", ident, ident)
            r, call = fn.with_call(arg.encode() if arg else b"hello", timeout=timeout)
            out["responses"].append(r.decode())
            out["trailers"] = dict(call.trailing_metadata() or ())
        elif case == "server_stream":
            fn = ch.unary_stream("/test.Echo/ServerStream", ident, ident)
            call = fn(b"abcde", timeout=timeout)
            out["responses"] = [r.decode() for r in call]
        elif case == "client_stream":
            fn = ch.stream_unary("/test.Echo/ClientStream", ident, ident)
            out["responses"].append(fn(iter([b"one", b"two", b"three"]), timeout=timeout).decode())
        elif case == "bidi":
            # Each request is sent only after the answer to the one before:
            # works only if both directions flow at once.
            fn = ch.stream_stream("/test.Echo/Bidi", ident, ident)
            q = []
            cond = threading.Condition()
            words = ["alpha", "beta", "gamma", "delta"]

            def gen():
                for i, w in enumerate(words):
                    with cond:
                        cond.wait_for(lambda: len(q) >= i, timeout=10)
                    yield w.encode()

            for r in fn(gen(), timeout=timeout):
                with cond:
                    q.append(r.decode())
                    cond.notify_all()
            out["responses"] = q
        elif case == "big":
            fn = ch.unary_unary("/test.Echo/Unary", ident, ident)
            payload = bytes(i % 251 for i in range(int(arg)))
            r = fn(payload, timeout=timeout)
            out["responses"].append(len(r) if r == payload else -1)
        elif case == "slow":
            fn = ch.unary_unary("/test.Echo/Slow", ident, ident)
            # arg: "<sleep ms>:<client timeout s>"
            sleep_ms, deadline = arg.split(":")
            out["responses"].append(fn(sleep_ms.encode(), timeout=float(deadline)).decode())
        elif case == "fail":
            fn = ch.unary_unary("/test.Echo/Fail", ident, ident)
            fn(b"bad input", timeout=timeout)
        elif case == "many":
            fn = ch.unary_unary("/test.Echo/Unary", ident, ident)
            n = int(arg)
            futs = [fn.future(str(i).encode(), timeout=timeout) for i in range(n)]
            out["responses"] = sorted(int(f.result().decode()) for f in futs)
        else:
            raise SystemExit("unknown case " + case)
    except grpc.RpcError as e:
        out["code"] = e.code().name
        out["details"] = e.details()
        try:
            out["trailers"] = dict(e.trailing_metadata() or ())
        except Exception:
            pass
    print(json.dumps(out))


if __name__ == "__main__":
    if sys.argv[1] == "server":
        serve()
    else:
        client(*sys.argv[2:])

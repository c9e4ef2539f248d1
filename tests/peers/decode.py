"""Decodes a compressed response body with implementations independent of
ringway's: Python's zlib/gzip, the brotli bindings and zstandard.

    decode.py [--partial] ALGORITHM IN OUT

ALGORITHM is gzip, br or zstd. Without --partial the stream must be whole
(gzip's CRC and length checked, brotli and zstd at their end); with it,
whatever can be decoded of a stream cut anywhere is written. Prints one JSON
line: {"ok": true, "len": N} or {"ok": false, "error": "..."}.
"""
import json
import sys
import zlib

import brotli
import zstandard


def decode(alg, data, partial):
    if alg == "gzip":
        d = zlib.decompressobj(wbits=31)  # gzip wrapper only
        out = d.decompress(data)
        if not partial and (not d.eof or d.unused_data):
            raise ValueError("gzip stream not complete or followed by junk")
        return out
    if alg == "br":
        d = brotli.Decompressor()
        out = d.process(data)
        if not partial and not d.is_finished():
            raise ValueError("brotli stream not complete")
        return out
    if alg == "zstd":
        d = zstandard.ZstdDecompressor().decompressobj()
        out = d.decompress(data)
        if not partial and (not d.eof or d.unused_data):
            raise ValueError("zstd frame not complete or followed by junk")
        return out
    raise ValueError("unknown algorithm " + alg)


def main():
    args = sys.argv[1:]
    partial = args[:1] == ["--partial"]
    if partial:
        args = args[1:]
    alg, src, dst = args
    with open(src, "rb") as f:
        data = f.read()
    try:
        out = decode(alg, data, partial)
    except Exception as e:  # noqa: BLE001 - reported to the test
        print(json.dumps({"ok": False, "error": repr(e)}))
        return
    with open(dst, "wb") as f:
        f.write(out)
    print(json.dumps({"ok": True, "len": len(out)}))


main()

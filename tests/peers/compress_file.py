"""Writes a compressed copy of a file with implementations independent of
ringway's (Python's gzip, the brotli bindings, zstandard), as a site's
build step would leave `app.js.gz` beside `app.js`.

    compress_file.py ALGORITHM IN OUT

ALGORITHM is gzip, br or zstd. Prints one JSON line: {"ok": true, "len": N}.
"""
import gzip
import json
import sys

import brotli
import zstandard


def main():
    alg, src, dst = sys.argv[1:4]
    data = open(src, "rb").read()
    if alg == "gzip":
        out = gzip.compress(data, compresslevel=9)
    elif alg == "br":
        out = brotli.compress(data)
    elif alg == "zstd":
        out = zstandard.ZstdCompressor(level=19).compress(data)
    else:
        print(json.dumps({"ok": False, "error": "unknown algorithm " + alg}))
        return
    open(dst, "wb").write(out)
    print(json.dumps({"ok": True, "len": len(out)}))


main()

"""Parses a multipart/byteranges body (RFC 9110 section 14.6) with Python's
own MIME parser, independent of ringway's writer.

    byteranges.py CONTENT_TYPE BODY_FILE

Prints one JSON line: {"ok": true, "parts": [{"content_type": ...,
"content_range": ..., "hex": ...}, ...]} or {"ok": false, "error": ...}.
"""
import email.parser
import email.policy
import json
import sys


def main():
    ctype, path = sys.argv[1:3]
    body = open(path, "rb").read()
    raw = b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + body
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(raw)
    if not msg.is_multipart() or msg.get_content_subtype() != "byteranges":
        print(json.dumps({"ok": False, "error": "not multipart/byteranges"}))
        return
    if msg.defects:
        print(json.dumps({"ok": False, "error": repr(msg.defects)}))
        return
    parts = []
    for p in msg.iter_parts():
        data = p.get_payload(decode=True)
        parts.append({
            "content_type": p.get("Content-Type"),
            "content_range": p.get("Content-Range"),
            "hex": data.hex(),
        })
    print(json.dumps({"ok": True, "parts": parts}))


main()

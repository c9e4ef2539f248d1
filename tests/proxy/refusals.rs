//! Requests the proxy must refuse, each with its status and before anything
//! reaches the backend; and heads that arrive oddly but must still work.

use std::time::Duration;

use crate::support::client;
use crate::support::*;

/// A proxy in front of a backend that must never be contacted, with small
/// head limits so the limit cases stay small.
fn guarded() -> (Backend, Proxy) {
    let backend = Backend::echo_target();
    let p = Proxy::start(&proxy_all(
        backend.addr,
        "max_request_line = \"1k\"\nmax_header_size = \"2k\"\nmax_headers = 10",
        "",
    ));
    (backend, p)
}

/// Sends `raw` on its own connection and checks the status and that the
/// connection is closed after it (a refused request leaves nothing to trust).
fn refused(p: &Proxy, raw: &[u8], status: u16, what: &str) {
    let mut c = p.client();
    c.send(raw);
    let r = match c.try_response() {
        Ok(r) => r,
        Err(e) => panic!("{what}: no response: {}", client::describe(&e)),
    };
    assert_eq!(r.status, status, "{what}: {}", r.head_text());
    assert!(
        r.says_close(),
        "{what}: Connection: close expected:\n{}",
        r.head_text()
    );
    c.expect_closed();
}

#[test]
fn ambiguous_framing_is_400_and_never_reaches_the_backend() {
    let (backend, p) = guarded();
    let cases: [(&str, &str); 8] = [
        ("Content-Length with Transfer-Encoding", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        ("Transfer-Encoding with Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n"),
        ("two differing Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"),
        ("Content-Length list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\nhello!"),
        ("Transfer-Encoding gzip", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\nxxxx"),
        ("Transfer-Encoding chunked, gzip", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n"),
        ("duplicate chunked fields", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        ("duplicate chunked in one field", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n"),
    ];
    for (what, raw) in cases {
        refused(&p, raw.as_bytes(), 400, what);
    }
    for (what, raw) in [
        (
            "non-numeric Content-Length",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello",
        ),
        (
            "Transfer-Encoding in HTTP/1.0",
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ),
    ] {
        refused(&p, raw.as_bytes(), 400, what);
    }
    backend.assert_untouched("ambiguous framing");
}

#[test]
fn malformed_heads_are_400_and_never_reach_the_backend() {
    let (backend, p) = guarded();
    let cases: [(&str, &[u8]); 9] = [
        (
            "HTTP/1.1 without Host",
            b"GET / HTTP/1.1\r\nUser-Agent: x\r\n\r\n",
        ),
        ("two Host fields", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
        (
            "obs-fold",
            b"GET / HTTP/1.1\r\nHost: a\r\nX-Folded: one\r\n two\r\n\r\n",
        ),
        (
            "NUL in a header value",
            b"GET / HTTP/1.1\r\nHost: a\r\nX-Nul: a\0b\r\n\r\n",
        ),
        ("space before the colon", b"GET / HTTP/1.1\r\nHost : a\r\n\r\n"),
        (
            "space in a header name",
            b"GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n",
        ),
        (
            "bare CR in a value",
            b"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n",
        ),
        ("a slash in Host", b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"),
        (
            "a request target that is not a path",
            b"GET x HTTP/1.1\r\nHost: a\r\n\r\n",
        ),
    ];
    for (what, raw) in cases {
        refused(&p, raw, 400, what);
    }
    backend.assert_untouched("malformed heads");
}

/// httparse takes a bare LF as a line end; ringway refuses it in a request
/// head as it does in chunk lines, so no parser behind it can read the same
/// bytes as a different request.
#[test]
fn bare_lf_in_a_request_head_is_400_and_never_reaches_the_backend() {
    let (backend, p) = guarded();
    let cases: [(&str, &[u8]); 4] = [
        ("every line", b"GET / HTTP/1.1\nHost: a\nX-LF: 1\n\n"),
        ("the request line", b"GET / HTTP/1.1\nHost: a\r\n\r\n"),
        ("one header line", b"GET / HTTP/1.1\r\nHost: a\nX: 1\r\n\r\n"),
        ("the empty line", b"GET / HTTP/1.1\r\nHost: a\r\n\n"),
    ];
    for (what, raw) in cases {
        refused(&p, raw, 400, &format!("bare LF ending {what}"));
    }
    backend.assert_untouched("bare LF heads");
    // The same requests with CRLF pass.
    for (what, raw) in cases {
        let crlf = String::from_utf8_lossy(raw)
            .replace("\r\n", "\n")
            .replace('\n', "\r\n");
        assert_eq!(p.send(crlf).status, 200, "{what} with CRLF");
    }
}

#[test]
fn invalid_chunked_request_bodies_are_400() {
    let (backend, p) = guarded();
    for (what, body) in [
        ("chunk size zz", &b"zz\r\nhello\r\n0\r\n\r\n"[..]),
        ("chunk size line ended by bare LF", b"5\nhello\r\n0\r\n\r\n"),
        ("chunk data not followed by CRLF", b"5\r\nhelloXX0\r\n\r\n"),
        ("negative chunk size", b"-5\r\nhello\r\n0\r\n\r\n"),
        ("chunk size too large", b"fffffffffffffffff\r\nx\r\n0\r\n\r\n"),
    ] {
        let raw = [
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".as_slice(),
            body,
        ]
        .concat();
        refused(&p, &raw, 400, what);
    }
    // No request ever reached the backend complete.
    assert!(backend.seen().is_empty(), "{:?}", backend.seen());
}

#[test]
fn invalid_chunked_request_bodies_never_reach_the_backend() {
    let (backend, p) = guarded();
    for (what, body) in [
        ("chunk size zz", &b"zz\r\nhello\r\n0\r\n\r\n"[..]),
        ("chunk size line ended by bare LF", b"5\nhello\r\n0\r\n\r\n"),
    ] {
        let raw = [
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".as_slice(),
            body,
        ]
        .concat();
        refused(&p, &raw, 400, what);
    }
    backend.assert_untouched("invalid chunked bodies");
}

#[test]
fn limits_on_the_head_are_414_and_431() {
    let (backend, p) = guarded();
    let long_target = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(2000));
    refused(
        &p,
        long_target.as_bytes(),
        414,
        "request line over max_request_line",
    );
    // Refused as soon as the line is too long, even before it ends.
    let mut c = p.client();
    c.send(format!("GET /{}", "b".repeat(1500)));
    assert_eq!(c.response().status, 414);

    let big_head = format!("GET / HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n", "v".repeat(3000));
    refused(&p, big_head.as_bytes(), 431, "head over max_header_size");
    let many: String = (0..11).map(|i| format!("X-H{i}: v\r\n")).collect();
    let many = format!("GET / HTTP/1.1\r\nHost: a\r\n{many}\r\n");
    refused(&p, many.as_bytes(), 431, "more than max_headers fields");
    backend.assert_untouched("head limits");

    // Just inside every limit it works.
    let ok_line = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "c".repeat(1000));
    assert_eq!(p.send(ok_line).status, 200);
    let nine: String = (0..9).map(|i| format!("X-H{i}: v\r\n")).collect();
    assert_eq!(
        p.send(format!("GET / HTTP/1.1\r\nHost: a\r\n{nine}\r\n")).status,
        200
    );
}

#[test]
fn unsupported_versions_are_505() {
    let (backend, p) = guarded();
    refused(
        &p,
        b"GET / HTTP/2.0\r\nHost: a\r\n\r\n",
        505,
        "HTTP/2.0 request line",
    );
    refused(
        &p,
        b"GET / HTTP/1.2\r\nHost: a\r\n\r\n",
        505,
        "HTTP/1.2 request line",
    );
    backend.assert_untouched("unsupported versions");
}

#[test]
fn connect_and_trace_are_405() {
    let (backend, p) = guarded();
    for raw in [
        "CONNECT backend.test:443 HTTP/1.1\r\nHost: backend.test:443\r\n\r\n",
        "TRACE / HTTP/1.1\r\nHost: a\r\n\r\n",
    ] {
        let r = p.send(raw);
        assert_eq!(r.status, 405, "{raw:?}");
    }
    backend.assert_untouched("CONNECT and TRACE");
}

#[test]
fn a_head_sent_one_byte_per_write_still_works() {
    let backend = Backend::echo_target();
    let p = Proxy::start(&proxy_all(backend.addr, "", ""));
    let mut c = p.client();
    c.send_slowly(
        b"GET /slowly?x=1 HTTP/1.1\r\nHost: byte.test\r\nX-A: 1\r\n\r\n",
        1,
        Duration::from_millis(2),
    );
    let r = c.response();
    assert_eq!((r.status, r.text().as_str()), (200, "/slowly?x=1"));
    assert_eq!(backend.only_request().header("x-a"), Some("1"));
}

#[test]
fn a_request_head_larger_than_one_read_is_accepted() {
    // 4 KB is the first read; a head with a few cookies is larger than that
    // and well within the default max_header_size of 32 KB.
    let backend = Backend::echo_target();
    let p = Proxy::start(&proxy_all(backend.addr, "", ""));
    for n in [4100, 6000, 20_000] {
        let cookie = "c".repeat(n);
        let r = p.send(format!(
            "GET /big-head HTTP/1.1\r\nHost: a\r\nCookie: {cookie}\r\n\r\n"
        ));
        assert_eq!(r.status, 200, "{n}-byte Cookie");
        assert_eq!(
            backend.seen().last().unwrap().header("cookie").map(str::len),
            Some(n)
        );
    }
}

#[test]
fn a_pipelined_request_split_across_writes_is_assembled() {
    let backend = Backend::echo_target();
    let p = Proxy::start(&proxy_all(backend.addr, "", ""));
    let mut c = p.client();
    // The second request starts in the first write and ends in the next.
    c.send("GET /first HTTP/1.1\r\nHost: a\r\n\r\nGET /sec");
    assert_eq!(c.response().text(), "/first");
    c.send("ond HTTP/1.1\r\nHost: a\r\n\r\n");
    let r = c.response();
    assert_eq!((r.status, r.text().as_str()), (200, "/second"));
}

#[test]
fn empty_lines_before_a_request_are_ignored() {
    // RFC 9112 §2.2: a server should ignore at least one empty line first.
    let backend = Backend::echo_target();
    let p = Proxy::start(&proxy_all(backend.addr, "", ""));
    let r = p.send("\r\nGET /after-crlf HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!((r.status, r.text().as_str()), (200, "/after-crlf"));
}

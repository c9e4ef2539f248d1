//! Bodies both ways: Content-Length, chunked (re-framed), close-delimited,
//! large bodies streamed intact, bodiless responses, size limits and
//! `Expect: 100-continue`.

use std::io::Write;
use std::time::Duration;

use crate::support::client;
use crate::support::wire::{chunk_size_lines, chunked};
use crate::support::*;

fn echo_body() -> Backend {
    Backend::serve(|r| Reply::ok(&r.body))
}

#[test]
fn content_length_request_body_is_forwarded() {
    let backend = echo_body();
    let p = Proxy::start(&proxy_all(backend.addr, "", ""));
    let r = p.send("POST /f HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world");
    assert_eq!((r.status, r.text().as_str()), (200, "hello world"));
    let s = backend.only_request();
    assert_eq!(s.all("content-length"), ["11"]);
    assert!(!s.has("transfer-encoding"));
    assert_eq!(s.body, b"hello world");
}

#[test]
fn request_body_sent_after_the_head_is_forwarded() {
    let backend = echo_body();
    let p = Proxy::start(&proxy_all(backend.addr, "", ""));
    let mut c = p.client();
    c.send("PUT /f HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n");
    std::thread::sleep(Duration::from_millis(50));
    c.send_slowly(b"0123456789", 3, Duration::from_millis(20));
    let r = c.response();
    assert_eq!(r.text(), "0123456789");
}

#[test]
fn chunked_request_body_is_reframed() {
    let backend = echo_body();
    let p = Proxy::start(&proxy_all(backend.addr, "", ""));
    let mut c = p.client();
    c.send("POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n");
    // Extensions, a trailer, upper-case hex and awkward splits.
    let body = b"5;name=val\r\nhello\r\nA\r\n, chunked \r\n1\r\n!\r\n0\r\nX-Trailer: t\r\n\r\n";
    c.send_slowly(body, 7, Duration::from_millis(5));
    let r = c.response();
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "hello, chunked !");

    let s = backend.only_request();
    assert_eq!(s.all("transfer-encoding"), ["chunked"]);
    assert!(!s.has("content-length"));
    assert_eq!(s.body, b"hello, chunked !");
    // Valid chunked coding (the backend's strict decoder accepted it): the
    // extension did not cross the proxy, the trailer field did.
    for line in chunk_size_lines(&s.body_raw) {
        assert!(!line.contains(';'), "extension forwarded: {line:?}");
    }
    assert!(
        s.body_raw.ends_with(b"0\r\nX-Trailer: t\r\n\r\n"),
        "{:?}",
        String::from_utf8_lossy(&s.body_raw)
    );
}

#[test]
fn empty_chunked_request_body() {
    let backend = Backend::serve(|r| Reply::ok(format!("{} bytes", r.body.len())));
    let p = Proxy::start(&proxy_all(backend.addr, "", ""));
    let r = p.send("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
    assert_eq!((r.status, r.text().as_str()), (200, "0 bytes"));
    let s = backend.only_request();
    assert_eq!(s.body, b"");
    assert_eq!(s.body_raw, b"0\r\n\r\n");
}

const BIG: usize = 5 * 1024 * 1024;

#[test]
fn large_content_length_bodies_stream_both_ways() {
    let backend = echo_body();
    let p = Proxy::start(&proxy_all(backend.addr, "", ""));
    let data = payload(BIG, 1);
    let mut c = p.client();
    c.send(format!(
        "POST /big HTTP/1.1\r\nHost: a\r\nContent-Length: {BIG}\r\n\r\n"
    ));
    c.send(&data);
    let r = c.response();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some(BIG.to_string().as_str()));
    assert_same_bytes(&r.body, &data, "response body");
    assert_same_bytes(&backend.only_request().body, &data, "body at the backend");
    // The connection carries on after 10 MB.
    let r = c.request("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nnext");
    assert_eq!(r.text(), "next");
}

#[test]
fn large_chunked_bodies_stream_both_ways() {
    let backend = Backend::serve(|r| Reply::ok(&r.body).chunked(100_000));
    let p = Proxy::start(&proxy_all(backend.addr, "", ""));
    let data = payload(BIG, 2);
    let mut c = p.client();
    c.send("POST /big HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n");
    c.send(chunked(&data, 65_000));
    let r = c.response();
    assert_eq!(r.status, 200);
    assert_eq!(r.framing, Framing::Chunked);
    assert_same_bytes(&r.body, &data, "response body");
    assert_same_bytes(&backend.only_request().body, &data, "body at the backend");
    let r = c.request("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nnext");
    assert_eq!(r.text(), "next");
}

#[test]
fn chunked_response_reaches_an_http11_client_chunked() {
    let backend = Backend::start(|c| {
        while c.read_request().is_some() {
            let head = format!(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Conn: {}\r\n\r\n",
                c.id
            );
            if !c.write(head.as_bytes()) {
                return;
            }
            // The body in awkward pieces, with an extension and a trailer.
            let parts: [&[u8]; 6] = [
                b"4;ext=1\r\nWi",
                b"ki",
                b"\r\n5\r\npedia\r",
                b"\n0",
                b"\r\nX-Trailer: 1\r\n",
                b"\r\n",
            ];
            for part in parts {
                if !c.write_slowly(part, part.len(), Duration::from_millis(15)) {
                    return;
                }
            }
        }
    });
    let p = Proxy::start(&proxy_all(backend.addr, "", ""));
    let mut c = p.client();
    let r = c.get("/");
    assert_eq!(r.status, 200);
    assert_eq!(r.framing, Framing::Chunked);
    assert_eq!(r.text(), "Wikipedia");
    for line in chunk_size_lines(&r.body_raw) {
        assert!(!line.contains(';'), "extension forwarded: {line:?}");
    }
    // The trailer field went on in the last chunk.
    assert!(
        r.body_raw.ends_with(b"0\r\nX-Trailer: 1\r\n\r\n"),
        "{:?}",
        String::from_utf8_lossy(&r.body_raw)
    );
    // The client connection is still good for another, on the same backend connection.
    let r2 = c.get("/");
    assert_eq!(r2.text(), "Wikipedia");
    assert_eq!(r2.conn(), r.conn());
}

#[test]
fn an_empty_response_body_is_delimited_for_the_client() {
    let backend = Backend::serve(|r| match r.target() {
        "/redirect" => Reply::new(302).header("Location", "/elsewhere"),
        "/created" => Reply::new(201),
        _ => Reply::ok(""),
    });
    let p = Proxy::start(&proxy_all(backend.addr, "", ""));
    for path in ["/empty", "/redirect", "/created"] {
        let mut c = p.client();
        c.send(format!("GET {path} HTTP/1.1\r\nHost: a\r\n\r\n"));
        let head = c
            .head_only()
            .unwrap_or_else(|e| panic!("{path}: {}", client::describe(&e)));
        // Without Content-Length or chunked coding an HTTP/1.1 client can only
        // read until a close, which never comes on a keep-alive connection.
        assert!(
            head.header("content-length") == Some("0") || head.header("transfer-encoding") == Some("chunked"),
            "{path}: the end of the body is not marked:\n{}",
            String::from_utf8_lossy(&head.raw)
        );
    }
}

#[test]
fn close_delimited_response_reaches_an_http11_client_chunked() {
    let body = payload(300_000, 3);
    let b2 = body.clone();
    let backend = Backend::serve(move |_| Reply::ok(&b2).until_close());
    let p = Proxy::start(&proxy_all(backend.addr, "", ""));
    let mut c = p.client();
    let r = c.get("/");
    assert_eq!(r.status, 200);
    assert_eq!(r.framing, Framing::Chunked, "{}", r.head_text());
    assert_same_bytes(&r.body, &body, "close-delimited body");
    // Chunking made the end visible, so the client connection stays usable.
    let r = c.get("/");
    assert_same_bytes(&r.body, &body, "second close-delimited body");
    assert_eq!(
        backend.connections(),
        2,
        "a close-delimited connection is never reused"
    );
}

#[test]
fn close_delimited_response_reaches_an_http10_client_raw_then_closes() {
    let backend = Backend::serve(|_| Reply::ok("raw until close").until_close());
    let p = Proxy::start(&proxy_all(backend.addr, "", ""));
    let mut c = p.client();
    c.send("GET / HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n");
    let r = c.response();
    assert_eq!(r.status, 200);
    assert_eq!(r.framing, Framing::Close, "{}", r.head_text());
    assert!(!r.has("transfer-encoding"));
    assert_eq!(r.text(), "raw until close");
}

#[test]
fn chunked_response_reaches_an_http10_client_raw_then_closes() {
    let backend = Backend::serve(|_| Reply::ok("was chunked").chunked(3));
    let p = Proxy::start(&proxy_all(backend.addr, "", ""));
    let mut c = p.client();
    c.send("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    let r = c.response();
    assert_eq!(r.framing, Framing::Close, "{}", r.head_text());
    assert_eq!(r.text(), "was chunked");
}

#[test]
fn head_204_and_304_carry_no_body() {
    let backend = Backend::serve(|r| match r.target() {
        "/204" => Reply::new(204),
        "/304" => Reply::new(304)
            .header("Content-Length", "1234")
            .header("ETag", "\"e\""),
        _ => Reply::ok("0123456789"),
    });
    let p = Proxy::start(&proxy_all(backend.addr, "", ""));
    let mut c = p.client();
    c.send("HEAD /x HTTP/1.1\r\nHost: a\r\n\r\n");
    let r = c.response_to_head();
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-length"),
        Some("10"),
        "HEAD keeps the length of the GET"
    );

    let r = c.get("/204");
    assert_eq!(r.status, 204);
    assert!(
        !r.has("content-length") && !r.has("transfer-encoding"),
        "{}",
        r.head_text()
    );

    let r = c.get("/304");
    assert_eq!(r.status, 304);
    assert_eq!(r.header("etag"), Some("\"e\""));
    assert!(!r.has("transfer-encoding"), "{}", r.head_text());

    // Had any body bytes followed those heads, this would read them instead.
    let r = c.get("/x");
    assert_eq!((r.status, r.text().as_str()), (200, "0123456789"));
    assert!(c.pending().is_empty());
}

#[test]
fn head_answered_with_a_chunked_head_has_no_body() {
    let backend = Backend::serve(|_| Reply::ok("abc").chunked(1));
    let p = Proxy::start(&proxy_all(backend.addr, "", ""));
    let mut c = p.client();
    c.send("HEAD / HTTP/1.1\r\nHost: a\r\n\r\n");
    let r = c.response_to_head();
    assert_eq!(r.status, 200);
    assert_eq!(c.get("/").text(), "abc");
}

fn limited(backend: &Backend) -> Proxy {
    Proxy::start(&config(&format!(
        r#"
[[server]]
listen = ["127.0.0.1:0"]
access_log = "off"
client_max_body_size = 100
[[server.location]]
path = "/"
proxy_pass = "http://{0}"
[[server.location]]
path = "/uploads/"
proxy_pass = "http://{0}"
client_max_body_size = "1k"
"#,
        backend.addr
    )))
}

#[test]
fn content_length_over_the_limit_is_413_before_the_backend() {
    let backend = echo_body();
    let p = limited(&backend);
    let mut c = p.client();
    c.send("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 101\r\n\r\n");
    let r = c.response();
    assert_eq!(r.status, 413);
    assert!(r.says_close());
    backend.assert_untouched("a body announced over the limit");

    // At the limit it passes, and a location may allow more.
    let r = p.send(format!(
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n{}",
        "x".repeat(100)
    ));
    assert_eq!(r.status, 200);
    let r = p.send(format!(
        "POST /uploads/f HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n{}",
        "y".repeat(1000)
    ));
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), 1000);
    let r = p.send("POST /uploads/f HTTP/1.1\r\nHost: a\r\nContent-Length: 1025\r\n\r\n");
    assert_eq!(r.status, 413);
}

#[test]
fn chunked_body_over_the_limit_is_413() {
    let backend = echo_body();
    let p = limited(&backend);
    let mut c = p.client();
    c.send("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n");
    c.send(chunked(&[b'z'; 101], 40));
    let r = c.response();
    assert_eq!(r.status, 413);
    assert!(r.says_close());
    assert!(
        backend.seen().is_empty(),
        "no complete request reached the backend"
    );

    let r = p.send(
        [
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".as_slice(),
            &chunked(&[b'z'; 100], 40),
        ]
        .concat(),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), 100);
}

#[test]
fn expect_100_continue_gets_continue_before_the_body() {
    let backend = echo_body();
    let p = Proxy::start(&proxy_all(backend.addr, "", ""));
    let mut c = p.client();
    c.send("PUT /f HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    let interim = c.response();
    assert_eq!(interim.status, 100, "{}", interim.head_text());
    assert_eq!(interim.version(), "HTTP/1.1");
    c.send("hello");
    let r = c.response();
    assert_eq!((r.status, r.text().as_str()), (200, "hello"));
    let s = backend.only_request();
    assert!(!s.has("expect"), "the proxy answered the expectation itself");
    assert_eq!(s.body, b"hello");
}

#[test]
fn expect_100_continue_with_the_body_already_sent_gets_no_interim_response() {
    let backend = echo_body();
    let p = Proxy::start(&proxy_all(backend.addr, "", ""));
    let mut c = p.client();
    let r = c.request("PUT /f HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello");
    assert_eq!((r.status, r.text().as_str()), (200, "hello"));
    // And nothing else follows on the connection.
    let r = c.request("PUT /f HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc");
    assert_eq!((r.status, r.text().as_str()), (200, "abc"));
}

#[test]
fn identical_repeated_content_lengths_are_one_length() {
    // RFC 9110 §8.6: a list of identical values may be taken as one.
    let backend = echo_body();
    let p = Proxy::start(&proxy_all(backend.addr, "", ""));
    let r = p.send("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5, 5\r\n\r\nhello");
    assert_eq!((r.status, r.text().as_str()), (200, "hello"));
    assert_eq!(backend.only_request().all("content-length"), ["5"]);
}

#[test]
fn expect_100_continue_with_a_body_over_the_limit_gets_413_not_continue() {
    let backend = echo_body();
    let p = limited(&backend);
    let mut c = p.client();
    c.send("PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5000\r\n\r\n");
    let r = c.response();
    assert_eq!(r.status, 413);
    backend.assert_untouched("a refused expectation");
}

#[test]
fn unknown_expectation_is_417() {
    let backend = echo_body();
    let p = Proxy::start(&proxy_all(backend.addr, "", ""));
    let r = p.send("PUT / HTTP/1.1\r\nHost: a\r\nExpect: teapot\r\nContent-Length: 1\r\n\r\nx");
    assert_eq!(r.status, 417);
    backend.assert_untouched("an unknown expectation");
}

#[test]
fn backend_answering_before_reading_the_body() {
    // The backend answers as soon as it has the head, then drains the body.
    let backend = Backend::start(|c| {
        if let Some(h) = c.read_head() {
            c.record(h);
            c.write(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 4\r\nConnection: close\r\n\r\nnope");
            c.close_gracefully();
        }
    });
    let p = Proxy::start(&proxy_all(backend.addr, "", ""));
    let mut c = p.client();
    let body = payload(200_000, 9);
    c.send(format!(
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n",
        body.len()
    ));
    c.stream.write_all(&body).unwrap();
    let r = c.response();
    assert_eq!((r.status, r.text().as_str()), (413, "nope"));
}

#[test]
fn body_stall_gets_408() {
    let backend = echo_body();
    let p = Proxy::start(&proxy_all(backend.addr, "client_body_timeout = \"300ms\"", ""));
    let mut c = p.client();
    c.send("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc");
    let r = c.response();
    assert_eq!(r.status, 408);
    assert!(r.says_close());
    c.expect_closed();
    assert!(backend.seen().is_empty(), "the backend never got a whole request");
}

//! Upstream failures and misbehaviour: the client gets 502/504 when nothing
//! was sent yet, a closed connection when a body was cut short, and the proxy
//! carries on serving.

use std::time::{Duration, Instant};

use crate::support::*;

fn timeouts_proxy(backend: std::net::SocketAddr) -> Proxy {
    Proxy::start(&config(&format!(
        r#"
[[upstream]]
name = "app"
servers = ["{backend}"]
read_timeout = "300ms"
connect_timeout = "1s"

[[server]]
listen = ["127.0.0.1:0"]
access_log = "off"
[[server.location]]
path = "/"
proxy_pass = "http://app"
"#
    )))
}

/// A backend that writes `raw` to every request, then closes.
fn scripted(raw: &'static [u8]) -> Backend {
    Backend::start(move |c| {
        if c.read_request().is_some() {
            c.write(raw);
            c.close_gracefully();
        }
    })
}

#[test]
fn nothing_listening_is_502() {
    let port = closed_port();
    let p = Proxy::start(&proxy_all(port, "", ""));
    let mut c = p.client();
    let r = c.get("/");
    assert_eq!(r.status, 502);
    assert_eq!(r.text(), "502 Bad Gateway\n");
    // The client did nothing wrong: its connection carries on.
    assert!(!r.says_close());
    assert_eq!(c.get("/").status, 502);
}

#[test]
fn a_backend_that_never_answers_is_504_after_read_timeout() {
    let backend = Backend::start(|c| {
        if c.read_request().is_some() {
            c.hold();
        }
    });
    let p = timeouts_proxy(backend.addr);
    let mut c = p.client();
    let started = Instant::now();
    let r = c.get("/");
    assert_eq!(r.status, 504);
    assert_eq!(r.text(), "504 Gateway Timeout\n");
    assert!(started.elapsed() < Duration::from_secs(5), "hang guard");
    // The timed-out connection is not reused: a second request is a second connection.
    assert_eq!(c.get("/").status, 504);
    assert_eq!(backend.connections(), 2);
}

#[test]
fn a_backend_that_stalls_mid_body_gets_the_client_connection_closed() {
    let backend = Backend::start(|c| {
        if c.read_request().is_some() {
            c.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly some");
            c.hold();
        }
    });
    let p = timeouts_proxy(backend.addr);
    let mut c = p.client();
    c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    match c.try_response() {
        Err(ReadError::Eof { got }) => {
            let got = String::from_utf8_lossy(&got);
            assert!(got.starts_with("HTTP/1.1 200"), "{got}");
        }
        other => panic!("expected the connection to close mid-body, got {other:?}"),
    }
}

/// A listener that never accepts, with its accept queue already full: Linux
/// then drops further SYNs, so a connect to it can only time out. Returns
/// the listener and the connections that filled its queue (keep both alive).
fn unreachable_backend() -> (socket2::Socket, Vec<std::net::TcpStream>, std::net::SocketAddr) {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    s.bind(&"127.0.0.1:0".parse::<std::net::SocketAddr>().unwrap().into())
        .unwrap();
    s.listen(0).unwrap();
    let addr = s.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..8 {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
            Ok(c) => fillers.push(c),
            Err(_) => return (s, fillers, addr),
        }
    }
    panic!("could not fill the accept queue of a listen(0) socket");
}

#[test]
fn connect_timeout_is_504() {
    let (_listener, _fillers, addr) = unreachable_backend();
    // read_timeout is longer than the client waits: a 504 can only come
    // from connect_timeout.
    let p = Proxy::start(&config(&format!(
        r#"
[[upstream]]
name = "app"
servers = ["{addr}"]
connect_timeout = "300ms"
read_timeout = "30s"

[[server]]
listen = ["127.0.0.1:0"]
access_log = "off"
[[server.location]]
path = "/"
proxy_pass = "http://app"
"#
    )));
    let mut c = p.client();
    let r = c.get("/");
    assert_eq!(r.status, 504);
    assert!(!r.says_close(), "the client's connection is still good");
    assert_eq!(c.get("/").status, 504);
}

#[test]
fn garbage_from_the_backend_is_502() {
    let backend = scripted(b"this is not http\r\n\r\n");
    let p = Proxy::start(&proxy_all(backend.addr, "", ""));
    assert_eq!(p.get("/").status, 502);
}

#[test]
fn a_cut_off_response_head_is_502() {
    let backend = scripted(b"HTTP/1.1 200 OK\r\nContent-Le");
    let p = Proxy::start(&proxy_all(backend.addr, "", ""));
    assert_eq!(p.get("/").status, 502);
}

#[test]
fn a_backend_closing_without_answering_is_502() {
    let backend = scripted(b"");
    let p = Proxy::start(&proxy_all(backend.addr, "", ""));
    assert_eq!(p.get("/").status, 502);
}

#[test]
fn ambiguous_response_framing_is_502() {
    for raw in [
        &b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"[..],
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        b"HTTP/1.1 200 OK\r\nContent-Length: five\r\n\r\nhello",
    ] {
        let backend = scripted(raw);
        let p = Proxy::start(&proxy_all(backend.addr, "", ""));
        let r = p.get("/");
        assert_eq!(r.status, 502, "{:?}", String::from_utf8_lossy(raw));
    }
}

#[test]
fn a_response_cut_short_is_never_presented_as_complete() {
    let backend = Backend::start(|c| {
        if let Some(r) = c.read_request() {
            if r.target() == "/short" {
                // Promises 1000 bytes, sends 100, resets.
                c.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n");
                c.write(&[b'a'; 100]);
                c.reset_on_close();
                return;
            }
            c.write(&Reply::ok("fine").encode(c.id, false));
            c.close_gracefully();
        }
    });
    let p = Proxy::start(&proxy_all(backend.addr, "", ""));
    let mut c = p.client();
    c.send("GET /short HTTP/1.1\r\nHost: a\r\n\r\n");
    match c.try_response() {
        Err(ReadError::Eof { got }) => {
            let text = String::from_utf8_lossy(&got);
            assert!(text.starts_with("HTTP/1.1 200"), "{text}");
            assert!(text.contains("Content-Length: 1000"), "{text}");
        }
        other => panic!("the client must see the connection end before 1000 bytes: {other:?}"),
    }
    // The proxy keeps serving others.
    let r = p.get("/after");
    assert_eq!((r.status, r.text().as_str()), (200, "fine"));
}

#[test]
fn a_chunked_response_cut_short_is_never_presented_as_complete() {
    let backend = scripted(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
    let p = Proxy::start(&proxy_all(backend.addr, "", ""));
    let mut c = p.client();
    c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    match c.try_response() {
        Err(ReadError::Eof { got }) => {
            let text = String::from_utf8_lossy(&got);
            assert!(!text.contains("0\r\n\r\n"), "a last chunk was invented: {text:?}");
        }
        other => panic!("expected the connection to close without a last chunk: {other:?}"),
    }
}

#[test]
fn bad_chunked_coding_from_the_backend_closes_the_client_connection() {
    let backend =
        scripted(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\nxx\r\n0\r\n\r\n");
    let p = Proxy::start(&proxy_all(backend.addr, "", ""));
    let mut c = p.client();
    c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert!(
        matches!(c.try_response(), Err(ReadError::Eof { .. })),
        "an invalid chunk must end the client connection"
    );
}

#[test]
fn an_unrequested_switching_protocols_is_502() {
    let backend =
        scripted(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n");
    let p = Proxy::start(&proxy_all(backend.addr, "", ""));
    assert_eq!(p.get("/").status, 502);
}

#[test]
fn a_response_head_in_tiny_pieces_is_assembled() {
    let backend = Backend::start(|c| {
        while c.read_request().is_some() {
            let resp = format!(
                "HTTP/1.1 200 OK\r\nX-Conn: {}\r\nX-Long: {}\r\nContent-Length: 6\r\n\r\npieces",
                c.id,
                "v".repeat(50)
            );
            if !c.write_slowly(resp.as_bytes(), 3, Duration::from_millis(1)) {
                return;
            }
        }
    });
    let p = Proxy::start(&proxy_all(backend.addr, "", ""));
    let r = p.get("/");
    assert_eq!((r.status, r.text().as_str()), (200, "pieces"));
    assert_eq!(r.header("x-long").map(str::len), Some(50));
}

#[test]
fn a_large_response_head_is_accepted() {
    // Larger than the first 16 KB read from an upstream, well under the 64 KB limit.
    let backend = Backend::serve(|_| {
        let mut r = Reply::ok("cookies");
        for i in 0..40 {
            r = r.header("Set-Cookie", &format!("c{i}={}", "v".repeat(500)));
        }
        r
    });
    let p = Proxy::start(&proxy_all(backend.addr, "", ""));
    let r = p.get("/");
    assert_eq!((r.status, r.text().as_str()), (200, "cookies"));
    assert_eq!(r.all("set-cookie").len(), 40);
}

#[test]
fn a_client_leaving_mid_response_costs_nothing_else() {
    let big = payload(8 * 1024 * 1024, 5);
    let b2 = big.clone();
    let backend = Backend::serve(move |r| {
        if r.target() == "/big" {
            Reply::ok(&b2)
        } else {
            Reply::ok("small")
        }
    });
    let p = Proxy::start(&proxy_all(backend.addr, "", ""));
    {
        let mut c = p.client();
        c.send("GET /big HTTP/1.1\r\nHost: a\r\n\r\n");
        // Read a little of it, then go away.
        let mut buf = [0u8; 1024];
        let n = std::io::Read::read(&mut c.stream, &mut buf).unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        let _ = socket2::SockRef::from(&c.stream).set_linger(Some(Duration::ZERO));
    }
    // Another client is served normally, with bodies intact.
    for _ in 0..3 {
        let r = p.get("/small");
        assert_eq!((r.status, r.text().as_str()), (200, "small"));
    }
    let r = p.get("/big");
    assert_same_bytes(&r.body, &big, "the big body, asked for again");
}

/// Found by fuzzing: a status line without a reason phrase made the proxy
/// slice outside the head. The standard phrase is written instead.
#[test]
fn a_status_line_without_reason_gets_the_standard_phrase() {
    let backend = scripted(b"HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nhi");
    let p = Proxy::start(&proxy_all(backend.addr, "", ""));
    let mut c = p.client();
    let r = c.get("/");
    assert_eq!((r.status, r.text()), (200, "hi".to_string()));
    assert!(
        r.head_text().starts_with("HTTP/1.1 200 OK\r\n"),
        "{}",
        r.head_text()
    );
    // The worker was not disturbed: the same connection goes on.
    assert_eq!(c.get("/").status, 200);
}

/// Found by fuzzing: a three-digit status below 100 is not a response.
#[test]
fn a_status_below_100_is_502() {
    let backend = scripted(b"HTTP/1.1 020 OK\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil");
    let p = Proxy::start(&proxy_all(backend.addr, "", ""));
    assert_eq!(p.get("/").status, 502);
}

/// A response head whose lines end in a bare LF is accepted from an
/// upstream (RFC 9112 §2.2 allows it; nginx does the same) and written to
/// the client with CRLF. Requests get no such leniency (see refusals.rs).
#[test]
fn a_response_head_with_bare_lf_lines_is_accepted_and_sent_on_with_crlf() {
    let backend = scripted(b"HTTP/1.1 200 OK\nContent-Length: 2\nX-LF: 1\n\nhi");
    let p = Proxy::start(&proxy_all(backend.addr, "", ""));
    let mut c = p.client();
    let r = c.get("/");
    assert_eq!((r.status, r.text()), (200, "hi".to_string()));
    assert_eq!(r.header("x-lf"), Some("1"));
    let head = r.head_text();
    assert!(
        !head.replace("\r\n", "").contains('\n'),
        "a bare LF reached the client:\n{head:?}"
    );
    assert_eq!(c.get("/").status, 200);
}

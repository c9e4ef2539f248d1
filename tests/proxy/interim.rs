//! Interim (1xx) responses from the upstream: passed on to HTTP/1.1 clients
//! ahead of the final response (RFC 9110 §15.2), never to HTTP/1.0 clients,
//! 100 Continue kept back, bounds on how many one exchange may bring and on
//! their bytes, no retry once one reached the client, and their redirects
//! mapped (for HTTP/2 clients too).

use std::time::Duration;

use crate::support::*;

/// A backend that answers every request on a connection with `raw`, in
/// pieces of `piece` bytes.
fn scripted(raw: &'static [u8], piece: usize) -> Backend {
    Backend::start(move |c| {
        while c.read_request().is_some() {
            if !c.write_slowly(raw, piece, Duration::from_millis(5)) {
                return;
            }
        }
    })
}

fn proxy(backend: &Backend) -> Proxy {
    Proxy::start(&proxy_all(backend.addr, "", ""))
}

const EARLY_HINTS: &[u8] = b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload; as=style\r\n\
Connection: X-Hint-Hop\r\nX-Hint-Hop: 1\r\nKeep-Alive: timeout=5\r\n\r\n\
HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody";

#[test]
fn early_hints_reach_an_http11_client_before_the_final_response() {
    let backend = scripted(EARLY_HINTS, usize::MAX);
    let p = proxy(&backend);
    let mut c = p.client();
    c.send("GET / HTTP/1.1\r\nHost: a.test\r\n\r\n");
    let hints = c.response();
    assert_eq!(hints.status, 103);
    assert_eq!(hints.header("link"), Some("</style.css>; rel=preload; as=style"));
    // Hop-by-hop fields, and those Connection names, stay behind.
    for f in ["connection", "x-hint-hop", "keep-alive"] {
        assert!(!hints.has(f), "{f} was passed on: {}", hints.head_text());
    }
    let last = c.response();
    assert_eq!((last.status, last.text().as_str()), (200, "body"));
    // The connection goes on: the next request gets the same treatment.
    c.send("GET /2 HTTP/1.1\r\nHost: a.test\r\n\r\n");
    assert_eq!(c.response().status, 103);
    assert_eq!(c.response().status, 200);
}

#[test]
fn an_interim_response_split_across_reads_arrives_whole() {
    let backend = scripted(EARLY_HINTS, 7);
    let p = proxy(&backend);
    let mut c = p.client();
    c.send("GET / HTTP/1.1\r\nHost: a.test\r\n\r\n");
    let hints = c.response();
    assert_eq!(hints.status, 103);
    assert_eq!(hints.header("link"), Some("</style.css>; rel=preload; as=style"));
    assert_eq!(c.response().text(), "body");
}

#[test]
fn an_http10_client_gets_only_the_final_response() {
    let backend = scripted(EARLY_HINTS, usize::MAX);
    let p = proxy(&backend);
    let mut c = p.client();
    c.send("GET / HTTP/1.0\r\nHost: a.test\r\n\r\n");
    let r = c.response();
    assert_eq!((r.status, r.text().as_str()), (200, "body"));
    assert!(
        c.pending().is_empty(),
        "{:?}",
        String::from_utf8_lossy(c.pending())
    );
}

#[test]
fn an_upstream_100_continue_is_not_passed_on_but_102_and_103_are() {
    let backend = scripted(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n\
HTTP/1.1 103 Early Hints\r\nLink: </a.js>; rel=preload\r\n\r\n\
HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        usize::MAX,
    );
    let p = proxy(&backend);
    let mut c = p.client();
    c.send("GET / HTTP/1.1\r\nHost: a.test\r\n\r\n");
    let statuses: Vec<u16> = (0..3).map(|_| c.response().status).collect();
    assert_eq!(statuses, [102, 103, 200]);
}

#[test]
fn a_stream_of_interim_responses_is_cut_off_with_502() {
    // 17 interim responses: one more than an exchange may bring.
    let flood: &'static [u8] = Box::leak(
        [
            b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n".repeat(17),
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec(),
        ]
        .concat()
        .into_boxed_slice(),
    );
    let backend = scripted(flood, usize::MAX);
    let p = proxy(&backend);
    let mut c = p.client();
    c.send("GET / HTTP/1.1\r\nHost: a.test\r\n\r\n");
    let mut statuses = Vec::new();
    loop {
        let r = c.response();
        statuses.push(r.status);
        if r.status >= 200 {
            break;
        }
    }
    assert_eq!(statuses.len(), 17, "{statuses:?}");
    assert!(statuses[..16].iter().all(|&s| s == 103), "{statuses:?}");
    assert_eq!(statuses[16], 502);
    // The upstream connection is not reused: the next request opens another.
    let r = p.get("/again");
    assert_eq!(r.status, 103);
    assert_eq!(backend.connections(), 2);

    // Sixteen are allowed.
    let ok: &'static [u8] = Box::leak(
        [
            b"HTTP/1.1 103 Early Hints\r\n\r\n".repeat(16),
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec(),
        ]
        .concat()
        .into_boxed_slice(),
    );
    let backend = scripted(ok, usize::MAX);
    let p = proxy(&backend);
    let mut c = p.client();
    c.send("GET / HTTP/1.0\r\nHost: a.test\r\n\r\n");
    assert_eq!(c.response().text(), "ok");
}

/// `n` copies of a 103 whose `Link` makes each head about `size` bytes.
fn big_hints(n: usize, size: usize) -> Vec<u8> {
    let link = format!("</{}>; rel=preload", "a".repeat(size));
    format!("HTTP/1.1 103 Early Hints\r\nLink: {link}\r\n\r\n")
        .into_bytes()
        .repeat(n)
}

/// Reads responses until a final one; returns every status seen.
fn statuses_until_final(c: &mut Client) -> Vec<u16> {
    let mut statuses = Vec::new();
    loop {
        let r = c.response();
        statuses.push(r.status);
        if r.status >= 200 {
            return statuses;
        }
    }
}

fn leak(parts: &[&[u8]]) -> &'static [u8] {
    Box::leak(parts.concat().into_boxed_slice())
}

#[test]
fn interim_heads_count_toward_the_response_head_limit() {
    // Five heads of 15 KiB: each is well under the 64 KiB limit and five
    // is under the count, but together they pass the limit.
    let flood = leak(&[
        &big_hints(5, 15 * 1024),
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    ]);
    let backend = scripted(flood, usize::MAX);
    let p = proxy(&backend);
    let mut c = p.client();
    c.send("GET / HTTP/1.1\r\nHost: a.test\r\n\r\n");
    assert_eq!(statuses_until_final(&mut c), [103, 103, 103, 103, 502]);

    // The final head counts too: four such hints and a final head of 8 KiB.
    let big_final = format!(
        "HTTP/1.1 200 OK\r\nX-Big: {}\r\nContent-Length: 2\r\n\r\nok",
        "b".repeat(8 * 1024)
    );
    let backend = scripted(
        leak(&[&big_hints(4, 15 * 1024), big_final.as_bytes()]),
        usize::MAX,
    );
    let p = proxy(&backend);
    let mut c = p.client();
    c.send("GET / HTTP/1.1\r\nHost: a.test\r\n\r\n");
    assert_eq!(statuses_until_final(&mut c), [103, 103, 103, 103, 502]);

    // Under the limit together, they all go through.
    let backend = scripted(
        leak(&[
            &big_hints(3, 15 * 1024),
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        ]),
        usize::MAX,
    );
    let p = proxy(&backend);
    let mut c = p.client();
    c.send("GET / HTTP/1.1\r\nHost: a.test\r\n\r\n");
    assert_eq!(statuses_until_final(&mut c), [103, 103, 103, 200]);
}

#[test]
fn a_close_after_a_forwarded_interim_is_not_retried_on_a_fresh_connection() {
    // The first connection answers its first request, then sends a 103 to
    // the second and closes; any later connection answers "fresh".
    let backend = Backend::start(|c| {
        let mut n = 0;
        while let Some(seen) = c.read_request() {
            n += 1;
            if c.id == 1 && n == 2 {
                c.write(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n");
                return;
            }
            let body = if c.id == 1 { "first" } else { "fresh" };
            if !c.reply(&seen, &Reply::ok(body)) {
                return;
            }
        }
    });
    let p = proxy(&backend);
    let mut c = p.client();
    assert_eq!(c.get("/1").text(), "first");
    // The pooled connection fails after its 103 went to the client: the
    // client gets an error, not the 103 of one connection and the answer
    // of another.
    c.send("GET /2 HTTP/1.1\r\nHost: a.test\r\n\r\n");
    assert_eq!(statuses_until_final(&mut c), [103, 502]);
    assert_eq!(backend.seen().len(), 2);
}

/// One upstream of servers `a` then `b` (round robin starts on `a`), with
/// `extra` keys.
fn two_servers(a: &Backend, b: &Backend, extra: &str) -> Proxy {
    Proxy::start(&config(&format!(
        r#"
[[upstream]]
name = "app"
servers = ["{}", "{}"]
{extra}

[[server]]
listen = ["127.0.0.1:0"]
access_log = "off"
[[server.location]]
path = "/"
proxy_pass = "http://app"
"#,
        a.addr, b.addr
    )))
}

#[test]
fn a_failure_after_a_forwarded_interim_does_not_go_to_the_next_server() {
    let a = Backend::start(|c| {
        if c.read_request().is_some() {
            c.write(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n");
        }
    });
    let b = Backend::serve(|_| Reply::ok("b"));
    let p = two_servers(
        &a,
        &b,
        "next_upstream = [\"error\", \"timeout\", \"invalid_header\"]",
    );
    let mut c = p.client();
    c.send("GET / HTTP/1.1\r\nHost: a.test\r\n\r\n");
    assert_eq!(statuses_until_final(&mut c), [103, 502]);
    b.assert_untouched("a request whose 103 came from another server");
}

#[test]
fn a_listed_status_after_a_forwarded_interim_is_the_answer() {
    let a = scripted(
        b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n\
HTTP/1.1 502 Bad Gateway\r\nContent-Length: 1\r\n\r\na",
        usize::MAX,
    );
    let b = Backend::serve(|_| Reply::ok("b"));
    let p = two_servers(&a, &b, "next_upstream = [\"error\", \"http_502\"]");
    let mut c = p.client();
    c.send("GET / HTTP/1.1\r\nHost: a.test\r\n\r\n");
    assert_eq!(c.response().status, 103);
    let last = c.response();
    assert_eq!((last.status, last.text().as_str()), (502, "a"));
    b.assert_untouched("a request whose 103 came from another server");
}

/// A backend under `/v2/` whose 103 names itself in `Location` and
/// `Content-Location` (and in `Link`, which is left alone).
fn self_naming_hints() -> Backend {
    Backend::start(|c| {
        let port = c.stream.local_addr().unwrap().port();
        while let Some(seen) = c.read_request() {
            let hints = format!(
                "HTTP/1.1 103 Early Hints\r\nLocation: http://127.0.0.1:{port}/v2/x\r\n\
Content-Location: http://127.0.0.1:{port}/v2/c\r\nLink: <http://127.0.0.1:{port}/v2/s.css>; rel=preload\r\n\r\n"
            );
            if !c.write(hints.as_bytes()) || !c.reply(&seen, &Reply::ok("final")) {
                return;
            }
        }
    })
}

fn prefix_proxy(backend: &Backend, server_extra: &str) -> Proxy {
    Proxy::start(&config(&format!(
        r#"
[[server]]
listen = ["127.0.0.1:0"]
access_log = "off"
{server_extra}
[[server.location]]
path = "/api/"
proxy_pass = "http://{}/v2/"
"#,
        backend.addr
    )))
}

#[test]
fn location_in_an_interim_response_is_mapped_like_a_redirect() {
    let backend = self_naming_hints();
    let port = backend.addr.port();
    let p = prefix_proxy(&backend, "");
    let mut c = p.client();
    c.send("GET /api/x HTTP/1.1\r\nHost: public.test:8080\r\n\r\n");
    let hints = c.response();
    assert_eq!(hints.status, 103);
    assert_eq!(hints.header("location"), Some("http://public.test:8080/api/x"));
    assert_eq!(
        hints.header("content-location"),
        Some("http://public.test:8080/api/c")
    );
    let link = format!("<http://127.0.0.1:{port}/v2/s.css>; rel=preload");
    assert_eq!(hints.header("link"), Some(link.as_str()));
    assert_eq!(c.response().text(), "final");
}

#[test]
fn location_in_an_interim_response_is_mapped_for_an_http2_client() {
    let backend = self_naming_hints();
    let p = prefix_proxy(&backend, "h2c = true");
    let proxy_port = p.addr().port().to_string();
    let r = crate::support::peers::py("h2_probe.py", &["get", &proxy_port, "/api/x"]);
    let s = &r["streams"]["1"];
    assert_eq!(s["status"], 200, "{r}");
    let hints = &s["informational"][0];
    assert_eq!(
        hints["location"],
        format!("http://test.local:{proxy_port}/api/x"),
        "{r}"
    );
    assert_eq!(
        hints["content-location"],
        format!("http://test.local:{proxy_port}/api/c"),
        "{r}"
    );
    assert_eq!(s["body"], "final", "{r}");
}

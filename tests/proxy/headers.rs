//! What the proxy changes in heads, both ways: Host, X-Forwarded-*,
//! X-Real-IP, hop-by-hop fields, backend redirects. Checked on the bytes the
//! backend received and the bytes the client received.

use crate::support::*;

/// The documented rewrites, and nothing else: the same request sent straight
/// to the backend and through the proxy arrives with the same end-to-end
/// fields, in the same order, and the same body.
#[test]
fn the_proxy_is_transparent_apart_from_documented_rewrites() {
    let backend = Backend::serve(|r| Reply::ok(&r.body));
    let p = Proxy::start(&proxy_all(backend.addr, "", ""));
    let request = "POST /form?a=1&b=%20 HTTP/1.1\r\nHost: site.test\r\nUser-Agent: t/1\r\n\
                   Accept: */*\r\nCookie: a=1\r\nCookie: b=2\r\nX-Custom:  spaced value \r\n\
                   Content-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello";

    let mut direct = Client::connect(backend.addr);
    assert_eq!(direct.request(request).status, 200);
    let r = p.send(request);
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "hello");

    let seen = backend.wait_requests(2);
    let (d, v) = (&seen[0], &seen[1]);
    assert_eq!(v.method(), d.method());
    assert_eq!(v.target(), d.target());
    assert_eq!(v.version(), "HTTP/1.1");
    assert_eq!(v.body, d.body);
    assert_eq!(v.header("host"), Some("site.test"));
    let proxy_set = [
        "host",
        "x-forwarded-for",
        "x-real-ip",
        "x-forwarded-proto",
        "x-forwarded-host",
        "x-forwarded-port",
        "x-request-id",
    ];
    // The id ringway gives every request (see request_id.rs).
    assert_eq!(v.header("x-request-id").map(str::len), Some(32));
    let end_to_end = |s: &Seen| -> Vec<(String, String)> {
        s.head
            .headers
            .iter()
            .filter(|(n, _)| !proxy_set.contains(&n.to_ascii_lowercase().as_str()))
            .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
            .collect()
    };
    assert_eq!(end_to_end(v), end_to_end(d), "proxied head:\n{}", v.head_text());
}

#[test]
fn host_passes_unchanged_by_default() {
    let backend = Backend::echo_target();
    let p = Proxy::start(&proxy_all(backend.addr, "", ""));
    p.send("GET / HTTP/1.1\r\nHost: Public.Example:8443\r\n\r\n");
    let s = backend.only_request();
    assert_eq!(s.all("host"), ["Public.Example:8443"]);
}

#[test]
fn preserve_host_false_sends_the_upstream_address() {
    let backend = Backend::echo_target();
    let p = Proxy::start(&proxy_all(backend.addr, "", "preserve_host = false"));
    p.send("GET / HTTP/1.1\r\nHost: public.example\r\n\r\n");
    let s = backend.only_request();
    assert_eq!(s.all("host"), [backend.addr.to_string()]);
    // The client's host is still told, in X-Forwarded-Host.
    assert_eq!(s.header("x-forwarded-host"), Some("public.example"));
}

#[test]
fn http10_request_without_host_gets_one_upstream() {
    let backend = Backend::echo_target();
    let p = Proxy::start(&proxy_all(backend.addr, "", ""));
    let r = p.send("GET /old HTTP/1.0\r\n\r\n");
    assert_eq!(r.status, 200);
    let s = backend.only_request();
    assert_eq!(s.version(), "HTTP/1.1");
    assert_eq!(s.all("host"), [backend.addr.to_string()]);
}

#[test]
fn forwarding_headers_are_set_and_spoofed_ones_replaced() {
    let backend = Backend::echo_target();
    let p = Proxy::start(&proxy_all(backend.addr, "", ""));
    let r = p.send(
        "GET / HTTP/1.1\r\nHost: site.test\r\nX-Forwarded-For: 1.2.3.4\r\nX-Real-IP: 6.6.6.6\r\n\
         X-Forwarded-Proto: https\r\nX-Forwarded-Host: evil.test\r\nX-Forwarded-Port: 1\r\n\
         x-real-ip: 7.7.7.7\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    let s = backend.only_request();
    // Client-sent XFF values are kept, and the peer appended.
    assert_eq!(s.all("x-forwarded-for"), ["1.2.3.4, 127.0.0.1"]);
    // The rest are the proxy's alone: one field each, its own value.
    assert_eq!(
        s.all("x-real-ip"),
        ["127.0.0.1"],
        "an untrusted peer's claims are ignored"
    );
    assert_eq!(s.all("x-forwarded-proto"), ["http"]);
    assert_eq!(s.all("x-forwarded-host"), ["site.test"]);
    assert_eq!(s.all("x-forwarded-port"), [p.addr().port().to_string()]);
}

#[test]
fn forwarding_headers_without_client_values() {
    let backend = Backend::echo_target();
    let p = Proxy::start(&proxy_all(backend.addr, "", ""));
    p.send("GET / HTTP/1.1\r\nHost: site.test:81\r\n\r\n");
    let s = backend.only_request();
    assert_eq!(s.all("x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(s.all("x-real-ip"), ["127.0.0.1"]);
    assert_eq!(s.all("x-forwarded-host"), ["site.test:81"]);
}

#[test]
fn several_forwarded_for_fields_become_one_list() {
    let backend = Backend::echo_target();
    let p = Proxy::start(&proxy_all(backend.addr, "", ""));
    p.send(
        "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.1.1.1\r\nX-Forwarded-For: 2.2.2.2, 3.3.3.3\r\n\r\n",
    );
    let s = backend.only_request();
    assert_eq!(s.all("x-forwarded-for"), ["1.1.1.1, 2.2.2.2, 3.3.3.3, 127.0.0.1"]);
}

fn trusted_proxy(backend: &Backend, trusted: &str) -> Proxy {
    Proxy::start(&config(&format!(
        r#"trusted_proxies = [{trusted}]

[[server]]
listen = ["127.0.0.1:0"]
access_log = "off"
[[server.location]]
path = "/"
proxy_pass = "http://{}"
"#,
        backend.addr
    )))
}

#[test]
fn trusted_proxies_make_x_real_ip_the_rightmost_untrusted_address() {
    let backend = Backend::echo_target();
    let p = trusted_proxy(&backend, r#""127.0.0.1/32""#);
    p.send("GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 9.9.9.9, 10.0.0.1\r\n\r\n");
    // 127.0.0.1 is trusted; 10.0.0.1 is not, so it is the client.
    let s = backend.only_request();
    assert_eq!(s.all("x-real-ip"), ["10.0.0.1"]);
    assert_eq!(s.all("x-forwarded-for"), ["9.9.9.9, 10.0.0.1, 127.0.0.1"]);
}

#[test]
fn trusted_proxies_walk_past_every_trusted_hop() {
    let backend = Backend::echo_target();
    let p = trusted_proxy(&backend, r#""127.0.0.1/32", "10.0.0.0/8""#);
    p.send("GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 8.8.8.8, 9.9.9.9, 10.0.0.1, 10.2.3.4\r\n\r\n");
    assert_eq!(backend.only_request().all("x-real-ip"), ["9.9.9.9"]);
}

#[test]
fn trusted_peer_without_forwarded_for_is_the_client() {
    let backend = Backend::echo_target();
    let p = trusted_proxy(&backend, r#""127.0.0.1/32""#);
    p.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(backend.only_request().all("x-real-ip"), ["127.0.0.1"]);
}

#[test]
fn untrusted_peer_forwarded_for_is_not_believed() {
    let backend = Backend::echo_target();
    // Trusting some other network only: loopback stays untrusted.
    let p = trusted_proxy(&backend, r#""10.0.0.0/8""#);
    p.send("GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 9.9.9.9\r\n\r\n");
    assert_eq!(backend.only_request().all("x-real-ip"), ["127.0.0.1"]);
}

#[test]
fn backend_redirects_are_mapped_to_the_public_host_and_prefix() {
    let backend = Backend::start(|c| {
        let port = c.stream.local_addr().unwrap().port();
        c.serve(&move |r| {
            let to = match r.target() {
                "/v2/self" => format!("http://127.0.0.1:{port}/v2/x?y=1"),
                "/v2/other" => "http://other.example/v2/x".to_string(),
                "/v2/relative" => "/v2/x".to_string(),
                _ => format!("http://127.0.0.1:{port}/elsewhere"),
            };
            Reply::new(302)
                .body("moved")
                .header("Location", &to)
                .header("Content-Location", &format!("http://127.0.0.1:{port}/v2/c"))
        })
    });
    let p = Proxy::start(&config(&format!(
        r#"
[[server]]
listen = ["127.0.0.1:0"]
access_log = "off"
[[server.location]]
path = "/api/"
proxy_pass = "http://{}/v2/"
"#,
        backend.addr
    )));
    let mut c = p.client();
    let get = |c: &mut Client, path: &str| {
        c.request(format!("GET {path} HTTP/1.1\r\nHost: public.test:8080\r\n\r\n"))
    };
    let r = get(&mut c, "/api/self");
    assert_eq!(r.status, 302);
    assert_eq!(r.header("location"), Some("http://public.test:8080/api/x?y=1"));
    assert_eq!(
        r.header("content-location"),
        Some("http://public.test:8080/api/c")
    );
    // Another host, or a relative reference: untouched.
    let r = get(&mut c, "/api/other");
    assert_eq!(r.header("location"), Some("http://other.example/v2/x"));
    let r = get(&mut c, "/api/relative");
    assert_eq!(r.header("location"), Some("/v2/x"));
    // The backend's own address outside the proxied prefix: host replaced, path kept.
    let r = get(&mut c, "/api/outside");
    assert_eq!(r.header("location"), Some("http://public.test:8080/elsewhere"));
    // A Host without a port: the port the client connected to is named.
    let r = c.request("GET /api/self HTTP/1.1\r\nHost: public.test\r\n\r\n");
    let want = format!("http://public.test:{}/api/x?y=1", p.addr().port());
    assert_eq!(r.header("location"), Some(want.as_str()));
}

#[test]
fn hop_by_hop_request_fields_do_not_reach_the_backend() {
    let backend = Backend::echo_target();
    let p = Proxy::start(&proxy_all(backend.addr, "", ""));
    let r = p.send(
        "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Secret, x-other-hop\r\nX-Secret: s3cret\r\n\
         X-Other-Hop: 1\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\n\
         Trailer: X-Checksum\r\nUpgrade: websocket\r\nX-Kept: yes\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    let s = backend.only_request();
    for name in [
        "connection",
        "x-secret",
        "x-other-hop",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
    ] {
        assert!(!s.has(name), "{name} reached the backend:\n{}", s.head_text());
    }
    assert_eq!(s.header("x-kept"), Some("yes"));
}

#[test]
fn hop_by_hop_response_fields_do_not_reach_the_client() {
    let backend = Backend::serve(|_| {
        Reply::ok("body")
            .header("Connection", "X-Hop, keep-alive")
            .header("X-Hop", "1")
            .header("Keep-Alive", "timeout=5, max=100")
            .header("Proxy-Connection", "keep-alive")
            .header("TE", "trailers")
            .header("Trailer", "X-Checksum")
            .header("Upgrade", "h2c")
            .header("Proxy-Authenticate", "Basic")
            .header("X-End-To-End", "kept")
    });
    let p = Proxy::start(&proxy_all(backend.addr, "", ""));
    let mut c = p.client();
    let r = c.get("/");
    assert_eq!(r.status, 200);
    for name in [
        "connection",
        "x-hop",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
        "proxy-authenticate",
    ] {
        assert!(!r.has(name), "{name} reached the client:\n{}", r.head_text());
    }
    assert_eq!(r.header("x-end-to-end"), Some("kept"));
    assert_eq!(r.text(), "body");
    assert!(r.has("date"), "a Date is added when the origin sent none");
    // Still one keep-alive connection.
    assert_eq!(c.get("/").status, 200);
}

#[test]
fn response_fields_named_in_connection_close_are_removed_too() {
    let backend = Backend::serve(|_| {
        Reply::ok("x")
            .header("Connection", "close, X-Private")
            .header("X-Private", "p")
            .then_close()
    });
    let p = Proxy::start(&proxy_all(backend.addr, "", ""));
    let r = p.get("/");
    assert!(!r.has("x-private"), "{}", r.head_text());
    assert_eq!(r.text(), "x");
}

#[test]
fn an_origin_date_is_kept_and_not_duplicated() {
    let backend = Backend::serve(|_| Reply::ok("d").header("Date", "Tue, 01 Jan 2030 00:00:00 GMT"));
    let p = Proxy::start(&proxy_all(backend.addr, "", ""));
    let r = p.get("/");
    assert_eq!(r.all("date"), ["Tue, 01 Jan 2030 00:00:00 GMT"]);
}

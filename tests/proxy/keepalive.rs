//! The client side of a connection: keep-alive, pipelining, `Connection:
//! close`, HTTP/1.0, and the per-connection limits.

use std::time::Duration;

use crate::support::*;

#[test]
fn several_requests_on_one_connection() {
    let backend = Backend::echo_target();
    let p = Proxy::start(&proxy_all(backend.addr, "", ""));
    let mut c = p.client();
    for i in 0..5 {
        let r = c.get(&format!("/r{i}"));
        assert_eq!((r.status, r.text()), (200, format!("/r{i}")));
        assert!(!r.says_close());
    }
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let backend = Backend::serve(|r| {
        Reply::ok(format!(
            "{} {} {}",
            r.method(),
            r.target(),
            String::from_utf8_lossy(&r.body)
        ))
    });
    let p = Proxy::start(&proxy_all(backend.addr, "", ""));
    let mut c = p.client();
    c.send(
        "GET /one HTTP/1.1\r\nHost: a\r\n\r\n\
         GET /two HTTP/1.1\r\nHost: a\r\n\r\n\
         GET /three HTTP/1.1\r\nHost: a\r\n\r\n",
    );
    for want in ["GET /one ", "GET /two ", "GET /three "] {
        assert_eq!(c.response().text(), want);
    }
    // Bodies of every framing between pipelined requests.
    c.send(
        "POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n\
         POST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\ndef\
         GET /c HTTP/1.1\r\nHost: a\r\n\r\n",
    );
    for want in ["POST /a abc", "POST /b def", "GET /c "] {
        assert_eq!(c.response().text(), want);
    }
}

#[test]
fn pipelined_requests_to_return_locations_are_answered_in_order() {
    let p = Proxy::start(&config(
        r#"
[[server]]
listen = ["127.0.0.1:0"]
access_log = "off"
[[server.location]]
path = "/a"
return = { status = 200, body = "A" }
[[server.location]]
path = "/b"
return = { status = 200, body = "B" }
"#,
    ));
    let mut c = p.client();
    c.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.response().text(), "A");
    assert_eq!(c.response().text(), "B");
    assert_eq!(c.response().status, 404);
    assert_eq!(c.response().text(), "A");
}

#[test]
fn connection_close_is_honoured() {
    let backend = Backend::echo_target();
    let p = Proxy::start(&proxy_all(backend.addr, "", ""));
    let mut c = p.client();
    let r = c.request("GET /bye HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 200);
    assert!(r.says_close(), "{}", r.head_text());
    c.expect_closed();
}

#[test]
fn connection_close_is_honoured_by_return_locations() {
    let p = Proxy::start(&config(
        "[[server]]\nlisten = [\"127.0.0.1:0\"]\naccess_log = \"off\"\n[[server.location]]\npath = \"/\"\nreturn = { status = 200, body = \"r\" }\n",
    ));
    let mut c = p.client();
    let r = c.request("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    assert!(r.says_close());
    c.expect_closed();
}

#[test]
fn http10_without_keep_alive_is_closed_after_the_response() {
    let backend = Backend::echo_target();
    let p = Proxy::start(&proxy_all(backend.addr, "", ""));
    let mut c = p.client();
    let r = c.request("GET /old HTTP/1.0\r\nHost: a\r\n\r\n");
    assert_eq!((r.status, r.text().as_str()), (200, "/old"));
    c.expect_closed();
}

#[test]
fn http10_with_keep_alive_is_kept() {
    let backend = Backend::echo_target();
    let p = Proxy::start(&proxy_all(backend.addr, "", ""));
    let mut c = p.client();
    for path in ["/1", "/2", "/3"] {
        let r = c.request(format!(
            "GET {path} HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n"
        ));
        assert_eq!(r.text(), path);
        assert_eq!(r.header("connection"), Some("keep-alive"), "{}", r.head_text());
    }
    // The upstream request is HTTP/1.1 and carries no client Connection field.
    let seen = backend.seen();
    assert!(seen
        .iter()
        .all(|s| s.version() == "HTTP/1.1" && !s.has("connection")));
}

#[test]
fn http10_with_keep_alive_is_kept_by_return_locations() {
    let p = Proxy::start(&config(
        "[[server]]\nlisten = [\"127.0.0.1:0\"]\naccess_log = \"off\"\n[[server.location]]\npath = \"/\"\nreturn = { status = 200, body = \"r\" }\n",
    ));
    let mut c = p.client();
    for _ in 0..2 {
        let r = c.request("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        assert_eq!(r.text(), "r");
        // Without it an HTTP/1.0 client must assume the connection closes.
        assert_eq!(r.header("connection"), Some("keep-alive"), "{}", r.head_text());
    }
}

#[test]
fn keepalive_requests_limits_requests_per_connection() {
    let backend = Backend::echo_target();
    let p = Proxy::start(&proxy_all(backend.addr, "keepalive_requests = 3", ""));
    let mut c = p.client();
    assert!(!c.get("/1").says_close());
    assert!(!c.get("/2").says_close());
    let r = c.get("/3");
    assert!(r.says_close(), "the third request is the last: {}", r.head_text());
    c.expect_closed();
}

#[test]
fn keepalive_requests_limits_return_and_error_responses_too() {
    let p = Proxy::start(&config(
        "[[server]]\nlisten = [\"127.0.0.1:0\"]\naccess_log = \"off\"\nkeepalive_requests = 2\n\
         [[server.location]]\npath = \"/r\"\nreturn = { status = 200, body = \"r\" }\n",
    ));
    for path in ["/r", "/not-found"] {
        let mut c = p.client();
        assert!(!c.get(path).says_close(), "{path}");
        let r = c.get(path);
        assert!(
            r.says_close(),
            "{path}: the second request is the last: {}",
            r.head_text()
        );
        c.expect_closed();
    }
}

#[test]
fn keepalive_timeout_closes_an_idle_connection() {
    let backend = Backend::echo_target();
    let p = Proxy::start(&proxy_all(backend.addr, "keepalive_timeout = \"300ms\"", ""));
    let mut c = p.client();
    assert_eq!(c.get("/").status, 200);
    // Closed without a response: an idle connection has nothing to answer.
    c.expect_closed();
}

#[test]
fn keepalive_timeout_zero_disables_keep_alive() {
    let backend = Backend::echo_target();
    let p = Proxy::start(&proxy_all(backend.addr, "keepalive_timeout = \"0s\"", ""));
    let mut c = p.client();
    let r = c.get("/");
    assert_eq!(r.status, 200);
    assert!(r.says_close());
    c.expect_closed();
}

#[test]
fn an_idle_client_is_not_answered_before_it_asks() {
    let backend = Backend::echo_target();
    let p = Proxy::start(&proxy_all(backend.addr, "", ""));
    let mut c = p.client();
    assert_eq!(c.get("/").status, 200);
    assert!(c.stays_open_for(Duration::from_millis(300)));
    assert_eq!(c.get("/again").text(), "/again");
}

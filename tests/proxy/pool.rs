//! The upstream side of a connection: reuse through the per-worker pool, and
//! when a connection must not be reused.

use std::net::Shutdown;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::support::*;

fn upstream_proxy(backend: &Backend, upstream_extra: &str) -> Proxy {
    Proxy::start(&config(&format!(
        r#"
[[upstream]]
name = "app"
servers = ["{}"]
{upstream_extra}

[[server]]
listen = ["127.0.0.1:0"]
access_log = "off"
[[server.location]]
path = "/"
proxy_pass = "http://app"
"#,
        backend.addr
    )))
}

#[test]
fn sequential_requests_reuse_one_backend_connection() {
    let backend = Backend::echo_target();
    let p = upstream_proxy(&backend, "");
    // On one client connection and on new ones alike.
    let mut c = p.client();
    let conns: Vec<usize> = (0..3)
        .map(|_| c.get("/").conn())
        .chain((0..3).map(|_| p.get("/").conn()))
        .collect();
    assert_eq!(conns, [1; 6]);
    assert_eq!(backend.connections(), 1);
}

#[test]
fn requests_with_bodies_reuse_the_connection_too() {
    let backend = Backend::serve(|r| Reply::ok(format!("<{}>", String::from_utf8_lossy(&r.body))));
    let p = upstream_proxy(&backend, "");
    let mut c = p.client();
    let a = c.request("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc");
    let b = c.request("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nde\r\n0\r\n\r\n");
    let d = c.get("/");
    assert_eq!(
        (a.text(), b.text(), d.text()),
        ("<abc>".into(), "<de>".into(), "<>".into())
    );
    assert_eq!([a.conn(), b.conn(), d.conn()], [1, 1, 1]);
}

#[test]
fn chunked_and_close_delimited_responses_and_reuse() {
    let backend = Backend::serve(|r| match r.target() {
        "/chunked" => Reply::ok("chunky").chunked(2),
        "/close" => Reply::ok("closing").until_close(),
        _ => Reply::ok("plain"),
    });
    let p = upstream_proxy(&backend, "");
    let mut c = p.client();
    let a = c.get("/chunked");
    let b = c.get("/chunked");
    assert_eq!(
        a.conn(),
        b.conn(),
        "a fully read chunked response leaves the connection reusable"
    );
    let d = c.get("/close");
    assert_eq!(d.text(), "closing");
    let e = c.get("/");
    assert_ne!(
        e.conn(),
        d.conn(),
        "a close-delimited response used the connection up"
    );
}

#[test]
fn a_backend_closing_idle_connections_does_not_fail_requests() {
    // Answers with a length and no `Connection: close`, then closes anyway.
    let backend = Backend::serve(|r| Reply::ok(r.target()).then_close());
    let p = upstream_proxy(&backend, "");
    let mut c = p.client();
    for i in 0..6 {
        let path = format!("/{i}");
        let r = c.get(&path);
        assert_eq!((r.status, r.text()), (200, path.clone()), "request {i}");
        // HEAD is idempotent too and takes the same path.
        c.send(format!("HEAD {path} HTTP/1.1\r\nHost: a\r\n\r\n"));
        assert_eq!(c.response_to_head().status, 200, "HEAD {i}");
    }
    assert_eq!(backend.connections(), 12);
}

#[test]
fn a_stale_pooled_connection_is_detected_after_the_backend_closed_it() {
    // The backend closes each connection once its response is out, and the
    // test waits until it has before asking again: the pool must notice.
    let closed = Arc::new(AtomicUsize::new(0));
    let counter = closed.clone();
    let backend = Backend::start(move |c| {
        if let Some(r) = c.read_request() {
            c.write(&Reply::ok(r.target()).encode(c.id, false));
            let _ = c.stream.shutdown(Shutdown::Write);
            counter.fetch_add(1, Ordering::SeqCst);
            c.hold();
        }
    });
    let p = upstream_proxy(&backend, "");
    let mut c = p.client();
    for i in 0..4 {
        // POST is never retried, so only a pool that notices the close passes.
        let r = c.request(format!(
            "POST /{i} HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nx{i}"
        ));
        assert_eq!(r.status, 200, "request {i}: {}", r.text());
        assert_eq!(r.conn(), i + 1);
        wait_for(IO_TIMEOUT, || (closed.load(Ordering::SeqCst) > i).then_some(()))
            .expect("the backend closes");
    }
}

#[test]
fn connection_close_from_the_backend_is_not_reused() {
    // Says `Connection: close` but keeps reading: reuse would be visible.
    let backend = Backend::serve(|r| Reply::ok(r.target()).header("Connection", "close"));
    let p = upstream_proxy(&backend, "");
    let mut c = p.client();
    let conns: Vec<usize> = (0..4).map(|_| c.get("/").conn()).collect();
    assert_eq!(conns, [1, 2, 3, 4]);
}

#[test]
fn an_http10_backend_is_not_reused() {
    let backend = Backend::start(|c| {
        while let Some(r) = c.read_request() {
            let body = r.target().to_string();
            let resp = format!(
                "HTTP/1.0 200 OK\r\nX-Conn: {}\r\nContent-Length: {}\r\n\r\n{body}",
                c.id,
                body.len()
            );
            if !c.write(resp.as_bytes()) {
                return;
            }
        }
    });
    let p = upstream_proxy(&backend, "");
    let mut c = p.client();
    let conns: Vec<usize> = (0..3).map(|_| c.get("/x").conn()).collect();
    assert_eq!(conns, [1, 2, 3]);
}

#[test]
fn keepalive_zero_opens_a_new_connection_every_time() {
    let backend = Backend::echo_target();
    let p = upstream_proxy(&backend, "keepalive = 0");
    let mut c = p.client();
    let conns: Vec<usize> = (0..4).map(|_| c.get("/").conn()).collect();
    assert_eq!(conns, [1, 2, 3, 4]);
}

#[test]
fn upstream_keepalive_timeout_retires_idle_connections() {
    let backend = Backend::echo_target();
    let p = upstream_proxy(&backend, "keepalive_timeout = \"1s\"");
    let mut c = p.client();
    assert_eq!(c.get("/").conn(), 1);
    assert_eq!(c.get("/").conn(), 1);
    // Past the idle timeout the pooled connection is not used again.
    std::thread::sleep(Duration::from_millis(1300));
    assert_eq!(c.get("/").conn(), 2);
}

#[test]
fn extra_bytes_after_a_response_keep_the_connection_out_of_the_pool() {
    // A backend that sends more than it announced: the excess must not be
    // taken as the next response.
    let backend = Backend::start(|c| {
        while c.read_request().is_some() {
            let resp = format!("HTTP/1.1 200 OK\r\nX-Conn: {}\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nwrong", c.id);
            if !c.write(resp.as_bytes()) {
                return;
            }
        }
    });
    let p = upstream_proxy(&backend, "");
    let mut c = p.client();
    let a = c.get("/");
    let b = c.get("/");
    assert_eq!((a.text(), b.text()), ("ok".to_string(), "ok".to_string()));
    assert_ne!(a.conn(), b.conn());
}

//! gRPC through ringway end to end: a real grpcio client and server
//! (`tests/peers/grpc_peer.py`), HTTP/2 on both sides (h2c), all four call
//! kinds, trailers, and the answers ringway itself gives gRPC clients.

use serde_json::Value;

use crate::support::peers::{py, PyServer};
use crate::support::*;

fn grpc_server() -> PyServer {
    PyServer::start("grpc_peer.py", &["server"])
}

/// h2c toward clients, protocol = "h2" toward `server`.
fn proxy(server: std::net::SocketAddr, upstream_extra: &str) -> Proxy {
    Proxy::start(&config(&format!(
        r#"
[[upstream]]
name = "grpc"
servers = ["{server}"]
protocol = "h2"
{upstream_extra}

[[server]]
listen = ["127.0.0.1:0"]
access_log = "off"
h2c = true

[[server.location]]
path = "/"
proxy_pass = "http://grpc"
"#
    )))
}

fn call(p: &Proxy, case: &str, arg: Option<&str>) -> Value {
    let target = p.addr().to_string();
    let mut args = vec!["client", target.as_str(), case];
    args.extend(arg);
    py("grpc_peer.py", &args)
}

#[test]
fn unary_calls_and_their_trailers_pass_through() {
    let s = grpc_server();
    let p = proxy(s.addr, "");
    let r = call(&p, "unary", Some("ping"));
    assert_eq!(
        (r["code"].clone(), r["responses"][0].clone()),
        ("OK".into(), "ping".into()),
        "{r}"
    );
    // A status the server set reaches the client with its details and
    // trailing metadata: trailers crossed the proxy.
    let r = call(&p, "fail", None);
    assert_eq!(r["code"], "INVALID_ARGUMENT", "{r}");
    assert_eq!(r["details"], "bad input", "{r}");
    assert_eq!(r["trailers"]["x-why"], "on-purpose", "{r}");
}

#[test]
fn server_client_and_bidirectional_streams_work() {
    let s = grpc_server();
    let p = proxy(s.addr, "");
    let r = call(&p, "server_stream", None);
    assert_eq!(
        r["responses"],
        serde_json::json!(["a", "b", "c", "d", "e"]),
        "{r}"
    );
    let r = call(&p, "client_stream", None);
    assert_eq!(r["responses"][0], "one|two|three", "{r}");
    // Each message waits for the answer to the one before: both directions
    // must flow at once through the proxy.
    let r = call(&p, "bidi", None);
    assert_eq!(
        r["responses"],
        serde_json::json!(["ALPHA", "BETA", "GAMMA", "DELTA"]),
        "{r}"
    );
}

#[test]
fn large_messages_and_many_concurrent_calls() {
    let s = grpc_server();
    let p = proxy(s.addr, "");
    let r = call(&p, "big", Some("3000000"));
    assert_eq!(r["responses"][0], 3_000_000, "{r}");
    let r = call(&p, "many", Some("200"));
    assert_eq!(
        r["responses"],
        serde_json::json!((0..200).collect::<Vec<_>>()),
        "{r}"
    );
}

#[test]
fn an_unreachable_upstream_is_unavailable_to_grpc_clients() {
    // A port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let p = proxy(addr, "");
    let r = call(&p, "unary", None);
    assert_eq!(r["code"], "UNAVAILABLE", "{r}");
}

#[test]
fn grpc_timeout_bounds_the_call_and_is_deadline_exceeded() {
    let s = grpc_server();
    let p = proxy(s.addr, "");
    // The server sleeps 3 s; the client's deadline is 1 s. The client gets
    // DEADLINE_EXCEEDED, from its own clock or from ringway's answer.
    let r = call(&p, "slow", Some("3000:1"));
    assert_eq!(r["code"], "DEADLINE_EXCEEDED", "{r}");
    // read_timeout shorter than the call: ringway answers for the upstream.
    let p = proxy(s.addr, "read_timeout = \"500ms\"");
    let r = call(&p, "slow", Some("2000:10"));
    assert_eq!(r["code"], "DEADLINE_EXCEEDED", "{r}");
    assert!(r["details"].as_str().unwrap_or("").contains("timed out"), "{r}");
}

/// HTTP/1.1 clients through an h2 upstream: a second ringway serves h2c
/// in front of an HTTP/1.1 backend, so the first speaks HTTP/2 to it.
#[test]
fn http1_clients_reach_an_h2_upstream_and_bodies_cross_both_ways() {
    let b = Backend::serve(|seen| {
        Reply::ok(format!(
            "{} {} {} {}",
            seen.method(),
            seen.target(),
            seen.body.len(),
            seen.header("x-forwarded-for").unwrap_or("")
        ))
    });
    let inner = Proxy::start(&proxy_all(b.addr, "h2c = true", ""));
    let outer = proxy(inner.addr(), "");
    let r = outer.get("/a?x=1");
    assert_eq!(r.status, 200, "{}", r.head_text());
    assert_eq!(r.text(), "GET /a?x=1 0 127.0.0.1, 127.0.0.1");
    let r = outer.send("POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello");
    assert_eq!(r.text(), "POST /up 5 127.0.0.1, 127.0.0.1");
    // A chunked body of unknown length streams through HTTP/2 DATA frames.
    let mut c = outer.client();
    c.send("POST /chunked HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n");
    for _ in 0..50 {
        c.send(format!("{:x}\r\n{}\r\n", 1000, "z".repeat(1000)));
    }
    c.send("0\r\n\r\n");
    assert_eq!(c.response().text(), "POST /chunked 50000 127.0.0.1, 127.0.0.1");
    // More requests, on the worker's HTTP/2 connection to the server.
    for i in 0..5 {
        assert_eq!(outer.get(&format!("/n{i}")).status, 200);
    }
    assert_eq!(b.seen().len(), 8);
}

#[test]
fn upstream_protocol_keys_are_checked() {
    let errors = |extra: &str| {
        match ringway::config::Config::parse(
        &format!("[[upstream]]\nname = \"u\"\nservers = [\"127.0.0.1:1\"]\n{extra}\n[[server]]\nlisten = [\"127.0.0.1:8080\"]\n[[server.location]]\npath = \"/\"\nproxy_pass = \"http://u\"\n"),
        std::path::Path::new("u.toml"),
    ) {
        Ok(_) => Vec::new(),
        Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
    }
    };
    assert_eq!(
        errors("protocol = \"spdy\""),
        ["u.toml:4:12: upstream[0].protocol: unknown protocol \"spdy\" (one of: \"http1\", \"h2\")"]
    );
    assert_eq!(
        errors("h2_connections = 2"),
        ["u.toml:4:18: upstream[0].h2_connections: only applies with protocol = \"h2\""]
    );
    assert_eq!(
        errors("protocol = \"h2\"\nh2_connections = 0"),
        ["u.toml:5:18: upstream[0].h2_connections: must be from 1 to 64"]
    );
    assert!(errors("protocol = \"h2\"\nh2_connections = 4\nhealth_check = { type = \"tcp\" }").is_empty());
}

#[test]
fn trailers_cross_both_ways_between_http2_client_and_upstream() {
    let s = PyServer::start("h2_server.py", &[]);
    let p = proxy(s.addr, "");
    let r = py("h2_probe.py", &["trailers", &p.addr().port().to_string(), "/t"]);
    let st = &r["streams"]["1"];
    assert_eq!(st["status"], 200, "{r}");
    assert_eq!(st["trailers"]["x-trailer"], "from-upstream", "{r}");
    let seen: Value = serde_json::from_str(st["body"].as_str().unwrap()).unwrap();
    assert_eq!(seen["body"], 1000, "{seen}");
    assert_eq!(seen["trailers"]["x-req-trailer"], "from-client", "{seen}");
    // te: trailers went on; hop-by-hop fields did not.
    assert_eq!(seen["headers"]["te"], "trailers", "{seen}");
    assert_eq!(seen["headers"][":authority"], "test.local", "{seen}");
}

/// HTTP probes of an h2 upstream speak HTTP/2: a server that speaks
/// nothing else gets them as requests.
#[test]
fn http_probes_of_an_h2_upstream_speak_http2() {
    let s = PyServer::start("h2_server.py", &[]);
    let p = proxy(
        s.addr,
        "health_check = { path = \"/healthz\", interval = \"100ms\", timeout = \"1s\", rise = 1, fall = 1 }",
    );
    let probe = s.event("request");
    assert_eq!(
        (probe["path"].clone(), probe["user-agent"].clone()),
        ("/healthz".into(), "ringway-health-check".into()),
        "{probe}"
    );
    // A second probe passed too (fall = 1: one failure would take it out).
    s.event("request");
    assert!(!p.handle().probed_down(0, 0));
    assert_eq!(p.get("/x").status, 200);
}

/// Probes over HTTP/2 take a server out and bring it back: a second ringway
/// serves h2c in front of a backend whose health the test sets.
#[test]
fn http2_probes_take_a_server_out_and_bring_it_back() {
    let health = std::sync::Arc::new(std::sync::atomic::AtomicU16::new(200));
    let h = health.clone();
    let b = Backend::serve(move |seen| {
        if seen.target() == "/healthz" {
            Reply::new(h.load(std::sync::atomic::Ordering::SeqCst))
        } else {
            Reply::ok("app")
        }
    });
    let inner = Proxy::start(&config(&format!(
        r#"
[[server]]
listen = ["127.0.0.1:0"]
access_log = "off"
h2c = true

[[server.location]]
path = "/"
proxy_pass = "http://{}"
"#,
        b.addr
    )));
    let p = proxy(
        inner.addr(),
        "health_check = { path = \"/healthz\", interval = \"100ms\", timeout = \"1s\", rise = 1, fall = 1 }",
    );
    let settle = std::time::Duration::from_secs(10);
    wait_for(settle, || {
        (b.seen().iter().any(|s| s.target() == "/healthz")).then_some(())
    })
    .expect("no probe reached the backend");
    assert_eq!(p.get("/x").text(), "app");
    // The backend turns unhealthy: the probe, over HTTP/2, sees it.
    health.store(500, std::sync::atomic::Ordering::SeqCst);
    wait_for(settle, || p.handle().probed_down(0, 0).then_some(())).expect("server not marked down");
    assert_eq!(p.get("/x").status, 503);
    health.store(200, std::sync::atomic::Ordering::SeqCst);
    wait_for(settle, || (!p.handle().probed_down(0, 0)).then_some(())).expect("server not back up");
}

#[test]
fn shutdown_ends_with_an_http2_upstream_call_still_open() {
    let s = grpc_server();
    let mut p = proxy(s.addr, "");
    let target = p.addr().to_string();
    // The server sleeps 30 s: the call outlives the proxy's 1 s drain.
    let call = std::thread::spawn(move || py("grpc_peer.py", &["client", &target, "slow", "30000:25"]));
    std::thread::sleep(std::time::Duration::from_millis(500));
    let (tx, rx) = std::sync::mpsc::channel();
    let stopper = std::thread::spawn(move || {
        p.stop();
        let _ = tx.send(());
    });
    // A bound for a hang only: the verdict is that the proxy stopped at all.
    assert!(
        rx.recv_timeout(std::time::Duration::from_secs(20)).is_ok(),
        "the proxy did not stop"
    );
    stopper.join().unwrap();
    let r = call.join().unwrap();
    assert_ne!(r["code"], "OK", "{r}");
}

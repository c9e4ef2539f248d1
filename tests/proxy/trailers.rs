//! Trailer fields across protocols: HTTP/1.1 chunked trailers and HTTP/2
//! trailers pass between clients and upstreams whichever protocol each
//! side speaks, less the fields a trailer may not carry (framing, hop-by-hop
//! and routing fields, RFC 9110 §6.5.1). HTTP/2 to HTTP/2 and HTTP/1.1 to
//! HTTP/2 client responses are tested with gRPC and in h2.rs.

use serde_json::Value;

use crate::support::peers::{py, PyServer};
use crate::support::*;

#[test]
fn forbidden_fields_stay_out_of_trailers_between_http11_peers() {
    let b = Backend::start(|c| {
        while c.read_request().is_some() {
            let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
2\r\nok\r\n0\r\nX-Sum: 1\r\nTransfer-Encoding: gzip\r\nHost: elsewhere\r\nTE: trailers\r\nX-Sig: two words\r\n\r\n";
            if !c.write(raw) {
                return;
            }
        }
    });
    let p = Proxy::start(&proxy_all(b.addr, "", ""));
    let r = p.get("/");
    assert_eq!(r.text(), "ok");
    assert!(
        r.body_raw.ends_with(b"0\r\nX-Sum: 1\r\nX-Sig: two words\r\n\r\n"),
        "{:?}",
        String::from_utf8_lossy(&r.body_raw)
    );
}

#[test]
fn request_trailers_of_an_http2_client_reach_an_http11_upstream() {
    let b = Backend::echo_target();
    let p = Proxy::start(&proxy_all(b.addr, "h2c = true", ""));
    let r = py("h2_probe.py", &["trailers", &p.addr().port().to_string(), "/t"]);
    assert_eq!(r["streams"]["1"]["status"], 200, "{r}");
    let s = b.only_request();
    assert_eq!(s.all("transfer-encoding"), ["chunked"]);
    assert_eq!(s.body, vec![b'x'; 1000]);
    assert!(
        s.body_raw.ends_with(b"0\r\nx-req-trailer: from-client\r\n\r\n"),
        "{:?}",
        String::from_utf8_lossy(&s.body_raw[s.body_raw.len().saturating_sub(64)..])
    );
}

#[test]
fn trailers_of_an_http2_upstream_reach_an_http11_client_in_the_last_chunk() {
    let s = PyServer::start("h2_server.py", &[]);
    let p = Proxy::start(&config(&format!(
        r#"
[[upstream]]
name = "h2"
servers = ["{}"]
protocol = "h2"

[[server]]
listen = ["127.0.0.1:0"]
access_log = "off"

[[server.location]]
path = "/"
proxy_pass = "http://h2"
"#,
        s.addr
    )));
    let mut c = p.client();
    c.send("POST /t HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTE: trailers\r\n\r\nabc");
    let r = c.response();
    assert_eq!(r.status, 200);
    assert_eq!(r.framing, Framing::Chunked);
    let seen: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(seen["body"], 3, "{seen}");
    assert!(
        r.body_raw.ends_with(b"0\r\nx-trailer: from-upstream\r\n\r\n"),
        "{:?}",
        String::from_utf8_lossy(&r.body_raw)
    );
    // The connection goes on after the trailers.
    let r2 = c.get("/t");
    assert_eq!(r2.status, 200);
}

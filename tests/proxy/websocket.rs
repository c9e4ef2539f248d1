//! WebSocket through the proxy: HTTP/1.1 `Upgrade` and RFC 8441 over
//! HTTP/2, with real clients and servers (Python `websockets` and `h2` from
//! the test virtualenv; `tests/peers/ws_*.py`), and raw sockets for what
//! must be refused or passed on byte for byte.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;

use crate::support::{config, peers, Backend, Proxy, Reply};

/// The Python echo server (`ws_echo_server.py`) on 127.0.0.1:0, killed on drop.
type WsServer = peers::PyServer;

fn ws_server() -> WsServer {
    peers::PyServer::start("ws_echo_server.py", &[])
}

/// One server block (h2c on, so RFC 8441 can be tried on the same port)
/// proxying `/` to an upstream `ws` of one server.
fn ws_config(backend: SocketAddr, upstream_extra: &str, location_extra: &str) -> String {
    config(&format!(
        r#"
[[upstream]]
name = "ws"
servers = ["{backend}"]
{upstream_extra}

[[server]]
listen = ["127.0.0.1:0"]
access_log = "off"
h2c = true

[[server.location]]
path = "/"
proxy_pass = "http://ws"
{location_extra}
"#
    ))
}

fn ws_url(p: &Proxy, path: &str) -> String {
    format!("ws://{}{path}", p.addr())
}

fn client(p: &Proxy, path: &str, scenario: &str, arg: Option<&str>) -> Value {
    let url = ws_url(p, path);
    let mut args = vec![url.as_str(), scenario];
    args.extend(arg);
    let v = peers::py("ws_client.py", &args);
    assert!(v.get("error").is_none(), "ws_client.py {scenario}: {v}");
    v
}

const UPGRADE_REQUEST: &str =
    "GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
     Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

#[test]
fn websocket_messages_of_every_kind_pass_through() {
    let ws = ws_server();
    let p = Proxy::start(&ws_config(ws.addr, "", ""));
    let v = client(&p, "/chat", "messages", None);
    for what in ["text", "binary", "big", "fragmented", "pong"] {
        assert_eq!(v[what], true, "{what}: {v}");
    }
    assert_eq!(v["close_code"], 1000, "{v}");
    let open = ws.event("open");
    assert_eq!(open["path"], "/chat");
    assert_eq!(open["upgrade"], "websocket");
    assert_eq!(open["connection"], "upgrade");
    assert_eq!(open["x_forwarded_for"], "127.0.0.1");
}

#[test]
fn close_codes_pass_both_ways() {
    let ws = ws_server();
    let p = Proxy::start(&ws_config(ws.addr, "", ""));
    let v = client(&p, "/", "close", Some("4001"));
    assert_eq!(v["echoed_code"], 4001, "{v}");
    let closed = ws.event("closed");
    assert_eq!(
        closed["code"], 4001,
        "the server got the client's close: {closed}"
    );
    assert_eq!(closed["reason"], "client says bye");

    let v = client(&p, "/", "server-close", Some("4002"));
    assert_eq!(v["code"], 4002, "the client got the server's close: {v}");
    assert_eq!(v["reason"], "server says bye");
}

#[test]
fn fifty_tunnels_at_once() {
    let ws = ws_server();
    let p = Proxy::start(&ws_config(ws.addr, "", ""));
    let v = client(&p, "/", "concurrent", Some("50"));
    assert_eq!(v["ok"], 50, "{v}");
}

#[test]
fn an_idle_tunnel_is_closed_after_read_timeout() {
    let ws = ws_server();
    let p = Proxy::start(&ws_config(ws.addr, "read_timeout = \"1s\"", ""));
    // The script waits at most 15 s: only a hang fails on time.
    let v = client(&p, "/", "idle", None);
    assert_eq!(v["closed"], true, "the idle tunnel was not closed: {v}");
    // The server side of the tunnel was closed too (no close frame: 1006).
    let closed = ws.event("closed");
    assert!(closed["code"].is_null(), "{closed}");
}

#[test]
fn traffic_in_one_direction_keeps_a_tunnel_open() {
    // The backend streams to the client for longer than read_timeout while
    // the client says nothing: bytes in either direction count.
    let backend = Backend::start(|c| {
        if c.read_head().is_some() {
            c.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n");
            for _ in 0..25 {
                std::thread::sleep(Duration::from_millis(100));
                if !c.write(b"tick") {
                    return;
                }
            }
        }
    });
    let p = Proxy::start(&ws_config(backend.addr, "read_timeout = \"1s\"", ""));
    let mut c = p.client();
    c.send(UPGRADE_REQUEST);
    let head = c.head_only().expect("101");
    assert_eq!(head.line[1], "101");
    let mut got = c.pending().to_vec();
    let mut tmp = [0u8; 256];
    while got.len() < 100 {
        match c.stream.read(&mut tmp) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&tmp[..n]),
        }
    }
    assert_eq!(got, b"tick".repeat(25));
}

#[test]
fn half_close_passes_on_and_the_upstream_connection_is_not_reused() {
    let backend = Backend::start(|c| {
        let Some(head) = c.read_head() else { return };
        let upgrade = head.header("upgrade").map(str::to_owned);
        c.record(head);
        if upgrade.is_none() {
            c.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nplain");
            return c.close_gracefully();
        }
        // The 101 and the first tunnel bytes in one write.
        c.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Extra: kept\r\n\r\nfrom upstream;");
        let mut got = Vec::new();
        let _ = c.stream.read_to_end(&mut got);
        // The client's FIN arrived; this direction still works.
        c.write(format!("got {:?}", String::from_utf8_lossy(&got)).as_bytes());
    });
    let p = Proxy::start(&ws_config(backend.addr, "", ""));
    let mut c = p.client();
    // Tunnel bytes right behind the head, before any 101.
    c.send(format!("{UPGRADE_REQUEST}early;"));
    let head = c.head_only().expect("101");
    assert_eq!(head.line[1], "101");
    assert_eq!(head.header("upgrade"), Some("websocket"));
    assert_eq!(head.header("connection"), Some("upgrade"));
    assert_eq!(head.header("x-extra"), Some("kept"));
    c.send("late");
    c.shutdown_write();
    let mut rest = c.pending().to_vec();
    c.stream.read_to_end(&mut rest).expect("read to the end");
    assert_eq!(String::from_utf8_lossy(&rest), "from upstream;got \"early;late\"");
    let seen = backend.only_request();
    assert_eq!(seen.header("upgrade"), Some("websocket"));
    assert_eq!(seen.header("connection"), Some("upgrade"));
    assert_eq!(seen.header("sec-websocket-key"), Some("dGhlIHNhbXBsZSBub25jZQ=="));

    // A tunnel's upstream connection is never pooled.
    let r = p.get("/");
    assert_eq!((r.status, r.text().as_str()), (200, "plain"));
    assert_eq!(backend.connections(), 2);
}

#[test]
fn a_location_with_upgrade_off_passes_the_request_on_without_it() {
    let backend = Backend::serve(|_| Reply::ok("plain"));
    let p = Proxy::start(&ws_config(backend.addr, "", "upgrade = []"));
    let r = p.send(UPGRADE_REQUEST);
    assert_eq!((r.status, r.text().as_str()), (200, "plain"));
    let seen = backend.only_request();
    assert!(!seen.has("upgrade"), "{}", seen.head_text());
    assert!(!seen.has("connection"), "{}", seen.head_text());

    // A real client against a real server: the server sees a plain GET
    // and refuses it (426), which the client gets.
    let ws = ws_server();
    let p = Proxy::start(&ws_config(ws.addr, "", "upgrade = []"));
    assert_eq!(client(&p, "/", "refused", None)["status"], 426);
}

#[test]
fn only_allowed_protocols_are_offered() {
    let backend = Backend::serve(|_| Reply::ok("plain"));
    let p = Proxy::start(&ws_config(
        backend.addr,
        "",
        "upgrade = [\"websocket\", \"TLS/1.2\"]",
    ));
    let r = p.send(
        "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c, tls/1.2, foo\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        backend.only_request().header("upgrade"),
        Some("tls/1.2, WebSocket")
    );
    // Without the `upgrade` connection option, or from HTTP/1.0, Upgrade
    // is not an offer (RFC 9110 §7.8).
    let r = p.send("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n");
    assert_eq!(r.status, 200);
    let r = p.send("GET / HTTP/1.0\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n");
    assert_eq!(r.status, 200);
    let seen = backend.wait_requests(3);
    assert!(!seen[1].has("upgrade") && !seen[2].has("upgrade"));
}

#[test]
fn an_upstream_refusing_the_upgrade_is_answered_as_usual() {
    let backend = Backend::serve(|_| Reply::new(400).body("no websocket here"));
    let p = Proxy::start(&ws_config(backend.addr, "", ""));
    assert_eq!(client(&p, "/", "refused", None)["status"], 400);
    // And with a raw client: an ordinary response; the connection carries on.
    let mut c = p.client();
    c.send(UPGRADE_REQUEST);
    let r = c.response();
    assert_eq!((r.status, r.text().as_str()), (400, "no websocket here"));
    assert_eq!(c.get("/next").status, 400);
}

fn switching_to(proto_lines: &'static str) -> Backend {
    Backend::start(move |c| {
        if c.read_request().is_some() {
            c.write(format!("HTTP/1.1 101 Switching Protocols\r\n{proto_lines}\r\n").as_bytes());
            c.hold();
        }
    })
}

#[test]
fn a_101_for_another_protocol_than_asked_is_502() {
    for lines in [
        "Upgrade: h2c\r\nConnection: upgrade\r\n",
        "Connection: upgrade\r\n",
        "Upgrade: websocket, h2c\r\nConnection: upgrade\r\n",
    ] {
        let backend = switching_to(lines);
        let p = Proxy::start(&ws_config(backend.addr, "", ""));
        let r = p.send(UPGRADE_REQUEST);
        assert_eq!(r.status, 502, "{lines:?}");
    }
}

#[test]
fn a_101_to_an_upgrade_that_was_not_passed_on_is_502() {
    let backend = switching_to("Upgrade: websocket\r\nConnection: upgrade\r\n");
    let p = Proxy::start(&ws_config(backend.addr, "", "upgrade = []"));
    assert_eq!(p.send(UPGRADE_REQUEST).status, 502);
}

fn h2_client(p: &Proxy, protocol: &str) -> Value {
    let port = p.addr().port().to_string();
    peers::py("ws_h2_client.py", &["127.0.0.1", &port, protocol])
}

#[test]
fn websocket_over_http2_extended_connect() {
    let ws = ws_server();
    let p = Proxy::start(&ws_config(ws.addr, "", ""));
    let v = h2_client(&p, "websocket");
    assert!(v.get("error").is_none(), "{v}");
    assert_eq!(v["enable_connect_protocol"], 1, "{v}");
    assert_eq!(v["status"], 200, "{v}");
    assert_eq!(v["accept_header_kept"], false, "{v}");
    for what in ["text", "binary", "fragmented", "pong"] {
        assert_eq!(v[what], true, "{what}: {v}");
    }
    assert_eq!(v["close_echo"], 4001, "{v}");
    assert_eq!(v["ended"], true, "{v}");
    let open = ws.event("open");
    assert_eq!(open["path"], "/chat?room=1");
    assert_eq!(open["upgrade"], "websocket");
    assert_eq!(ws.event("closed")["code"], 4001);
}

#[test]
fn other_extended_connect_protocols_are_refused() {
    let backend = Backend::serve(|_| Reply::ok("must not be reached"));
    let p = Proxy::start(&ws_config(backend.addr, "", ""));
    let v = h2_client(&p, "connect-udp");
    assert_eq!(v["enable_connect_protocol"], 1, "{v}");
    assert_eq!(v["status"], 405, "{v}");
    backend.assert_untouched("extended CONNECT for connect-udp");
}

#[test]
fn websocket_over_http2_where_it_is_off_is_refused() {
    let backend = Backend::serve(|_| Reply::ok("must not be reached"));
    // The script's :path is /chat?room=1, routed to a location without it.
    let toml = ws_config(backend.addr, "", "")
        + "\n[[server.location]]\npath = \"/chat\"\nproxy_pass = \"http://ws\"\nupgrade = []\n";
    let p = Proxy::start(&toml);
    let v = h2_client(&p, "websocket");
    assert_eq!(v["enable_connect_protocol"], 1, "{v}");
    assert_eq!(v["status"], 405, "{v}");
    drop(p);
    // No location allows WebSocket: the setting is not advertised, and the
    // HTTP/2 layer refuses a `:protocol` stream.
    let p = Proxy::start(&ws_config(backend.addr, "", "upgrade = []"));
    let v = h2_client(&p, "websocket");
    assert_eq!(v["enable_connect_protocol"], 0, "{v}");
    assert_ne!(v["status"], 200, "{v}");
    backend.assert_untouched("extended CONNECT where WebSocket is off");
}

#[test]
fn upgrade_config_is_checked() {
    let parse = |loc: &str| {
        ringway::config::Config::parse(
            &format!("[[server]]\nlisten = [\"127.0.0.1:0\"]\n[[server.location]]\npath = \"/\"\n{loc}\n"),
            std::path::Path::new("t.toml"),
        )
    };
    let ok = parse("proxy_pass = \"http://127.0.0.1:1\"\nupgrade = [\"WebSocket\", \"tls/1.3\"]").unwrap();
    assert_eq!(ok.servers[0].locations[0].upgrade, ["websocket", "tls/1.3"]);
    let default = parse("proxy_pass = \"http://127.0.0.1:1\"").unwrap();
    assert_eq!(default.servers[0].locations[0].upgrade, ["websocket"]);
    for (loc, says) in [
        (
            "proxy_pass = \"http://127.0.0.1:1\"\nupgrade = [\"h2c\"]",
            "HTTP/2 upgrades are not passed on",
        ),
        (
            "proxy_pass = \"http://127.0.0.1:1\"\nupgrade = [\"web socket\"]",
            "must be a protocol name",
        ),
        (
            "proxy_pass = \"http://127.0.0.1:1\"\nupgrade = [\"websocket\", \"WEBSOCKET\"]",
            "listed twice",
        ),
        (
            "return = { status = 200 }\nupgrade = [\"websocket\"]",
            "only applies with proxy_pass",
        ),
    ] {
        let e = parse(loc).expect_err(loc).to_string();
        assert!(
            e.contains("server[0].location[0].upgrade") && e.contains(says),
            "{loc}: {e}"
        );
    }
}

/// A raw tunnel from a std client, for what a WebSocket library hides.
#[test]
fn a_big_transfer_both_ways_at_once_does_not_deadlock() {
    // The backend echoes while the client is still sending: each direction
    // must flow without waiting for the other.
    let backend = Backend::start(|c| {
        if c.read_head().is_some() {
            c.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n");
            let mut tmp = [0u8; 64 * 1024];
            loop {
                match c.stream.read(&mut tmp) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if !c.write(&tmp[..n]) {
                            return;
                        }
                    }
                }
            }
        }
    });
    let p = Proxy::start(&ws_config(backend.addr, "", ""));
    let mut c = p.client();
    c.send(UPGRADE_REQUEST);
    assert_eq!(c.head_only().expect("101").line[1], "101");
    let data = crate::support::payload(8 << 20, 7);
    let mut writer = c.stream.try_clone().unwrap();
    let sent = data.clone();
    let w = std::thread::spawn(move || {
        writer.write_all(&sent).unwrap();
        writer.shutdown(std::net::Shutdown::Write).unwrap();
    });
    let mut got = c.pending().to_vec();
    c.stream.read_to_end(&mut got).expect("echo");
    w.join().unwrap();
    crate::support::assert_same_bytes(&got, &data, "echoed through the tunnel");
}

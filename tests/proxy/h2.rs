//! HTTP/2 from clients: curl and a raw-frame client (Python `h2`) against
//! the real proxy, over h2c prior knowledge and TLS with ALPN, in front of
//! HTTP/1.1 backends. Every refusal is shown with what the client got and
//! that nothing reached the backend where nothing should.

use std::time::Duration;

use serde_json::Value;

use crate::support::peers::{curl, py};
use crate::support::*;

/// A backend for the HTTP/2 tests: `/slow` answers after a second, `/big`
/// with 1 MiB, `/early` with 103 Early Hints first, the rest with the
/// request's target, method and body size.
fn backend() -> Backend {
    Backend::start(|c| {
        while let Some(seen) = c.read_request() {
            let target = seen.target().to_string();
            let reply = if target == "/early" {
                c.write(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n");
                Reply::ok("final")
            } else if target == "/big" {
                Reply::ok(vec![b'x'; 1 << 20])
            } else if target == "/slow" {
                Reply::ok("slow").delay(Duration::from_secs(1))
            } else if target == "/chunked" {
                Reply::ok(vec![b'c'; 100_000]).chunked(7000)
            } else {
                Reply::ok(format!("{} {} {}", seen.method(), target, seen.body.len()))
            };
            if !c.reply(&seen, &reply) {
                return;
            }
        }
    })
}

fn h2c_proxy(backend: &Backend, server_extra: &str) -> Proxy {
    Proxy::start(&proxy_all(
        backend.addr,
        &format!("h2c = true\n{server_extra}"),
        "",
    ))
}

fn port(p: &Proxy) -> String {
    p.addr().port().to_string()
}

fn stream(r: &Value, sid: u32) -> &Value {
    &r["streams"][sid.to_string()]
}

#[test]
fn curl_with_prior_knowledge_is_served_over_h2c() {
    let b = backend();
    let p = h2c_proxy(&b, "");
    let url = format!("http://{}/hello?x=1", p.addr());
    let r = curl(
        &["--http2-prior-knowledge", "-w", "\\n%{http_version} %{http_code}"],
        &url,
    );
    assert_eq!(r.stdout, "GET /hello?x=1 0\n2 200", "{}", r.stderr);
    let seen = b.only_request();
    assert_eq!(seen.version(), "HTTP/1.1");
    // :authority became the Host the backend sees.
    assert_eq!(seen.header("x-forwarded-host"), Some(&*p.addr().to_string()));
}

#[test]
fn http11_keeps_working_on_an_h2c_port() {
    let b = backend();
    let p = h2c_proxy(&b, "");
    let r = p.get("/plain");
    assert_eq!((r.status, r.text().as_str()), (200, "GET /plain 0"));
    // Bytes that only start like the preface are HTTP/1.1's to judge.
    let r = p.send("PRI / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(r.status, 200, "{}", r.head_text());
    assert_eq!(b.seen()[1].method(), "PRI");
}

#[test]
fn a_plain_listener_without_h2c_does_not_speak_http2() {
    let b = backend();
    let p = Proxy::start(&proxy_all(b.addr, "", ""));
    let r = curl(&["--http2-prior-knowledge"], &format!("http://{}/", p.addr()));
    assert_ne!(r.status, Some(0), "HTTP/2 was accepted without h2c: {}", r.stdout);
    b.assert_untouched("an HTTP/2 preface on an HTTP/1.1 listener");
}

#[test]
fn cookies_are_joined_and_the_head_is_rebuilt_for_http11() {
    let b = backend();
    let p = h2c_proxy(&b, "");
    let r = py(
        "h2_probe.py",
        &[
            "get",
            &port(&p),
            "/c",
            "cookie: a=1",
            "cookie: b=2",
            "x-custom: v",
        ],
    );
    assert_eq!(stream(&r, 1)["status"], 200, "{r}");
    let seen = b.only_request();
    // RFC 9113 §8.2.3: one Cookie field for HTTP/1.1.
    assert_eq!(seen.all("cookie"), ["a=1; b=2"]);
    assert_eq!(seen.header("x-custom"), Some("v"));
    // :authority became Host (kept, as for HTTP/1.1 clients).
    assert_eq!(seen.header("host"), Some("test.local"));
}

#[test]
fn request_bodies_with_and_without_a_length() {
    let b = backend();
    let p = h2c_proxy(&b, "");
    for (size, with_length) in [(0, "1"), (10, "1"), (200_000, "1"), (200_000, "0"), (70_000, "0")] {
        let r = py(
            "h2_probe.py",
            &["post", &port(&p), "/up", &size.to_string(), with_length],
        );
        assert_eq!(
            stream(&r, 1)["body"],
            format!("POST /up {size}"),
            "size {size} length {with_length}: {r}"
        );
    }
    let seen = b.seen();
    // Without content-length the upstream gets chunked framing.
    assert_eq!(seen[3].header("transfer-encoding"), Some("chunked"));
    assert_eq!(seen[2].header("content-length"), Some("200000"));
    assert_eq!(
        seen[2].body,
        (0..200_000).map(|i| (i % 251) as u8).collect::<Vec<_>>()
    );
    assert_eq!(seen[3].body, seen[2].body);
}

#[test]
fn large_and_chunked_responses_arrive_whole() {
    let b = backend();
    let p = h2c_proxy(&b, "");
    for (path, len) in [("/big", 1 << 20), ("/chunked", 100_000)] {
        let r = curl(
            &[
                "--http2-prior-knowledge",
                "-o",
                "/dev/null",
                "-w",
                "%{size_download} %{http_code}",
            ],
            &format!("http://{}{path}", p.addr()),
        );
        assert_eq!(r.stdout, format!("{len} 200"), "{path}: {}", r.stderr);
    }
}

#[test]
fn chunked_trailers_from_an_http11_upstream_reach_an_http2_client_as_trailers() {
    let b = Backend::start(|c| {
        while c.read_request().is_some() {
            let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n\
5\r\nhello\r\n0\r\nX-Checksum: abc123\r\nContent-Length: 99\r\nConnection: close\r\n\r\n";
            if !c.write(raw) {
                return;
            }
        }
    });
    let p = h2c_proxy(&b, "");
    let r = py("h2_probe.py", &["get", &port(&p), "/t"]);
    let s = stream(&r, 1);
    assert_eq!(s["body"], "hello", "{r}");
    assert_eq!(s["trailers"]["x-checksum"], "abc123", "{r}");
    // Framing and connection fields never travel as trailers.
    assert!(s["trailers"].get("content-length").is_none(), "{r}");
    assert!(s["trailers"].get("connection").is_none(), "{r}");
    // An HTTP/1.1 client gets them in the last chunk, with the same fields
    // left out.
    let h1 = p.get("/t");
    assert_eq!(h1.text(), "hello");
    assert!(
        h1.body_raw.ends_with(b"0\r\nX-Checksum: abc123\r\n\r\n"),
        "{:?}",
        String::from_utf8_lossy(&h1.body_raw)
    );
}

#[test]
fn early_hints_reach_an_http2_client() {
    let b = backend();
    let p = h2c_proxy(&b, "");
    let r = py("h2_probe.py", &["get", &port(&p), "/early"]);
    let s = stream(&r, 1);
    assert_eq!(s["status"], 200, "{r}");
    assert_eq!(s["informational"][0]["link"], "</a.css>; rel=preload", "{r}");
    assert_eq!(s["body"], "final");
}

#[test]
fn ringway_errors_reach_http2_clients_as_statuses() {
    let b = backend();
    let toml = config(&format!(
        r#"
[[server]]
listen = ["127.0.0.1:0"]
access_log = "off"
h2c = true

[[server.location]]
path = "/api/"
proxy_pass = "http://{}"

[[server.location]]
path = "/gone/"
return = {{ status = 410, body = "gone" }}
"#,
        b.addr
    ));
    let p = Proxy::start(&toml);
    let r = py("h2_probe.py", &["get", &port(&p), "/nowhere"]);
    assert_eq!(stream(&r, 1)["status"], 404, "{r}");
    let r = py("h2_probe.py", &["get", &port(&p), "/gone/x"]);
    assert_eq!(
        (stream(&r, 1)["status"].clone(), stream(&r, 1)["body"].clone()),
        (410.into(), "gone".into())
    );
    drop(b);
    // Upstream down: 502, as over HTTP/1.1.
    let r = py("h2_probe.py", &["get", &port(&p), "/api/x"]);
    assert_eq!(stream(&r, 1)["status"], 502, "{r}");
}

#[test]
fn a_host_naming_another_authority_is_refused() {
    let b = backend();
    let p = h2c_proxy(&b, "");
    let r = py("h2_probe.py", &["malformed", &port(&p), "host_mismatch"]);
    assert_eq!(stream(&r, 1)["status"], 400, "{r}");
    b.assert_untouched("Host differing from :authority");
}

#[test]
fn malformed_requests_are_reset_with_protocol_error() {
    let b = backend();
    let p = h2c_proxy(&b, "");
    // RFC 9113 §8.2.2 (connection-specific fields), §8.2 (uppercase),
    // §8.3 (pseudo-headers after regular fields, unknown ones, a missing
    // :path), §8.2.2 (te other than trailers).
    for kind in [
        "connection_header",
        "uppercase",
        "pseudo_after_regular",
        "unknown_pseudo",
        "no_path",
        "te_gzip",
    ] {
        let r = py("h2_probe.py", &["malformed", &port(&p), kind]);
        let s = stream(&r, 1);
        let refused = s["reset"] == 1 || r["goaway"]["code"] == 1;
        assert!(refused, "{kind}: not refused with PROTOCOL_ERROR: {r}");
        assert!(s["status"].is_null(), "{kind}: answered: {r}");
    }
    b.assert_untouched("malformed HTTP/2 requests");
}

#[test]
fn a_content_length_that_disagrees_with_data_is_a_stream_error() {
    let b = Backend::start(|c| while c.read_request().is_some() {});
    let p = h2c_proxy(&b, "");
    let r = py("h2_probe.py", &["malformed", &port(&p), "cl_mismatch"]);
    assert_eq!(stream(&r, 1)["reset"], 1, "{r}");
    assert!(stream(&r, 1)["status"].is_null(), "{r}");
}

#[test]
fn streams_past_max_concurrent_streams_are_refused_and_never_reach_an_upstream() {
    let b = backend();
    let p = h2c_proxy(&b, "http2 = { max_concurrent_streams = 4 }");
    // Eight at once: within the per-read cap of new streams (twice the
    // limit), so the extra four are refused rather than the connection cut.
    let r = py("h2_probe.py", &["concurrent", &port(&p), "8", "/slow"]);
    assert_eq!(r["refused"], 4, "{r}");
    assert_eq!(r["ok"], 4, "{r}");
    assert_eq!(b.seen().len(), 4);
}

#[test]
fn the_server_settings_come_from_the_config() {
    let b = backend();
    let p = h2c_proxy(
        &b,
        r#"http2 = { max_concurrent_streams = 7, initial_window = "32k", max_frame_size = "32k", max_header_list = "8k" }"#,
    );
    let r = py("h2_probe.py", &["get", &port(&p), "/s"]);
    let s = &r["settings"];
    // SETTINGS ids: 3 streams, 4 window, 5 frame size, 6 header list.
    assert_eq!(
        (s["3"].clone(), s["4"].clone(), s["5"].clone(), s["6"].clone()),
        (7.into(), 32768.into(), 32768.into(), 8192.into()),
        "{r}"
    );
    // No server push, and no extended CONNECT unless a location needs it.
    assert_ne!(s["2"], 1, "{r}");
}

#[test]
fn an_hpack_bomb_is_refused_before_any_upstream() {
    let b = backend();
    let p = h2c_proxy(&b, "");
    // 6 KB on the wire that decodes to 8 MB of header fields.
    let r = py("h2_probe.py", &["hpack_bomb", &port(&p), "4000", "2000"]);
    let s = stream(&r, 1);
    assert!(
        s["status"] == 431 || !s["reset"].is_null() || !r["goaway"].is_null(),
        "{r}"
    );
    assert_ne!(s["status"], 200, "{r}");
    b.assert_untouched("an HPACK bomb");
    // The proxy still serves.
    assert_eq!(p.get("/after").status, 200);
}

/// Runs a flood and checks the cut: GOAWAY ENHANCE_YOUR_CALM, before the
/// whole flood went out, while another client is served meanwhile.
fn assert_flood_cut(kind: &str) {
    let b = backend();
    let p = h2c_proxy(&b, "");
    let r = py("h2_probe.py", &["flood", &port(&p), kind, "1000000"]);
    assert_eq!(
        r["goaway"]["code"], 0xb,
        "{kind}: not cut with ENHANCE_YOUR_CALM: {r}"
    );
    assert!(r["sent_bytes"].as_u64().unwrap() < 16 << 20, "{kind}: {r}");
    let other = curl(
        &["--http2-prior-knowledge", "-w", " %{http_code}"],
        &format!("http://{}/other", p.addr()),
    );
    assert_eq!(other.stdout, "GET /other 0 200", "{}", other.stderr);
}

#[test]
fn a_ping_flood_is_cut() {
    assert_flood_cut("ping");
}

#[test]
fn a_settings_flood_is_cut() {
    assert_flood_cut("settings");
}

#[test]
fn a_priority_flood_is_cut() {
    assert_flood_cut("priority");
}

#[test]
fn a_connection_window_update_flood_is_cut() {
    assert_flood_cut("window_update");
}

#[test]
fn a_stream_window_update_flood_is_cut_by_the_ratio_rule() {
    assert_flood_cut("stream_window_update");
}

#[test]
fn an_empty_data_flood_is_cut() {
    assert_flood_cut("empty_data");
}

#[test]
fn a_continuation_flood_is_cut() {
    assert_flood_cut("continuation");
}

#[test]
fn made_you_reset_is_cut_and_few_streams_reach_the_upstream() {
    let b = backend();
    let p = h2c_proxy(&b, "");
    let r = py("h2_probe.py", &["flood", &port(&p), "made_you_reset", "100000"]);
    assert_eq!(r["goaway"]["code"], 0xb, "not cut with ENHANCE_YOUR_CALM: {r}");
    assert!(r["sent"].as_u64().unwrap() < 5000, "{r}");
    let reached = b.seen().len();
    assert!(
        reached < 300,
        "{reached} streams the server reset reached the upstream"
    );
}

#[test]
fn a_rapid_reset_burst_is_cut_and_few_streams_reach_the_upstream() {
    let b = backend();
    let p = h2c_proxy(&b, "");
    let r = py("h2_probe.py", &["flood", &port(&p), "rapid_reset", "100000"]);
    assert_eq!(r["goaway"]["code"], 0xb, "not cut with ENHANCE_YOUR_CALM: {r}");
    let reached = b.seen().len();
    assert!(reached < 300, "{reached} cancelled streams reached the upstream");
}

#[test]
fn a_paced_rapid_reset_is_cut_after_a_bounded_number_of_streams() {
    let b = backend();
    let p = h2c_proxy(&b, "");
    let r = py("h2_probe.py", &["paced_reset", &port(&p), "2000"]);
    assert_eq!(r["goaway"]["code"], 0xb, "{r}");
    let opened = r["opened"].as_u64().unwrap();
    assert!(opened < 1000, "{opened} streams opened and reset before the cut");
    assert!(b.seen().len() < 500, "{} reached the upstream", b.seen().len());
}

#[test]
fn a_reset_stream_stops_its_upstream_work_and_the_connection_goes_on() {
    let b = backend();
    let p = h2c_proxy(&b, "");
    let r = py("h2_probe.py", &["reset_inflight", &port(&p), "/slow"]);
    assert_eq!(stream(&r, 3)["body"], "GET /after 0", "{r}");
    // The upstream connection of the reset stream was closed, not pooled:
    // /after came on a connection of its own.
    let seen = b.wait_requests(2);
    assert_ne!(seen[0].conn, seen[1].conn);
}

#[test]
fn a_client_that_never_opens_its_window_is_reset_after_send_timeout() {
    let b = backend();
    let p = h2c_proxy(&b, "send_timeout = \"1s\"");
    let r = py("h2_probe.py", &["slow_read", &port(&p), "/big"]);
    let s = stream(&r, 1);
    assert_eq!(s["status"], 200, "{r}");
    assert_eq!(s["reset"], 8, "not reset with CANCEL: {r}");
    assert!(s["body_len"].as_u64().unwrap() < 1 << 20, "{r}");
}

#[test]
fn an_idle_connection_gets_goaway() {
    let b = backend();
    let p = h2c_proxy(&b, "http2 = { idle_timeout = \"1s\" }");
    let r = py("h2_probe.py", &["goaway_on_idle", &port(&p)]);
    assert_eq!(stream(&r, 1)["status"], 200, "{r}");
    assert_eq!(r["goaway"]["code"], 0, "{r}");
}

#[test]
fn keepalive_requests_ends_a_connection_gracefully() {
    let b = backend();
    let p = h2c_proxy(&b, "keepalive_requests = 1");
    let r = py("h2_probe.py", &["goaway_after", &port(&p), "/one"]);
    assert_eq!(stream(&r, 1)["body"], "GET /one 0", "{r}");
    assert_eq!(r["goaway"]["code"], 0, "{r}");
}

#[test]
fn shutdown_sends_goaway_and_lets_streams_in_flight_finish() {
    let b = backend();
    let p = h2c_proxy(&b, "");
    let port = port(&p);
    let probe = std::thread::spawn(move || py("h2_probe.py", &["goaway_after", &port, "/slow"]));
    assert!(wait_for(Duration::from_secs(5), || (!b.seen().is_empty()).then_some(())).is_some());
    p.begin_shutdown();
    let r = probe.join().unwrap();
    assert_eq!(stream(&r, 1)["body"], "slow", "{r}");
    assert_eq!(r["goaway"]["code"], 0, "{r}");
}

#[test]
fn shutdown_ends_with_a_stream_still_stuck_after_drain_timeout() {
    // The backend never answers: the stream outlives the 1 s drain.
    let b = Backend::start(|c| {
        if c.read_request().is_some() {
            c.hold();
        }
    });
    let mut p = h2c_proxy(&b, "");
    let port = port(&p);
    let probe = std::thread::spawn(move || py("h2_probe.py", &["goaway_after", &port, "/stuck"]));
    assert!(wait_for(Duration::from_secs(5), || (!b.seen().is_empty()).then_some(())).is_some());
    let (tx, rx) = std::sync::mpsc::channel();
    let stopper = std::thread::spawn(move || {
        p.stop();
        let _ = tx.send(());
    });
    // A bound for a hang only: the verdict is that the proxy stopped at all.
    assert!(
        rx.recv_timeout(Duration::from_secs(20)).is_ok(),
        "the proxy did not stop"
    );
    stopper.join().unwrap();
    let r = probe.join().unwrap();
    // The client was told (graceful GOAWAY first), and the stream ended
    // without a response.
    assert_eq!(r["goaway"]["code"], 0, "{r}");
    assert!(stream(&r, 1)["status"].is_null(), "{r}");
}

/// A reload that removes the listener of an open HTTP/2 connection: its next
/// stream is served, then the client is told to go with a graceful GOAWAY.
#[test]
fn a_removed_listener_serves_the_next_stream_then_sends_goaway() {
    let b = backend();
    let p = h2c_proxy(&b, "");
    let port = port(&p);
    let flag = temp_path("h2-reload-flag");
    let flag_arg = flag.display().to_string();
    let probe = std::thread::spawn({
        let port = port.clone();
        move || py("h2_probe.py", &["second_after_file", &port, &flag_arg])
    });
    assert!(wait_for(Duration::from_secs(5), || (!b.seen().is_empty()).then_some(())).is_some());
    // The same server on another address only.
    let other = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let toml = proxy_all(b.addr, "h2c = true\n", "").replace("127.0.0.1:0", &other.to_string());
    let config = ringway::config::Config::parse(&toml, std::path::Path::new("test.toml")).unwrap();
    p.handle().reload(config).expect("reload");
    // Installed once the added address answers.
    wait_for(Duration::from_secs(5), || {
        std::net::TcpStream::connect(other)
            .ok()
            .map(|s| Client::from_stream(s).get("/ready").status)
    })
    .expect("the new address answers");
    std::fs::write(&flag, "go").unwrap();
    let r = probe.join().unwrap();
    let _ = std::fs::remove_file(&flag);
    assert_eq!(stream(&r, 1)["body"], "GET /first 0", "{r}");
    assert_eq!(stream(&r, 3)["body"], "GET /second 0", "{r}");
    assert_eq!(r["goaway"]["code"], 0, "{r}");
    assert!(
        std::net::TcpStream::connect(p.addr()).is_err(),
        "the removed address still accepts"
    );
}

//! TLS toward upstreams: verification against a configured CA or the system
//! roots, the name that is checked and sent as SNI, the switch for
//! self-signed backends, handshake failures as failed connects, reuse of
//! pooled TLS connections, client certificates, and the config errors.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use ringway::config::Config;

use crate::support::pki::{self, Ca, Issued};
use crate::support::tls_backend::{TlsBackend, TlsOptions};
use crate::support::*;

/// A proxy whose only location goes to upstream "app" over TLS.
fn tls_upstream(servers: &[std::net::SocketAddr], upstream_extra: &str) -> Proxy {
    let servers: Vec<String> = servers.iter().map(|a| format!("\"{a}\"")).collect();
    Proxy::start(&tls_upstream_config(&servers.join(", "), upstream_extra))
}

fn tls_upstream_config(servers: &str, upstream_extra: &str) -> String {
    config(&format!(
        r#"
[[upstream]]
name = "app"
servers = [{servers}]
tls = true
{upstream_extra}

[[server]]
listen = ["127.0.0.1:0"]
access_log = "off"
[[server.location]]
path = "/"
proxy_pass = "https://app"
"#
    ))
}

/// A CA written to a file, and a certificate it issued for `names`.
fn ca_and_cert(names: &[&str]) -> (TempFile, Issued) {
    let ca = Ca::new("ringway test CA");
    let cert = ca.issue(names);
    (TempFile::with_text("ca.pem", &ca.pem), cert)
}

fn toml_path(f: &TempFile) -> String {
    format!("{:?}", f.path().to_str().unwrap())
}

#[test]
fn verifies_against_tls_ca_and_sends_the_configured_name() {
    let (ca, cert) = ca_and_cert(&["backend.test"]);
    let backend = TlsBackend::echo_target(&cert);
    let p = tls_upstream(
        &[backend.addr],
        &format!("tls_ca = {}\ntls_server_name = \"backend.test\"", toml_path(&ca)),
    );
    let r = p.get("/hello?x=1");
    assert_eq!((r.status, r.text()), (200, "/hello?x=1".to_string()));
    let h = backend.handshakes();
    assert_eq!(h.len(), 1, "{h:?}");
    assert_eq!(h[0].error, None);
    assert_eq!(h[0].sni.as_deref(), Some("backend.test"));
    // The backend offers h2 first; ringway offers only HTTP/1.1.
    assert_eq!(h[0].alpn.as_deref(), Some(&b"http/1.1"[..]));
    assert_eq!(h[0].version.as_deref(), Some("TLSv1_3"));
}

#[test]
fn the_default_name_is_the_server_host_as_written() {
    // Bound where the config's resolution of "localhost" will connect.
    #[allow(clippy::disallowed_methods)]
    let local = std::net::ToSocketAddrs::to_socket_addrs("localhost:0")
        .unwrap()
        .next()
        .unwrap();
    let (ca, cert) = ca_and_cert(&["localhost"]);
    let backend = TlsBackend::with_options(
        &cert,
        TlsOptions {
            bind: Some(local),
            ..TlsOptions::default()
        },
        |r| Reply::ok(r.target()),
    );
    let p = Proxy::start(&tls_upstream_config(
        &format!("\"localhost:{}\"", backend.addr.port()),
        &format!("tls_ca = {}", toml_path(&ca)),
    ));
    let r = p.get("/");
    assert_eq!(r.status, 200, "{}", r.head_text());
    assert_eq!(backend.handshakes()[0].sni.as_deref(), Some("localhost"));
}

#[test]
fn a_certificate_for_another_name_is_a_502_and_nothing_is_sent() {
    let (ca, cert) = ca_and_cert(&["other.test"]);
    let backend = TlsBackend::echo_target(&cert);
    let p = tls_upstream(
        &[backend.addr],
        &format!("tls_ca = {}\ntls_server_name = \"backend.test\"", toml_path(&ca)),
    );
    let r = p.get("/");
    assert_eq!(r.status, 502);
    let h = backend.wait_handshakes(1);
    assert!(h[0].error.is_some(), "{h:?}");
    assert!(backend.seen().is_empty());
}

#[test]
fn the_name_can_be_the_request_host_and_pooling_keeps_names_apart() {
    let (ca, cert) = ca_and_cert(&["a.test", "b.test"]);
    let backend = TlsBackend::echo_target(&cert);
    let p = tls_upstream(
        &[backend.addr],
        &format!("tls_ca = {}\ntls_server_name = \"$host\"", toml_path(&ca)),
    );
    let get = |host: &str| p.send(format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n"));
    let conns: Vec<(u16, usize)> = ["a.test", "B.test:8080", "a.test", "b.test"]
        .iter()
        .map(|h| {
            let r = get(h);
            (r.status, r.conn())
        })
        .collect();
    // A connection made for one name is reused only for that name.
    assert_eq!(conns, [(200, 1), (200, 2), (200, 1), (200, 2)]);
    let names: Vec<Option<String>> = backend.handshakes().into_iter().map(|h| h.sni).collect();
    assert_eq!(names, [Some("a.test".to_string()), Some("b.test".to_string())]);
    // Host is still the client's.
    assert_eq!(backend.seen()[1].header("host"), Some("B.test:8080"));
    // A host the certificate does not cover fails verification.
    assert_eq!(get("c.test").status, 502);
}

#[test]
fn an_address_is_checked_against_the_certificate_without_sni() {
    let (ca, cert) = ca_and_cert(&["127.0.0.1"]);
    let backend = TlsBackend::echo_target(&cert);
    let p = tls_upstream(&[backend.addr], &format!("tls_ca = {}", toml_path(&ca)));
    assert_eq!(p.get("/").status, 200);
    assert_eq!(backend.handshakes()[0].sni, None);

    // A certificate naming only a host name does not cover the address.
    let (ca, cert) = ca_and_cert(&["backend.test"]);
    let backend = TlsBackend::echo_target(&cert);
    let p = tls_upstream(&[backend.addr], &format!("tls_ca = {}", toml_path(&ca)));
    assert_eq!(p.get("/").status, 502);
}

#[test]
fn an_expired_certificate_is_a_502() {
    let ca = Ca::new("ringway test CA");
    let cert = ca.issue_with(&["backend.test"], |p| {
        p.not_before = rcgen::date_time_ymd(2001, 1, 1);
        p.not_after = rcgen::date_time_ymd(2002, 1, 1);
    });
    let ca_file = TempFile::with_text("ca.pem", &ca.pem);
    let backend = TlsBackend::echo_target(&cert);
    let p = tls_upstream(
        &[backend.addr],
        &format!(
            "tls_ca = {}\ntls_server_name = \"backend.test\"",
            toml_path(&ca_file)
        ),
    );
    assert_eq!(p.get("/").status, 502);
    assert!(backend.seen().is_empty());
}

#[test]
fn a_self_signed_backend_needs_verification_off() {
    let cert = pki::self_signed(&["backend.test"]);
    let backend = TlsBackend::echo_target(&cert);
    // Against the system roots (no tls_ca), a self-signed certificate fails.
    let p = tls_upstream(&[backend.addr], "tls_server_name = \"backend.test\"");
    assert_eq!(p.get("/").status, 502);
    assert!(backend.seen().is_empty());
    drop(p);

    let p = tls_upstream(
        &[backend.addr],
        "tls_server_name = \"backend.test\"\ntls_verify = false",
    );
    let r = p.get("/ok");
    assert_eq!((r.status, r.text()), (200, "/ok".to_string()));
    // The name is still sent.
    let h = backend.handshakes();
    assert_eq!(h.last().unwrap().sni.as_deref(), Some("backend.test"));
}

#[test]
fn a_stalled_handshake_is_a_504_after_connect_timeout() {
    // Accepts the connection, never answers the ClientHello.
    let silent = Backend::start(|c| c.hold());
    let p = tls_upstream(&[silent.addr], "tls_verify = false\nconnect_timeout = \"300ms\"");
    let r = p.get("/");
    assert_eq!(r.status, 504);
    assert!(silent.seen().is_empty());
}

#[test]
fn a_backend_that_does_not_speak_tls_is_a_502() {
    // Answers the ClientHello as an HTTP server answers garbage.
    let plain = Backend::start(|c| {
        let mut hello = [0u8; 512];
        let _ = std::io::Read::read(&mut c.stream, &mut hello);
        c.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        c.close_gracefully();
    });
    let p = tls_upstream(&[plain.addr], "tls_verify = false");
    assert_eq!(p.get("/").status, 502);
}

#[test]
fn large_bodies_cross_tls_both_ways() {
    let (ca, cert) = ca_and_cert(&["backend.test"]);
    // Echoes the request body back, chunked in odd pieces.
    let backend = TlsBackend::serve(&cert, |r| Reply::ok(&r.body).chunked(7000));
    let p = tls_upstream(
        &[backend.addr],
        &format!("tls_ca = {}\ntls_server_name = \"backend.test\"", toml_path(&ca)),
    );
    let body = payload(700 * 1024, 7);
    let mut c = p.client();
    let mut req = format!(
        "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(&body);
    for _ in 0..2 {
        let r = c.request(&req);
        assert_eq!(r.status, 200);
        assert_same_bytes(&r.body, &body, "echoed body");
        assert_eq!(r.conn(), 1);
    }
}

#[test]
fn a_body_that_ends_with_the_connection_may_end_without_close_notify() {
    let (ca, cert) = ca_and_cert(&["backend.test"]);
    for close_without_notify in [false, true] {
        let backend = TlsBackend::with_options(
            &cert,
            TlsOptions {
                close_without_notify,
                ..TlsOptions::default()
            },
            |_| Reply::ok(payload(100_000, 3)).until_close(),
        );
        let p = tls_upstream(
            &[backend.addr],
            &format!("tls_ca = {}\ntls_server_name = \"backend.test\"", toml_path(&ca)),
        );
        let mut c = p.client();
        let r = c.get("/");
        assert_eq!(r.status, 200);
        // Re-framed as chunked, and complete: the client connection stays open.
        assert_eq!(r.framing, Framing::Chunked);
        assert_same_bytes(&r.body, &payload(100_000, 3), "close-delimited body");
        assert_eq!(
            c.get("/").status,
            200,
            "close_without_notify: {close_without_notify}"
        );
    }

    // With a length, a close before the end is still a body cut short.
    let backend = TlsBackend::with_options(
        &cert,
        TlsOptions {
            close_without_notify: true,
            ..TlsOptions::default()
        },
        |_| {
            Reply::ok(payload(1000, 4))
                .until_close()
                .header("Content-Length", "2000")
        },
    );
    let p = tls_upstream(
        &[backend.addr],
        &format!("tls_ca = {}\ntls_server_name = \"backend.test\"", toml_path(&ca)),
    );
    let mut c = p.client();
    c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    match c.try_response() {
        Err(ReadError::Eof { got }) => assert!(got.starts_with(b"HTTP/1.1 200"), "{got:?}"),
        other => panic!("expected a response cut short, got {other:?}"),
    }
}

#[test]
fn a_failed_handshake_goes_to_the_next_server() {
    let (ca, good_cert) = ca_and_cert(&["backend.test"]);
    let bad = TlsBackend::echo_target(&pki::self_signed(&["backend.test"]));
    let good = TlsBackend::echo_target(&good_cert);
    let p = tls_upstream(
        &[bad.addr, good.addr],
        &format!("tls_ca = {}\ntls_server_name = \"backend.test\"", toml_path(&ca)),
    );
    // Round robin starts with the first server, whose handshake fails.
    let r = p.get("/a");
    assert_eq!((r.status, r.text()), (200, "/a".to_string()));
    assert!(bad.wait_handshakes(1)[0].error.is_some());
    // It counted as a failure: the server is down and not tried again.
    assert_eq!(p.get("/b").status, 200);
    assert_eq!(bad.connections(), 1);
    assert_eq!(good.seen().len(), 2);
}

#[test]
fn https_address_with_a_location_ca() {
    let (ca, cert) = ca_and_cert(&["127.0.0.1"]);
    let backend = TlsBackend::echo_target(&cert);
    let p = Proxy::start(&config(&format!(
        r#"
[[server]]
listen = ["127.0.0.1:0"]
access_log = "off"
[[server.location]]
path = "/api/"
proxy_pass = "https://{}/v2/"
proxy_tls_ca = {}
"#,
        backend.addr,
        toml_path(&ca)
    )));
    let r = p.get("/api/users");
    assert_eq!((r.status, r.text()), (200, "/v2/users".to_string()));
}

#[test]
fn a_tls12_backend_is_served_and_pooled_too() {
    let (ca, cert) = ca_and_cert(&["backend.test"]);
    let backend = TlsBackend::with_options(
        &cert,
        TlsOptions {
            tls12_only: true,
            ..TlsOptions::default()
        },
        |r| Reply::ok(r.target()),
    );
    let p = tls_upstream(
        &[backend.addr],
        &format!("tls_ca = {}\ntls_server_name = \"backend.test\"", toml_path(&ca)),
    );
    let mut c = p.client();
    let conns: Vec<usize> = (0..3).map(|_| c.get("/12").conn()).collect();
    assert_eq!(conns, [1, 1, 1]);
    let h = backend.handshakes();
    assert_eq!(h[0].version.as_deref(), Some("TLSv1_2"));
    assert_eq!(h[0].alpn.as_deref(), Some(&b"http/1.1"[..]));
}

#[test]
fn a_redirect_from_a_tls_upstream_is_mapped_back() {
    let (ca, cert) = ca_and_cert(&["backend.test"]);
    let backend = TlsBackend::serve(&cert, |_| {
        Reply::new(302).header("Location", "https://backend.test/v2/next?x=1")
    });
    let p = Proxy::start(&config(&format!(
        r#"
[[upstream]]
name = "app"
servers = ["{}"]
tls = true
tls_ca = {}
tls_server_name = "backend.test"

[[server]]
listen = ["127.0.0.1:0"]
access_log = "off"
[[server.location]]
path = "/api/"
proxy_pass = "https://app/v2/"
"#,
        backend.addr,
        toml_path(&ca)
    )));
    let r = p.send("GET /api/start HTTP/1.1\r\nHost: public.test\r\n\r\n");
    assert_eq!(r.status, 302);
    // The client's scheme and port, not the upstream's: plain HTTP on the
    // listener's port.
    let want = format!("http://public.test:{}/api/next?x=1", p.addr().port());
    assert_eq!(r.header("location"), Some(want.as_str()));
    assert_eq!(backend.seen()[0].target(), "/v2/start");
}

#[test]
fn tls_connections_are_pooled_and_reused() {
    let (ca, cert) = ca_and_cert(&["backend.test"]);
    let backend = TlsBackend::echo_target(&cert);
    let p = tls_upstream(
        &[backend.addr],
        &format!("tls_ca = {}\ntls_server_name = \"backend.test\"", toml_path(&ca)),
    );
    // The backend speaks TLS 1.3 and sends session tickets after the
    // handshake: they must not make the idle connection look closed.
    let mut c = p.client();
    let conns: Vec<usize> = (0..3)
        .map(|_| c.get("/").conn())
        .chain((0..2).map(|_| p.get("/").conn()))
        .collect();
    assert_eq!(conns, [1; 5]);
    assert_eq!(backend.connections(), 1);
    assert_eq!(backend.handshakes().len(), 1);
}

#[test]
fn a_tls_connection_the_backend_closed_is_not_reused() {
    let (ca, cert) = ca_and_cert(&["backend.test"]);
    let backend = TlsBackend::with_options(
        &cert,
        TlsOptions {
            close_after_reply: true,
            ..TlsOptions::default()
        },
        |r| Reply::ok(format!("{} {}", r.method(), String::from_utf8_lossy(&r.body))),
    );
    let p = tls_upstream(
        &[backend.addr],
        &format!("tls_ca = {}\ntls_server_name = \"backend.test\"", toml_path(&ca)),
    );
    let mut c = p.client();
    assert_eq!(c.get("/").conn(), 1);
    // The backend has sent close_notify and closed its side.
    wait_for(IO_TIMEOUT, || (backend.closed() == 1).then_some(())).expect("backend did not close");
    // A POST is not retried on another connection once sent, so a 200 here
    // means the pool saw the close and did not hand the connection out.
    let r = c.request("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi");
    assert_eq!((r.status, r.text(), r.conn()), (200, "POST hi".to_string(), 2));
    assert_eq!(backend.connections(), 2);
    // The new connection resumed the first one's session (the worker's cache).
    let resumed: Vec<bool> = backend.handshakes().iter().map(|h| h.resumed).collect();
    assert_eq!(resumed, [false, true]);
}

#[test]
fn a_client_certificate_is_presented_when_configured() {
    let server_ca = Ca::new("server CA");
    let client_ca = Ca::new("client CA");
    let server_cert = server_ca.issue(&["backend.test"]);
    let client_cert = client_ca.issue(&["ringway.client"]);
    let ca_file = TempFile::with_text("ca.pem", &server_ca.pem);
    let cert_file = TempFile::with_text("client.crt", &client_cert.cert_pem);
    let key_file = TempFile::with_text("client.key", &client_cert.key_pem);
    let backend = TlsBackend::with_options(
        &server_cert,
        TlsOptions {
            client_ca: Some(client_ca.pem.clone()),
            ..TlsOptions::default()
        },
        |r| Reply::ok(r.target()),
    );
    let base = format!(
        "tls_ca = {}\ntls_server_name = \"backend.test\"",
        toml_path(&ca_file)
    );
    let p = tls_upstream(&[backend.addr], &base);
    assert_eq!(p.get("/").status, 502);
    drop(p);
    let p = tls_upstream(
        &[backend.addr],
        &format!(
            "{base}\ntls_cert = {}\ntls_key = {}",
            toml_path(&cert_file),
            toml_path(&key_file)
        ),
    );
    assert_eq!(p.get("/mtls").text(), "/mtls");
    let h = backend.handshakes();
    assert!(h.last().unwrap().client_cert, "{h:?}");
}

#[test]
fn the_handshake_failure_is_logged_with_its_reason() {
    let (ca, cert) = ca_and_cert(&["other.test"]);
    let backend = TlsBackend::echo_target(&cert);
    let cfg = TempFile::with_text(
        "tls-log.toml",
        &tls_upstream_config(
            &format!("\"{}\"", backend.addr),
            &format!("tls_ca = {}\ntls_server_name = \"backend.test\"", toml_path(&ca)),
        ),
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringway"))
        .args(["--config", cfg.path().to_str().unwrap(), "--workers", "1"])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ringway");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let next_line = |what: &str| {
        rx.recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("no {what} line on stderr"))
    };
    let addr: std::net::SocketAddr = loop {
        let line = next_line("\"listening on\"");
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.split([' ', ',']).next().unwrap().parse().unwrap();
        }
    };
    let status = Client::connect(addr).get("/").status;
    let logged = loop {
        let line = next_line("handshake failure");
        if line.contains("upstream TLS handshake failed") {
            break line;
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    reader.join().unwrap();
    assert_eq!(status, 502);
    assert!(
        logged.contains(&format!("{}, server name \"backend.test\"", backend.addr))
            && logged.contains("not valid for name"),
        "{logged}"
    );
}

// ---- config ----

fn config_error(text: &str) -> String {
    match Config::parse(text, Path::new("t.toml")) {
        Ok(_) => panic!("config was accepted:\n{text}"),
        Err(e) => e.to_string(),
    }
}

const LISTEN: &str = "[[server]]\nlisten = [\"127.0.0.1:0\"]\n";

#[test]
fn an_unreadable_ca_file_is_named() {
    let e = config_error(&format!(
        "[[upstream]]\nname = \"app\"\nservers = [\"127.0.0.1:1\"]\ntls = true\n\
         tls_ca = \"/nonexistent/ringway/ca.pem\"\n{LISTEN}"
    ));
    assert!(
        e.contains("t.toml:5:10: upstream[0].tls_ca: cannot read /nonexistent/ringway/ca.pem:"),
        "{e}"
    );
    let not_pem = TempFile::with_text("not-a-ca.pem", "hello\n");
    let e = config_error(&format!(
        "[[server]]\nlisten = [\"127.0.0.1:0\"]\n[[server.location]]\npath = \"/\"\n\
         proxy_pass = \"https://127.0.0.1:1\"\nproxy_tls_ca = {}\n",
        toml_path(&not_pem)
    ));
    assert!(
        e.contains("server[0].location[0].proxy_tls_ca:") && e.contains("not-a-ca.pem: no certificate found"),
        "{e}"
    );
}

#[test]
fn a_ca_path_that_is_not_a_file_is_refused_without_reading_it() {
    let up = |ca: &str| {
        config_error(&format!(
            "[[upstream]]\nname = \"app\"\nservers = [\"127.0.0.1:1\"]\ntls = true\ntls_ca = \"{ca}\"\n{LISTEN}"
        ))
    };
    // /dev/zero would never end.
    let e = up("/dev/zero");
    assert!(
        e.contains("upstream[0].tls_ca: /dev/zero: not a regular file"),
        "{e}"
    );
    let e = up("/");
    assert!(e.contains("upstream[0].tls_ca: /: not a regular file"), "{e}");
}

#[test]
fn a_relative_ca_path_is_read_from_the_config_directory() {
    let dir = temp_path("conf-dir");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("ca.pem"), Ca::new("relative CA").pem).unwrap();
    let text = format!(
        "[[upstream]]\nname = \"app\"\nservers = [\"127.0.0.1:1\"]\ntls = true\ntls_ca = \"ca.pem\"\n{LISTEN}"
    );
    let loaded = Config::parse(&text, &dir.join("ringway.toml"));
    let _ = std::fs::remove_dir_all(&dir);
    let c = loaded.unwrap_or_else(|e| panic!("{e}"));
    let tls = c.upstreams[0].tls.as_ref().unwrap();
    assert_eq!(tls.spec.ca.as_deref(), Some(dir.join("ca.pem").as_path()));
}

#[test]
fn tls_keys_where_no_tls_is_spoken_are_errors() {
    let e = config_error(&format!(
        "[[upstream]]\nname = \"app\"\nservers = [\"127.0.0.1:1\"]\ntls_verify = false\n\
         tls_server_name = \"a.test\"\n{LISTEN}"
    ));
    assert!(
        e.contains("t.toml:4:14: upstream[0].tls_verify: applies only with tls = true"),
        "{e}"
    );
    assert!(
        e.contains("upstream[0].tls_server_name: applies only with tls = true"),
        "{e}"
    );
    let e = config_error(&format!(
        "[[upstream]]\nname = \"app\"\nservers = [\"127.0.0.1:1\"]\ntls = false\ntls_ca = \"ca.pem\"\n{LISTEN}"
    ));
    assert!(
        e.contains("upstream[0].tls_ca: applies only with tls = true"),
        "{e}"
    );

    // proxy_tls_* belong to an https:// address, not to http:// or a named upstream.
    let e = config_error(&format!(
        "{LISTEN}[[server.location]]\npath = \"/\"\nproxy_pass = \"http://127.0.0.1:1\"\nproxy_tls_verify = false\n"
    ));
    assert!(
        e.contains("server[0].location[0].proxy_tls_verify: applies only with proxy_pass = \"https://...\""),
        "{e}"
    );
    let e = config_error(&format!(
        "[[upstream]]\nname = \"app\"\nservers = [\"127.0.0.1:1\"]\ntls = true\ntls_verify = false\n\
         {LISTEN}[[server.location]]\npath = \"/\"\nproxy_pass = \"https://app\"\nproxy_tls_verify = false\n"
    ));
    assert!(
        e.contains("server[0].location[0].proxy_tls_verify: applies only with an address")
            && e.contains("upstream \"app\" takes tls_* keys itself"),
        "{e}"
    );
}

#[test]
fn contradictory_tls_settings_are_errors() {
    let up = |extra: &str| {
        config_error(&format!(
            "[[upstream]]\nname = \"app\"\nservers = [\"127.0.0.1:1\"]\ntls = true\n{extra}\n{LISTEN}"
        ))
    };
    let e = up("tls_verify = false\ntls_ca = \"ca.pem\"");
    assert!(
        e.contains("upstream[0].tls_ca: has no effect with tls_verify = false"),
        "{e}"
    );
    let e = up("tls_verify = false\ntls_cert = \"c.pem\"");
    assert!(e.contains("upstream[0].tls_cert: needs tls_key as well"), "{e}");
    let e = up("tls_verify = false\ntls_key = \"k.pem\"");
    assert!(e.contains("upstream[0].tls_key: needs tls_cert as well"), "{e}");
    let e = up("tls_verify = false\ntls_server_name = \"not a name\"");
    assert!(
        e.contains("upstream[0].tls_server_name: \"not a name\" is not a DNS name"),
        "{e}"
    );
    let e = up("tls_verify = false\ntls_server_name = \"$hots\"");
    assert!(
        e.contains("upstream[0].tls_server_name: unknown variable \"$hots\" (the only one is \"$host\")"),
        "{e}"
    );
    let e = up("tls_verify = false\ntls_sever_name = \"a.test\"");
    assert!(e.contains("did you mean `tls_server_name`?"), "{e}");
}

#[test]
fn the_scheme_must_agree_with_the_upstream() {
    let plain = "[[upstream]]\nname = \"app\"\nservers = [\"127.0.0.1:1\"]\n";
    let tls = "[[upstream]]\nname = \"app\"\nservers = [\"127.0.0.1:1\"]\ntls = true\ntls_verify = false\n";
    let loc = |pass: &str| format!("{LISTEN}[[server.location]]\npath = \"/\"\nproxy_pass = \"{pass}\"\n");
    let e = config_error(&format!("{plain}{}", loc("https://app")));
    assert!(
        e.contains("upstream \"app\" does not use TLS: add tls = true to it, or write http://app"),
        "{e}"
    );
    let e = config_error(&format!("{tls}{}", loc("http://app/x")));
    assert!(
        e.contains("upstream \"app\" has tls = true: write https://app"),
        "{e}"
    );
    Config::parse(&format!("{tls}{}", loc("https://app/x")), Path::new("t.toml")).unwrap();
}

#[test]
fn a_misspelt_scheme_gets_a_suggestion() {
    let loc = |pass: &str| {
        config_error(&format!(
            "{LISTEN}[[server.location]]\npath = \"/\"\nproxy_pass = \"{pass}\"\n"
        ))
    };
    let e = loc("htps://127.0.0.1:1");
    assert!(
        e.contains(
            "t.toml:5:14: server[0].location[0].proxy_pass: unknown scheme \"htps\"; did you mean https://?"
        ),
        "{e}"
    );
    assert!(loc("HTTPS://127.0.0.1:1").contains("did you mean https://?"));
    assert!(loc("gopher://127.0.0.1:1")
        .contains("unknown scheme \"gopher\" (proxy_pass takes http:// or https://)"));
    assert!(loc("https:/127.0.0.1:1").contains("must start with http:// or https://"));
}

#[test]
fn https_without_a_port_is_443_and_addresses_share_an_upstream() {
    let text = format!(
        "{LISTEN}[[server.location]]\npath = \"/a/\"\nproxy_pass = \"https://127.0.0.1\"\nproxy_tls_verify = false\n\
         [[server.location]]\npath = \"/b/\"\nproxy_pass = \"https://127.0.0.1/b2/\"\nproxy_tls_verify = false\n\
         [[server.location]]\npath = \"/c/\"\nproxy_pass = \"https://127.0.0.1\"\nproxy_tls_server_name = \"c.test\"\nproxy_tls_verify = false\n\
         [[server.location]]\npath = \"/d/\"\nproxy_pass = \"http://127.0.0.1:443\"\n"
    );
    let c = Config::parse(&text, Path::new("t.toml")).unwrap_or_else(|e| panic!("{e}"));
    let ups: Vec<usize> = c.servers[0]
        .locations
        .iter()
        .map(|l| match &l.action {
            ringway::config::Action::Proxy(p) => p.upstream,
            _ => unreachable!(),
        })
        .collect();
    // The same address and settings share one upstream (and pool); other
    // settings, or plain HTTP, get their own.
    assert_eq!(ups[0], ups[1]);
    assert_ne!(ups[0], ups[2]);
    assert_ne!(ups[0], ups[3]);
    let a = &c.upstreams[ups[0]];
    assert_eq!(a.servers[0].addr, "127.0.0.1:443".parse().unwrap());
    assert!(a.tls.is_some() && c.upstreams[ups[3]].tls.is_none());
}

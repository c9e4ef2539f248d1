//! `forwarded = true`: the RFC 7239 `Forwarded` element each request takes
//! upstream (for, proto, host, by; IPv6 quoted in brackets), over
//! HTTP/1.1 and HTTP/2; a client's own elements replaced, a trusted
//! proxy's kept and believed for the client address; the config refusals.

use crate::support::peers::curl;
use crate::support::*;

fn forwarding(backend: &Backend, global: &str, listen: &str, server_extra: &str) -> Proxy {
    Proxy::start(&config(&format!(
        r#"{global}

[[server]]
listen = ["{listen}"]
access_log = "off"
h2c = true
forwarded = true
{server_extra}

[[server.location]]
path = "/"
proxy_pass = "http://{b}"
"#,
        b = backend.addr
    )))
}

fn sent(p: &Proxy, fields: &str) -> Response {
    p.send(format!("GET /x HTTP/1.1\r\nHost: app.example\r\n{fields}\r\n"))
}

#[test]
fn each_request_takes_this_hops_element_and_a_clients_own_are_replaced() {
    let b = Backend::echo_target();
    let p = forwarding(&b, "", "127.0.0.1:0", r#"forwarded_by = "_edge-1""#);
    assert_eq!(sent(&p, "Forwarded: for=203.0.113.9;proto=https\r\n").status, 200);
    let seen = b.only_request();
    assert_eq!(
        seen.all("forwarded"),
        ["for=127.0.0.1;proto=http;host=app.example;by=_edge-1"]
    );
    // Alongside the X-Forwarded-* fields, which are unchanged.
    assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(seen.header("x-real-ip"), Some("127.0.0.1"));

    // A host with a port is not a token: quoted.
    let r = p.send("GET /y HTTP/1.1\r\nHost: app.example:8080\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(
        b.wait_requests(2)[1].all("forwarded"),
        ["for=127.0.0.1;proto=http;host=\"app.example:8080\";by=_edge-1"]
    );

    // Over HTTP/2 (curl, prior knowledge): the same element.
    let out = curl(
        &["--http2-prior-knowledge", "-H", "Forwarded: for=198.51.100.1"],
        &format!("http://{}/z", p.addr()),
    );
    assert_eq!(out.status, Some(0), "{}", out.stderr);
    let h2 = b.wait_requests(3)[2].clone();
    assert_eq!(h2.target(), "/z");
    assert_eq!(
        h2.all("forwarded"),
        [format!(
            "for=127.0.0.1;proto=http;host=\"{}\";by=_edge-1",
            p.addr()
        )]
    );
}

#[test]
fn an_ipv6_client_is_quoted_in_brackets() {
    let b = Backend::echo_target();
    let p = forwarding(&b, "", "[::1]:0", "");
    let mut c = Client::connect(p.addr());
    c.send("GET / HTTP/1.1\r\nHost: v6.example\r\n\r\n");
    assert_eq!(c.response().status, 200);
    assert_eq!(
        b.only_request().all("forwarded"),
        ["for=\"[::1]\";proto=http;host=v6.example"]
    );
}

#[test]
fn a_trusted_proxys_elements_are_kept_and_name_the_client() {
    let b = Backend::echo_target();
    let p = forwarding(&b, r#"trusted_proxies = ["127.0.0.1"]"#, "127.0.0.1:0", "");
    let r = sent(
        &p,
        "Forwarded: for=\"[2001:db8::7]:4711\";proto=https\r\nForwarded: for=127.0.0.1\r\nX-Forwarded-For: 192.0.2.1\r\n",
    );
    assert_eq!(r.status, 200);
    let seen = b.only_request();
    // One field: what the trusted peer sent, then this hop.
    assert_eq!(
        seen.all("forwarded"),
        ["for=\"[2001:db8::7]:4711\";proto=https, for=127.0.0.1, for=127.0.0.1;proto=http;host=app.example"]
    );
    // The client address is Forwarded's (the right-most untrusted node),
    // not X-Forwarded-For's.
    assert_eq!(seen.header("x-real-ip"), Some("2001:db8::7"));

    // `unknown` stops the walk: the trusted node after it is the client.
    sent(&p, "Forwarded: for=192.0.2.50, for=unknown, for=127.0.0.1\r\n");
    assert_eq!(b.wait_requests(2)[1].header("x-real-ip"), Some("127.0.0.1"));
    // Without Forwarded, X-Forwarded-For as before.
    sent(&p, "X-Forwarded-For: 192.0.2.1\r\n");
    assert_eq!(b.wait_requests(3)[2].header("x-real-ip"), Some("192.0.2.1"));
}

#[test]
fn without_forwarded_nothing_is_added() {
    let b = Backend::echo_target();
    let p = Proxy::start(&proxy_all(b.addr, "", ""));
    assert_eq!(p.get("/").status, 200);
    assert!(b.only_request().all("forwarded").is_empty());
}

#[test]
fn forwarded_config_mistakes_are_refused_with_positions() {
    for (extra, want) in [
        (
            r#"forwarded_by = "_edge""#,
            "forwarded_by: only applies with forwarded = true",
        ),
        (
            "forwarded = true\nforwarded_by = \"edge one\"",
            "forwarded_by: write an IP address or an obfuscated name",
        ),
        ("forwarded = \"yes\"", "expected a boolean"),
    ] {
        let cfg = format!(
            "[[server]]\nlisten = [\"127.0.0.1:8080\"]\n{extra}\n[[server.location]]\npath = \"/\"\nreturn = {{ status = 204 }}\n"
        );
        let f = TempFile::with_text("ringway.toml", &cfg);
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ringway"))
            .args(["--check", "--config"])
            .arg(f.path())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{extra}: accepted");
        assert!(err.contains(want), "{extra}: {err}");
        assert!(err.contains("ringway.toml:"), "{extra}: no position: {err}");
    }
}

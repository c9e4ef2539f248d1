//! HTTP/2 over TLS (ALPN), the `http2` and `h2c` keys and what `--check`
//! says of them, and HTTP/2 clients' view of redirects.

use crate::support::peers::{curl, py};
use crate::support::*;
use crate::tls::{config_errors, self_redirecting_backend, tls_proxy, tls_table, CertDir};

/// curl to `https://app.test:<port><path>` of `p` (certificate not checked),
/// with `args` (the protocol flag, `-w`, `-o`) before the URL.
fn curl_tls(p: &Proxy, path: &str, args: &[&str]) -> crate::support::peers::Curl {
    let port = p.addr().port();
    let resolve = format!("app.test:{port}:127.0.0.1");
    let mut all = vec!["-k", "--resolve", resolve.as_str()];
    all.extend_from_slice(args);
    curl(&all, &format!("https://app.test:{port}{path}"))
}

fn backend() -> Backend {
    Backend::serve(|seen| Reply::ok(format!("{} {}", seen.method(), seen.target())))
}

#[test]
fn alpn_offers_h2_first_on_tls_by_default() {
    let b = backend();
    let dir = CertDir::new("h2-alpn");
    let (p, _) = tls_proxy(&dir, b.addr, "");
    let r = curl_tls(&p, "/x", &["--http2", "-w", " %{http_version}"]);
    assert_eq!(r.stdout, "GET /x 2", "{}", r.stderr);
    // A client that offers only HTTP/1.1 still gets it.
    let r = curl_tls(&p, "/x", &["--http1.1", "-w", " %{http_version}"]);
    assert_eq!(r.stdout, "GET /x 1.1", "{}", r.stderr);
    // The raw-frame client over TLS: a whole exchange.
    let r = py(
        "h2_probe.py",
        &["get", &p.addr().port().to_string(), "/raw", "--tls"],
    );
    assert_eq!(r["streams"]["1"]["body"], "GET /raw", "{r}");
    assert_eq!(b.seen()[2].header("x-forwarded-proto"), Some("https"));
}

#[test]
fn http2_false_keeps_a_tls_block_on_http11() {
    let b = backend();
    let dir = CertDir::new("h2-off");
    let (p, _) = tls_proxy(&dir, b.addr, "http2 = false");
    let r = curl_tls(&p, "/x", &["--http2", "-w", " %{http_version}"]);
    assert_eq!(r.stdout, "GET /x 1.1", "{}", r.stderr);
}

#[test]
fn a_large_download_over_h2_and_tls_arrives_whole() {
    let b = Backend::serve(|_| Reply::ok(vec![b'z'; 3 << 20]));
    let dir = CertDir::new("h2-big");
    let (p, _) = tls_proxy(&dir, b.addr, "");
    let r = curl_tls(
        &p,
        "/big",
        &[
            "--http2",
            "-o",
            "/dev/null",
            "-w",
            "%{size_download} %{http_version}",
        ],
    );
    assert_eq!(r.stdout, format!("{} 2", 3 << 20), "{}", r.stderr);
}

#[test]
fn backend_redirects_reach_http2_clients_with_their_scheme() {
    let b = self_redirecting_backend();
    let dir = CertDir::new("h2-redirect");
    let (p, _) = tls_proxy(&dir, b.addr, "");
    let port = p.addr().port();
    let r = curl_tls(
        &p,
        "/next",
        &[
            "--http2",
            "-o",
            "/dev/null",
            "-w",
            "%{redirect_url} %{http_version}",
        ],
    );
    assert_eq!(
        r.stdout,
        format!("https://app.test:{port}/next 2"),
        "{}",
        r.stderr
    );
}

fn server(extra: &str) -> String {
    format!("[[server]]\nlisten = [\"127.0.0.1:8080\"]\n{extra}\n[[server.location]]\npath = \"/\"\nreturn = {{ status = 200 }}\n")
}

#[test]
fn http2_keys_that_cannot_work_are_config_errors() {
    assert_eq!(
        config_errors(&server("http2 = true")),
        ["tls.toml:3:9: server[0].http2: this block has no tls: cleartext HTTP/2 is h2c = true (with prior knowledge; the Upgrade: h2c handshake is not supported, as RFC 9113 deprecates it)"]
    );
    assert_eq!(
        config_errors(&server("h2c = true\nhttp2 = false")),
        ["tls.toml:4:9: server[0].http2: http2 = false contradicts h2c = true: remove one"]
    );
    assert_eq!(
        config_errors(&server("h2c = true\nhttp2 = { max_frame_size = \"1k\", max_concurrent_streams = 0, idle_timeout = \"0s\" }")),
        [
            "tls.toml:4:9: server[0].http2.max_concurrent_streams: must be a whole number above 0",
            "tls.toml:4:9: server[0].http2.max_frame_size: must lie between 16384 and 16777215 bytes",
            "tls.toml:4:9: server[0].http2.idle_timeout: must be above 0",
        ]
    );
    let unknown = config_errors(&server("h2c = true\nhttp2 = { max_streams = 10 }"));
    assert_eq!(unknown.len(), 1, "{unknown:?}");
    assert!(unknown[0].starts_with("tls.toml:4:9:"), "{unknown:?}");
}

#[test]
fn blocks_sharing_an_address_must_agree_on_http2() {
    let toml = format!("{}\n[[server]]\nlisten = [\"127.0.0.1:8080\"]\nserver_name = [\"b.test\"]\n[[server.location]]\npath = \"/\"\nreturn = {{ status = 200 }}\n", server("h2c = true"));
    assert_eq!(
        config_errors(&toml),
        ["tls.toml:8:1: server[1].h2c: 127.0.0.1:8080 is shared with server[0], where h2c is on: blocks on one address must agree"]
    );
    let dir = CertDir::new("h2-agree");
    let (c, k, _) = dir.leaf(&pki::self_signed(&["a.test"]), "a");
    let tls = tls_table(&c, &k);
    let toml = format!(
        "[[server]]\nlisten = [\"127.0.0.1:8443\"]\nserver_name = [\"a.test\"]\ntls = {tls}\n[[server.location]]\npath = \"/\"\nreturn = {{ status = 200 }}\n\n[[server]]\nlisten = [\"127.0.0.1:8443\"]\nserver_name = [\"b.test\"]\ntls = {tls}\nhttp2 = false\n[[server.location]]\npath = \"/\"\nreturn = {{ status = 200 }}\n"
    );
    assert_eq!(
        config_errors(&toml),
        ["tls.toml:13:9: server[1].http2: 127.0.0.1:8443 is shared with server[0], where http2 is on: blocks on one address must agree"]
    );
}

#[test]
fn h2c_on_a_tls_block_is_a_config_error() {
    let dir = CertDir::new("h2c-tls");
    let (c, k, _) = dir.leaf(&pki::self_signed(&["a.test"]), "a");
    let toml = format!("[[server]]\nlisten = [\"127.0.0.1:8443\"]\ntls = {}\nh2c = true\n[[server.location]]\npath = \"/\"\nreturn = {{ status = 200 }}\n", tls_table(&c, &k));
    assert_eq!(
        config_errors(&toml),
        ["tls.toml:4:7: server[0].h2c: h2c is cleartext HTTP/2, for blocks without tls; over TLS, HTTP/2 is on by default (http2 = true)"]
    );
}

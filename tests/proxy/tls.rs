//! TLS termination: certificates by SNI, the default certificate, ALPN,
//! X-Forwarded-Proto, handshake deadlines, refused protocol versions, config
//! errors about certificate files, HSTS and redirects to https, session
//! resumption across workers, mTLS, and the access log's TLS fields.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::pki::{self, Ca};
use crate::support::tls_client::{self, Opts};
use crate::support::{self, Backend, Proxy, Reply, IO_TIMEOUT};

/// A directory of certificate files for one test, removed on drop.
pub struct CertDir(pub PathBuf);

impl CertDir {
    pub fn new(name: &str) -> CertDir {
        let d = support::temp_path(name);
        std::fs::create_dir_all(&d).unwrap();
        CertDir(d)
    }

    /// Writes a leaf and returns `(cert path, key path, DER)`.
    pub fn leaf(&self, issued: &pki::Issued, stem: &str) -> (String, String, Vec<u8>) {
        let (c, k) = issued.write(&self.0, stem);
        (toml_path(&c), toml_path(&k), issued.cert_der.clone())
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for CertDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn toml_path(p: &Path) -> String {
    p.display().to_string()
}

/// A server block on the shared TLS address answering `body`.
fn tls_block(names: &[&str], tls: &str, body: &str) -> String {
    let names = if names.is_empty() {
        String::new()
    } else {
        format!(
            "server_name = [{}]\n",
            names
                .iter()
                .map(|n| format!("{n:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    format!(
        r#"
[[server]]
listen = ["127.0.0.1:0"]
{names}access_log = "off"
tls = {tls}
[[server.location]]
path = "/"
return = {{ status = 200, body = "{body}" }}
"#
    )
}

pub fn tls_table(cert: &str, key: &str) -> String {
    format!("{{ cert = {cert:?}, key = {key:?} }}")
}

/// Two names with their own certificates on one address; the first block
/// is the default server.
struct TwoNames {
    proxy: Proxy,
    a: Vec<u8>,
    b: Vec<u8>,
    _dir: CertDir,
}

fn two_names(default_extra: &str) -> TwoNames {
    let dir = CertDir::new("sni");
    let ca = Ca::new("test CA");
    let (ac, ak, a) = dir.leaf(&ca.issue(&["a.test"]), "a");
    let (bc, bk, b) = dir.leaf(&ca.issue(&["b.test", "*.b.test"]), "b");
    let toml = support::config(&format!(
        "{}{}{}",
        default_extra,
        tls_block(&["a.test"], &tls_table(&ac, &ak), "from a"),
        tls_block(&["b.test", "*.b.test"], &tls_table(&bc, &bk), "from b"),
    ));
    TwoNames {
        proxy: Proxy::start(&toml),
        a,
        b,
        _dir: dir,
    }
}

#[test]
fn sni_picks_each_blocks_certificate() {
    let t = two_names("");
    let cfg = tls_client::default_config();
    let mut a = tls_client::connect(t.proxy.addr(), &cfg, Some("a.test")).unwrap();
    assert!(a.peer_cert() == t.a, "a.test got another certificate");
    assert_eq!(a.get("a.test", "/").text(), "from a");
    let mut b = tls_client::connect(t.proxy.addr(), &cfg, Some("b.test")).unwrap();
    assert!(b.peer_cert() == t.b, "b.test got another certificate");
    assert_eq!(b.get("b.test", "/").text(), "from b");
    // A wildcard name matches as it does for Host.
    let w = tls_client::connect(t.proxy.addr(), &cfg, Some("www.b.test")).unwrap();
    assert!(
        w.peer_cert() == t.b,
        "www.b.test should get *.b.test's certificate"
    );
    // Several requests on one TLS connection (keep-alive).
    for _ in 0..3 {
        assert_eq!(a.get("a.test", "/").status, 200);
    }
}

#[test]
fn unknown_or_absent_sni_gets_the_default_servers_certificate() {
    let t = two_names("");
    let cfg = tls_client::default_config();
    let unknown = tls_client::connect(t.proxy.addr(), &cfg, Some("other.test")).unwrap();
    assert!(
        unknown.peer_cert() == t.a,
        "unknown SNI: not the default server's certificate"
    );
    let mut none = tls_client::connect(t.proxy.addr(), &cfg, None).unwrap();
    assert!(
        none.peer_cert() == t.a,
        "no SNI: not the default server's certificate"
    );
    assert_eq!(none.get("a.test", "/").text(), "from a");
}

#[test]
fn a_default_server_with_reject_handshake_refuses_unknown_names() {
    let default = r#"
[[server]]
listen = ["127.0.0.1:0"]
access_log = "off"
tls = { reject_handshake = true }
[[server.location]]
path = "/"
return = { status = 200, body = "never" }
"#;
    let t = two_names(default);
    let cfg = tls_client::default_config();
    for sni in [Some("other.test"), None] {
        let e = tls_client::connect(t.proxy.addr(), &cfg, sni).err();
        let e = e.unwrap_or_else(|| panic!("{sni:?}: handshake should be refused"));
        assert!(
            e.contains("UnrecognisedName") || e.contains("unrecognised"),
            "{sni:?}: {e}"
        );
    }
    let named = tls_client::connect(t.proxy.addr(), &cfg, Some("b.test")).unwrap();
    assert!(named.peer_cert() == t.b);
}

#[test]
fn alpn_is_http_1_1_and_both_versions_work() {
    let t = two_names("");
    for (opts, want) in [
        (
            Opts {
                tls12_only: true,
                ..Opts::default()
            },
            rustls::ProtocolVersion::TLSv1_2,
        ),
        (
            Opts {
                tls13_only: true,
                ..Opts::default()
            },
            rustls::ProtocolVersion::TLSv1_3,
        ),
    ] {
        let cfg = tls_client::config(opts);
        let mut c = tls_client::connect(t.proxy.addr(), &cfg, Some("a.test")).unwrap();
        assert_eq!(c.alpn().as_deref(), Some(&b"http/1.1"[..]));
        assert_eq!(c.version(), Some(want));
        assert_eq!(c.get("a.test", "/").text(), "from a");
    }
}

/// A proxy with one TLS block in front of `backend`.
pub fn tls_proxy(dir: &CertDir, backend: SocketAddr, server_extra: &str) -> (Proxy, Vec<u8>) {
    let ca = Ca::new("test CA");
    let (c, k, der) = dir.leaf(&ca.issue(&["app.test"]), "app");
    let toml = support::proxy_all(
        backend,
        &format!("tls = {}\n{server_extra}", tls_table(&c, &k)),
        "",
    );
    (Proxy::start(&toml), der)
}

#[test]
fn a_request_over_tls_reaches_the_backend_with_forwarded_proto_https() {
    let backend = Backend::serve(|_| Reply::ok("hello"));
    let dir = CertDir::new("xfp");
    let (proxy, _) = tls_proxy(&dir, backend.addr, "");
    let cfg = tls_client::default_config();
    let mut c = tls_client::connect(proxy.addr(), &cfg, Some("app.test")).unwrap();
    let r = c.request("GET /x HTTP/1.1\r\nHost: app.test\r\nX-Forwarded-Proto: http\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "hello");
    let seen = backend.only_request();
    assert_eq!(seen.all("x-forwarded-proto"), ["https"]);
    assert_eq!(seen.target(), "/x");
}

#[test]
fn a_closed_tls_connection_ends_with_close_notify() {
    // Without close_notify, OpenSSL-based clients take the response as cut
    // short and drop the session, so they could not resume it.
    let backend = Backend::serve(|_| Reply::ok("bye"));
    let dir = CertDir::new("close-notify");
    let (proxy, _) = tls_proxy(&dir, backend.addr, "");
    let cfg = tls_client::default_config();
    for request in [
        "GET /a HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n",
        "GET /b HTTP/1.0\r\n\r\n",
    ] {
        let mut c = tls_client::connect(proxy.addr(), &cfg, Some("app.test")).unwrap();
        let r = c.request(request);
        assert_eq!((r.status, r.text().as_str()), (200, "bye"), "{request}");
        assert_eq!(c.ends_with_close_notify(), Ok(true), "{request}");
    }
}

#[test]
fn a_large_body_crosses_tls_both_ways() {
    let body = support::payload(300_000, 3);
    let echo = body.clone();
    let backend = Backend::serve(move |_| Reply::ok(&echo));
    let dir = CertDir::new("big");
    let (proxy, _) = tls_proxy(&dir, backend.addr, "");
    let cfg = tls_client::default_config();
    let mut c = tls_client::connect(proxy.addr(), &cfg, Some("app.test")).unwrap();
    let mut req = format!(
        "POST /up HTTP/1.1\r\nHost: app.test\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(&body);
    let r = c.request(&req);
    assert_eq!(r.status, 200);
    support::assert_same_bytes(&r.body, &body, "response body over TLS");
    support::assert_same_bytes(&backend.only_request().body, &body, "request body over TLS");
}

#[test]
fn a_client_that_never_speaks_tls_is_closed_at_the_deadline_while_others_are_served() {
    let backend = Backend::serve(|_| Reply::ok("ok"));
    let dir = CertDir::new("silent");
    let (proxy, _) = tls_proxy(&dir, backend.addr, "client_header_timeout = \"1s\"");
    let mut silent = TcpStream::connect(proxy.addr()).unwrap();
    silent.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    // Served while the silent one waits.
    let cfg = tls_client::default_config();
    let mut c = tls_client::connect(proxy.addr(), &cfg, Some("app.test")).unwrap();
    assert_eq!(c.get("app.test", "/").status, 200);
    // Closed by ringway (end of stream), not left to the test's own timeout.
    let mut buf = [0u8; 64];
    match read_retrying(&mut silent, &mut buf) {
        Ok(0) => {}
        Ok(n) => panic!("unexpected bytes: {:?}", &buf[..n]),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("the silent connection was not closed: {e}"),
    }
}

/// A read that retries when interrupted by a signal (io_uring probing in
/// this process can interrupt a blocking read).
fn read_retrying(s: &mut TcpStream, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        match s.read(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

/// A ClientHello offering only TLS 1.1 (no supported_versions extension).
fn tls11_client_hello() -> Vec<u8> {
    let mut hello = Vec::new();
    hello.extend_from_slice(&[0x03, 0x02]); // client_version TLS 1.1
    hello.extend_from_slice(&[0x42; 32]); // random
    hello.push(0); // no session id
    hello.extend_from_slice(&[0x00, 0x04, 0x00, 0x2f, 0x00, 0x35]); // AES128-SHA, AES256-SHA
    hello.extend_from_slice(&[0x01, 0x00]); // null compression
    let mut hs = vec![0x01, 0x00, 0x00, hello.len() as u8];
    hs.extend_from_slice(&hello);
    let mut record = vec![0x16, 0x03, 0x01, 0x00, hs.len() as u8];
    record.extend_from_slice(&hs);
    record
}

#[test]
fn a_tls_1_1_client_hello_is_refused_with_an_alert() {
    let backend = Backend::serve(|_| Reply::ok("ok"));
    let dir = CertDir::new("tls11");
    let (proxy, _) = tls_proxy(&dir, backend.addr, "");
    let mut s = TcpStream::connect(proxy.addr()).unwrap();
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.write_all(&tls11_client_hello()).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    loop {
        match read_retrying(&mut s, &mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("no close after the alert (got {got:?}): {e}"),
        }
    }
    // One alert record, fatal (2): handshake_failure (40), as no suite a
    // TLS 1.1 client can offer is enabled, or protocol_version (70).
    assert_eq!(got.len(), 7, "expected one alert record, got {got:?}");
    assert_eq!(got[0], 0x15, "not an alert record: {got:?}");
    assert_eq!(got[5], 2, "not a fatal alert: {got:?}");
    assert!([40, 70].contains(&got[6]), "unexpected alert {}: {got:?}", got[6]);
    backend.assert_untouched("TLS 1.1 handshake");
}

/// openssl's command line, for key formats rcgen does not write.
fn openssl(args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .output()
        .expect("the openssl command is needed for RSA and SEC1 test keys");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn rsa_pkcs1_and_ecdsa_sec1_keys_are_served() {
    let dir = CertDir::new("keys");
    let p = |n: &str| dir.path(n).display().to_string();
    // RSA, PKCS#1 ("BEGIN RSA PRIVATE KEY").
    openssl(&["genrsa", "-traditional", "-out", &p("rsa.key"), "2048"]);
    openssl(&[
        "req",
        "-x509",
        "-new",
        "-key",
        &p("rsa.key"),
        "-out",
        &p("rsa.crt"),
        "-days",
        "2",
        "-subj",
        "/CN=rsa.test",
        "-addext",
        "subjectAltName=DNS:rsa.test",
    ]);
    // ECDSA P-256, SEC1 ("BEGIN EC PRIVATE KEY").
    openssl(&[
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-noout",
        "-out",
        &p("ec.key"),
    ]);
    openssl(&[
        "req",
        "-x509",
        "-new",
        "-key",
        &p("ec.key"),
        "-out",
        &p("ec.crt"),
        "-days",
        "2",
        "-subj",
        "/CN=ec.test",
        "-addext",
        "subjectAltName=DNS:ec.test",
    ]);
    assert!(std::fs::read_to_string(dir.path("rsa.key"))
        .unwrap()
        .contains("BEGIN RSA PRIVATE KEY"));
    assert!(std::fs::read_to_string(dir.path("ec.key"))
        .unwrap()
        .contains("BEGIN EC PRIVATE KEY"));
    let toml = support::config(&format!(
        "{}{}",
        tls_block(&["rsa.test"], &tls_table(&p("rsa.crt"), &p("rsa.key")), "rsa"),
        tls_block(&["ec.test"], &tls_table(&p("ec.crt"), &p("ec.key")), "ec"),
    ));
    let proxy = Proxy::start(&toml);
    let cfg = tls_client::default_config();
    for name in ["rsa", "ec"] {
        let host = format!("{name}.test");
        let mut c = tls_client::connect(proxy.addr(), &cfg, Some(&host)).unwrap();
        let pem = std::fs::read(dir.path(&format!("{name}.crt"))).unwrap();
        let der = rustls::pki_types::pem::PemObject::from_pem_slice(&pem)
            .map(|d: rustls::pki_types::CertificateDer| d.to_vec())
            .unwrap();
        assert!(c.peer_cert() == der, "{name}: another certificate");
        assert_eq!(c.get(&host, "/").text(), name);
    }
}

#[test]
fn pipelined_requests_held_by_tls_are_served_without_waiting_on_the_socket() {
    let backend = Backend::serve(|s| Reply::ok(s.target()));
    let dir = CertDir::new("pipe");
    let (proxy, _) = tls_proxy(&dir, backend.addr, "");
    let cfg = tls_client::default_config();
    let mut c = tls_client::connect(proxy.addr(), &cfg, Some("app.test")).unwrap();
    // 24 requests of exactly 512 bytes in one TLS record: reads of 4 KiB end
    // on a request boundary, so after some request the proxy's buffer is
    // empty while rustls still holds the next ones, decrypted or not. The
    // socket has nothing more to say; waiting on it would stall.
    let mut all = Vec::new();
    for i in 0..24 {
        let start = format!("GET /{i:02} HTTP/1.1\r\nHost: app.test\r\nX-Pad: ");
        let pad = 512 - start.len() - 4;
        all.extend_from_slice(start.as_bytes());
        all.extend(std::iter::repeat_n(b'p', pad));
        all.extend_from_slice(b"\r\n\r\n");
    }
    assert_eq!(all.len(), 24 * 512);
    c.send(&all);
    for i in 0..24 {
        let r = c.try_response().unwrap_or_else(|e| panic!("response {i}: {e}"));
        assert_eq!(r.text(), format!("/{i:02}"));
    }
}

/// The error lines `--check` would print for `toml`.
pub fn config_errors(toml: &str) -> Vec<String> {
    match ringway::config::Config::parse(toml, Path::new("tls.toml")) {
        Ok(_) => panic!("config should not load:\n{toml}"),
        Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
    }
}

#[test]
fn an_address_with_tls_and_plain_blocks_is_a_config_error() {
    let dir = CertDir::new("mixed");
    let (c, k, _) = dir.leaf(&pki::self_signed(&["a.test"]), "a");
    let toml = format!(
        r#"[[server]]
listen = ["127.0.0.1:8443"]
server_name = ["a.test"]
tls = {{ cert = {c:?}, key = {k:?} }}

[[server]]
listen = ["127.0.0.1:8443"]
server_name = ["b.test"]
"#
    );
    assert_eq!(
        config_errors(&toml),
        ["tls.toml:7:11: server[1].listen[0]: 127.0.0.1:8443 mixes TLS and plain HTTP: server[0] has tls and server[1] does not; every block on one address needs tls, or none"]
    );
}

/// `line:col` of the first occurrence of `needle` in `text`, from 1.
fn at(text: &str, needle: &str) -> String {
    let off = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in config"));
    let line = text[..off].matches('\n').count() + 1;
    let col = off - text[..off].rfind('\n').map_or(0, |i| i + 1) + 1;
    format!("{line}:{col}")
}

fn one_tls_block(cert: &str, key: &str) -> String {
    format!(
        r#"[[server]]
listen = ["127.0.0.1:8443"]
tls = {{ cert = {cert:?}, key = {key:?} }}
"#
    )
}

#[test]
fn check_reports_missing_and_unreadable_files_by_name() {
    let dir = CertDir::new("check-missing");
    let (c, k, _) = dir.leaf(&pki::self_signed(&["a.test"]), "a");
    let missing = dir.path("missing.crt").display().to_string();
    let toml = one_tls_block(&missing, &k);
    assert_eq!(
        config_errors(&toml),
        [format!(
            "tls.toml:{}: server[0].tls.cert: cannot read {missing}: No such file or directory (os error 2)",
            at(&toml, &format!("{missing:?}"))
        )]
    );
    // A directory where the key should be: unreadable as a file.
    let as_dir = dir.0.display().to_string();
    let toml = one_tls_block(&c, &as_dir);
    let errors = config_errors(&toml);
    assert_eq!(errors.len(), 1, "{errors:?}");
    let want = format!(
        "tls.toml:{}: server[0].tls.key: cannot read {as_dir}: ",
        at(&toml, &format!("{as_dir:?}"))
    );
    assert!(
        errors[0].starts_with(&want),
        "{}\nwanted a line starting {want}",
        errors[0]
    );
}

#[test]
fn check_reports_a_key_that_does_not_match_its_certificate() {
    let dir = CertDir::new("check-mismatch");
    let (a_cert, _, _) = dir.leaf(&pki::self_signed(&["a.test"]), "a");
    let (_, b_key, _) = dir.leaf(&pki::self_signed(&["b.test"]), "b");
    let toml = one_tls_block(&a_cert, &b_key);
    assert_eq!(
        config_errors(&toml),
        [format!(
            "tls.toml:{}: server[0].tls.key: {b_key}: private key does not match the certificate in {a_cert}",
            at(&toml, &format!("{b_key:?}"))
        )]
    );
}

#[test]
fn check_reports_expired_and_not_yet_valid_certificates() {
    let dir = CertDir::new("check-dates");
    let ca = Ca::new("test CA");
    let old = ca.issue_with(&["old.test"], |p| {
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2021, 1, 1);
    });
    let (c, k, _) = dir.leaf(&old, "old");
    let toml = one_tls_block(&c, &k);
    assert_eq!(
        config_errors(&toml),
        [format!(
            "tls.toml:{}: server[0].tls.cert: {c}: certificate expired on Jan  1 00:00:00 2021 +00:00",
            at(&toml, &format!("{c:?}"))
        )]
    );
    let future = ca.issue_with(&["future.test"], |p| {
        p.not_before = rcgen::date_time_ymd(2999, 1, 1);
        p.not_after = rcgen::date_time_ymd(3000, 1, 1);
    });
    let (c, k, _) = dir.leaf(&future, "future");
    let toml = one_tls_block(&c, &k);
    assert_eq!(
        config_errors(&toml),
        [format!(
            "tls.toml:{}: server[0].tls.cert: {c}: certificate is not valid before Jan  1 00:00:00 2999 +00:00",
            at(&toml, &format!("{c:?}"))
        )]
    );
}

#[test]
fn check_reports_a_certificate_that_does_not_parse() {
    let dir = CertDir::new("check-garbage");
    let (_, k, _) = dir.leaf(&pki::self_signed(&["a.test"]), "a");
    // Valid PEM around bytes that are not DER X.509.
    let bad = dir.path("bad.crt");
    std::fs::write(
        &bad,
        "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGUgYXQgYWxs\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let bad = bad.display().to_string();
    let toml = one_tls_block(&bad, &k);
    let errors = config_errors(&toml);
    let want = format!(
        "tls.toml:{}: server[0].tls.cert: {bad}: certificate does not parse: ",
        at(&toml, &format!("{bad:?}"))
    );
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with(&want),
        "{}\nwanted a line starting {want}",
        errors[0]
    );
    // A key file given as the certificate: no certificate in it.
    let toml = one_tls_block(&k, &k);
    assert_eq!(
        config_errors(&toml),
        [format!(
            "tls.toml:{}: server[0].tls.cert: {k}: no certificate found (expected PEM \"BEGIN CERTIFICATE\" blocks)",
            at(&toml, &format!("{k:?}"))
        )]
    );
}

#[test]
fn tls_table_errors_are_collected() {
    let toml = r#"[[server]]
listen = ["127.0.0.1:8443"]
tls = { cert = "a.crt", verify_client = "maybe", protocols = ["TLSv1.1"], ciphers = ["RC4-MD5"], reject_handshake = false, sni = 1 }
"#;
    let errors = config_errors(toml);
    assert_eq!(
        errors,
        [
            format!("tls.toml:{}: server[0].tls.key: missing: tls needs cert and key (or reject_handshake = true)", at(toml, "{ cert")),
            format!("tls.toml:{}: server[0].tls.verify_client: \"maybe\" is not \"on\", \"optional\" or \"off\"", at(toml, "\"maybe\"")),
            format!("tls.toml:{}: server[0].tls.protocols[0]: \"TLSv1.1\" is not supported (known: \"TLSv1.2\", \"TLSv1.3\")", at(toml, "\"TLSv1.1\"")),
            format!("tls.toml:{}: server[0].tls.ciphers[0]: unknown cipher suite \"RC4-MD5\" (known: TLS13_AES_256_GCM_SHA384, TLS13_AES_128_GCM_SHA256, TLS13_CHACHA20_POLY1305_SHA256, TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256)", at(toml, "\"RC4-MD5\"")),
            format!("tls.toml:{}: server[0].tls.sni: unknown key `sni` (known here: cert, key, client_ca, verify_client, protocols, ciphers, reject_handshake)", at(toml, "sni")),
        ]
    );
}

#[test]
fn hsts_is_sent_over_tls_on_every_response_and_replaces_the_upstreams() {
    let backend = Backend::serve(|_| Reply::ok("app").header("Strict-Transport-Security", "max-age=1"));
    let dir = CertDir::new("hsts");
    let ca = Ca::new("test CA");
    let (c, k, _) = dir.leaf(&ca.issue(&["example.test"]), "ex");
    // A second address for plain HTTP: blocks on one address all have
    // tls or none do.
    let plain = format!("127.0.0.1:{}", support::listen_port());
    let toml = support::config(&format!(
        r#"
[[server]]
listen = ["127.0.0.1:0"]
server_name = ["example.test"]
access_log = "off"
tls = {{ cert = {c:?}, key = {k:?} }}
hsts = {{ max_age = "730d", include_subdomains = true, preload = false }}
[[server.location]]
path = "/app/"
proxy_pass = "http://{}"
[[server.location]]
path = "/fixed"
return = {{ status = 200, body = "fixed" }}

[[server]]
listen = ["{plain}"]
server_name = ["plain.test"]
access_log = "off"
[[server.location]]
path = "/"
return = {{ status = 200, body = "plain" }}
"#,
        backend.addr,
    ));
    let proxy = Proxy::start(&toml);
    let want = "max-age=63072000; includeSubDomains";
    let cfg = tls_client::default_config();
    let mut t = tls_client::connect(proxy.addrs()[0], &cfg, Some("example.test")).unwrap();
    let proxied = t.get("example.test", "/app/x");
    assert_eq!(proxied.text(), "app");
    assert_eq!(
        proxied.all("strict-transport-security"),
        [want],
        "{}",
        proxied.head_text()
    );
    let fixed = t.get("example.test", "/fixed");
    assert_eq!(fixed.all("strict-transport-security"), [want]);
    let missing = t.get("example.test", "/nowhere");
    assert_eq!(missing.status, 404);
    assert_eq!(missing.all("strict-transport-security"), [want]);
    // Plain HTTP never carries it.
    let mut plain = support::Client::connect(proxy.addrs()[1]);
    let r = plain.request("GET / HTTP/1.1\r\nHost: plain.test\r\n\r\n");
    assert_eq!(r.text(), "plain");
    assert!(!r.has("strict-transport-security"), "{}", r.head_text());
}

fn redirect_proxy(value: &str) -> (Proxy, Backend) {
    let backend = Backend::serve(|_| Reply::ok("should not be reached"));
    let toml = support::config(&format!(
        r#"
[[server]]
listen = ["127.0.0.1:0"]
server_name = ["example.test"]
access_log = "off"
redirect_https = {value}
[[server.location]]
path = "/"
proxy_pass = "http://{}"
"#,
        backend.addr
    ));
    (Proxy::start(&toml), backend)
}

#[test]
fn redirect_https_keeps_host_path_and_query() {
    let (proxy, backend) = redirect_proxy("true");
    let r = proxy.send("GET /a/b?x=1&y=%20 HTTP/1.1\r\nHost: Example.test:8080\r\n\r\n");
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("https://Example.test/a/b?x=1&y=%20"));
    assert!(!r.has("strict-transport-security"));
    // An absolute-form target: its path and query.
    let r = proxy.send("GET http://example.test/p?q HTTP/1.1\r\nHost: example.test\r\n\r\n");
    assert_eq!(r.header("location"), Some("https://example.test/p?q"));
    // HTTP/1.0 without Host: the block's name.
    let r = proxy.send("GET /old HTTP/1.0\r\n\r\n");
    assert_eq!(r.header("location"), Some("https://example.test/old"));
    // The connection stays usable after a redirect.
    let mut c = proxy.client();
    assert_eq!(
        c.request("GET /1 HTTP/1.1\r\nHost: example.test\r\n\r\n").status,
        301
    );
    assert_eq!(
        c.request("GET /2 HTTP/1.1\r\nHost: example.test\r\n\r\n")
            .header("location"),
        Some("https://example.test/2")
    );
    backend.assert_untouched("redirect_https");
}

#[test]
fn redirect_https_with_a_port_names_it() {
    let (proxy, backend) = redirect_proxy("8443");
    let r = proxy.send("GET /x?y HTTP/1.1\r\nHost: example.test\r\n\r\n");
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("https://example.test:8443/x?y"));
    backend.assert_untouched("redirect_https");
}

/// A backend that redirects every request to its own address: ringway maps
/// that back to the URL the client used.
pub fn self_redirecting_backend() -> Backend {
    Backend::start(|c| {
        let port = c.stream.local_addr().unwrap().port();
        c.serve(&move |r| {
            Reply::new(302).header("Location", &format!("http://127.0.0.1:{port}{}", r.target()))
        })
    })
}

#[test]
fn a_backend_redirect_reaches_a_tls_client_as_https() {
    let backend = self_redirecting_backend();
    let dir = CertDir::new("redirect-scheme");
    let (proxy, _) = tls_proxy(&dir, backend.addr, "");
    let port = proxy.addr().port();
    let cfg = tls_client::default_config();
    let mut c = tls_client::connect(proxy.addr(), &cfg, Some("app.test")).unwrap();
    // Host without a port: the port the client connected to is named,
    // since it is not 443.
    let r = c.request("GET /a?b=1 HTTP/1.1\r\nHost: app.test\r\n\r\n");
    assert_eq!(r.status, 302);
    let want = format!("https://app.test:{port}/a?b=1");
    assert_eq!(r.header("location"), Some(want.as_str()));
    // Host with a port: kept as the client sent it.
    let r = c.request("GET /c HTTP/1.1\r\nHost: app.test:443\r\n\r\n");
    assert_eq!(r.header("location"), Some("https://app.test:443/c"));
    // The same backend behind a plain listener: http.
    let plain = Proxy::start(&support::proxy_all(backend.addr, "", ""));
    let r = plain.send("GET /d HTTP/1.1\r\nHost: app.test\r\n\r\n");
    let want = format!("http://app.test:{}/d", plain.addr().port());
    assert_eq!(r.header("location"), Some(want.as_str()));
}

#[test]
fn hsts_and_redirect_config_errors() {
    let dir = CertDir::new("hsts-errors");
    let (c, k, _) = dir.leaf(&pki::self_signed(&["a.test"]), "a");
    let toml = format!(
        r#"[[server]]
listen = ["127.0.0.1:8080"]
hsts = {{ max_age = "1y" }}
redirect_https = 0

[[server]]
listen = ["127.0.0.1:8443"]
tls = {{ cert = {c:?}, key = {k:?} }}
hsts = {{ max_age = "60", preload = true }}
redirect_https = true

[[server]]
listen = ["127.0.0.1:8444"]
tls = {{ cert = {c:?}, key = {k:?} }}
hsts = {{ max_age = "30d", include_subdomains = true, preload = true }}
"#
    );
    let lines = config_errors(&toml);
    assert_eq!(
        lines,
        [
            "tls.toml:3:8: server[0].hsts: this block has no tls: Strict-Transport-Security is only sent over TLS",
            "tls.toml:4:18: server[0].redirect_https: write true (port 443) or the https port, 1 to 65535",
            "tls.toml:9:20: server[1].hsts.max_age: bad duration \"60\": time unit needed, for example 60sec or 60ms (write it like \"750ms\", \"5s\" or \"2m\")",
            "tls.toml:10:18: server[1].redirect_https: a block with tls cannot redirect to https: it is https",
            "tls.toml:15:8: server[2].hsts.preload: preload needs include_subdomains = true and a max_age of at least 365d",
        ]
    );
}

/// Connections after the first resume its session whichever of the two
/// workers accepts them: every worker derives the same ticket keys.
fn resumes_across_workers(opts: Opts) {
    let backend = Backend::serve(|_| Reply::ok("ok"));
    let dir = CertDir::new("resume");
    let ca = Ca::new("test CA");
    let (c, k, _) = dir.leaf(&ca.issue(&["app.test"]), "app");
    let toml = support::proxy_all(backend.addr, &format!("tls = {}", tls_table(&c, &k)), "");
    let proxy = Proxy::with_workers(&toml, 2);
    let cfg = tls_client::config(opts);
    let mut first = tls_client::connect(proxy.addr(), &cfg, Some("app.test")).unwrap();
    assert!(!first.resumed());
    // Reading a response also takes in the tickets sent after the handshake.
    assert_eq!(first.get("app.test", "/").status, 200);
    drop(first);
    // SO_REUSEPORT spreads these over both workers; each must resume.
    for i in 0..12 {
        let mut c = tls_client::connect(proxy.addr(), &cfg, Some("app.test")).unwrap();
        assert!(c.resumed(), "connection {i} made a full handshake");
        assert_eq!(c.get("app.test", "/").status, 200);
    }
}

#[test]
fn tls13_sessions_resume_across_workers() {
    resumes_across_workers(Opts {
        tls13_only: true,
        ..Opts::default()
    });
}

#[test]
fn tls12_sessions_resume_across_workers() {
    resumes_across_workers(Opts {
        tls12_only: true,
        ..Opts::default()
    });
}

/// The built binary, its stderr lines arriving on a channel; killed on drop.
struct Running {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    addr: SocketAddr,
}

impl Running {
    fn start(config: &Path, workers: &str) -> Running {
        use std::io::BufRead;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ringway"))
            .args(["--config", config.to_str().unwrap(), "--workers", workers])
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn ringway");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut r = Running {
            child,
            lines,
            addr: "0.0.0.0:0".parse().unwrap(),
        };
        let line = r.wait_line("listening on ");
        let a = line
            .split("listening on ")
            .nth(1)
            .unwrap()
            .split([' ', ','])
            .next()
            .unwrap();
        r.addr = a.parse().unwrap_or_else(|_| panic!("no address in {line:?}"));
        r
    }

    /// The next stderr line containing `what` (bounded wait).
    fn wait_line(&mut self, what: &str) -> String {
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(10))
                .unwrap_or_else(|_| panic!("no stderr line with {what:?}"));
            if line.contains(what) {
                return line;
            }
        }
    }

    fn sighup(&self) {
        // SAFETY: kill(2) on the pid of a child we started and have not reaped.
        assert_eq!(
            unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGHUP) },
            0
        );
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn sighup_reloads_certificates_without_dropping_connections() {
    let backend = Backend::serve(|_| Reply::ok("ok"));
    let dir = CertDir::new("reload");
    let ca = Ca::new("test CA");
    let first = ca.issue(&["app.test"]);
    let (cert, key, first_der) = dir.leaf(&first, "live");
    let config = dir.path("ringway.toml");
    std::fs::write(
        &config,
        format!(
            "[global]\ndrain_timeout = \"1s\"\n[[server]]\nlisten = [\"127.0.0.1:0\"]\naccess_log = \"off\"\n\
             tls = {{ cert = {cert:?}, key = {key:?} }}\n[[server.location]]\npath = \"/\"\nproxy_pass = \"http://{}\"\n",
            backend.addr
        ),
    )
    .unwrap();
    let mut ringway = Running::start(&config, "2");
    let cfg = tls_client::default_config();
    let mut open = tls_client::connect(ringway.addr, &cfg, Some("app.test")).unwrap();
    assert!(open.peer_cert() == first_der);
    assert_eq!(open.get("app.test", "/").status, 200);

    // New files in place, then SIGHUP: both workers take them.
    let second = ca.issue(&["app.test"]);
    let (_, _, second_der) = dir.leaf(&second, "live");
    ringway.sighup();
    for _ in 0..2 {
        ringway.wait_line("config generation 2 installed");
    }
    assert_eq!(
        open.get("app.test", "/").status,
        200,
        "the open connection stopped working"
    );
    // The client still holds a ticket from the old certificate's session: it
    // must not resume, or the client would go on trusting the old one.
    for i in 0..6 {
        let c = tls_client::connect(ringway.addr, &cfg, Some("app.test")).unwrap();
        assert!(
            c.peer_cert() == second_der,
            "new connection {i} got the old certificate"
        );
    }

    // A broken certificate file: logged, and the current one stays.
    std::fs::write(
        dir.path("live.crt"),
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    ringway.sighup();
    let why = ringway.wait_line("live.crt");
    assert!(why.contains("server[0].tls"), "{why}");
    ringway.wait_line("reload failed: 1 error in the configuration; the running config stays");
    for i in 0..6 {
        let mut c = tls_client::connect(ringway.addr, &cfg, Some("app.test")).unwrap();
        assert!(c.peer_cert() == second_der, "connection {i} after a bad reload");
        assert_eq!(c.get("app.test", "/").status, 200);
    }
    assert_eq!(open.get("app.test", "/").status, 200);
}

/// A proxy whose `secure.test` block checks client certificates against
/// `client_ca` (`verify_client = mode`), and an `open.test` block that does
/// not, both in front of `backend`.
fn mtls_proxy(dir: &CertDir, ca: &Ca, backend: SocketAddr, mode: &str) -> Proxy {
    let (c, k, _) = dir.leaf(&ca.issue(&["secure.test", "open.test"]), "server");
    let client_ca = ca.write(&dir.0, "client-ca").display().to_string();
    let block = |name: &str, tls: String| {
        format!(
            r#"
[[server]]
listen = ["127.0.0.1:0"]
server_name = ["{name}"]
access_log = "off"
tls = {tls}
[[server.location]]
path = "/"
proxy_pass = "http://{backend}"
"#
        )
    };
    let toml = support::config(&format!(
        "{}{}",
        block(
            "secure.test",
            format!("{{ cert = {c:?}, key = {k:?}, client_ca = {client_ca:?}, verify_client = {mode:?} }}")
        ),
        block("open.test", tls_table(&c, &k)),
    ));
    Proxy::start(&toml)
}

fn client_with(issued: &pki::Issued) -> std::sync::Arc<rustls::ClientConfig> {
    tls_client::config(Opts {
        client_cert: Some((issued.cert_pem.clone(), issued.key_pem.clone())),
        ..Opts::default()
    })
}

/// True when the server refuses: the handshake fails, or (TLS 1.3, where the
/// client finishes first) the first request gets no answer but an alert.
fn refused(addr: SocketAddr, cfg: &std::sync::Arc<rustls::ClientConfig>) -> Result<(), String> {
    let mut c = tls_client::connect(addr, cfg, Some("secure.test"))?;
    c.send("GET / HTTP/1.1\r\nHost: secure.test\r\n\r\n");
    match c.try_response() {
        Ok(r) => panic!("served without a valid client certificate: {}", r.status),
        Err(e) => Err(e),
    }
}

#[test]
fn mtls_accepts_a_good_client_certificate_and_passes_its_subject() {
    let backend = Backend::serve(|_| Reply::ok("ok"));
    let dir = CertDir::new("mtls-good");
    let ca = Ca::new("client CA");
    let proxy = mtls_proxy(&dir, &ca, backend.addr, "on");
    let cfg = client_with(&ca.issue(&["client.test"]));
    let mut c = tls_client::connect(proxy.addr(), &cfg, Some("secure.test")).unwrap();
    let r = c.request("GET / HTTP/1.1\r\nHost: secure.test\r\nX-Client-Cert-Subject: CN=admin\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(
        backend.only_request().all("x-client-cert-subject"),
        ["CN=client.test"]
    );
}

#[test]
fn mtls_refuses_a_missing_or_wrongly_signed_client_certificate() {
    let backend = Backend::serve(|_| Reply::ok("ok"));
    let dir = CertDir::new("mtls-bad");
    let ca = Ca::new("client CA");
    let proxy = mtls_proxy(&dir, &ca, backend.addr, "on");
    let e = refused(proxy.addr(), &tls_client::default_config()).unwrap_err();
    assert!(e.to_lowercase().contains("certificate"), "no certificate: {e}");
    let other = Ca::new("someone else's CA");
    let e = refused(proxy.addr(), &client_with(&other.issue(&["client.test"]))).unwrap_err();
    assert!(
        e.to_lowercase().contains("certificate") || e.contains("UnknownCA"),
        "wrong CA: {e}"
    );
    backend.assert_untouched("refused client certificates");
}

#[test]
fn mtls_optional_serves_without_a_certificate_and_strips_a_forged_subject() {
    let backend = Backend::serve(|_| Reply::ok("ok"));
    let dir = CertDir::new("mtls-optional");
    let ca = Ca::new("client CA");
    let proxy = mtls_proxy(&dir, &ca, backend.addr, "optional");
    let mut c =
        tls_client::connect(proxy.addr(), &tls_client::default_config(), Some("secure.test")).unwrap();
    let r = c.request("GET / HTTP/1.1\r\nHost: secure.test\r\nX-Client-Cert-Subject: CN=admin\r\n\r\n");
    assert_eq!(r.status, 200);
    assert!(!backend.only_request().has("x-client-cert-subject"));
    // With a good certificate, its subject.
    let mut c = tls_client::connect(
        proxy.addr(),
        &client_with(&ca.issue(&["me.test"])),
        Some("secure.test"),
    )
    .unwrap();
    assert_eq!(c.get("secure.test", "/").status, 200);
    assert_eq!(
        backend.wait_requests(2)[1].all("x-client-cert-subject"),
        ["CN=me.test"]
    );
    // A wrongly signed one is still refused.
    let other = Ca::new("someone else's CA");
    assert!(refused(proxy.addr(), &client_with(&other.issue(&["x.test"]))).is_err());
}

#[test]
fn a_host_that_checks_client_certificates_is_misdirected_on_an_unchecked_connection() {
    let backend = Backend::serve(|_| Reply::ok("ok"));
    let dir = CertDir::new("mtls-421");
    let ca = Ca::new("client CA");
    let proxy = mtls_proxy(&dir, &ca, backend.addr, "on");
    let mut c = tls_client::connect(proxy.addr(), &tls_client::default_config(), Some("open.test")).unwrap();
    assert_eq!(c.get("open.test", "/").status, 200);
    let r = c.get("secure.test", "/");
    assert_eq!(r.status, 421);
    assert!(r.says_close());
    assert_eq!(
        backend.seen().len(),
        1,
        "the misdirected request reached the backend"
    );
    // A certificate verified for secure.test is not passed to open.test.
    let mut m = tls_client::connect(
        proxy.addr(),
        &client_with(&ca.issue(&["c.test"])),
        Some("secure.test"),
    )
    .unwrap();
    assert_eq!(m.get("open.test", "/").status, 200);
    assert!(!backend.wait_requests(2)[1].has("x-client-cert-subject"));
}

#[test]
fn mtls_config_errors() {
    let dir = CertDir::new("mtls-errors");
    let (c, k, _) = dir.leaf(&pki::self_signed(&["a.test"]), "a");
    let missing = dir.path("none.pem").display().to_string();
    let toml = format!(
        r#"[[server]]
listen = ["127.0.0.1:8443"]
tls = {{ cert = {c:?}, key = {k:?}, verify_client = "on" }}

[[server]]
listen = ["127.0.0.1:8444"]
tls = {{ cert = {c:?}, key = {k:?}, client_ca = {c:?} }}

[[server]]
listen = ["127.0.0.1:8445"]
tls = {{ cert = {c:?}, key = {k:?}, client_ca = {missing:?}, verify_client = "optional" }}
"#
    );
    assert_eq!(
        config_errors(&toml),
        [
            format!("tls.toml:3:{}: server[0].tls.verify_client: needs client_ca: the CA certificates that client certificates must chain to", toml.lines().nth(2).unwrap().find("\"on\"").unwrap() + 1),
            format!("tls.toml:7:{}: server[1].tls.client_ca: has no effect without verify_client = \"on\" or \"optional\"", toml.lines().nth(6).unwrap().rfind(&format!("{c:?}")).unwrap() + 1),
            format!("tls.toml:11:{}: server[2].tls.client_ca: cannot read {missing}: No such file or directory (os error 2)", toml.lines().nth(10).unwrap().find(&format!("{missing:?}")).unwrap() + 1),
        ]
    );
}

#[test]
fn the_access_log_records_tls_version_and_cipher() {
    let backend = Backend::serve(|_| Reply::ok("ok"));
    let dir = CertDir::new("log");
    let log = dir.path("access.log");
    let (c, k, _) = dir.leaf(&pki::self_signed(&["app.test"]), "app");
    let toml = support::config(&format!(
        r#"
[[server]]
listen = ["127.0.0.1:0"]
access_log = {log:?}
tls = {{ cert = {c:?}, key = {k:?} }}
[[server.location]]
path = "/"
proxy_pass = "http://{}"
"#,
        backend.addr
    ));
    let proxy = Proxy::start(&toml);
    let cfg13 = tls_client::config(Opts {
        tls13_only: true,
        ..Opts::default()
    });
    let cfg12 = tls_client::config(Opts {
        tls12_only: true,
        ..Opts::default()
    });
    let mut a = tls_client::connect(proxy.addr(), &cfg13, Some("app.test")).unwrap();
    assert_eq!(a.get("app.test", "/13").status, 200);
    let mut b = tls_client::connect(proxy.addr(), &cfg12, Some("app.test")).unwrap();
    assert_eq!(b.get("app.test", "/12").status, 200);
    let suite = |c: &tls_client::TlsConn| {
        c.conn
            .negotiated_cipher_suite()
            .unwrap()
            .suite()
            .as_str()
            .unwrap()
    };
    let (s13, s12) = (suite(&a), suite(&b));
    let lines = support::wait_for(IO_TIMEOUT, || {
        let text = std::fs::read_to_string(&log).ok()?;
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        (lines.len() >= 2).then_some(lines)
    })
    .expect("two access log lines");
    assert!(lines[0].contains("\"GET /13 HTTP/1.1\" 200 2 "), "{}", lines[0]);
    assert!(lines[0].ends_with(&format!("\" TLSv1.3 {s13}")), "{}", lines[0]);
    assert!(lines[1].ends_with(&format!("\" TLSv1.2 {s12}")), "{}", lines[1]);
}

#[test]
fn protocols_and_ciphers_limit_what_is_negotiated() {
    let dir = CertDir::new("limits");
    let (c, k, _) = dir.leaf(&pki::self_signed(&["a.test", "b.test"]), "ab");
    let toml = support::config(&format!(
        "{}{}",
        tls_block(
            &["a.test"],
            &format!("{{ cert = {c:?}, key = {k:?}, protocols = [\"TLSv1.3\"] }}"),
            "a"
        ),
        tls_block(
            &["b.test"],
            &format!(
                "{{ cert = {c:?}, key = {k:?}, ciphers = [\"TLS13_CHACHA20_POLY1305_SHA256\", \"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256\"] }}"
            ),
            "b"
        ),
    ));
    let proxy = Proxy::start(&toml);
    let only12 = tls_client::config(Opts {
        tls12_only: true,
        ..Opts::default()
    });
    let e = tls_client::connect(proxy.addr(), &only12, Some("a.test")).err();
    assert!(
        e.is_some_and(|e| e.contains("ProtocolVersion")),
        "TLS 1.2 to a TLSv1.3-only block"
    );
    let mut ok = tls_client::connect(proxy.addr(), &tls_client::default_config(), Some("a.test")).unwrap();
    assert_eq!(ok.get("a.test", "/").text(), "a");
    for cfg in [tls_client::default_config(), only12] {
        let b = tls_client::connect(proxy.addr(), &cfg, Some("b.test")).unwrap();
        let suite = b
            .conn
            .negotiated_cipher_suite()
            .unwrap()
            .suite()
            .as_str()
            .unwrap();
        assert!(suite.contains("CHACHA20_POLY1305"), "{suite}");
    }
}

#[test]
fn ciphers_that_leave_a_protocol_without_a_suite_are_a_config_error() {
    let dir = CertDir::new("cipher-errors");
    let (c, k, _) = dir.leaf(&pki::self_signed(&["a.test"]), "a");
    let toml = format!(
        r#"[[server]]
listen = ["127.0.0.1:8443"]
tls = {{ cert = {c:?}, key = {k:?}, protocols = ["TLSv1.2"], ciphers = ["TLS13_AES_128_GCM_SHA256"] }}
"#
    );
    let errors = config_errors(&toml);
    let col = toml.lines().nth(2).unwrap().find("[\"TLS13").unwrap() + 1;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with(&format!(
            "tls.toml:3:{col}: server[0].tls.ciphers: no usable cipher suite for the chosen protocols"
        )),
        "{}",
        errors[0]
    );
}

#[test]
fn every_documented_tls_key_is_accepted() {
    let dir = CertDir::new("all-keys");
    let ca = Ca::new("client CA");
    let (c, k, _) = dir.leaf(&ca.issue(&["a.example"]), "a");
    let client_ca = ca.write(&dir.0, "ca").display().to_string();
    let text = format!(
        r#"
[[server]]
listen = ["127.0.0.1:8443"]
server_name = ["a.example"]
tls = {{ cert = {c:?}, key = {k:?}, client_ca = {client_ca:?}, verify_client = "optional", protocols = ["TLSv1.3"], ciphers = ["TLS13_AES_256_GCM_SHA384"] }}
hsts = {{ max_age = "730d", include_subdomains = true, preload = true }}

[[server]]
listen = ["127.0.0.1:8443"]
tls = {{ reject_handshake = true }}

[[server]]
listen = ["127.0.0.1:8080"]
redirect_https = true
"#
    );
    use ringway::config::{Config, TlsVersion, VerifyClient};
    let cfg = Config::parse(&text, Path::new("all.toml")).unwrap_or_else(|e| panic!("{e}"));
    let t = cfg.servers[0].tls.as_ref().unwrap();
    assert_eq!(t.verify_client, VerifyClient::Optional);
    assert_eq!(t.protocols, [TlsVersion::V1_3]);
    assert_eq!(
        t.ciphers.as_deref(),
        Some(&["TLS13_AES_256_GCM_SHA384".to_string()][..])
    );
    assert!(t.material.as_ref().is_some_and(|m| m.client_roots.is_some()));
    assert_eq!(
        cfg.servers[0].hsts.as_deref(),
        Some("max-age=63072000; includeSubDomains; preload")
    );
    assert!(cfg.servers[1].tls.as_ref().unwrap().reject_handshake);
    assert_eq!(cfg.servers[2].redirect_https, Some(443));
}

#[test]
fn the_https_example_means_what_it_says() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // Its certificate paths are relative to its own directory.
    let cfg = ringway::config::Config::load(&root.join("config/examples/https.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let [com, net, plain] = &cfg.servers[..] else {
        panic!("three server blocks")
    };
    assert!(com.tls.is_some() && net.tls.is_some() && plain.tls.is_none());
    assert_eq!(com.hsts.as_deref(), Some("max-age=63072000; includeSubDomains"));
    assert_eq!(
        net.tls.as_ref().unwrap().protocols,
        [ringway::config::TlsVersion::V1_3]
    );
    assert_eq!(plain.redirect_https, Some(8443));
}

#[test]
fn past_max_connections_a_tls_client_is_closed_without_a_handshake() {
    let dir = CertDir::new("busy");
    let (c, k, _) = dir.leaf(&pki::self_signed(&["a.test"]), "a");
    let toml = support::config(&format!(
        "max_connections = 1\n{}",
        tls_block(&["a.test"], &tls_table(&c, &k), "in")
    ));
    let proxy = Proxy::start(&toml);
    let cfg = tls_client::default_config();
    let mut held = tls_client::connect(proxy.addr(), &cfg, Some("a.test")).unwrap();
    assert_eq!(held.get("a.test", "/").text(), "in");
    let e = tls_client::connect(proxy.addr(), &cfg, Some("a.test")).err();
    assert!(e.is_some(), "a second TLS client was served past max_connections");
    assert_eq!(
        held.get("a.test", "/").text(),
        "in",
        "the held connection was affected"
    );
    // Once the place is free, a new client is served.
    drop(held);
    let served = support::wait_for(Duration::from_secs(5), || {
        let mut c = tls_client::connect(proxy.addr(), &cfg, Some("a.test")).ok()?;
        (c.get("a.test", "/").status == 200).then_some(())
    });
    assert!(served.is_some(), "the freed place was not used");
}

#[test]
fn plain_http_on_a_tls_address_is_answered_with_an_alert_and_closed() {
    let backend = Backend::serve(|_| Reply::ok("ok"));
    let dir = CertDir::new("plain-on-tls");
    let (proxy, _) = tls_proxy(&dir, backend.addr, "");
    let mut s = TcpStream::connect(proxy.addr()).unwrap();
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n").unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    loop {
        match read_retrying(&mut s, &mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("not closed (got {got:?}): {e}"),
        }
    }
    // Nothing that looks like HTTP: at most a TLS alert record.
    assert!(
        got.is_empty() || got[0] == 0x15,
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    backend.assert_untouched("plain HTTP on a TLS address");
}

#[test]
fn relative_certificate_paths_are_read_from_the_config_directory() {
    let dir = support::temp_path("tls-conf-dir");
    let (cert, key) = pki::self_signed(&["a.test"]).write(&dir.join("certs"), "a");
    let text =
        "[[server]]\nlisten = [\"127.0.0.1:0\"]\ntls = { cert = \"certs/a.crt\", key = \"certs/a.key\" }\n\
                [[server.location]]\npath = \"/\"\nreturn = { status = 204 }\n";
    let loaded = ringway::config::Config::parse(text, &dir.join("ringway.toml"));
    // The same text read as if from another directory finds no files.
    let elsewhere = ringway::config::Config::parse(text, Path::new("elsewhere/ringway.toml"));
    let _ = std::fs::remove_dir_all(&dir);
    let c = loaded.unwrap_or_else(|e| panic!("{e}"));
    let tls = c.servers[0].tls.as_ref().expect("tls");
    assert_eq!(
        (tls.cert.as_path(), tls.key.as_path()),
        (cert.as_path(), key.as_path())
    );
    let e = elsewhere.expect_err("no such files").to_string();
    assert!(e.contains("cannot read elsewhere/certs/a.crt"), "{e}");
}

#[test]
fn a_restarted_worker_serves_the_certificate_reloaded_before_it_died() {
    let backend = Backend::serve(|_| Reply::ok("hello"));
    let dir = CertDir::new("reload-restart");
    let ca = Ca::new("test CA");
    let (c, k, old) = dir.leaf(&ca.issue(&["app.test"]), "app");
    let toml = support::proxy_all(backend.addr, &format!("tls = {}\n", tls_table(&c, &k)), "");
    let proxy = Proxy::start(&toml);
    let cfg = tls_client::default_config();
    let seen = |proxy: &Proxy| {
        tls_client::connect(proxy.addr(), &cfg, Some("app.test"))
            .expect("handshake")
            .peer_cert()
    };
    assert_eq!(seen(&proxy), old);

    // New files, reloaded as SIGHUP does; then the only worker dies.
    let (_, _, new) = dir.leaf(&ca.issue(&["app.test"]), "app");
    let config = ringway::config::Config::parse(&toml, Path::new("test.toml")).unwrap();
    proxy.handle().reload(config).expect("reload");
    support::wait_for(IO_TIMEOUT, || (seen(&proxy) == new).then_some(()))
        .expect("the reloaded certificate is served");
    proxy.handle().crash_worker(0);
    support::wait_for(IO_TIMEOUT, || (proxy.handle().restarts() == 1).then_some(()))
        .expect("the worker is restarted");
    // The new worker starts from the config's files, then the reload on top.
    let after = support::wait_for(IO_TIMEOUT, || {
        tls_client::connect(proxy.addr(), &cfg, Some("app.test"))
            .ok()
            .map(|c| c.peer_cert())
    })
    .expect("the restarted worker answers");
    assert_eq!(after, new);
}

/// Session tickets are bound to a block's names and addresses, not its
/// position: a reload that puts another block before it still resumes the
/// sessions made before.
#[test]
fn tickets_issued_before_a_reload_resume_after_it() {
    let backend = Backend::serve(|_| Reply::ok("ok"));
    let dir = CertDir::new("reload-tickets");
    let ca = Ca::new("test CA");
    let (cert, key, _) = dir.leaf(&ca.issue(&["app.test"]), "live");
    let port = support::listen_port();
    let tls_block = format!(
        "[[server]]\nlisten = [\"127.0.0.1:{port}\"]\naccess_log = \"off\"\ntls = {{ cert = {cert:?}, key = {key:?} }}\n\
         [[server.location]]\npath = \"/\"\nproxy_pass = \"http://{}\"\n",
        backend.addr
    );
    let config = dir.path("ringway.toml");
    std::fs::write(&config, format!("[global]\ndrain_timeout = \"1s\"\n{tls_block}")).unwrap();
    let mut ringway = Running::start(&config, "2");
    let cfg = tls_client::default_config();
    let mut first = tls_client::connect(ringway.addr, &cfg, Some("app.test")).unwrap();
    assert!(!first.resumed());
    assert_eq!(first.get("app.test", "/").status, 200);
    drop(first);

    let other = "[[server]]\nlisten = [\"127.0.0.1:0\"]\naccess_log = \"off\"\n[[server.location]]\npath = \"/\"\nreturn = { status = 204 }\n";
    std::fs::write(
        &config,
        format!("[global]\ndrain_timeout = \"1s\"\n{other}{tls_block}"),
    )
    .unwrap();
    ringway.sighup();
    for _ in 0..2 {
        ringway.wait_line("config generation 2 installed");
    }
    for i in 0..6 {
        let mut c = tls_client::connect(ringway.addr, &cfg, Some("app.test")).unwrap();
        assert!(
            c.resumed(),
            "connection {i} after the reload made a full handshake"
        );
        assert_eq!(c.get("app.test", "/").status, 200);
    }
}

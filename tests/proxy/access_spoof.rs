//! Identity fields cannot be forged: once any `auth` of the config sets a
//! field (`X-Consumer`, a JWT claim's target), no location passes a
//! client's copy of it upstream, authenticated or not; a config without
//! auth leaves such fields alone.

use crate::support::*;

#[test]
fn fields_auth_sets_are_dropped_everywhere_once_any_auth_sets_them() {
    let keys = TempFile::with_text("spoof-keys.txt", "acme:k-1\n");
    let backend = Backend::echo_target();
    let p = Proxy::start(&config(&format!(
        r#"
[[server]]
listen = ["127.0.0.1:0"]
access_log = "off"

[[server.location]]
path = "/keyed/"
auth = {{ api_key = {{ header = "X-API-Key", keys_file = "{k}" }} }}
proxy_pass = "http://{b}"

[[server.location]]
path = "/open/"
proxy_pass = "http://{b}"

[[server]]
listen = ["127.0.0.1:0"]
server_name = ["other.test"]
access_log = "off"

[[server.location]]
path = "/"
proxy_pass = "http://{b}"
"#,
        k = keys.path().display(),
        b = backend.addr
    )));
    let forged = "X-Consumer: acme\r\nx-consumer: root\r\nX-API-Key: k-1\r\nX-Other: kept\r\n";
    for (target, host) in [("/open/a", "t"), ("/b", "other.test")] {
        let r = p.send(format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n{forged}\r\n"));
        assert_eq!(r.status, 200, "{target}");
    }
    for seen in backend.seen() {
        assert!(!seen.has("X-Consumer"), "{}", seen.head_text());
        assert_eq!(seen.header("X-Other"), Some("kept"));
        // The key's field is dropped only where it is the credential.
        assert_eq!(seen.header("X-API-Key"), Some("k-1"));
    }
    let r = p.send(format!("GET /keyed/a HTTP/1.1\r\nHost: t\r\n{forged}\r\n"));
    assert_eq!(r.status, 200);
    let seen = backend.seen().pop().unwrap();
    assert_eq!(seen.all("X-Consumer"), ["acme"], "{}", seen.head_text());
    assert!(!seen.has("X-API-Key"));
}

#[test]
fn without_auth_identity_like_fields_pass() {
    let backend = Backend::echo_target();
    let p = Proxy::start(&proxy_all(backend.addr, "", ""));
    let r = p.send("GET / HTTP/1.1\r\nHost: t\r\nX-Consumer: acme\r\nX-User: bob\r\n\r\n");
    assert_eq!(r.status, 200);
    let seen = backend.only_request();
    assert_eq!(seen.header("X-Consumer"), Some("acme"));
    assert_eq!(seen.header("X-User"), Some("bob"));
}

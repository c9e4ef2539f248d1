//! `auth = { request = ... }`: forward auth against a real auth service on
//! a socket. A 2xx lets the request through with the copied fields (a
//! client's copies dropped); a 401 or 403 goes back with the service's body
//! and challenge (plain, chunked, until close); any other answer, a
//! timeout or a dead service is a 500; what the service is sent; 2xx
//! answers cached by Authorization and Cookie, refusals not; HTTP/2; the
//! config refusals.

use std::time::Duration;

use crate::support::peers::curl;
use crate::support::*;

fn auth_service() -> Backend {
    Backend::serve(|r| match r.header("Authorization").unwrap_or("") {
        "Bearer good" | "Bearer other" => Reply::new(204)
            .header("X-User", "alice")
            .header("X-Extra", "not copied"),
        "Bearer forbidden" => Reply::new(403).body("go away"),
        "Bearer chunky" => Reply::new(401)
            .header("WWW-Authenticate", "Bearer realm=\"svc\"")
            .body("who are you, in pieces")
            .chunked(5),
        "Bearer closing" => Reply::new(401).body("closing body").until_close(),
        "Bearer slow" => Reply::new(200).delay(Duration::from_secs(3)),
        "Bearer redirect" => Reply::new(302).header("Location", "/login"),
        _ => Reply::new(401)
            .header("WWW-Authenticate", "Bearer realm=\"svc\"")
            .body("who are you"),
    })
}

fn forward_proxy(svc: std::net::SocketAddr, backend: &Backend, cache: &str) -> Proxy {
    Proxy::start(&config(&format!(
        r#"
[[server]]
listen = ["127.0.0.1:0"]
access_log = "off"
h2c = true

[[server.location]]
path = "/api/"
auth = {{ request = {{ url = "http://{svc}/check", copy_headers = ["X-User"], timeout = "1s"{cache} }} }}
proxy_pass = "http://{b}"
"#,
        b = backend.addr
    )))
}

fn get(p: &Proxy, target: &str, fields: &str) -> Response {
    p.send(format!("GET {target} HTTP/1.1\r\nHost: t\r\n{fields}\r\n"))
}

#[test]
fn forward_auth_passes_refuses_and_fails_closed() {
    let svc = auth_service();
    let backend = Backend::echo_target();
    let p = forward_proxy(svc.addr, &backend, "");
    for (auth, status, body, challenge) in [
        ("", 401, "who are you", Some("Bearer realm=\"svc\"")),
        ("Bearer nope", 401, "who are you", Some("Bearer realm=\"svc\"")),
        ("Bearer forbidden", 403, "go away", None),
        (
            "Bearer chunky",
            401,
            "who are you, in pieces",
            Some("Bearer realm=\"svc\""),
        ),
        ("Bearer closing", 401, "closing body", None),
        ("Bearer redirect", 500, "", None),
        ("Bearer slow", 500, "", None),
    ] {
        let fields = if auth.is_empty() {
            String::new()
        } else {
            format!("Authorization: {auth}\r\n")
        };
        let r = get(&p, "/api/x", &fields);
        assert_eq!(r.status, status, "{auth:?}: {}", r.head_text());
        if !body.is_empty() {
            assert_eq!(r.text(), body, "{auth:?}");
        }
        assert_eq!(r.header("WWW-Authenticate"), challenge, "{auth:?}");
    }
    backend.assert_untouched("requests the auth service did not let through");

    let r = p.send(
        "POST /api/x?y=1 HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer good\r\nX-User: root\r\nX-Trace: 7\r\nX-Forwarded-Uri: /forged\r\nContent-Length: 4\r\n\r\nbody",
    );
    assert_eq!(r.status, 200, "{}", r.head_text());
    let seen = backend.only_request();
    assert_eq!(seen.all("X-User"), ["alice"], "{}", seen.head_text());
    assert!(!seen.has("X-Extra"));
    let asked = svc.seen().pop().unwrap();
    assert_eq!(asked.method(), "POST");
    assert_eq!(asked.target(), "/check");
    assert_eq!(asked.header("Host"), Some(svc.addr.to_string().as_str()));
    assert_eq!(asked.header("X-Forwarded-Method"), Some("POST"));
    assert_eq!(asked.all("X-Forwarded-Uri"), ["/api/x?y=1"]);
    assert_eq!(asked.header("X-Forwarded-Host"), Some("t"));
    assert_eq!(asked.header("X-Forwarded-Proto"), Some("http"));
    assert_eq!(asked.header("X-Trace"), Some("7"));
    assert_eq!(asked.header("Content-Length"), Some("0"), "{}", asked.head_text());

    // HTTP/2 alike.
    let url = format!("http://{}/api/h2", p.addr());
    let out = curl(
        &[
            "--http2-prior-knowledge",
            "-i",
            "-H",
            "Authorization: Bearer good",
        ],
        &url,
    );
    assert!(
        out.stdout.starts_with("HTTP/2 200"),
        "{}{}",
        out.stdout,
        out.stderr
    );
    let out = curl(&["--http2-prior-knowledge", "-i"], &url);
    assert!(
        out.stdout.starts_with("HTTP/2 401"),
        "{}{}",
        out.stdout,
        out.stderr
    );
    assert!(out.stdout.ends_with("who are you"), "{}", out.stdout);

    // A service that is not there.
    let dead = forward_proxy(closed_port(), &backend, "");
    assert_eq!(get(&dead, "/api/x", "Authorization: Bearer good\r\n").status, 500);
}

#[test]
fn forward_auth_caches_passes_by_credentials_never_refusals() {
    let svc = auth_service();
    let backend = Backend::echo_target();
    let p = forward_proxy(svc.addr, &backend, ", cache = \"10s\"");
    for _ in 0..3 {
        assert_eq!(get(&p, "/api/a", "Authorization: Bearer good\r\n").status, 200);
    }
    assert_eq!(svc.seen().len(), 1, "a cached pass is not asked again");
    // Other credentials, or the same with a cookie, are asked.
    assert_eq!(get(&p, "/api/b", "Authorization: Bearer other\r\n").status, 200);
    assert_eq!(
        get(&p, "/api/c", "Authorization: Bearer good\r\nCookie: s=1\r\n").status,
        200
    );
    assert_eq!(svc.seen().len(), 3);
    for _ in 0..2 {
        assert_eq!(get(&p, "/api/d", "Authorization: Bearer nope\r\n").status, 401);
    }
    assert_eq!(svc.seen().len(), 5, "refusals are asked every time");
    // The copied fields come from the cache too.
    let seen = backend.seen();
    assert_eq!(seen.len(), 5);
    assert!(seen.iter().all(|s| s.all("X-User") == ["alice"]));
}

#[test]
fn forward_auth_config_refusals() {
    let cfg = r#"[[server]]
listen = ["127.0.0.1:1"]

[[server.location]]
path = "/a/"
auth = { request = { url = "https://auth.test/check" } }
return = { status = 200 }

[[server.location]]
path = "/b/"
auth = { request = { url = "http://127.0.0.1:9/check", timeout = "soon", copy_headers = ["X User"] } }
return = { status = 200 }

[[server.location]]
path = "/c/"
auth = { request = { url = "http://127.0.0.1:9/", cahce = "1s" } }
return = { status = 200 }
"#;
    let e = ringway::config::Config::parse(cfg, std::path::Path::new("f.toml"))
        .unwrap_err()
        .to_string();
    let at = |needle: &str| {
        let (l, c) = super::cli::position(cfg, needle);
        format!("f.toml:{l}:{c}: ")
    };
    for want in [
        format!(
            "{}server[0].location[0].auth.request.url: an https auth service is not supported yet",
            at("\"https://")
        ),
        format!(
            "{}server[0].location[1].auth.request.copy_headers[0]: \"X User\" is not a field name",
            at("\"X User\"")
        ),
        format!(
            "{}server[0].location[1].auth.request.timeout: bad duration \"soon\"",
            at("\"soon\"")
        ),
        format!(
            "{}server[0].location[2].auth.request.cahce: unknown key `cahce`; did you mean `cache`?",
            at("cahce")
        ),
    ] {
        assert!(
            e.lines().any(|l| l.starts_with(&want)),
            "no line starts with {want:?}:\n{e}"
        );
    }
}

//! `request_headers` and `response_headers`: fields set and removed toward
//! the upstream and the client, a location's table replacing the block's,
//! values with variables, nginx's `add_header` status rule and `always`,
//! over HTTP/1.1 and HTTP/2, and the names and values refused at load.

use crate::support::peers::curl;
use crate::support::*;

/// A backend whose responses carry fields the rules act on; `/missing`
/// is a 404 and `/fail` a 500.
fn backend() -> Backend {
    Backend::serve(|seen| {
        let status = match seen.target() {
            "/missing" => 404,
            "/fail" => 500,
            _ => 200,
        };
        Reply::new(status)
            .body("b")
            .header("Server", "backend/1.0")
            .header("X-Powered-By", "php")
            .header("X-Keep", "1")
            .header("X-Frame-Options", "SAMEORIGIN")
    })
}

fn rules_proxy(b: &Backend) -> Proxy {
    Proxy::start(&config(&format!(
        r#"
[[server]]
listen = ["127.0.0.1:0"]
access_log = "off"
h2c = true
request_headers = {{ set = {{ "X-Env" = "prod", "X-Client" = "$remote_addr", "X-Real-IP" = "", "X-Forwarded-For" = "$remote_addr", "X-Path" = "$uri" }}, remove = ["X-Debug"] }}
response_headers = {{ set = {{ "Server" = "edge", "X-Frame-Options" = "DENY" }}, add = {{ "X-Host" = "$host", "X-Empty" = "$http_x_none" }}, remove = ["X-Powered-By"] }}

[[server.location]]
path = "/"
proxy_pass = "http://{a}"

[[server.location]]
path = "/own/"
proxy_pass = "http://{a}"
request_headers = {{ set = {{ "X-Own" = "yes" }} }}
response_headers = {{ add = {{ "X-Always" = "on" }}, always = true }}

[[server.location]]
path = "/down/"
proxy_pass = "http://{down}"
response_headers = {{ add = {{ "X-Always" = "on" }}, always = true }}

[[server.location]]
path = "/ret"
return = {{ status = 200, body = "r" }}
"#,
        a = b.addr,
        down = closed_port()
    )))
}

#[test]
fn request_fields_are_set_and_removed_and_a_location_table_replaces_the_blocks() {
    let b = backend();
    let p = rules_proxy(&b);
    let r = p.send(
        "GET /a%20b HTTP/1.1\r\nHost: t\r\nX-Env: dev\r\nX-Debug: 1\r\nX-Forwarded-For: 6.6.6.6\r\nX-Other: k\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    let seen = b.only_request();
    // The client's X-Env is replaced, X-Debug removed, the rest passed on.
    assert_eq!(seen.all("x-env"), ["prod"]);
    assert_eq!(seen.header("x-client"), Some("127.0.0.1"));
    assert!(!seen.has("x-debug"));
    assert_eq!(seen.header("x-other"), Some("k"));
    // An empty value removes ringway's own field; a set one replaces it.
    assert!(!seen.has("x-real-ip"));
    assert_eq!(seen.all("x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(seen.header("x-path"), Some("/a b"));
    // Other forwarding fields are still ringway's.
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));

    // The location's table replaces the block's for requests.
    p.send("GET /own/x HTTP/1.1\r\nHost: t\r\nX-Env: dev\r\nX-Debug: 1\r\n\r\n");
    let seen = b.seen().pop().unwrap();
    assert_eq!(seen.header("x-own"), Some("yes"));
    assert_eq!(seen.header("x-env"), Some("dev"));
    assert_eq!(seen.header("x-debug"), Some("1"));
    assert!(seen.has("x-real-ip"));
}

#[test]
fn response_fields_follow_add_header_statuses_unless_always() {
    let b = backend();
    let p = rules_proxy(&b);
    let r = p.send("GET / HTTP/1.1\r\nHost: Site.Test:81\r\n\r\n");
    assert_eq!(r.all("server"), ["edge"]);
    assert_eq!(r.all("x-frame-options"), ["DENY"]);
    assert_eq!(r.header("x-host"), Some("site.test"));
    assert!(!r.has("x-powered-by"));
    assert!(
        !r.has("x-empty"),
        "a value that expands to nothing sends no field"
    );
    assert_eq!(r.header("x-keep"), Some("1"));
    // A 404 from the upstream: nothing set or added, but removals still hold.
    let r = p.get("/missing");
    assert_eq!(r.status, 404);
    assert_eq!(r.header("server"), Some("backend/1.0"));
    assert_eq!(r.header("x-frame-options"), Some("SAMEORIGIN"));
    assert!(!r.has("x-host"));
    assert!(!r.has("x-powered-by"));
    // The location's table replaces the block's: nothing removed, its own added.
    let r = p.get("/own/ok");
    assert_eq!(r.header("x-powered-by"), Some("php"));
    assert_eq!(r.header("x-always"), Some("on"));
    assert!(!r.has("x-host"));
    // always = true: on ringway's own 502 too.
    let r = p.get("/down/x");
    assert_eq!(r.status, 502);
    assert_eq!(r.header("x-always"), Some("on"));
    // A `return` location gets the block's fields as well.
    let r = p.get("/ret");
    assert_eq!((r.status, r.header("server")), (200, Some("ringway")));
    assert_eq!(r.header("x-host"), Some("test.local"));
    assert_eq!(r.all("x-frame-options"), ["DENY"]);
}

#[test]
fn always_fields_reach_an_upstream_error_status() {
    let b = Backend::serve(|_| Reply::new(500).body("x"));
    let p = Proxy::start(&proxy_all(
        b.addr,
        "",
        "response_headers = { add = { \"X-Always\" = \"on\" }, always = true }",
    ));
    let r = p.get("/");
    assert_eq!((r.status, r.header("x-always")), (500, Some("on")));
}

#[test]
fn header_rules_apply_alike_over_http2() {
    let b = backend();
    let p = rules_proxy(&b);
    let url = format!("http://{}/h2", p.addr());
    let r = curl(
        &[
            "--http2-prior-knowledge",
            "-s",
            "-D",
            "-",
            "-o",
            "/dev/null",
            "-H",
            "X-Debug: 1",
            "-H",
            "X-Env: dev",
        ],
        &url,
    );
    let head = r.stdout.to_ascii_lowercase();
    assert!(head.starts_with("http/2 200"), "{}", r.stdout);
    assert!(head.contains("server: edge\r\n"), "{head}");
    assert!(head.contains("x-frame-options: deny\r\n"), "{head}");
    assert!(!head.contains("x-powered-by"), "{head}");
    let seen = b.only_request();
    assert_eq!(seen.all("x-env"), ["prod"]);
    assert!(!seen.has("x-debug"));
    assert!(!seen.has("x-real-ip"));
}

#[test]
fn check_refuses_bad_header_rules_with_positions() {
    use crate::cli::{position, ringway, run_bounded, text};
    let cfg = r#"[[server]]
listen = ["127.0.0.1:0"]
request_headers = { set = { "Connection" = "x", "Bad Name" = "1", "X-Split" = "a\r\nb" }, remove = ["Transfer-Encoding"] }

[[server.location]]
path = "/"
return = { status = 200 }
response_headers = { add = { "X-Who" = "$remote_adr" }, set = { "Host" = "h" } }
"#;
    let f = TempFile::with_text("headers.toml", cfg);
    let file = f.path().display().to_string();
    let out = run_bounded(
        ringway(&["--check", "--config", &file]),
        std::time::Duration::from_secs(10),
    );
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    let at = |needle: &str| {
        let (l, c) = position(cfg, needle);
        format!("{file}:{l}:{c}: ")
    };
    let expected = [
        format!(
            "{}server[0].request_headers.set.Connection: \"Connection\" cannot be set or removed: a hop-by-hop field",
            at("\"x\"")
        ),
        format!(
            "{}server[0].request_headers.set.Bad Name: \"Bad Name\" is not a header field name",
            at("\"1\"")
        ),
        format!(
            "{}server[0].request_headers.set.X-Split: a field value cannot hold CR, LF or NUL",
            at("\"a\\r\\nb\"")
        ),
        format!(
            "{}server[0].request_headers.remove[0]: \"Transfer-Encoding\" cannot be set or removed",
            at("\"Transfer-Encoding\"")
        ),
        format!(
            "{}server[0].location[0].response_headers.add.X-Who: unknown variable `$remote_adr`; did you mean `$remote_addr`?",
            at("\"$remote_adr\"")
        ),
        format!(
            "{}server[0].location[0].response_headers.set.Host: \"Host\" cannot be set or removed: the upstream's Host is chosen by `preserve_host`",
            at("\"h\"")
        ),
    ];
    for want in &expected {
        assert!(
            stderr.lines().any(|l| l.starts_with(want.as_str())),
            "no line starts with {want:?}; stderr:\n{stderr}"
        );
    }
    assert!(
        stderr.contains(&format!("test failed ({} errors)", expected.len())),
        "{stderr}"
    );
}

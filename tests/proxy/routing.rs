//! Routing: listen address → server block by Host → longest location prefix;
//! `return` locations; how the upstream target is built from the location.

use crate::support::*;

fn host_get(p: &Proxy, addr_index: usize, host: &str, path: &str) -> Response {
    let mut c = Client::connect(p.addrs()[addr_index]);
    c.request(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n"))
}

const VHOSTS: &str = r#"
[[server]]
listen = ["127.0.0.1:0"]
server_name = ["exact.test"]
access_log = "off"
[[server.location]]
path = "/"
return = { status = 200, body = "exact" }

[[server]]
listen = ["127.0.0.1:0"]
server_name = ["*.wild.test"]
access_log = "off"
[[server.location]]
path = "/"
return = { status = 200, body = "wild" }

[[server]]
listen = ["127.0.0.1:0"]
server_name = ["*.deeper.wild.test", "www.wild.test"]
access_log = "off"
[[server.location]]
path = "/"
return = { status = 200, body = "deeper" }

[[server]]
listen = ["127.0.0.1:0"]
access_log = "off"
[[server.location]]
path = "/"
return = { status = 200, body = "default" }
"#;

#[test]
fn server_chosen_by_exact_name_wildcard_then_default() {
    let p = Proxy::start(&config(VHOSTS));
    for (host, want) in [
        ("exact.test", "exact"),
        ("EXACT.Test", "exact"),
        ("exact.test:8080", "exact"),
        ("a.wild.test", "wild"),
        ("a.b.wild.test", "wild"),
        // An exact name beats a wildcard; the longest wildcard wins.
        ("www.wild.test", "deeper"),
        ("x.deeper.wild.test", "deeper"),
        // A wildcard needs at least one label in front of it.
        ("wild.test", "default"),
        ("notexact.test", "default"),
        ("unknown.example", "default"),
    ] {
        let r = host_get(&p, 0, host, "/");
        assert_eq!((r.status, r.text().as_str()), (200, want), "Host: {host}");
    }
    // No Host at all (HTTP/1.0): the default server.
    let r = p.send("GET / HTTP/1.0\r\n\r\n");
    assert_eq!(r.text(), "default");
    // The authority of an absolute-form target counts as the host.
    let r = p.send("GET http://exact.test/ HTTP/1.1\r\nHost: other.test\r\n\r\n");
    assert_eq!(r.text(), "exact");
}

#[test]
fn each_listen_address_has_its_own_default_server() {
    let p = Proxy::start(&config(
        r#"
[[server]]
listen = ["127.0.0.1:0", "127.0.0.2:0"]
server_name = ["named.test"]
access_log = "off"
[[server.location]]
path = "/"
return = { status = 200, body = "named" }

[[server]]
listen = ["127.0.0.1:0"]
access_log = "off"
[[server.location]]
path = "/"
return = { status = 200, body = "default-1" }

[[server]]
listen = ["127.0.0.2:0"]
access_log = "off"
[[server.location]]
path = "/"
return = { status = 200, body = "default-2" }
"#,
    ));
    assert_eq!(p.addrs().len(), 2);
    assert_eq!(host_get(&p, 0, "named.test", "/").text(), "named");
    assert_eq!(host_get(&p, 1, "named.test", "/").text(), "named");
    assert_eq!(host_get(&p, 0, "other.test", "/").text(), "default-1");
    assert_eq!(host_get(&p, 1, "other.test", "/").text(), "default-2");
}

#[test]
fn longest_prefix_wins_and_no_match_is_404() {
    let backend = Backend::echo_target();
    let p = Proxy::start(&config(&format!(
        r#"
[[server]]
listen = ["127.0.0.1:0"]
access_log = "off"
[[server.location]]
path = "/a/"
return = {{ status = 200, body = "a" }}
[[server.location]]
path = "/a/b/"
return = {{ status = 200, body = "ab" }}
[[server.location]]
path = "/a/b/c"
proxy_pass = "http://{}"
"#,
        backend.addr
    )));
    assert_eq!(p.get("/a/b/x").text(), "ab");
    assert_eq!(p.get("/a/x").text(), "a");
    assert_eq!(p.get("/a/b/cde?q").text(), "/a/b/cde?q");
    // Prefixes are matched as written: "/a" is not under "/a/".
    let r = p.get("/a");
    assert_eq!(r.status, 404);
    let r = p.get("/zzz");
    assert_eq!(r.status, 404);
    assert_eq!(r.text(), "404 Not Found\n");
    assert_eq!(backend.seen().len(), 1, "only /a/b/cde reached the backend");
}

#[test]
fn not_found_keeps_the_connection() {
    let p = Proxy::start(&config(
        r#"
[[server]]
listen = ["127.0.0.1:0"]
access_log = "off"
[[server.location]]
path = "/only/"
return = { status = 200, body = "only" }
"#,
    ));
    let mut c = p.client();
    assert_eq!(c.get("/nothing").status, 404);
    assert_eq!(c.get("/only/x").text(), "only");
}

#[test]
fn return_locations_answer_directly() {
    let p = Proxy::start(&config(
        r#"
[[server]]
listen = ["127.0.0.1:0"]
access_log = "off"
[[server.location]]
path = "/"
return = { status = 200, body = "Welcome to ringway\n" }
[[server.location]]
path = "/old/"
return = { status = 301, location = "https://example.org/new/" }
[[server.location]]
path = "/temp"
return = { status = 307, location = "/elsewhere", body = "moved" }
[[server.location]]
path = "/down"
return = { status = 503, body = "maintenance\n" }
"#,
    ));
    let r = p.get("/");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "Welcome to ringway\n");
    assert_eq!(r.header("content-length"), Some("19"));

    let r = p.get("/old/page");
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("https://example.org/new/"));
    assert_eq!(r.body, b"");

    let r = p.get("/temp");
    assert_eq!(r.status, 307);
    assert_eq!(r.header("location"), Some("/elsewhere"));
    assert_eq!(r.text(), "moved");

    let r = p.get("/down");
    assert_eq!(r.status, 503);
    assert_eq!(r.text(), "maintenance\n");

    // HEAD: the same head, no body, and the connection stays in step.
    let mut c = p.client();
    c.send("HEAD / HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.response_to_head();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("19"));
    assert_eq!(c.get("/down").status, 503);
}

fn api_proxy(backend: &Backend, pass_path: &str) -> Proxy {
    Proxy::start(&config(&format!(
        r#"
[[server]]
listen = ["127.0.0.1:0"]
access_log = "off"
[[server.location]]
path = "/api/"
proxy_pass = "http://{}{pass_path}"
[[server.location]]
path = "/admin"
proxy_pass = "http://{}"
[[server.location]]
path = "/"
return = {{ status = 200, body = "root" }}
"#,
        backend.addr, backend.addr
    )))
}

#[test]
fn proxy_pass_path_replaces_the_matched_prefix() {
    let backend = Backend::echo_target();
    let p = api_proxy(&backend, "/v2/");
    for (sent, upstream) in [
        ("/api/users?x=1", "/v2/users?x=1"),
        ("/api/", "/v2/"),
        ("/api/a/b/c.json", "/v2/a/b/c.json"),
        ("/api/users?next=/api/x", "/v2/users?next=/api/x"),
    ] {
        let r = p.get(sent);
        assert_eq!(r.status, 200, "{sent}");
        assert_eq!(r.text(), upstream, "{sent}");
    }
    let targets: Vec<String> = backend.seen().iter().map(|s| s.target().to_string()).collect();
    assert_eq!(
        targets,
        ["/v2/users?x=1", "/v2/", "/v2/a/b/c.json", "/v2/users?next=/api/x"]
    );
}

#[test]
fn proxy_pass_through_a_named_upstream_replaces_the_prefix() {
    let backend = Backend::echo_target();
    let p = Proxy::start(&config(&format!(
        r#"
[[upstream]]
name = "app"
servers = ["{}"]

[[server]]
listen = ["127.0.0.1:0"]
access_log = "off"
[[server.location]]
path = "/api/"
proxy_pass = "http://app/v2/"
"#,
        backend.addr
    )));
    assert_eq!(p.get("/api/users?x=1").text(), "/v2/users?x=1");
}

#[test]
fn proxy_pass_without_path_passes_the_uri_unchanged() {
    let backend = Backend::echo_target();
    let p = api_proxy(&backend, "");
    for uri in ["/api/users?x=1&y=%2F", "/api/a%20b/", "/api/?", "/admin/x?q=1"] {
        let r = p.get(uri);
        assert_eq!(r.text(), uri, "{uri}");
    }
}

#[test]
fn an_absolute_form_target_is_sent_in_origin_form() {
    let backend = Backend::echo_target();
    let p = api_proxy(&backend, "/v2/");
    let r = p.send("GET http://public.test/api/users?x=1 HTTP/1.1\r\nHost: public.test\r\n\r\n");
    assert_eq!(r.text(), "/v2/users?x=1");
    let r = p.send("GET http://public.test/admin/x HTTP/1.1\r\nHost: public.test\r\n\r\n");
    assert_eq!(r.text(), "/admin/x");
    let seen = backend.seen();
    assert_eq!(seen[1].header("host"), Some("public.test"));
}

#[test]
fn dot_segments_are_resolved_before_routing() {
    let backend = Backend::echo_target();
    let p = api_proxy(&backend, "/v2/");
    // Routed to /admin (not /api/), and sent as /admin.
    let r = p.get("/api/../admin");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "/admin");
    let r = p.get("/api/./x/../users?q=1");
    assert_eq!(r.text(), "/v2/users?q=1");
    let r = p.get("/x/../api/y");
    assert_eq!(r.text(), "/v2/y");
    let targets: Vec<String> = backend.seen().iter().map(|s| s.target().to_string()).collect();
    assert_eq!(targets, ["/admin", "/v2/users?q=1", "/v2/y"]);
}

#[test]
fn a_path_above_the_root_is_refused() {
    let backend = Backend::echo_target();
    let p = api_proxy(&backend, "/v2/");
    for path in ["/..", "/../admin", "/api/../../etc/passwd", "/api/x/../../.."] {
        let mut c = p.client();
        let r = c.get(path);
        assert_eq!(r.status, 400, "{path}");
        assert!(r.says_close(), "{path}: a refused request closes the connection");
        c.expect_closed();
    }
    backend.assert_untouched("paths above the root");
}

#[test]
fn requests_spread_over_weighted_servers() {
    let a = Backend::serve(|_| Reply::ok("a"));
    let b = Backend::serve(|_| Reply::ok("b"));
    let p = Proxy::start(&config(&format!(
        r#"
[[upstream]]
name = "pair"
servers = ["{}", {{ addr = "{}", weight = 2 }}]

[[server]]
listen = ["127.0.0.1:0"]
access_log = "off"
[[server.location]]
path = "/"
proxy_pass = "http://pair"
"#,
        a.addr, b.addr
    )));
    let mut got = String::new();
    for _ in 0..6 {
        got.push_str(&p.get("/").text());
    }
    // One worker, so one balancer: smooth weighted round robin.
    assert_eq!(got.matches('a').count(), 2, "{got}");
    assert_eq!(got.matches('b').count(), 4, "{got}");
    assert!(!got.contains("bbb"), "smooth: never three b in a row: {got}");
}

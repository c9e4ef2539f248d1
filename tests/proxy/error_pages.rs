//! `error_pages` and `intercept_errors`: a request that ends in an error
//! status is handed, once, to a page on disk or a named location, over
//! HTTP/1.1 and HTTP/2; upstream errors only when the location asks.

use crate::static_files::Site;
use crate::support::peers::curl;
use crate::support::*;

fn pages() -> Site {
    let s = Site::new("errors");
    s.file("errors/404.html", "<h1>our 404</h1>");
    s.file("errors/500.html", "<h1>our 500</h1>");
    s.file("errors/own.html", "<h1>own page</h1>");
    s.file("site/index.html", "home");
    s.dir("site/locked");
    s
}

/// A server with a site, its error pages, a dead upstream with a named
/// fallback, and a live upstream whose errors are intercepted on one path.
fn proxy(s: &Site, live: &Backend, fallback: &Backend) -> Proxy {
    Proxy::start(&config(&format!(
        r#"
[[server]]
listen = ["127.0.0.1:0"]
access_log = "off"
h2c = true
error_pages = {{ "404" = "/errors/404.html", "500 502" = "/errors/500.html" }}

[[server.location]]
path = "/errors/"
root = {root:?}

[[server.location]]
path = "/own/"
root = {site:?}
error_pages = {{ "404" = "/errors/own.html" }}

[[server.location]]
path = "/broken/"
root = {site:?}
error_pages = {{ "403 404" = "/errors/missing-page.html" }}

[[server.location]]
path = "/dead/"
proxy_pass = "http://{dead}"
error_pages = {{ "502 503 504" = "@fallback" }}

[[server.location]]
path = "/sorry/"
proxy_pass = "http://{dead}"
error_pages = {{ "502" = "@sorry" }}

[[server.location]]
name = "fallback"
proxy_pass = "http://{fallback}"

[[server.location]]
name = "sorry"
return = {{ status = 503, body = "down for maintenance" }}

[[server.location]]
path = "/caught/"
proxy_pass = "http://{live}"
intercept_errors = true
error_pages = {{ "404" = "/errors/404.html", "500" = "/errors/500.html" }}

[[server.location]]
path = "/passed/"
proxy_pass = "http://{live}"

[[server.location]]
path = "/"
root = {site:?}
"#,
        root = s.0.display().to_string(),
        site = s.path("site"),
        dead = closed_port(),
        live = live.addr,
        fallback = fallback.addr,
    )))
}

fn live() -> Backend {
    Backend::serve(|seen| match seen.target() {
        t if t.ends_with("/boom") => Reply::new(500).body("upstream 500 body"),
        t if t.ends_with("/gone") => Reply::new(404).body("upstream 404 body"),
        t if t.ends_with("/teapot") => Reply::new(418).body("upstream 418 body"),
        _ => Reply::ok("upstream ok"),
    })
}

fn fallback() -> Backend {
    Backend::serve(|seen| Reply::ok(format!("fallback saw {} {}", seen.method(), seen.target())))
}

#[test]
fn a_missing_file_gets_the_servers_page_with_its_status() {
    let s = pages();
    let (l, f) = (live(), fallback());
    let p = proxy(&s, &l, &f);
    let r = p.get("/nothing-here");
    assert_eq!(r.status, 404);
    assert_eq!(r.text(), "<h1>our 404</h1>");
    assert_eq!(r.header("content-type"), Some("text/html"));
    // The connection stays usable after an error page.
    let mut c = p.client();
    assert_eq!(c.get("/nope").status, 404);
    assert_eq!(c.get("/").text(), "home");
    // Over HTTP/2 alike.
    let r = curl(
        &["--http2-prior-knowledge", "-w", " %{http_code}"],
        &format!("http://{}/nothing-here", p.addr()),
    );
    assert_eq!(r.stdout, "<h1>our 404</h1> 404", "{}", r.stderr);
}

#[test]
fn a_locations_pages_replace_the_servers() {
    let s = pages();
    let (l, f) = (live(), fallback());
    let p = proxy(&s, &l, &f);
    let r = p.get("/own/nothing");
    assert_eq!((r.status, r.text().as_str()), (404, "<h1>own page</h1>"));
}

#[test]
fn an_error_page_that_fails_itself_gets_the_built_in_page() {
    let s = pages();
    let (l, f) = (live(), fallback());
    let p = proxy(&s, &l, &f);
    // The page is missing: no second page, no loop; the built-in answer.
    let r = p.get("/broken/nothing");
    assert_eq!(r.status, 404, "{}", r.text());
    assert!(!r.text().contains("our 404"), "{}", r.text());
    assert!(r.text().contains("404"), "{}", r.text());
    // The connection is still good.
    let mut c = p.client();
    assert_eq!(c.get("/broken/nothing").status, 404);
    assert_eq!(c.get("/").status, 200);
}

#[test]
fn an_unreachable_upstream_falls_back_to_a_named_location() {
    let s = pages();
    let (l, f) = (live(), fallback());
    let p = proxy(&s, &l, &f);
    // A named proxy location gets the request as it was: method and URI.
    let r = p.get("/dead/items?page=2");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "fallback saw GET /dead/items?page=2");
    // A named return location answers with its own status and body.
    let r = p.get("/sorry/x");
    assert_eq!((r.status, r.text().as_str()), (503, "down for maintenance"));
    let r = curl(
        &["--http2-prior-knowledge", "-w", " %{http_code}"],
        &format!("http://{}/sorry/x", p.addr()),
    );
    assert_eq!(r.stdout, "down for maintenance 503", "{}", r.stderr);
}

#[test]
fn a_request_with_a_body_is_not_sent_again_to_a_named_proxy_location() {
    let s = pages();
    let (l, f) = (live(), fallback());
    let p = proxy(&s, &l, &f);
    let r = p.send("POST /dead/form HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello");
    assert_eq!(r.status, 502);
    f.assert_untouched("a request body that may be partly gone");
}

#[test]
fn upstream_errors_are_replaced_only_with_intercept_errors() {
    let s = pages();
    let (l, f) = (live(), fallback());
    let p = proxy(&s, &l, &f);
    let r = p.get("/caught/boom");
    assert_eq!((r.status, r.text().as_str()), (500, "<h1>our 500</h1>"));
    let r = p.get("/caught/gone");
    assert_eq!((r.status, r.text().as_str()), (404, "<h1>our 404</h1>"));
    // A status without a page passes as the upstream sent it.
    let r = p.get("/caught/teapot");
    assert_eq!((r.status, r.text().as_str()), (418, "upstream 418 body"));
    assert_eq!(p.get("/caught/fine").text(), "upstream ok");
    // Without intercept_errors, the upstream's own error reaches the client
    // even where the server has a page for its status.
    let r = p.get("/passed/boom");
    assert_eq!((r.status, r.text().as_str()), (500, "upstream 500 body"));
    let r = curl(
        &["--http2-prior-knowledge", "-w", " %{http_code}"],
        &format!("http://{}/caught/boom", p.addr()),
    );
    assert_eq!(r.stdout, "<h1>our 500</h1> 500", "{}", r.stderr);
}

#[test]
fn error_page_mistakes_are_refused_with_positions() {
    use crate::cli::{position, ringway, run_bounded, text};
    let cfg = r#"[[server]]
listen = ["127.0.0.1:0"]
error_pages = { "404" = "errors/404.html" }

[[server.location]]
path = "/a/"
return = { status = 200 }
error_pages = { "200" = "/ok.html" }

[[server.location]]
path = "/b/"
return = { status = 200 }
error_pages = { "404" = "/x.html", "403 404" = "/y.html" }

[[server.location]]
path = "/c/"
return = { status = 200 }
intercept_errors = true

[[server.location]]
path = "/d/"
return = { status = 200 }
error_pages = { "502" = "@ghost" }
"#;
    let f = TempFile::with_text("pages.toml", cfg);
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
            "{}server[0].error_pages.\"404\": a path (\"/errors/50x.html\") or a named location",
            at("\"errors/404.html\"")
        ),
        format!(
            "{}server[0].location[0].error_pages.\"200\": \"200\" is not a status from 300 to 599",
            at("{ \"200\"")
        ),
        format!(
            "{}server[0].location[1].error_pages.\"404\": status 404 has two pages",
            at("\"/x.html\"")
        ),
        format!(
            "{}server[0].location[2].intercept_errors: only applies with proxy_pass",
            at("true\n")
        ),
        format!("{}server[0]: no location has name = \"ghost\"", at("\"@ghost\"")),
    ];
    let lines: Vec<&str> = stderr.lines().collect();
    for want in &expected {
        assert!(
            lines.iter().any(|l| l.starts_with(want.as_str())),
            "no line starts with {want:?}; stderr:\n{stderr}"
        );
    }
    assert!(
        stderr.contains(&format!("test failed ({} errors)", expected.len())),
        "{stderr}"
    );
}

//! `rewrite` rules with nginx's flags, at server and location level: where
//! the new URI is routed, what reaches the backend, the query string kept
//! or dropped, redirects, and the loop that ends in a 500. The same rules
//! were run by hand through nginx 1.22 (`rewrite ... last|break|redirect|
//! permanent`, `absolute_redirect off`), which gave the same answers.

use crate::support::peers::curl;
use crate::support::*;

fn rewrite_proxy(backend: &Backend) -> Proxy {
    Proxy::start(&config(&format!(
        r#"
[[server]]
listen = ["127.0.0.1:0"]
access_log = "off"
h2c = true
rewrite = [
  {{ from = "^/old/(.*)$", to = "/new/$1", flag = "last" }},
  {{ from = "^/gone/(.*)$", to = "/new/$1?", flag = "last" }},
  {{ from = "^/moved/(.*)$", to = "/new/$1", flag = "permanent" }},
  {{ from = "^/tmp/(.*)$", to = "/new/$1?via=tmp", flag = "redirect" }},
  {{ from = "^/ext/(.*)$", to = "https://other.test/$1" }},
]

[[server.location]]
path = "/new/"
proxy_pass = "http://{b}/v2/"

[[server.location]]
path = "/brk/"
rewrite = [{{ from = "^/brk/(.*)$", to = "/new/$1", flag = "break" }}]
proxy_pass = "http://{b}/ignored/"

[[server.location]]
path = "/one/"
rewrite = [
  {{ from = "^/one/(.*)$", to = "/two/$1" }},
  {{ from = "^/two/(.*)$", to = "/three/$1?step=2" }},
]
proxy_pass = "http://{b}"

[[server.location]]
path = "/three/"
return = {{ status = 200, body = "three $uri $args" }}

[[server.location]]
path = "/h/"
rewrite = [{{ from = "^/h/(x*)$", to = "/h/$1x", flag = "last" }}]
return = {{ status = 200, body = "h" }}

[[server.location]]
regex = "^/h/x{{10}}$"
return = {{ status = 200, body = "ten rewrites" }}

[[server.location]]
path = "/k/"
rewrite = [{{ from = "^/k/(x*)$", to = "/k/$1x", flag = "last" }}]
return = {{ status = 200, body = "k" }}

[[server.location]]
regex = "^/k/x{{11}}$"
return = {{ status = 200, body = "eleven: ten rewrites" }}

[[server.location]]
path = "/loop"
rewrite = [{{ from = "^/loop", to = "/loop", flag = "last" }}]
return = {{ status = 200, body = "never" }}
"#,
        b = backend.addr
    )))
}

#[test]
fn last_routes_the_new_uri_and_keeps_the_query() {
    let b = Backend::echo_target();
    let p = rewrite_proxy(&b);
    // Routed to /new/, whose proxy_pass replaces its prefix.
    assert_eq!(p.get("/old/a/b?q=1&r=2").text(), "/v2/a/b?q=1&r=2");
    // `to` ending in `?`: the query is dropped.
    assert_eq!(p.get("/gone/x?q=1").text(), "/v2/x");
    assert_eq!(b.seen().len(), 2);
}

#[test]
fn break_stays_in_the_location_and_sends_the_new_uri_as_it_is() {
    let b = Backend::echo_target();
    let p = rewrite_proxy(&b);
    // Not routed to /new/: the changed URI goes upstream whole (nginx's rule).
    assert_eq!(p.get("/brk/z?k=v").text(), "/new/z?k=v");
    assert_eq!(b.only_request().target(), "/new/z?k=v");
}

#[test]
fn rules_without_a_flag_chain_then_route_again() {
    let b = Backend::echo_target();
    let p = rewrite_proxy(&b);
    // Rule 2 saw rule 1's URI; `to`'s own query comes first, then the request's.
    let r = p.get("/one/p%20q?a=1");
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "three /three/p q step=2&a=1")
    );
    b.assert_untouched("the rules sent it on to a return location");
}

#[test]
fn redirect_and_permanent_flags_and_urls_redirect() {
    let b = Backend::echo_target();
    let p = rewrite_proxy(&b);
    let r = p.get("/moved/a?x=1");
    assert_eq!((r.status, r.header("location")), (301, Some("/new/a?x=1")));
    let r = p.get("/tmp/a?x=1");
    assert_eq!(
        (r.status, r.header("location")),
        (302, Some("/new/a?via=tmp&x=1"))
    );
    // A URL redirects without a flag, with a 302.
    let r = p.get("/ext/p?x=1");
    assert_eq!(
        (r.status, r.header("location")),
        (302, Some("https://other.test/p?x=1"))
    );
    b.assert_untouched("redirects");
}

#[test]
fn ten_rewrites_are_allowed_and_the_eleventh_is_a_500() {
    let b = Backend::echo_target();
    let p = rewrite_proxy(&b);
    let r = p.get("/h/");
    assert_eq!((r.status, r.text().as_str()), (200, "ten rewrites"));
    // Nine from here: still within the limit.
    assert_eq!(p.get("/h/x").text(), "ten rewrites");
    // Eleven needed: over it.
    assert_eq!(p.get("/k/").status, 500);
    assert_eq!(p.get("/k/x").text(), "eleven: ten rewrites");
    let r = p.get("/loop");
    assert_eq!(r.status, 500);
    assert!(!r.text().contains("never"));
    // As every internal error, it closes the connection; the next is served.
    assert!(r.says_close());
    assert_eq!(p.get("/three/").status, 200);
}

#[test]
fn rewrites_work_alike_over_http2() {
    let b = Backend::echo_target();
    let p = rewrite_proxy(&b);
    let url = |path: &str| format!("http://{}{path}", p.addr());
    let r = curl(&["--http2-prior-knowledge"], &url("/old/h2?q=1"));
    assert_eq!(r.stdout, "/v2/h2?q=1", "{}", r.stderr);
    let r = curl(
        &[
            "--http2-prior-knowledge",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{redirect_url}",
        ],
        &url("/moved/a?x=1"),
    );
    assert_eq!(r.stdout, format!("301 {}", url("/new/a?x=1")), "{}", r.stderr);
    let r = curl(&["--http2-prior-knowledge", "-w", " %{http_code}"], &url("/loop"));
    assert!(r.stdout.ends_with(" 500"), "{}", r.stdout);
    let r = curl(&["--http2-prior-knowledge"], &url("/one/x"));
    assert_eq!(r.stdout, "three /three/x step=2");
}

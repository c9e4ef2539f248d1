//! IP rules (nginx's `allow`/`deny`): both ways of writing them, a
//! location's rules replacing its server block's, the client address after
//! `trusted_proxies` (IPv4-mapped IPv6 taken as IPv4), 403 over HTTP/1.1
//! and HTTP/2 with nothing sent upstream, and the config refusals.

use crate::support::peers::curl;
use crate::support::*;

fn get_as(p: &Proxy, path: &str, xff: Option<&str>) -> Response {
    let xff = xff.map_or(String::new(), |a| format!("X-Forwarded-For: {a}\r\n"));
    p.send(format!("GET {path} HTTP/1.1\r\nHost: t\r\n{xff}\r\n"))
}

#[test]
fn ip_rules_allow_deny_lists_and_the_ordered_form() {
    let backend = Backend::echo_target();
    let cfg = config(&format!(
        r#"
[[server]]
listen = ["127.0.0.1:0"]
access_log = "off"
h2c = true
allow = ["10.0.0.0/8", "2001:db8::/32"]
deny = ["all"]

[[server.location]]
path = "/"
proxy_pass = "http://{b}"

[[server.location]]
path = "/mine/"
allow = ["127.0.0.1"]
deny = ["all"]
return = {{ status = 200, body = "mine" }}

[[server.location]]
path = "/ordered/"
access = [{{ deny = "127.0.0.1" }}, {{ allow = "127.0.0.0/8" }}, {{ deny = "all" }}]
return = {{ status = 200, body = "ordered" }}

[[server.location]]
path = "/ordered2/"
access = [{{ allow = "127.0.0.0/8" }}, {{ deny = "127.0.0.1" }}]
return = {{ status = 200, body = "ordered2" }}

[[server.location]]
path = "/open/"
deny = ["192.0.2.0/24"]
return = {{ status = 200, body = "open" }}

[[server.location]]
path = "/empty/"
allow = []
return = {{ status = 200, body = "empty" }}
"#,
        b = backend.addr
    ));
    let p = Proxy::start(&cfg);
    // The block's rules: 127.0.0.1 is in neither allowed network.
    let r = p.get("/x");
    assert_eq!(r.status, 403, "{}", r.head_text());
    backend.assert_untouched("a request refused by the IP rules");
    // A location's rules replace the block's.
    assert_eq!(p.get("/mine/a").text(), "mine");
    // The ordered form: first match wins.
    assert_eq!(p.get("/ordered/a").status, 403);
    assert_eq!(p.get("/ordered2/a").text(), "ordered2");
    // No match allows; an empty list replaces the block's with nothing.
    assert_eq!(p.get("/open/a").text(), "open");
    assert_eq!(p.get("/empty/a").text(), "empty");

    // HTTP/2 is refused alike.
    let out = curl(
        &["--http2-prior-knowledge", "-i"],
        &format!("http://{}/x", p.addr()),
    );
    assert!(
        out.stdout.starts_with("HTTP/2 403"),
        "{}{}",
        out.stdout,
        out.stderr
    );
    let out = curl(
        &["--http2-prior-knowledge", "-i"],
        &format!("http://{}/mine/", p.addr()),
    );
    assert!(
        out.stdout.starts_with("HTTP/2 200"),
        "{}{}",
        out.stdout,
        out.stderr
    );
    backend.assert_untouched("HTTP/2 requests refused by the IP rules");
}

#[test]
fn ip_rules_judge_the_address_after_trusted_proxies() {
    let backend = Backend::echo_target();
    let cfg = config(&format!(
        r#"trusted_proxies = ["127.0.0.1"]

[[server]]
listen = ["127.0.0.1:0"]
access_log = "off"
allow = ["192.0.2.0/24"]
deny = ["all"]

[[server.location]]
path = "/"
proxy_pass = "http://{b}"
"#,
        b = backend.addr
    ));
    let p = Proxy::start(&cfg);
    assert_eq!(get_as(&p, "/a", Some("192.0.2.7")).status, 200);
    // An IPv4-mapped IPv6 address is the IPv4 address.
    assert_eq!(get_as(&p, "/b", Some("::ffff:192.0.2.8")).status, 200);
    assert_eq!(get_as(&p, "/c", Some("198.51.100.1")).status, 403);
    // Without the field, the peer itself (127.0.0.1) is judged.
    assert_eq!(get_as(&p, "/d", None).status, 403);
    // A hop the proxy does not trust is not believed: the address before
    // it is not what is judged.
    assert_eq!(get_as(&p, "/e", Some("192.0.2.7, 198.51.100.1")).status, 403);
    let seen: Vec<String> = backend.seen().iter().map(|s| s.target().to_string()).collect();
    assert_eq!(seen, ["/a", "/b"]);
}

#[test]
fn ip_rule_config_refusals_say_where() {
    let cfg = r#"[[server]]
listen = ["127.0.0.1:1"]
allow = ["10.0.0.0/8"]
access = [{ deny = "all" }]

[[server.location]]
path = "/a/"
deny = ["10.0.0.1/8", "nowhere"]
return = { status = 200 }

[[server.location]]
path = "/b/"
access = [{ allow = "10.0.0.0/8", deny = "all" }, { alow = "1.2.3.4" }]
return = { status = 200 }
"#;
    let e = ringway::config::Config::parse(cfg, std::path::Path::new("ip.toml"))
        .unwrap_err()
        .to_string();
    let at = |needle: &str| {
        let (l, c) = super::cli::position(cfg, needle);
        format!("ip.toml:{l}:{c}: ")
    };
    for (pos, want) in [
        (
            at("[\"10.0.0.0/8\"]"),
            "server[0].allow: a block has `allow`/`deny` lists or the ordered `access = [...]`, not both",
        ),
        (
            at("\"10.0.0.1/8\""),
            "server[0].location[0].deny[0]: \"10.0.0.1/8\" has bits set past its prefix: write the network \"10.0.0.0/8\"",
        ),
        (
            at("\"nowhere\""),
            "server[0].location[0].deny[1]: \"nowhere\" is not an address or network",
        ),
        (
            at("{ allow = \"10.0.0.0/8\", deny"),
            "server[0].location[1].access[0]: each entry is `{ allow = \"...\" }` or `{ deny = \"...\" }`, one key",
        ),
        (
            at("alow"),
            "server[0].location[1].access[1].alow: unknown key `alow`; did you mean `allow`?",
        ),
    ] {
        let line = format!("{pos}{want}");
        assert!(
            e.lines().any(|l| l.starts_with(&line)),
            "no line starts with {line:?}:\n{e}"
        );
    }
}

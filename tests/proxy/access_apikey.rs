//! `auth = { api_key = ... }`: keys in a header or a query parameter, over
//! HTTP/1.1 and HTTP/2; a missing, unknown or doubled key a 401 with the
//! challenge and nothing sent upstream; the key never forwarded (the
//! backend reports what it got) and its name sent as `X-Consumer`, whatever
//! the client sent under that name; the config refusals.

use crate::support::peers::curl;
use crate::support::*;

const KEYS: &str = "# partners\nacme:k-123\n\nglobex: k-456\n";

fn apikey_proxy(backend: &Backend, keys: &TempFile) -> Proxy {
    let k = keys.path().display();
    Proxy::start(&config(&format!(
        r#"
[[server]]
listen = ["127.0.0.1:0"]
access_log = "off"
h2c = true

[[server.location]]
path = "/h/"
auth = {{ api_key = {{ header = "X-API-Key", keys_file = "{k}" }} }}
proxy_pass = "http://{b}"

[[server.location]]
path = "/q/"
auth = {{ api_key = {{ query = "api_key", keys_file = "{k}" }} }}
proxy_pass = "http://{b}"

[[server.location]]
path = "/r/"
auth = {{ api_key = {{ header = "X-API-Key", keys_file = "{k}" }} }}
return = {{ status = 200, body = "local" }}
"#,
        b = backend.addr
    )))
}

fn get(p: &Proxy, target: &str, fields: &str) -> Response {
    p.send(format!("GET {target} HTTP/1.1\r\nHost: t\r\n{fields}\r\n"))
}

#[test]
fn api_keys_in_a_header_refused_forwarded_and_stripped() {
    let keys = TempFile::with_text("keys.txt", KEYS);
    let backend = Backend::echo_target();
    let p = apikey_proxy(&backend, &keys);
    for fields in [
        "",
        "X-API-Key: k-999\r\n",
        "X-API-Key: \r\n",
        "X-API-Key: K-123\r\n",
        "X-API-Key: k-12\r\n",
        "X-API-Key: k-123\r\nX-API-Key: k-123\r\n",
        // The right key in the wrong place.
        "Authorization: Bearer k-123\r\n",
    ] {
        let r = get(&p, "/h/a", fields);
        assert_eq!(r.status, 401, "{fields:?}: {}", r.head_text());
        assert_eq!(
            r.header("WWW-Authenticate"),
            Some("ApiKey header=\"X-API-Key\""),
            "{fields:?}"
        );
    }
    assert_eq!(get(&p, "/r/", "").status, 401);
    backend.assert_untouched("requests without a known key");

    // A known key: the backend gets the name, never the key, and not the
    // client's own X-Consumer.
    let r = get(
        &p,
        "/h/a?x=1",
        "x-api-key: k-456\r\nX-Consumer: admin\r\nx-consumer: root\r\n",
    );
    assert_eq!(r.status, 200, "{}", r.head_text());
    assert_eq!(r.text(), "/h/a?x=1");
    let seen = backend.only_request();
    assert_eq!(seen.all("X-Consumer"), ["globex"], "{}", seen.head_text());
    assert!(!seen.has("X-API-Key"), "{}", seen.head_text());
    assert_eq!(get(&p, "/r/", "X-API-Key: k-123\r\n").text(), "local");

    // HTTP/2 alike.
    let url = format!("http://{}/h/two", p.addr());
    let out = curl(
        &[
            "--http2-prior-knowledge",
            "-i",
            "-H",
            "X-API-Key: k-123",
            "-H",
            "X-Consumer: evil",
        ],
        &url,
    );
    assert!(
        out.stdout.starts_with("HTTP/2 200"),
        "{}{}",
        out.stdout,
        out.stderr
    );
    let seen = backend.wait_requests(2).pop().unwrap();
    assert_eq!(seen.all("X-Consumer"), ["acme"], "{}", seen.head_text());
    assert!(!seen.has("X-API-Key"), "{}", seen.head_text());
    let out = curl(&["--http2-prior-knowledge", "-i", "-H", "X-API-Key: nope"], &url);
    assert!(
        out.stdout.starts_with("HTTP/2 401"),
        "{}{}",
        out.stdout,
        out.stderr
    );
    assert_eq!(backend.seen().len(), 2);
}

#[test]
fn api_keys_in_the_query_are_cut_from_the_upstream_target() {
    let keys = TempFile::with_text("keys-q.txt", KEYS);
    let backend = Backend::echo_target();
    let p = apikey_proxy(&backend, &keys);
    for target in [
        "/q/a",
        "/q/a?api_key=",
        "/q/a?api_key=k-999",
        "/q/a?api_keys=k-123",
        "/q/a?api_key=k-123&api_key=k-123",
    ] {
        let r = get(&p, target, "");
        assert_eq!(r.status, 401, "{target}");
        assert_eq!(r.header("WWW-Authenticate"), Some("ApiKey query=\"api_key\""));
    }
    // The key in a header does not count for a query location.
    assert_eq!(get(&p, "/q/a", "api_key: k-123\r\n").status, 401);
    backend.assert_untouched("requests without a known key");

    for (target, upstream) in [
        ("/q/a?x=1&api_key=k-123&y=2", "/q/a?x=1&y=2"),
        ("/q/a?api_key=k-456", "/q/a"),
        ("/q/b?api_key=k-123&z", "/q/b?z"),
    ] {
        let r = get(&p, target, "X-Consumer: spoofed\r\n");
        assert_eq!(r.status, 200, "{target}");
        assert_eq!(r.text(), upstream, "{target}");
    }
    let seen = backend.seen();
    assert_eq!(seen.len(), 3);
    let consumers: Vec<Vec<&str>> = seen.iter().map(|s| s.all("X-Consumer")).collect();
    assert_eq!(consumers, [vec!["acme"], vec!["globex"], vec!["acme"]]);
}

#[test]
fn api_key_config_refusals() {
    let keys = TempFile::with_text("keys-bad.txt", "acme:k-1\nacme:k-2\nglobex:k-1\nno-colon\n");
    let good = TempFile::with_text("keys-good.txt", "acme:k-1\n");
    let cfg = format!(
        r#"[[server]]
listen = ["127.0.0.1:1"]

[[server.location]]
path = "/a/"
auth = {{ api_key = {{ header = "X-API-Key", keys_file = "{bad}" }} }}
return = {{ status = 200 }}

[[server.location]]
path = "/b/"
auth = {{ api_key = {{ header = "X-API-Key", query = "k", keys_file = "{good}" }} }}
return = {{ status = 200 }}

[[server.location]]
path = "/c/"
auth = {{ api_key = {{ keys_file = "{good}" }} }}
return = {{ status = 200 }}

[[server.location]]
path = "/d/"
auth = {{ api_key = {{ header = "X API", keys_file = "{good}" }} }}
return = {{ status = 200 }}

[[server.location]]
path = "/e/"
auth = {{ api_key = {{ header = "X-API-Key", keys_file = "{good}" }}, basic = {{ realm = "r", users_file = "{good}" }} }}
return = {{ status = 200 }}

[[server.location]]
path = "/f/"
auth = {{ api_key = {{ heder = "X-API-Key", query = "q", keys_file = "{good}" }} }}
return = {{ status = 200 }}
"#,
        bad = keys.path().display(),
        good = good.path().display()
    );
    let e = ringway::config::Config::parse(&cfg, std::path::Path::new("k.toml"))
        .unwrap_err()
        .to_string();
    let at = |needle: &str| {
        let (l, c) = super::cli::position(&cfg, needle);
        format!("k.toml:{l}:{c}: ")
    };
    let bad = keys.path().display();
    for want in [
        format!("{bad}:2:1: server[0].location[0].auth.api_key.keys_file: the name \"acme\" is given twice"),
        format!("{bad}:3:1: server[0].location[0].auth.api_key.keys_file: the key of \"globex\" is another name's too"),
        format!("{bad}:4:1: server[0].location[0].auth.api_key.keys_file: not a `name:key` line"),
        format!("{}server[0].location[1].auth.api_key.query: give `header` or `query`, not both", at("\"k\"")),
        format!(
            "{}server[0].location[2].auth.api_key: needs `header = \"X-API-Key\"` or `query = \"api_key\"`",
            at(&format!("\"{}\" }} }}\nreturn = {{ status = 200 }}\n\n[[server.location]]\npath = \"/d/\"", good.path().display()))
        ),
        format!("{}server[0].location[3].auth.api_key.header: \"X API\" is not a field name", at("\"X API\"")),
        format!("{}server[0].location[4].auth.basic: a block has one authentication method", at("{ realm = \"r\"")),
        format!("{}server[0].location[5].auth.api_key.heder: unknown key `heder`; did you mean `header`?", at("heder")),
    ] {
        assert!(e.lines().any(|l| l.starts_with(&want)), "no line starts with {want:?}:\n{e}");
    }
}

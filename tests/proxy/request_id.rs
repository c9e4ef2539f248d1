//! `X-Request-ID`: a trusted proxy's valid id is passed on, anyone else's
//! is replaced by a generated one; the backend and the client see the same
//! id, and `$request_id` expands to it. Over HTTP/1.1 and HTTP/2.

use std::collections::HashSet;
use std::net::SocketAddr;

use crate::support::peers::curl;
use crate::support::{self, Backend, Client, Proxy, Reply};

fn is_generated(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn config(backend: SocketAddr, global: &str, server: &str) -> String {
    support::proxy_all(backend, server, "").replacen("[global]\n", &format!("[global]\n{global}\n"), 1)
}

/// One request with `id` as its X-Request-ID (none: no field); what the
/// backend saw and what the client got.
fn exchange(p: &Proxy, b: &Backend, id: Option<&str>) -> (String, String) {
    let field = id.map_or(String::new(), |v| format!("X-Request-ID: {v}\r\n"));
    let before = b.seen().len();
    let r = Client::connect(p.addr()).request(format!("GET / HTTP/1.1\r\nHost: h\r\n{field}\r\n"));
    assert_eq!(r.status, 200);
    let seen = b.wait_requests(before + 1).pop().unwrap();
    assert_eq!(seen.all("x-request-id").len(), 1, "one id upstream");
    assert_eq!(r.all("x-request-id").len(), 1, "one id to the client");
    (
        seen.header("x-request-id").unwrap().to_string(),
        r.header("x-request-id").unwrap().to_string(),
    )
}

#[test]
fn an_untrusted_clients_id_is_replaced() {
    // The backend sends its own id back: the client still gets ours.
    let b = Backend::serve(|_| Reply::ok("x").header("X-Request-ID", "from-backend"));
    let p = Proxy::start(&config(b.addr, "", ""));
    for sent in [Some("mine-1234"), None, Some("")] {
        let (up, down) = exchange(&p, &b, sent);
        assert!(is_generated(&up), "{sent:?}: {up}");
        assert_eq!(up, down);
    }
}

#[test]
fn a_trusted_proxys_valid_id_is_kept_and_an_invalid_one_replaced() {
    let b = Backend::serve(|_| Reply::ok("x"));
    let p = Proxy::start(&config(b.addr, "trusted_proxies = [\"127.0.0.1\"]", ""));
    let (up, down) = exchange(&p, &b, Some("edge-7f3a:9"));
    assert_eq!((up.as_str(), down.as_str()), ("edge-7f3a:9", "edge-7f3a:9"));
    let long = "a".repeat(65);
    for bad in ["has space", "tab\tin", long.as_str(), "caf\u{e9}"] {
        let (up, down) = exchange(&p, &b, Some(bad));
        assert!(is_generated(&up), "{bad:?}: {up}");
        assert_eq!(up, down);
    }
    // 64 characters is the longest kept.
    let max = "b".repeat(64);
    assert_eq!(exchange(&p, &b, Some(&max)).0, max);
}

#[test]
fn generated_ids_are_unique_across_connections_and_two_workers() {
    let b = Backend::serve(|_| Reply::ok("x"));
    let p = Proxy::with_workers(&config(b.addr, "", ""), 2);
    let mut ids = HashSet::new();
    let mut workers = HashSet::new();
    // Many connections, a few requests each: SO_REUSEPORT spreads the
    // connections over both workers.
    for _ in 0..60 {
        let mut c = Client::connect(p.addr());
        for _ in 0..4 {
            let r = c.get("/");
            assert_eq!(r.status, 200);
            let id = r.header("x-request-id").unwrap().to_string();
            assert!(is_generated(&id), "{id}");
            workers.insert(id[16..20].to_string());
            assert!(ids.insert(id.clone()), "{id} twice");
        }
    }
    let upstream: HashSet<String> = b
        .seen()
        .iter()
        .map(|s| s.header("x-request-id").unwrap().to_string())
        .collect();
    assert_eq!(upstream, ids);
    assert_eq!(workers.len(), 2, "{workers:?}");
    // Another start of the proxy: another prefix.
    drop(p);
    let p = Proxy::start(&config(b.addr, "", ""));
    let again = Client::connect(p.addr())
        .get("/")
        .header("x-request-id")
        .unwrap()
        .to_string();
    assert!(ids.iter().all(|i| i[..16] != again[..16]), "{again}");
}

#[test]
fn request_id_is_a_variable() {
    let b = Backend::serve(|_| Reply::ok("x"));
    let p = Proxy::start(&config(
        b.addr,
        "",
        "request_headers = { set = { \"X-Trace-Copy\" = \"id=$request_id\" } }\n\
         response_headers = { add = { \"X-Echo\" = \"$request_id\" } }",
    ));
    let r = Client::connect(p.addr()).get("/");
    let id = r.header("x-request-id").unwrap().to_string();
    assert!(is_generated(&id));
    assert_eq!(r.header("x-echo"), Some(id.as_str()));
    assert_eq!(
        b.only_request().header("x-trace-copy"),
        Some(&*format!("id={id}"))
    );
}

#[test]
fn over_http2_the_id_is_replaced_and_returned() {
    let b = Backend::serve(|_| Reply::ok("x"));
    let p = Proxy::start(&config(b.addr, "", "h2c = true"));
    let r = curl(
        &[
            "--http2-prior-knowledge",
            "-D",
            "-",
            "-o",
            "/dev/null",
            "-H",
            "X-Request-ID: mine",
        ],
        &format!("http://{}/", p.addr()),
    );
    let head = r.stdout.to_ascii_lowercase();
    assert!(head.starts_with("http/2 200"), "{head} {}", r.stderr);
    let id = head
        .lines()
        .find_map(|l| l.strip_prefix("x-request-id: "))
        .unwrap_or_else(|| panic!("no id in {head}"))
        .trim()
        .to_string();
    assert!(is_generated(&id), "{id}");
    assert_eq!(b.only_request().header("x-request-id"), Some(id.as_str()));
}

#[test]
fn request_id_in_a_return_and_an_always_rule() {
    let toml = support::config(
        r#"
[[server]]
listen = ["127.0.0.1:0"]
access_log = "off"

[[server.location]]
path = "/"
return = { status = 200, body = "id=$request_id" }
response_headers = { add = { "X-Id" = "$request_id" }, always = true }
"#,
    );
    let p = Proxy::start(&toml);
    let r = Client::connect(p.addr()).get("/");
    let id = r.header("x-id").expect("the rule's field").to_string();
    assert!(is_generated(&id), "{id}");
    assert_eq!(r.text(), format!("id={id}"));
}

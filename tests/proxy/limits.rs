//! `[[limit]]`: rate limits (nginx's `limit_req`) and connection limits
//! (`limit_conn`) over real sockets, HTTP/1.1 and HTTP/2 (curl), counted
//! against what the clients received and against `/metrics` as parsed by
//! Prometheus's own client; and every config refusal with its position.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::metrics::Scrape;
use crate::support::peers::curl;
use crate::support::*;

/// A config with `limits` (TOML of `[[limit]]` tables) and one server on a
/// port of `listen_port()`, with h2c, whose locations are `locations`, and
/// an admin listener.
pub fn limited(limits: &str, server_extra: &str, locations: &str) -> String {
    config(&format!(
        r#"
{limits}

[[server]]
listen = ["127.0.0.1:{port}"]
access_log = "off"
h2c = true
{server_extra}

{locations}

[admin]
listen = "127.0.0.1:{admin}"
"#,
        port = listen_port(),
        admin = listen_port(),
    ))
}

/// The metric of limit `name` for `outcome`, summed over workers.
pub fn counted(p: &Proxy, name: &str, outcome: &str) -> u64 {
    Scrape::take(p.admin_addr(), false).get(
        "ringway_limit_requests_total",
        &[("limit", name), ("outcome", outcome)],
    ) as u64
}

/// curl over h2c prior knowledge: (status, head and body text).
pub fn h2_get(p: &Proxy, path: &str, headers: &[&str]) -> (u16, String) {
    let mut args = vec!["--http2-prior-knowledge", "-i"];
    for h in headers {
        args.extend(["-H", h]);
    }
    let out = curl(&args, &format!("http://{}{path}", p.addr()));
    assert_eq!(out.status, Some(0), "curl: {}", out.stderr);
    assert!(out.stdout.starts_with("HTTP/2 "), "{}", out.stdout);
    (out.stdout[7..10].parse().unwrap(), out.stdout)
}

#[test]
fn a_flood_from_one_address_gets_the_rate_across_two_workers() {
    let cfg = limited(
        r#"[[limit]]
name = "per_ip"
key = "$remote_addr"
rate = "100r/s"
burst = 50
nodelay = true"#,
        "",
        r#"[[server.location]]
path = "/"
limits = ["per_ip"]
return = { status = 200, body = "ok" }"#,
    );
    let p = Proxy::with_workers(&cfg, 2);
    let addr = p.addr();
    let (passed, refused, other) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let barrier = Arc::new(std::sync::Barrier::new(50));
    let threads: Vec<_> = (0..50)
        .map(|_| {
            let (passed, refused, other, barrier) =
                (passed.clone(), refused.clone(), other.clone(), barrier.clone());
            std::thread::spawn(move || {
                let mut c = Client::connect(addr);
                barrier.wait();
                let end = Instant::now() + Duration::from_secs(5);
                while Instant::now() < end {
                    let r = c.get("/");
                    let n = match r.status {
                        200 => &passed,
                        429 => &refused,
                        _ => &other,
                    };
                    n.fetch_add(1, Ordering::Relaxed);
                    if r.says_close() {
                        c = Client::connect(addr);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let (passed, refused) = (passed.load(Ordering::Relaxed), refused.load(Ordering::Relaxed));
    assert_eq!(other.load(Ordering::Relaxed), 0);
    // rate × 5 s + burst: 550; within 5% whatever the worker a connection landed on.
    let want = 100.0 * 5.0 + 50.0;
    assert!(
        (passed as f64 - want).abs() <= want * 0.05,
        "{passed} passed, {refused} refused; want {want} ± 5%"
    );
    assert!(refused > passed, "the clients did flood: {refused} refused");
    // The counters, summed over both workers, are what the clients saw.
    assert_eq!(counted(&p, "per_ip", "passed"), passed as u64);
    assert_eq!(counted(&p, "per_ip", "refused"), refused as u64);
    assert_eq!(counted(&p, "per_ip", "delayed"), 0);
}

#[test]
fn a_refusal_has_the_status_and_retry_after_over_both_protocols() {
    let b = Backend::serve(|_| Reply::ok("from backend"));
    let cfg = limited(
        r#"[[limit]]
name = "slow"
key = "$http_x_client"
rate = "1r/m"

[[limit]]
name = "teapot"
key = "$http_x_client"
rate = "2r/m"
burst = 1
nodelay = true
status = 418"#,
        "",
        &format!(
            r#"[[server.location]]
path = "/"
limits = ["slow"]
proxy_pass = "http://{}"

[[server.location]]
path = "/fixed"
limits = ["teapot"]
return = {{ status = 200, body = "fixed" }}

[[server.location]]
path = "/free"
return = {{ status = 200, body = "free" }}"#,
            b.addr
        ),
    );
    let p = Proxy::start(&cfg);
    let get = |path: &str, client: &str| {
        p.send(format!(
            "GET {path} HTTP/1.1\r\nHost: t\r\nX-Client: {client}\r\n\r\n"
        ))
    };
    let r = get("/", "a");
    assert_eq!((r.status, r.text()), (200, "from backend".to_string()));
    // One a minute, no burst: the next comes after about 60 s (59.9... rounded up).
    let r = get("/", "a");
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("60"), "{}", r.head_text());
    assert_eq!(b.seen().len(), 1, "a refused request never reaches the upstream");
    // Over HTTP/2, the same key's state.
    let (status, text) = h2_get(&p, "/", &["X-Client: a"]);
    assert_eq!(status, 429, "{text}");
    assert!(text.to_ascii_lowercase().contains("retry-after: 60"), "{text}");
    // Another key has its own budget; a request without the key is not limited.
    assert_eq!(h2_get(&p, "/", &["X-Client: b"]).0, 200);
    for _ in 0..3 {
        assert_eq!(p.get("/").status, 200);
    }
    // A `return` location is limited too, with the limit's status; burst 1:
    // two pass, the third waits out one interval (30 s) before it would.
    assert_eq!(get("/fixed", "a").status, 200);
    assert_eq!(get("/fixed", "a").status, 200);
    let r = get("/fixed", "a");
    assert_eq!(r.status, 418);
    assert_eq!(r.header("retry-after"), Some("30"), "{}", r.head_text());
    assert_eq!(get("/free", "a").status, 200);
    assert_eq!(counted(&p, "slow", "passed"), 2);
    assert_eq!(counted(&p, "slow", "refused"), 2);
    assert_eq!(counted(&p, "teapot", "refused"), 1);
}

#[test]
fn dry_run_counts_but_serves() {
    let cfg = limited(
        r#"[[limit]]
name = "trial"
key = "$remote_addr"
rate = "1r/m"
burst = 2
delay = 1
dry_run = true"#,
        "limits = [\"trial\"]",
        r#"[[server.location]]
path = "/"
return = { status = 200, body = "ok" }"#,
    );
    let p = Proxy::start(&cfg);
    let mut c = p.client();
    for _ in 0..6 {
        assert_eq!(c.get("/").status, 200);
    }
    assert_eq!(h2_get(&p, "/", &[]).0, 200);
    // Inherited from the server block. The first two pass, the next would
    // have waited, the rest (the burst spent) would have been refused.
    assert_eq!(counted(&p, "trial", "passed"), 2);
    assert_eq!(counted(&p, "trial", "delayed"), 1);
    assert_eq!(counted(&p, "trial", "refused"), 4);
}

#[test]
fn requests_past_delay_wait_without_holding_up_the_worker() {
    let cfg = limited(
        r#"[[limit]]
name = "queue"
key = "$http_x_client"
rate = "1r/m"
burst = 3
delay = 1

[[limit]]
name = "short"
key = "$http_x_client"
rate = "1r/s"
burst = 1"#,
        "",
        r#"[[server.location]]
path = "/"
limits = ["queue"]
return = { status = 200, body = "ok" }

[[server.location]]
path = "/short"
limits = ["short"]
return = { status = 200, body = "short" }

[[server.location]]
path = "/free"
return = { status = 200, body = "free" }"#,
    );
    // One worker: a wait that blocked it would hold up every other request.
    let p = Proxy::start(&cfg);
    let get = "GET / HTTP/1.1\r\nHost: t\r\nX-Client: q\r\n\r\n";
    assert_eq!(p.send(get).status, 200);
    assert_eq!(p.send(get).status, 200);
    // The third is past `delay`: it waits a minute. Meanwhile the worker serves others.
    let mut waiting = p.client();
    waiting.send(get);
    assert!(wait_for(IO_TIMEOUT, || (counted(&p, "queue", "delayed") == 1)
        .then_some(()))
    .is_some());
    for _ in 0..5 {
        assert_eq!(p.get("/free").text(), "free");
    }
    assert_eq!(h2_get(&p, "/free", &[]).0, 200);
    // The waiting request is in the burst, so the fourth and fifth: one waits, one is refused.
    let mut fourth = p.client();
    fourth.send(get);
    assert!(wait_for(IO_TIMEOUT, || (counted(&p, "queue", "delayed") == 2)
        .then_some(()))
    .is_some());
    let r = p.send(get);
    assert_eq!(r.status, 429);
    // A minute until the burst has room for another.
    assert_eq!(r.header("retry-after"), Some("60"), "{}", r.head_text());
    // A client that leaves while waiting costs nothing more.
    drop(waiting);
    drop(fourth);
    assert_eq!(p.get("/free").status, 200);
    // A short delay is served once waited out: 1 r/s with burst 1, delay 0:
    // the second of two at once waits out the rest of the second, then is answered.
    let short = "GET /short HTTP/1.1\r\nHost: t\r\nX-Client: s\r\n\r\n";
    let mut a = p.client();
    a.send(short);
    let mut b = p.client();
    b.send(short);
    assert_eq!(a.response().status, 200);
    assert_eq!(b.response().status, 200);
    assert_eq!(counted(&p, "short", "delayed"), 1);
    assert_eq!(counted(&p, "short", "refused"), 0);
}

#[test]
fn a_flood_of_new_keys_cannot_evict_keys_in_use() {
    // max_keys = 1: one window of 32 slots.
    let cfg = limited(
        r#"[[limit]]
name = "by_key"
key = "k:$http_x_key"
rate = "1r/m"
burst = 1
nodelay = true
max_keys = 1"#,
        "",
        r#"[[server.location]]
path = "/"
limits = ["by_key"]
return = { status = 200, body = "ok" }"#,
    );
    let p = Proxy::start(&cfg);
    let mut c = p.client();
    let mut get = |key: &str| c.request(format!("GET / HTTP/1.1\r\nHost: t\r\nX-Key: {key}\r\n\r\n"));
    for i in 0..32 {
        assert_eq!(get(&format!("busy{i}")).status, 200);
    }
    // The table is full of keys in use: new keys are refused (no
    // Retry-After: it is not their rate that refuses them).
    for i in 0..200 {
        let r = get(&format!("new{i}"));
        assert_eq!(r.status, 429);
        assert_eq!(r.header("retry-after"), None);
    }
    // Every busy key kept its state: its burst's second request passes, the third is refused by rate.
    for i in 0..32 {
        assert_eq!(get(&format!("busy{i}")).status, 200, "busy{i}");
        let r = get(&format!("busy{i}"));
        assert_eq!(r.status, 429);
        assert!(r.header("retry-after").is_some());
    }
    assert_eq!(counted(&p, "by_key", "passed"), 64);
    assert_eq!(counted(&p, "by_key", "refused"), 232);
}

#[test]
fn limit_config_refusals_have_positions() {
    use ringway::config::Config;
    let cfg = r#"[[limit]]
name = "a"
key = "$remote_adr"
rate = "10r/h"

[[limit]]
name = "b"
key = ""
rate = "5r/s"
burst = -1
delay = 3
nodelay = true

[[limit]]
name = "c"
key = "$remote_addr"
rate = "5r/s"
connections = 4
status = 200
max_keys = 0

[[limit]]
name = "d"
key = "$remote_addr"
connections = 0
burst = 2

[[limit]]
name = "e"
key = "$remote_addr"

[[limit]]
name = "f"
key = "$remote_addr"
rate = "1r/s"
burst = 2
delay = 5

[[limit]]
name = "f"
key = "$remote_addr"
rate = "1r/s"
nodelay = true

[[limit]]
name = "h"
key = "$remote_addr"
connections = 1

[[server]]
listen = ["127.0.0.1:1"]
limits = ["nope"]

[[server.location]]
path = "/"
limits = ["h", "h", "a", "missing"]
return = { status = 200 }
"#;
    let e = Config::parse(cfg, std::path::Path::new("l.toml"))
        .unwrap_err()
        .to_string();
    let at = |needle: &str, nth: usize| {
        let off = cfg
            .match_indices(needle)
            .nth(nth)
            .unwrap_or_else(|| panic!("{needle}"))
            .0;
        let line = cfg[..off].matches('\n').count() + 1;
        let col = off - cfg[..off].rfind('\n').map_or(0, |i| i + 1) + 1;
        format!("l.toml:{line}:{col}: ")
    };
    for (pos, want) in [
        (
            at("\"$remote_adr\"", 0),
            "limit[0].key: unknown variable `$remote_adr`; did you mean `$remote_addr`?",
        ),
        (at("\"10r/h\"", 0), "limit[0].rate: bad rate \"10r/h\""),
        (at("\"\"", 0), "limit[1].key: an empty key limits nothing"),
        (
            at("-1", 0),
            "limit[1].burst: must be a whole number from 0 to 1000000",
        ),
        (
            at("3\nnodelay", 0),
            "limit[1].delay: `delay` and `nodelay = true` contradict each other",
        ),
        (
            at("4\nstatus", 0),
            "limit[2].connections: a limit has `rate` or `connections`, not both",
        ),
        (at("200\nmax", 0), "limit[2].status: 200 is not an error status"),
        (
            at("0\n\n[[limit]]\nname = \"d\"", 0),
            "limit[2].max_keys: must be a whole number from 1 to 10000000",
        ),
        (
            at("0\nburst = 2", 0),
            "limit[3].connections: must be a whole number above 0",
        ),
        (
            at("2\n\n[[limit]]\nname = \"e\"", 0),
            "limit[3].burst: `burst` belongs to a `rate` limit",
        ),
        (at("\"e\"", 0), "limit[4].rate: needs `rate = \"10r/s\"`"),
        (at("5\n\n[[limit]]", 0), "limit[5].delay: is above `burst`"),
        (at("\"f\"", 1), "limit[6].name: limit \"f\" is defined twice"),
        (
            at("\"nope\"", 0),
            "server[0].limits[0]: unknown limit \"nope\" (defined: \"a\", \"b\", \"c\", \"d\", \"e\", \"f\", \"h\")",
        ),
        (
            at("\"h\", \"a\"", 0),
            "server[0].location[0].limits[1]: \"h\" is listed twice",
        ),
        (
            at("\"missing\"", 0),
            "server[0].location[0].limits[3]: unknown limit \"missing\"",
        ),
    ] {
        let want = format!("{pos}{want}");
        assert!(
            e.lines().any(|l| l.starts_with(&want)),
            "missing {want:?} in:\n{e}"
        );
    }
    // "a" is in error: naming it is not also an unknown limit.
    assert_eq!(e.lines().count(), 16, "{e}");
    // A misspelt key is named, with a suggestion.
    let e = Config::parse(
        "[[limit]]\nname = \"x\"\nkey = \"$remote_addr\"\nrate = \"1r/s\"\nbrust = 3\n[[server]]\nlisten = [\"127.0.0.1:1\"]\n",
        std::path::Path::new("k.toml"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("k.toml:5:1: limit[0].brust: unknown key `brust`; did you mean `burst`?"),
        "{e}"
    );
}

//! W3C `traceparent`: a valid one continued (same trace id, a new parent
//! id, `tracestate` passed on), an invalid one dropped (or replaced by a new
//! trace with `trace = true`), `$trace_id` in logs. HTTP/1.1 and HTTP/2.

use std::net::SocketAddr;

use crate::support::peers::curl;
use crate::support::{self, Backend, Client, Proxy, Reply, Seen, TempFile};

const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn config(backend: SocketAddr, global: &str, server: &str) -> String {
    support::proxy_all(backend, server, "").replacen("[global]\n", &format!("[global]\n{global}\n"), 1)
}

/// Lowercase hex of `n` digits, not all zeros.
fn hex(s: &str, n: usize) -> bool {
    s.len() == n
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && s.bytes().any(|b| b != b'0')
}

/// The backend's `traceparent` split into its four fields.
fn fields(seen: &Seen) -> Option<Vec<String>> {
    assert!(seen.all("traceparent").len() <= 1);
    let v = seen.header("traceparent")?;
    let f: Vec<String> = v.split('-').map(String::from).collect();
    assert!(
        f.len() == 4 && f[0] == "00" && hex(&f[1], 32) && hex(&f[2], 16) && f[3].len() == 2,
        "{v}"
    );
    Some(f)
}

fn send(p: &Proxy, b: &Backend, extra: &str) -> Seen {
    let before = b.seen().len();
    let r = Client::connect(p.addr()).request(format!("GET / HTTP/1.1\r\nHost: h\r\n{extra}\r\n"));
    assert_eq!(r.status, 200);
    b.wait_requests(before + 1).pop().unwrap()
}

#[test]
fn a_valid_traceparent_is_continued_with_a_new_parent_id() {
    let b = Backend::serve(|_| Reply::ok("x"));
    let log = TempFile::new("trace.json");
    let toml = config(b.addr, "", "").replace(
        "access_log = \"off\"",
        &format!(
            "access_log = {{ path = {:?}, format = \"json\" }}",
            log.path().display().to_string()
        ),
    );
    let p = Proxy::start(&toml);
    let seen = send(
        &p,
        &b,
        &format!("traceparent: {GOOD}\r\ntracestate: congo=t61rcWkgMzE,rojo=00f0\r\n"),
    );
    let f = fields(&seen).expect("traceparent sent on");
    assert_eq!(f[1], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_ne!(f[2], "00f067aa0ba902b7");
    assert_eq!(f[3], "01");
    assert_eq!(seen.header("tracestate"), Some("congo=t61rcWkgMzE,rojo=00f0"));
    // Two requests of one trace get two parent ids.
    let again = fields(&send(&p, &b, &format!("traceparent: {GOOD}\r\n"))).unwrap();
    assert_ne!(again[2], f[2]);
    // The trace id is in the log, read by serde_json.
    let text = support::wait_for(support::IO_TIMEOUT, || {
        let t = std::fs::read_to_string(log.path()).unwrap_or_default();
        (t.lines().count() >= 2).then_some(t)
    })
    .expect("two lines");
    let line: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(line["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
}

const INVALID: [&str; 6] = [
    "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
    "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
    "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
    "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
    "garbage",
];

#[test]
fn an_invalid_traceparent_is_dropped_with_its_tracestate() {
    let b = Backend::serve(|_| Reply::ok("x"));
    let p = Proxy::start(&config(b.addr, "", ""));
    for bad in INVALID {
        let seen = send(&p, &b, &format!("traceparent: {bad}\r\ntracestate: a=b\r\n"));
        assert!(fields(&seen).is_none(), "{bad}: {:?}", seen.header("traceparent"));
        assert!(!seen.has("tracestate"), "{bad}");
    }
    // No trace context, trace off: nothing added.
    assert!(fields(&send(&p, &b, "")).is_none());
}

#[test]
fn with_trace_on_a_trace_is_started_when_none_is_valid() {
    let b = Backend::serve(|_| Reply::ok("x"));
    let p = Proxy::start(&config(b.addr, "trace = true", ""));
    let mut traces = std::collections::HashSet::new();
    for bad in INVALID.iter().chain([&""]) {
        let tp = if bad.is_empty() {
            String::new()
        } else {
            format!("traceparent: {bad}\r\n")
        };
        let seen = send(&p, &b, &tp);
        let f = fields(&seen).unwrap_or_else(|| panic!("{bad}: no trace started"));
        assert_eq!(f[3], "01", "started traces are sampled");
        assert_ne!(f[1], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert!(traces.insert(f[1].clone()), "a new trace id each time");
    }
    // A valid one is still continued.
    assert_eq!(
        fields(&send(&p, &b, &format!("traceparent: {GOOD}\r\n"))).unwrap()[1],
        &GOOD[3..35]
    );
}

#[test]
fn over_http2_a_trace_is_continued() {
    let b = Backend::serve(|_| Reply::ok("x"));
    let p = Proxy::start(&config(b.addr, "", "h2c = true"));
    let r = curl(
        &[
            "--http2-prior-knowledge",
            "-o",
            "/dev/null",
            "-w",
            "%{http_version}",
            "-H",
            &format!("traceparent: {GOOD}"),
            "-H",
            "tracestate: k=v",
        ],
        &format!("http://{}/", p.addr()),
    );
    assert_eq!(r.stdout, "2", "{}", r.stderr);
    let seen = b.only_request();
    let f = fields(&seen).expect("sent on");
    assert_eq!(f[1], &GOOD[3..35]);
    assert_ne!(f[2], &GOOD[36..52]);
    assert_eq!(seen.header("tracestate"), Some("k=v"));
}

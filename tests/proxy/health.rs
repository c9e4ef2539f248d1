//! Active health checks and periodic re-resolution: probes take servers out
//! of rotation and bring them back, requests follow a name to its new
//! address. Every wait is a bounded poll of state or of where requests go;
//! no fixed sleep decides a verdict.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ringway::config::{Config, Probe};
use ringway::upstream::resolve::Resolve;

use crate::support::*;

/// How long a probe or a lookup may take to show its effect.
const SETTLE: Duration = Duration::from_secs(10);

/// Answers `/healthz` with the status in `health`, everything else 200 with `name`.
fn backend(name: &'static str, health: Arc<AtomicU16>) -> Backend {
    Backend::serve(move |r| {
        if r.target() == "/healthz" {
            Reply::new(health.load(Ordering::SeqCst))
        } else {
            Reply::ok(name)
        }
    })
}

fn restart(addr: SocketAddr, name: &'static str) -> Backend {
    Backend::start_at(addr, move |c| {
        c.serve(&move |r: &Seen| {
            if r.target() == "/healthz" {
                Reply::new(200)
            } else {
                Reply::ok(name)
            }
        })
    })
}

/// One upstream "app" (upstream index 0) with `upstream` lines, proxied at `/`.
fn app(upstream: &str) -> String {
    config(&format!(
        r#"
[[upstream]]
name = "app"
{upstream}

[[server]]
listen = ["127.0.0.1:0"]
access_log = "off"

[[server.location]]
path = "/"
proxy_pass = "http://app"
"#
    ))
}

/// Which backend answered `GET /` (its body), or the status when not 200.
fn who(p: &Proxy) -> String {
    let r = p.get("/");
    if r.status == 200 {
        String::from_utf8_lossy(&r.body).into_owned()
    } else {
        r.status.to_string()
    }
}

fn wait_state(p: &Proxy, server: usize, down: bool) {
    let what = if down { "down" } else { "up" };
    wait_for(SETTLE, || {
        (p.handle().probed_down(0, server) == down).then_some(())
    })
    .unwrap_or_else(|| panic!("server {server} was not marked {what} by its probes"));
}

fn wait_answer(p: &Proxy, name: &str) {
    wait_for(SETTLE, || (who(p) == name).then_some(()))
        .unwrap_or_else(|| panic!("no request reached {name}"));
}

#[test]
fn http_probe_takes_a_failing_server_out_and_brings_it_back() {
    let health = Arc::new(AtomicU16::new(200));
    let a = backend("A", health.clone());
    let b = backend("B", Arc::new(AtomicU16::new(200)));
    // max_fails = 0 and tries = 1: only the probes can take a server out,
    // and a request sent to a server that is down would fail visibly.
    let p = Proxy::start(&app(&format!(
        r#"servers = [{{ addr = "{}", max_fails = 0 }}, {{ addr = "{}", max_fails = 0 }}]
tries = 1
health_check = {{ type = "http", path = "/healthz", interval = "50ms", timeout = "1s", expect = "200-299", rise = 2, fall = 2, host = "health.test" }}"#,
        a.addr, b.addr
    )));
    wait_answer(&p, "A");
    wait_answer(&p, "B");

    health.store(500, Ordering::SeqCst);
    wait_state(&p, 0, true);
    // Down, and staying down while /healthz fails: every request goes to B.
    for _ in 0..10 {
        assert_eq!(who(&p), "B");
    }
    assert!(!p.handle().probed_down(0, 1));
    let probe = a
        .seen()
        .into_iter()
        .find(|s| s.target() == "/healthz")
        .expect("A was probed");
    assert_eq!(probe.method(), "GET");
    assert_eq!(probe.header("host"), Some("health.test"));

    health.store(200, Ordering::SeqCst);
    wait_state(&p, 0, false);
    wait_answer(&p, "A");
}

#[test]
fn http_probe_fails_on_a_status_outside_expect() {
    // 200 is not in "204": the server goes down although it answers.
    let a = backend("A", Arc::new(AtomicU16::new(200)));
    let b = backend("B", Arc::new(AtomicU16::new(204)));
    let p = Proxy::start(&app(&format!(
        r#"servers = [{{ addr = "{}", max_fails = 0 }}, {{ addr = "{}", max_fails = 0 }}]
tries = 1
health_check = {{ path = "/healthz", interval = "50ms", expect = "204", fall = 1 }}"#,
        a.addr, b.addr
    )));
    wait_state(&p, 0, true);
    for _ in 0..10 {
        assert_eq!(who(&p), "B");
    }
    assert!(!p.handle().probed_down(0, 1));
}

#[test]
fn a_probe_without_an_answer_in_time_fails() {
    // A reads the probe's request and never answers.
    let a = Backend::start(|c| {
        if c.read_request().is_some() {
            c.hold();
        }
    });
    let b = backend("B", Arc::new(AtomicU16::new(200)));
    let p = Proxy::start(&app(&format!(
        r#"servers = [{{ addr = "{}", max_fails = 0 }}, {{ addr = "{}", max_fails = 0 }}]
tries = 1
health_check = {{ path = "/healthz", interval = "50ms", timeout = "100ms", fall = 2 }}"#,
        a.addr, b.addr
    )));
    wait_state(&p, 0, true);
    assert!(!p.handle().probed_down(0, 1));
    for _ in 0..10 {
        assert_eq!(who(&p), "B");
    }
    // A saw only probes: it was out before the first request.
    assert!(a.seen().iter().all(|s| s.target() == "/healthz"));
}

#[test]
fn one_probe_per_server_whatever_the_worker_count() {
    let a = backend("A", Arc::new(AtomicU16::new(200)));
    // With an hour between probes, each server gets exactly the probe made
    // at start. A prober per worker would send four.
    let p = Proxy::with_workers(
        &app(&format!(
            "servers = [\"{}\"]\nhealth_check = {{ path = \"/healthz\", interval = \"1h\" }}",
            a.addr
        )),
        4,
    );
    let probes = || a.seen().iter().filter(|s| s.target() == "/healthz").count();
    wait_for(SETTLE, || (probes() >= 1).then_some(())).expect("no probe");
    // Requests through every worker take far longer than four probes
    // started together would.
    for _ in 0..20 {
        assert_eq!(who(&p), "A");
    }
    assert_eq!(probes(), 1);
}

#[test]
fn tcp_probe_marks_a_closed_port_down() {
    let a = Backend::serve(|_| Reply::ok("A"));
    let closed = closed_port();
    let p = Proxy::start(&app(&format!(
        r#"servers = ["{}", {{ addr = "{closed}", max_fails = 0 }}]
tries = 1
health_check = {{ type = "tcp", interval = "50ms", timeout = "1s", fall = 1 }}"#,
        a.addr
    )));
    wait_state(&p, 1, true);
    assert!(!p.handle().probed_down(0, 0));
    // Without the probe, every other request would go to the closed port
    // and fail (tries = 1, max_fails = 0 there).
    for _ in 0..10 {
        assert_eq!(who(&p), "A");
    }
    // A TCP probe sends nothing.
    assert!(a.seen().iter().all(|s| s.target() == "/"));
}

#[test]
fn a_killed_backend_leaves_rotation_and_rejoins_when_restarted() {
    let a = backend("A", Arc::new(AtomicU16::new(200)));
    let b = backend("B", Arc::new(AtomicU16::new(200)));
    let addr_a = a.addr;
    let p = Proxy::with_workers(
        &app(&format!(
            r#"servers = [{{ addr = "{addr_a}", max_fails = 0 }}, {{ addr = "{}", max_fails = 0 }}]
tries = 1
health_check = {{ path = "/healthz", interval = "50ms", timeout = "1s", rise = 1, fall = 1 }}"#,
            b.addr
        )),
        2,
    );
    wait_answer(&p, "A");
    drop(a);
    wait_state(&p, 0, true);
    for _ in 0..10 {
        assert_eq!(who(&p), "B");
    }
    let _a = restart(addr_a, "A");
    wait_state(&p, 0, false);
    wait_answer(&p, "A");
}

#[test]
fn every_server_down_by_probe_gets_503_without_trying_one() {
    let a = backend("A", Arc::new(AtomicU16::new(503)));
    let b = backend("B", Arc::new(AtomicU16::new(500)));
    let p = Proxy::start(&config(&format!(
        r#"
[[upstream]]
name = "app"
servers = ["{a}", "{b}"]
health_check = {{ path = "/healthz", interval = "50ms", fall = 1 }}

# An upstream of one server: passive health never takes it out, a probe does.
[[upstream]]
name = "solo"
servers = ["{a}"]
health_check = {{ path = "/healthz", interval = "50ms", fall = 1 }}

[[server]]
listen = ["127.0.0.1:0"]
access_log = "off"

[[server.location]]
path = "/solo/"
proxy_pass = "http://solo"

[[server.location]]
path = "/"
proxy_pass = "http://app"
"#,
        a = a.addr,
        b = b.addr
    )));
    wait_state(&p, 0, true);
    wait_state(&p, 1, true);
    wait_for(SETTLE, || p.handle().probed_down(1, 0).then_some(())).expect("solo marked down");
    let r = p.get("/");
    assert_eq!(r.status, 503);
    assert!(!r.body.is_empty() && r.body.len() < 200, "a short body");
    assert_eq!(p.get("/solo/x").status, 503);
    // No request was tried on a server: the 503 came at once.
    for s in a.seen().iter().chain(b.seen().iter()) {
        assert_eq!(s.target(), "/healthz");
    }
}

#[test]
fn health_check_defaults_and_config_errors() {
    let parse = |up: &str| Config::parse(&app(up), Path::new("t.toml"));
    let c = parse("servers = [\"127.0.0.1:1\"]\nhealth_check = {}\n").unwrap();
    let h = c.upstreams[0].health_check.as_ref().unwrap();
    assert_eq!(
        (h.interval, h.timeout, h.rise, h.fall),
        (Duration::from_secs(5), Duration::from_secs(2), 2, 3)
    );
    assert_eq!(
        h.probe,
        Probe::Http {
            path: "/".into(),
            host: None,
            expect: vec![(200, 399)]
        }
    );
    let c =
        parse("servers = [\"127.0.0.1:1\"]\nhealth_check = { type = \"tcp\" }\nresolve_interval = \"30s\"\n")
            .unwrap();
    assert_eq!(c.upstreams[0].health_check.as_ref().unwrap().probe, Probe::Tcp);
    assert_eq!(c.upstreams[0].resolve_interval, Some(Duration::from_secs(30)));
    assert!(parse("servers = [\"127.0.0.1:1\"]\n").unwrap().upstreams[0]
        .resolve_interval
        .is_none());
    let c = parse("servers = [\"127.0.0.1:1\"]\nhealth_check = { expect = \"200, 204,300-302\" }\n").unwrap();
    match &c.upstreams[0].health_check.as_ref().unwrap().probe {
        Probe::Http { expect, .. } => assert_eq!(expect, &[(200, 200), (204, 204), (300, 302)]),
        p => panic!("{p:?}"),
    }

    let errors = |up: &str| match parse(up) {
        Ok(_) => panic!("accepted:\n{up}"),
        Err(e) => e.to_string(),
    };
    let cases: &[(&str, &str)] = &[
        (
            "health_check = { type = \"icmp\" }",
            "health_check.type: unknown check type \"icmp\" (one of: http, tcp)",
        ),
        (
            "health_check = { interval = \"5\" }",
            "health_check.interval: bad duration",
        ),
        (
            "health_check = { interval = \"1ms\" }",
            "health_check.interval: must be at least 10ms",
        ),
        (
            "health_check = { timeout = \"0s\" }",
            "health_check.timeout: must be at least 10ms",
        ),
        (
            "health_check = { rise = 0 }",
            "health_check.rise: must be from 1 to 100",
        ),
        (
            "health_check = { fall = 101 }",
            "health_check.fall: must be from 1 to 100",
        ),
        (
            "health_check = { path = \"healthz\" }",
            "health_check.path: must start with \"/\"",
        ),
        (
            "health_check = { path = \"/a b\" }",
            "health_check.path: must start with \"/\" and have no spaces",
        ),
        (
            "health_check = { host = \"a b\" }",
            "health_check.host: must be a host name or host:port",
        ),
        (
            "health_check = { expect = \"2xx\" }",
            "health_check.expect: bad status list \"2xx\"",
        ),
        (
            "health_check = { expect = \"399-200\" }",
            "health_check.expect: bad status list",
        ),
        (
            "health_check = { expect = \"600\" }",
            "health_check.expect: bad status list",
        ),
        (
            "health_check = { type = \"tcp\", path = \"/\" }",
            "health_check.path: only applies to type = \"http\"",
        ),
        (
            "health_check = { type = \"tcp\", expect = \"200\" }",
            "health_check.expect: only applies to type = \"http\"",
        ),
        (
            "health_check = { pth = \"/\" }",
            "upstream[0].health_check.pth: unknown key `pth`; did you mean `path`?",
        ),
        (
            "resolve_interval = \"0s\"",
            "upstream[0].resolve_interval: must be above 0",
        ),
        (
            "resolve_interval = \"often\"",
            "upstream[0].resolve_interval: bad duration \"often\"",
        ),
    ];
    for (line, want) in cases {
        let e = errors(&format!("servers = [\"127.0.0.1:1\"]\n{line}\n"));
        assert!(e.contains(want), "{line}: got\n{e}");
        // Pointed at the line of the value.
        assert!(e.starts_with("t.toml:"), "{e}");
    }
    // Every error of a check is reported, not just the first.
    let e =
        errors("servers = [\"127.0.0.1:1\"]\nhealth_check = { rise = 0, fall = 0, interval = \"1ms\" }\n");
    assert_eq!(
        e.lines().filter(|l| l.contains(".health_check.")).count(),
        3,
        "{e}"
    );
}

/// A resolver whose answer the test sets, counting lookups.
struct FakeResolver {
    answer: Mutex<Option<Vec<SocketAddr>>>,
    lookups: AtomicUsize,
}

impl FakeResolver {
    fn new(addr: SocketAddr) -> Arc<FakeResolver> {
        Arc::new(FakeResolver {
            answer: Mutex::new(Some(vec![addr])),
            lookups: AtomicUsize::new(0),
        })
    }

    /// `None`: lookups fail.
    fn set(&self, answer: Option<Vec<SocketAddr>>) {
        *self.answer.lock().unwrap() = answer;
    }

    fn lookups(&self) -> usize {
        self.lookups.load(Ordering::SeqCst)
    }
}

impl Resolve for FakeResolver {
    fn lookup(&self, host: &str, _port: u16) -> io::Result<Vec<SocketAddr>> {
        assert_eq!(host, "localhost");
        self.lookups.fetch_add(1, Ordering::SeqCst);
        self.answer
            .lock()
            .unwrap()
            .clone()
            .ok_or_else(|| io::Error::other("no such host"))
    }
}

#[test]
fn requests_follow_a_name_to_its_new_address_and_keep_it_when_lookups_fail() {
    let a = Backend::serve(|_| Reply::ok("A"));
    let b = Backend::serve(|_| Reply::ok("B"));
    let fake = FakeResolver::new(a.addr);
    // The name must resolve when the config loads; from then on the fake
    // answers. Pooling is on, so a request on a kept connection to A
    // would show that idle connections to the old address survived.
    let toml = app(&format!(
        "servers = [\"localhost:{}\"]\nresolve_interval = \"20ms\"\nkeepalive = 8\n",
        a.addr.port()
    ));
    let cfg = Config::parse(&toml, Path::new("t.toml")).unwrap();
    let server = ringway::server::Server::bind(Arc::new(cfg), 2)
        .unwrap()
        .with_resolver(fake.clone());
    let p = Proxy::from_server(server);
    wait_answer(&p, "A");

    fake.set(Some(vec![b.addr]));
    wait_for(SETTLE, || (0..10).all(|_| who(&p) == "B").then_some(())).expect("requests did not move to B");

    // A failing lookup keeps the last good address.
    fake.set(None);
    let n = fake.lookups();
    wait_for(SETTLE, || (fake.lookups() >= n + 2).then_some(())).expect("no further lookups");
    let a_seen = a.seen().len();
    for _ in 0..10 {
        assert_eq!(who(&p), "B");
    }
    assert_eq!(a.seen().len(), a_seen);

    // Several addresses, the current among them: it stays.
    fake.set(Some(vec![a.addr, b.addr]));
    let n = fake.lookups();
    wait_for(SETTLE, || (fake.lookups() >= n + 2).then_some(())).expect("no further lookups");
    for _ in 0..10 {
        assert_eq!(who(&p), "B");
    }
    assert_eq!(a.seen().len(), a_seen);
}

#[test]
fn http_probes_of_a_tls_upstream_speak_tls() {
    let ca = crate::support::pki::Ca::new("health CA");
    let cert = ca.issue(&["app.test"]);
    let ca_file = TempFile::with_text("health-ca.pem", &ca.pem);
    let status = Arc::new(AtomicU16::new(200));
    let s = status.clone();
    let backend = crate::support::tls_backend::TlsBackend::serve(&cert, move |r| {
        if r.target() == "/healthz" {
            Reply::new(s.load(Ordering::SeqCst))
        } else {
            Reply::ok("tls")
        }
    });
    let p = Proxy::start(
        &app(&format!(
            r#"servers = ["{}"]
tls = true
tls_ca = {:?}
tls_server_name = "app.test"
health_check = {{ path = "/healthz", interval = "50ms", rise = 1, fall = 1 }}"#,
            backend.addr,
            ca_file.path().to_str().unwrap()
        ))
        .replace("\"http://app\"", "\"https://app\""),
    );
    // A plain-HTTP probe would fail the handshake and take the server out.
    wait_for(SETTLE, || (backend.handshakes().len() >= 2).then_some(()))
        .expect("the probes reached the backend");
    assert!(!p.handle().probed_down(0, 0));
    assert_eq!(p.get("/").text(), "tls");
    let hs = backend.handshakes();
    assert!(
        hs.iter()
            .all(|h| h.error.is_none() && h.sni.as_deref() == Some("app.test")),
        "{hs:?}"
    );

    status.store(503, Ordering::SeqCst);
    wait_state(&p, 0, true);
    assert_eq!(p.get("/").status, 503);
    status.store(200, Ordering::SeqCst);
    wait_state(&p, 0, false);
}

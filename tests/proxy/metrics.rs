//! The admin listener: `/metrics` scraped and parsed by Prometheus's own
//! Python client (both exposition formats) after known traffic, HTTP/1.1
//! and HTTP/2, 2xx, 4xx and 502s, a retry; `/status` parsed as JSON;
//! `/healthz` during a drain; what the admin listener refuses; and
//! `--check` on bad `[admin]` tables.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::peers::py;
use crate::support::*;

/// One scrape as the Python parser read it.
pub(super) struct Scrape {
    content_type: String,
    families: HashMap<String, String>,
    pub(super) samples: Vec<(String, HashMap<String, String>, f64)>,
}

impl Scrape {
    pub(super) fn take(admin: SocketAddr, openmetrics: bool) -> Scrape {
        let url = format!("http://{admin}/metrics");
        let mut args = vec![url.as_str()];
        if openmetrics {
            args.push("--openmetrics");
        }
        let v = py("scrape_metrics.py", &args);
        let families = v["families"]
            .as_object()
            .expect("families")
            .iter()
            .map(|(k, t)| (k.clone(), t.as_str().unwrap().to_string()))
            .collect();
        let samples = v["samples"]
            .as_array()
            .expect("samples")
            .iter()
            .map(|s| {
                let labels = s[1]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                    .collect();
                (s[0].as_str().unwrap().to_string(), labels, s[2].as_f64().unwrap())
            })
            .collect();
        Scrape {
            content_type: v["content_type"].as_str().unwrap_or_default().to_string(),
            families,
            samples,
        }
    }

    /// The one sample named `name` whose labels include `labels`.
    pub(super) fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found: Vec<f64> = self
            .samples
            .iter()
            .filter(|(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.2)
            .collect();
        assert!(
            found.len() == 1,
            "{name}{labels:?}: {} samples match",
            found.len()
        );
        found[0]
    }

    /// The sum of every sample named `name` whose labels include `labels`.
    pub(super) fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.2)
            .sum()
    }
}

/// `method path` on the admin listener, on a new connection.
fn admin(p: &Proxy, raw: &str) -> Response {
    let mut c = Client::connect(p.admin_addr());
    c.send(raw.as_bytes());
    if raw.starts_with("HEAD") {
        c.response_to_head()
    } else {
        c.response()
    }
}

fn get(p: &Proxy, path: &str) -> Response {
    admin(p, &format!("GET {path} HTTP/1.1\r\nHost: admin\r\n\r\n"))
}

/// A proxy whose `pair` upstream has a server that refuses (tried first
/// or second: either way it fails once, is marked down, and the request
/// goes on to `good`), whose `dead` upstream has only a refusing server,
/// and a `return` location.
fn traffic_proxy(good: &Backend, workers: usize) -> (Proxy, SocketAddr, SocketAddr) {
    let (refusing, dead) = (closed_port(), closed_port());
    let p = Proxy::with_workers(
        &config(&format!(
            r#"
[[upstream]]
name = "pair"
servers = [{{ addr = "{refusing}", max_fails = 1, fail_timeout = "60s" }}, "{good}"]

[[upstream]]
name = "dead"
servers = ["{dead}"]

[[server]]
listen = ["127.0.0.1:0"]
server_name = ["app.test"]
access_log = "off"
h2c = true

[[server.location]]
path = "/"
proxy_pass = "http://pair"

[[server.location]]
path = "/dead/"
proxy_pass = "http://dead"

[[server.location]]
path = "/teapot"
return = {{ status = 418, body = "tea" }}

[admin]
listen = "127.0.0.1:0"
"#,
            good = good.addr
        )),
        workers,
    );
    (p, refusing, dead)
}

#[test]
fn scraped_values_match_the_traffic_sent() {
    let good = Backend::serve(|_| Reply::ok("hello"));
    let (p, refusing, dead) = traffic_proxy(&good, 2);
    let good_addr = good.addr.to_string();
    let (refusing, dead) = (refusing.to_string(), dead.to_string());

    // HTTP/1.1: three GETs and a POST with a 5-byte body through `pair`
    // (the first of them retried past the refusing server), a 418 from a
    // return location, a 502 from `dead`. Each on its own connection.
    for _ in 0..3 {
        assert_eq!(p.get("/x").status, 200);
    }
    let post = p.send("POST /form HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5\r\n\r\nabcde");
    assert_eq!(post.status, 200);
    assert_eq!(p.get("/teapot").status, 418);
    let bad = p.get("/dead/x");
    assert_eq!(bad.status, 502);
    // Refused as its head is read (a field without a colon): counted as
    // answered, outside the duration histogram.
    let no_host = p.send("GET / HTTP/1.1\r\nHost: app.test\r\nNo colon here\r\n\r\n");
    assert_eq!(no_host.status, 400);
    // HTTP/2: two requests, each on a connection of its own.
    let url = format!("http://{}/h2", p.addr());
    for _ in 0..2 {
        let r = crate::support::peers::run(
            Command::new("curl")
                .args(["-sS", "--max-time", "10", "--http2-prior-knowledge"])
                .args(["-o", "/dev/null", "-w", "%{http_version} %{http_code}", &url]),
        );
        assert_eq!(String::from_utf8_lossy(&r.stdout), "2 200");
    }
    let client_conns = 9.0;
    let response_bytes = (5 * 6 + 3 + bad.body.len() + no_host.body.len()) as f64;

    // Requests are counted in their log phase, just after the response was
    // sent, and gauges are published on each worker's tick: scrape until
    // every request is in and the connections are closed.
    let s = wait_for(Duration::from_secs(10), || {
        let s = Scrape::take(p.admin_addr(), false);
        let done = s.sum("ringway_http_requests_total", &[]) == 9.0
            && s.get("ringway_client_connections_open", &[]) == 0.0
            && s.get("ringway_upstream_pool_idle_connections", &[("upstream", "pair")]) >= 1.0;
        done.then_some(s)
    })
    .expect("the scrape never showed the 9 requests finished");

    assert_eq!(s.content_type, "text/plain; version=0.0.4; charset=utf-8");
    assert_eq!(s.families["ringway_http_requests"], "counter");
    assert_eq!(s.families["ringway_http_request_duration_seconds"], "histogram");
    assert_eq!(s.families["ringway_upstream_server_up"], "gauge");
    let app = ("server", "app.test");
    let req = |proto: &str, class: &str| {
        s.get(
            "ringway_http_requests_total",
            &[app, ("protocol", proto), ("status_class", class)],
        )
    };
    assert_eq!(req("http1", "2xx"), 4.0);
    assert_eq!(req("http1", "4xx"), 2.0);
    assert_eq!(req("http1", "5xx"), 1.0);
    assert_eq!(req("http2", "2xx"), 2.0);
    assert_eq!(req("http2", "5xx"), 0.0);
    assert_eq!(req("http1", "3xx"), 0.0);
    assert_eq!(s.get("ringway_http_request_duration_seconds_count", &[app]), 8.0);
    assert_eq!(
        s.get(
            "ringway_http_request_duration_seconds_bucket",
            &[app, ("le", "+Inf")]
        ),
        8.0
    );
    assert!(s.get("ringway_http_request_duration_seconds_sum", &[app]) > 0.0);
    assert_eq!(s.get("ringway_http_request_body_bytes_total", &[app]), 5.0);
    assert_eq!(
        s.get("ringway_http_response_body_bytes_total", &[app]),
        response_bytes
    );
    let listener = p.addr().to_string();
    assert_eq!(
        s.get(
            "ringway_client_connections_accepted_total",
            &[("listener", &listener)]
        ),
        client_conns
    );

    // Upstreams: six answers from `good`, refusals from the refusing and
    // the dead server, a retry after each refusal in `pair`.
    let up = |u: &'static str, srv: &str, class: &'static str| {
        s.get(
            "ringway_upstream_requests_total",
            &[("upstream", u), ("server", srv), ("status_class", class)],
        )
    };
    assert_eq!(up("pair", &good_addr, "2xx"), 6.0);
    assert_eq!(up("pair", &good_addr, "error"), 0.0);
    // Health is per worker: each of the two workers that sent `pair` a
    // request tried the refusing server once, marked it down, and sent that
    // request on to `good`.
    let refusals = up("pair", &refusing, "error");
    assert!((1.0..=2.0).contains(&refusals), "{refusals} refusals");
    assert_eq!(
        s.get("ringway_upstream_retries_total", &[("upstream", "pair")]),
        refusals
    );
    assert_eq!(up("dead", &dead, "error"), 1.0);
    assert_eq!(s.sum("ringway_upstream_requests_total", &[]), 7.0 + refusals);
    assert_eq!(
        s.get("ringway_upstream_retries_total", &[("upstream", "dead")]),
        0.0
    );
    let good_labels = [("upstream", "pair"), ("server", good_addr.as_str())];
    assert_eq!(
        s.get("ringway_upstream_response_duration_seconds_count", &good_labels),
        6.0
    );
    // Every answer from `good` came on a connection opened for it or a
    // pooled one, and the backend saw each opened one.
    let opened = s.get("ringway_upstream_connections_opened_total", &good_labels);
    let reused = s.get("ringway_upstream_connections_reused_total", &good_labels);
    assert_eq!(opened + reused, 6.0);
    assert_eq!(opened, good.connections() as f64);
    assert!(reused >= 1.0, "no pooled connection was reused");

    // Passive health: the refusing server is out of rotation, the good one
    // in; no active checks are configured, so those say up.
    let health = |srv: &str, check: &'static str| {
        s.get(
            "ringway_upstream_server_up",
            &[("upstream", "pair"), ("server", srv), ("check", check)],
        )
    };
    assert_eq!(health(&refusing, "passive"), 0.0);
    assert_eq!(health(&good_addr, "passive"), 1.0);
    assert_eq!(health(&refusing, "active"), 1.0);

    assert_eq!(
        s.get("ringway_build_info", &[("version", env!("CARGO_PKG_VERSION"))]),
        1.0
    );
    assert_eq!(
        s.get("ringway_config_reloads_total", &[("result", "success")]),
        0.0
    );
    assert_eq!(
        s.get("ringway_config_reloads_total", &[("result", "failure")]),
        0.0
    );
    assert_eq!(s.get("ringway_config_generation", &[]), 1.0);
    assert_eq!(s.get("ringway_workers", &[]), 2.0);
    assert_eq!(s.get("ringway_draining", &[]), 0.0);
    // Bounded labels: no path or client address anywhere.
    for (name, labels, _) in &s.samples {
        for v in labels.values() {
            assert!(
                !v.contains("/x") && !v.contains("/form"),
                "{name} has a path label: {labels:?}"
            );
        }
    }
}

#[test]
fn openmetrics_when_the_scraper_asks() {
    let good = Backend::serve(|_| Reply::ok("hello"));
    let (p, _, _) = traffic_proxy(&good, 1);
    assert_eq!(p.get("/x").status, 200);
    let om = wait_for(Duration::from_secs(10), || {
        let s = Scrape::take(p.admin_addr(), true);
        (s.sum("ringway_http_requests_total", &[]) == 1.0).then_some(s)
    })
    .expect("the request never showed");
    assert_eq!(
        om.content_type,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    // The strict parser took it (`# EOF` included); counters keep their
    // `_total` samples under a family named without it.
    assert_eq!(om.families["ringway_http_requests"], "counter");
    assert_eq!(
        om.families["ringway_upstream_response_duration_seconds"],
        "histogram"
    );
    assert_eq!(
        om.get(
            "ringway_http_requests_total",
            &[
                ("server", "app.test"),
                ("protocol", "http1"),
                ("status_class", "2xx")
            ]
        ),
        1.0
    );
    assert_eq!(
        om.get(
            "ringway_http_request_duration_seconds_bucket",
            &[("server", "app.test"), ("le", "+Inf")]
        ),
        1.0
    );
    let raw = get(&p, "/metrics");
    assert_eq!(
        raw.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert!(!raw.text().contains("# EOF"));
    let asked = admin(
        &p,
        "GET /metrics HTTP/1.1\r\nHost: a\r\nAccept: application/openmetrics-text; version=1.0.0\r\n\r\n",
    );
    assert!(asked.text().ends_with("# EOF\n"));
    // q=0 refuses OpenMetrics.
    let refused = admin(
        &p,
        "GET /metrics HTTP/1.1\r\nHost: a\r\nAccept: application/openmetrics-text;q=0, text/plain\r\n\r\n",
    );
    assert_eq!(
        refused.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
}

#[test]
fn status_reports_health_and_requests_in_flight() {
    let gate = Gate::new();
    let held = gate.clone();
    let good = Backend::serve(move |r| {
        if r.target() == "/hold" {
            held.wait();
        }
        Reply::ok("hello")
    });
    let (p, refusing, dead) = traffic_proxy(&good, 1);
    // Round robin tries the refusing server within two requests, which
    // marks it down (passive check).
    for _ in 0..2 {
        assert_eq!(p.get("/x").status, 200);
    }
    let addr = p.addr();
    let holder = std::thread::spawn(move || {
        let mut c = Client::connect(addr);
        c.send(b"GET /hold HTTP/1.1\r\nHost: app.test\r\n\r\n");
        c.response().status
    });
    let server = |v: &Value, up: &str, srv: &str| -> Value {
        let ups = v["upstreams"].as_array().unwrap();
        let u = ups.iter().find(|u| u["name"] == up).unwrap();
        u["servers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["server"] == srv)
            .unwrap()
            .clone()
    };
    let good_addr = good.addr.to_string();
    let v = wait_for(Duration::from_secs(10), || {
        let r = get(&p, "/status");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("application/json"));
        let v: Value = serde_json::from_slice(&r.body).expect("/status is JSON");
        (server(&v, "pair", &good_addr)["in_flight"] == 1
            && server(&v, "pair", &refusing.to_string())["passive_check"] == "down")
            .then_some(v)
    })
    .expect("/status never showed the held request and the down server");
    gate.open();
    assert_eq!(holder.join().unwrap(), 200);

    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(v["config"]["generation"], 1);
    assert!(v["config"]["loaded_at"].as_f64().unwrap() > 1.7e9);
    assert!(v["uptime_seconds"].as_f64().unwrap() >= 0.0);
    assert_eq!(v["workers"]["configured"], 1);
    assert_eq!(v["workers"]["running"], 1);
    assert_eq!(v["draining"], false);
    assert_eq!(v["listeners"][0]["address"], p.addr().to_string());
    let down = server(&v, "pair", &refusing.to_string());
    assert_eq!(down["health"], "down");
    assert_eq!(down["active_check"], "off");
    let up = server(&v, "pair", &good_addr);
    assert_eq!(up["health"], "up");
    assert_eq!(up["passive_check"], "up");
    // Never tried: up, nothing in flight.
    let idle = server(&v, "dead", &dead.to_string());
    assert_eq!(idle["health"], "up");
    assert_eq!(idle["in_flight"], 0);
}

#[test]
fn healthz_says_503_while_draining() {
    let gate = Gate::new();
    let held = gate.clone();
    let good = Backend::serve(move |_| {
        held.wait();
        Reply::ok("late")
    });
    let p = Proxy::start(
        &proxy_all(good.addr, "", "")
            .replace("[[server]]", "[admin]\nlisten = \"127.0.0.1:0\"\n\n[[server]]"),
    );
    let ok = get(&p, "/healthz");
    assert_eq!((ok.status, ok.text().as_str()), (200, "ok\n"));
    // A request in flight keeps the drain going.
    let addr = p.addr();
    let holder = std::thread::spawn(move || {
        let mut c = Client::connect(addr);
        c.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        c.response().status
    });
    good.wait_requests(1);
    p.begin_shutdown();
    let draining = get(&p, "/healthz");
    assert_eq!((draining.status, draining.text().as_str()), (503, "draining\n"));
    let m = get(&p, "/metrics");
    assert!(m.text().contains("\nringway_draining 1\n"), "{}", m.text());
    gate.open();
    assert_eq!(holder.join().unwrap(), 200);
}

#[test]
fn admin_listener_refusals() {
    let good = Backend::serve(|_| Reply::ok("hello"));
    let (p, _, _) = traffic_proxy(&good, 1);
    let r = get(&p, "/");
    assert_eq!(r.status, 404);
    assert_eq!(get(&p, "/metricsx").status, 404);
    assert_eq!(get(&p, "/x").status, 404);
    for method in ["POST", "PUT", "DELETE", "OPTIONS"] {
        let r = admin(
            &p,
            &format!("{method} /metrics HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"),
        );
        assert_eq!(r.status, 405, "{method}");
        assert_eq!(r.header("allow"), Some("GET, HEAD"));
    }
    let head = admin(&p, "HEAD /healthz HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    // A body, an oversized head, garbage: refused, and the connection closed.
    let body = admin(
        &p,
        "GET /metrics HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
    );
    assert_eq!(body.status, 400);
    assert!(body.says_close());
    let big = admin(
        &p,
        &format!(
            "GET /metrics HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
            "b".repeat(9000)
        ),
    );
    assert_eq!(big.status, 431);
    let long = admin(
        &p,
        &format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(3000)),
    );
    assert_eq!(long.status, 414);
    assert_eq!(admin(&p, "NOT HTTP\r\n\r\n").status, 400);
    // Keep-alive: several requests on one connection.
    let mut c = Client::connect(p.admin_addr());
    for path in ["/healthz", "/status", "/metrics"] {
        assert_eq!(c.get(path).status, 200, "{path}");
    }
    // None of this was proxied or counted as client traffic.
    good.assert_untouched("admin requests");
    let s = get(&p, "/metrics").text();
    assert!(s.contains("ringway_client_connections_accepted_total{listener=\""));
    assert!(!s
        .lines()
        .any(|l| l.starts_with("ringway_http_requests_total") && !l.ends_with(" 0")));
}

/// `ringway --check` on `toml`: its exit success and stderr.
fn check(toml: &str) -> (bool, String) {
    let f = TempFile::with_text("admin.toml", toml);
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringway"))
        .arg("--check")
        .arg("-c")
        .arg(f.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ringway");
    let end = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > end {
            let _ = child.kill();
            panic!("ringway --check did not exit");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_refuses_bad_admin_tables() {
    let server = "[[server]]\nlisten = [\"127.0.0.1:8080\"]\n[[server.location]]\npath = \"/\"\nreturn = { status = 200 }\n";
    let cases = [
        ("[admin]\n", "3:1: admin.listen: the [admin] table needs a listen address"),
        ("[admin]\nlisten = \"localhost:x\"\n", "4:10: admin.listen: not a listen address"),
        (
            "[admin]\nlisten = \"127.0.0.1:8080\"\n",
            "4:10: admin.listen: 127.0.0.1:8080 is also server[0].listen[0] (127.0.0.1:8080): the admin listener needs an address of its own",
        ),
        (
            "[admin]\nlisten = \"0.0.0.0:8080\"\n",
            "admin.listen: 0.0.0.0:8080 is also server[0].listen[0]",
        ),
        ("[admin]\nlisten = \"127.0.0.1:9901\"\nlistn = 1\n", "admin.listn: unknown key"),
        ("[admin]\nlisten = 9901.5\n", "4:10: data did not match"),
    ];
    for (admin, want) in cases {
        let toml = format!("[global]\nworkers = 1\n{admin}{server}");
        let (ok, err) = check(&toml);
        assert!(!ok, "{admin:?} was accepted");
        assert!(err.contains(want), "{admin:?}: want {want:?} in:\n{err}");
    }
    let (ok, err) = check(&format!("[admin]\nlisten = \"127.0.0.1:9901\"\n{server}"));
    assert!(ok, "{err}");
    // Another port on the same address is fine.
    let (ok, err) = check(&format!("[admin]\nlisten = \"127.0.0.1:8081\"\n{server}"));
    assert!(ok, "{err}");
}

#[test]
fn tls_handshakes_by_version_and_resumption() {
    use crate::support::tls_client::{self, Opts};
    use crate::tls::{tls_table, CertDir};
    let backend = Backend::serve(|_| Reply::ok("ok"));
    let dir = CertDir::new("metrics-tls");
    let ca = crate::support::pki::Ca::new("test CA");
    let (c, k, _) = dir.leaf(&ca.issue(&["app.test"]), "app");
    let toml = proxy_all(backend.addr, &format!("tls = {}", tls_table(&c, &k)), "")
        .replace("[[server]]", "[admin]\nlisten = \"127.0.0.1:0\"\n\n[[server]]");
    let p = Proxy::with_workers(&toml, 2);
    // TLS 1.3: one full handshake, then three resumed; TLS 1.2: one full.
    let tls13 = tls_client::config(Opts {
        tls13_only: true,
        ..Opts::default()
    });
    for _ in 0..4 {
        let mut c = tls_client::connect(p.addr(), &tls13, Some("app.test")).unwrap();
        assert_eq!(c.get("app.test", "/").status, 200);
    }
    let tls12 = tls_client::config(Opts {
        tls12_only: true,
        ..Opts::default()
    });
    let mut c = tls_client::connect(p.addr(), &tls12, Some("app.test")).unwrap();
    assert_eq!(c.get("app.test", "/").status, 200);
    drop(c);
    // Plain HTTP on the TLS port: a failed handshake.
    {
        use std::io::{Read, Write};
        let mut plain = std::net::TcpStream::connect(p.addr()).unwrap();
        plain.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        plain
            .write_all(b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n")
            .unwrap();
        // An alert, then the close.
        let mut got = Vec::new();
        let _ = plain.read_to_end(&mut got);
        assert_eq!(got.first(), Some(&0x15), "not a TLS alert: {got:?}");
    }

    let s = wait_for(Duration::from_secs(10), || {
        let s = Scrape::take(p.admin_addr(), false);
        (s.get("ringway_tls_handshake_failures_total", &[]) == 1.0
            && s.sum("ringway_http_requests_total", &[]) == 5.0)
            .then_some(s)
    })
    .expect("the scrape never showed the handshakes");
    let hs = |v: &str, resumed: &str| {
        s.get(
            "ringway_tls_handshakes_total",
            &[("version", v), ("resumed", resumed)],
        )
    };
    assert_eq!(hs("TLSv1.3", "false"), 1.0);
    assert_eq!(hs("TLSv1.3", "true"), 3.0);
    assert_eq!(hs("TLSv1.2", "false"), 1.0);
    assert_eq!(hs("TLSv1.2", "true"), 0.0);
    let listener = p.addr().to_string();
    assert_eq!(
        s.get(
            "ringway_client_connections_accepted_total",
            &[("listener", &listener)]
        ),
        6.0
    );
}

/// Every metric the shipped Grafana dashboard queries is one the proxy
/// exposes (a renamed metric would leave a panel silently empty).
#[test]
fn the_dashboard_queries_metrics_that_exist() {
    let good = Backend::serve(|_| Reply::ok("hello"));
    let (p, _, _) = traffic_proxy(&good, 1);
    let s = Scrape::take(p.admin_addr(), false);
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/dist/grafana-dashboard.json");
    let dash: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut queried = Vec::new();
    for panel in dash["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().unwrap() {
            let expr = t["expr"].as_str().unwrap();
            let mut rest = expr;
            while let Some(i) = rest.find("ringway_") {
                let name: String = rest[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                rest = &rest[i + name.len()..];
                queried.push(name);
            }
        }
    }
    assert!(queried.len() >= 20, "{queried:?}");
    for name in queried {
        assert!(
            s.samples.iter().any(|(n, _, _)| *n == name),
            "the dashboard queries {name}, which is not exposed"
        );
    }
}

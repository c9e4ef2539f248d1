//! Counters per worker, summed when scraped: what `/metrics` and `/status`
//! (see `crate::admin`) report.
//!
//! Each worker owns one [`WorkerMetrics`] block and is the only thread that
//! ever writes it. The admin listener (served by worker 0) reads every
//! worker's block when it is scraped, so a value must be readable from
//! another thread; two mechanisms keep that off the request path's cost:
//!
//! - **Counters and histograms** written on the request path are
//!   [`Counter`]s: an `AtomicU64` with one writer, bumped by a relaxed load
//!   and a relaxed store, never a read-modify-write. On x86-64 and aarch64
//!   that is the same plain load, add and store a `Cell<u64>` compiles to
//!   (no `lock` prefix, no fence); the atomic type only makes the scraper's
//!   relaxed load of it defined behaviour. Each value read is exact;
//!   different counters may be read a few increments apart, as in any
//!   scrape.
//! - **Gauges of state the worker keeps in its own `Cell`s** (open client
//!   connections, idle pooled connections, requests in flight per server,
//!   passive health) are copied into the block by the worker's own tick
//!   ([`publish`], every `deadline::TICK`), so they are at most one tick old.
//!
//! A restarted worker is handed the same block, so counters keep rising
//! across a restart (Prometheus's `rate()` sees no reset). The labelled
//! series (server blocks, upstreams, their servers, listeners) follow the
//! config in force: see `series` for how they cross a reload.

pub mod series;
pub mod status;
pub mod text;

pub use series::{Layout, UpstreamSeries};

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::ctx::WorkerCtx;

/// A counter written by one thread (its worker) and read by any.
#[derive(Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Load, add, store: only the owning worker calls this, so no update
    /// can be lost between the load and the store.
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.store(self.0.load(Relaxed).wrapping_add(n), Relaxed);
    }

    /// A gauge's value, published by its worker.
    #[inline]
    pub fn set(&self, v: u64) {
        self.0.store(v, Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// Upper bounds of the latency buckets, in seconds (`+Inf` follows). From
/// half a millisecond, since a proxied request on a LAN takes about that,
/// to a minute (the default read timeout).
pub const BOUNDS: [f64; 15] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0,
];
const BOUNDS_NS: [u64; 15] = {
    let mut ns = [0u64; 15];
    let mut i = 0;
    while i < 15 {
        ns[i] = (BOUNDS[i] * 1e9) as u64;
        i += 1;
    }
    ns
};

/// A latency histogram: a count per bucket (not cumulative: one store per
/// observation) and the sum in nanoseconds; cumulated when rendered.
#[derive(Default)]
pub struct Histogram {
    buckets: [Counter; BOUNDS.len() + 1],
    sum_ns: Counter,
}

impl Histogram {
    #[inline]
    pub fn observe(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let i = BOUNDS_NS.iter().position(|&b| ns <= b).unwrap_or(BOUNDS.len());
        self.buckets[i].add(1);
        self.sum_ns.add(ns);
    }
}

/// A histogram read back, summed over workers: cumulative bucket counts
/// (the last is `+Inf`, the total count) and the sum in seconds.
#[derive(Default, Clone)]
pub struct HistogramSum {
    pub cumulative: [u64; BOUNDS.len() + 1],
    pub sum_seconds: f64,
}

impl HistogramSum {
    fn add(&mut self, h: &Histogram) {
        let mut running = 0;
        for (i, b) in h.buckets.iter().enumerate() {
            running += b.get();
            self.cumulative[i] += running;
        }
        self.sum_seconds += h.sum_ns.get() as f64 / 1e9;
    }

    pub fn count(&self) -> u64 {
        self.cumulative[BOUNDS.len()]
    }
}

/// Status classes of client responses: `1xx` to `5xx`.
pub const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
/// Of upstream attempts: the classes, and `error` for no response at all
/// (refused, reset, timed out, not HTTP).
pub const UP_CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "error"];
/// The client protocols, as the `protocol` label.
pub const PROTOCOLS: [&str; 2] = ["http1", "http2"];
/// TLS handshakes by version (`TLSv1.2`, `TLSv1.3`) and resumption.
pub const TLS_VERSIONS: [&str; 2] = ["TLSv1.2", "TLSv1.3"];

#[inline]
pub(crate) fn class(status: u16) -> usize {
    (status / 100).clamp(1, 5) as usize - 1
}

/// One worker's counters of what is not a series of the config (see
/// `series` for those): they live as long as the worker's thread, and a
/// restarted worker is handed the same block.
#[derive(Default)]
pub struct WorkerMetrics {
    /// `[version][resumed]`.
    tls: [Counter; 4],
    tls_failed: Counter,
    /// Published by the worker's tick (`publish`).
    open: Counter,
    /// The worker is serving (set while its `main` runs).
    pub running: AtomicBool,
}

impl WorkerMetrics {
    /// A client TLS handshake that finished (`version` as `TlsInfo` names it).
    pub fn tls_handshake(&self, version: &str, resumed: bool) {
        let v = if version == TLS_VERSIONS[0] { 0 } else { 1 };
        self.tls[v * 2 + resumed as usize].add(1);
    }

    pub fn tls_failed(&self) {
        self.tls_failed.add(1);
    }
}

/// The worker's tick: copies the state it keeps in `Cell`s into the
/// series of its newest generation.
pub fn publish(ctx: &WorkerCtx) {
    ctx.metrics.open.set(ctx.active.get() as u64);
    let gen = ctx.gen();
    for up in &gen.upstreams {
        if let Some(m) = &up.metrics {
            let peers = up.peers.iter().map(|p| (p.active(), p.is_down()));
            m.publish(ctx.id, up.pool.idle_len(), peers);
        }
    }
}

/// The process's metrics: every worker's block, the newest layout, and
/// what is not per worker (start, config generation, reloads, drain).
pub struct Registry {
    pub workers: Vec<Arc<WorkerMetrics>>,
    /// The newest config's series: what a scrape reads. Swapped by a
    /// reload, cloned by a scrape; never touched on the request path.
    #[allow(clippy::disallowed_types)]
    layout: std::sync::Mutex<Arc<Layout>>,
    started: Instant,
    started_unix: f64,
    generation: AtomicU64,
    /// Unix time of the config's load, in milliseconds.
    loaded_ms: AtomicU64,
    reloads_ok: AtomicU64,
    reloads_failed: AtomicU64,
    draining: AtomicBool,
    /// Workers whose `main` is running.
    running: AtomicUsize,
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl Registry {
    /// `layout`: the series of the config the process starts with.
    #[allow(clippy::disallowed_types)]
    pub fn new(workers: usize, layout: Arc<Layout>) -> Registry {
        let now = unix_now();
        Registry {
            workers: (0..workers).map(|_| Arc::default()).collect(),
            // Reload and scrape only; see the field.
            layout: std::sync::Mutex::new(layout),
            started: Instant::now(),
            started_unix: now,
            generation: AtomicU64::new(1),
            loaded_ms: AtomicU64::new((now * 1000.0) as u64),
            reloads_ok: AtomicU64::new(0),
            reloads_failed: AtomicU64::new(0),
            draining: AtomicBool::new(false),
            running: AtomicUsize::new(0),
        }
    }

    /// The newest layout.
    pub fn layout(&self) -> Arc<Layout> {
        self.layout.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// A reload put a new config in force: scrapes show its series.
    pub fn set_layout(&self, layout: Arc<Layout>) {
        *self.layout.lock().unwrap_or_else(|e| e.into_inner()) = layout;
    }

    /// Counts a config reload by its result (`ringway_config_reloads_total`);
    /// a successful one also makes `generation` the config in force, loaded now.
    pub fn record_reload(&self, ok: bool, generation: u64) {
        if ok {
            self.reloads_ok.fetch_add(1, Relaxed);
            self.generation.store(generation, Relaxed);
            self.loaded_ms.store((unix_now() * 1000.0) as u64, Relaxed);
        } else {
            self.reloads_failed.fetch_add(1, Relaxed);
        }
    }

    /// Reloads that succeeded and that failed since the process started.
    pub fn reload_counts(&self) -> (u64, u64) {
        (self.reloads_ok.load(Relaxed), self.reloads_failed.load(Relaxed))
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Relaxed)
    }

    /// A shutdown began: `/healthz` answers 503 from now on.
    pub fn set_draining(&self) {
        self.draining.store(true, Relaxed);
    }

    pub fn draining(&self) -> bool {
        self.draining.load(Relaxed)
    }

    pub fn worker_started(&self, id: usize) {
        self.workers[id].running.store(true, Relaxed);
        self.running.fetch_add(1, Relaxed);
    }

    pub fn worker_stopped(&self, id: usize) {
        self.workers[id].running.store(false, Relaxed);
        self.running.fetch_sub(1, Relaxed);
    }

    /// Workers serving now.
    pub fn running(&self) -> usize {
        self.running.load(Relaxed)
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    fn sum(&self, f: impl Fn(&WorkerMetrics) -> u64) -> u64 {
        self.workers.iter().map(|w| f(w)).sum()
    }
}

/// Sums a value over every worker's block of a series.
fn sum<B>(blocks: &[B], f: impl Fn(&B) -> u64) -> u64 {
    blocks.iter().map(f).sum()
}

fn sum_histogram<B>(blocks: &[B], f: impl Fn(&B) -> &Histogram) -> HistogramSum {
    let mut s = HistogramSum::default();
    for b in blocks {
        s.add(f(b));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn registry(workers: usize) -> Registry {
        let text = r#"
[[upstream]]
name = "app"
servers = ["127.0.0.1:3000", "127.0.0.1:3001"]

[[server]]
listen = ["127.0.0.1:8080"]
server_name = ["a.test"]
[[server.location]]
path = "/"
proxy_pass = "http://app"

[[server]]
listen = ["127.0.0.1:8081"]
[[server.location]]
path = "/"
return = { status = 204 }
"#;
        let config = Config::parse(text, std::path::Path::new("t.toml")).unwrap();
        let a = "127.0.0.1:8080".parse().unwrap();
        let layout = Layout::build(Arc::new(config), workers, &[(a, a)], None, None);
        Registry::new(workers, Arc::new(layout))
    }

    #[test]
    fn workers_are_summed_when_rendered() {
        let r = registry(2);
        let ms = Duration::from_millis(3);
        let l = r.layout();
        l.request(0, 0, false, 200, (1, 10), ms);
        l.request(1, 0, false, 204, (2, 20), ms);
        l.request(1, 1, true, 503, (0, 5), Duration::from_secs(100));
        l.upstreams[0].attempt(0, 1, Some(200), ms);
        l.upstreams[0].attempt(1, 1, None, ms);
        l.upstreams[0].retry(1);
        let t = text::render(&r, text::Format::Prometheus);
        let has = |line: &str| assert!(t.lines().any(|l| l == line), "no {line:?} in\n{t}");
        has(r#"ringway_http_requests_total{server="a.test",protocol="http1",status_class="2xx"} 2"#);
        has(r#"ringway_http_requests_total{server="127.0.0.1:8081",protocol="http2",status_class="5xx"} 1"#);
        has(r#"ringway_http_request_body_bytes_total{server="a.test"} 3"#);
        has(r#"ringway_http_response_body_bytes_total{server="a.test"} 30"#);
        has(r#"ringway_http_request_duration_seconds_bucket{server="a.test",le="0.0025"} 0"#);
        has(r#"ringway_http_request_duration_seconds_bucket{server="a.test",le="0.005"} 2"#);
        has(r#"ringway_http_request_duration_seconds_bucket{server="a.test",le="+Inf"} 2"#);
        has(r#"ringway_http_request_duration_seconds_count{server="a.test"} 2"#);
        has(r#"ringway_http_request_duration_seconds_sum{server="a.test"} 0.006"#);
        // Beyond the last bound: only in +Inf.
        has(r#"ringway_http_request_duration_seconds_bucket{server="127.0.0.1:8081",le="60.0"} 0"#);
        has(r#"ringway_http_request_duration_seconds_bucket{server="127.0.0.1:8081",le="+Inf"} 1"#);
        has(
            r#"ringway_upstream_requests_total{upstream="app",server="127.0.0.1:3001",status_class="2xx"} 1"#,
        );
        has(
            r#"ringway_upstream_requests_total{upstream="app",server="127.0.0.1:3001",status_class="error"} 1"#,
        );
        has(r#"ringway_upstream_response_duration_seconds_count{upstream="app",server="127.0.0.1:3001"} 1"#);
        has(r#"ringway_upstream_retries_total{upstream="app"} 1"#);
        has(r#"ringway_config_reloads_total{result="success"} 0"#);
        r.record_reload(false, 0);
        r.record_reload(true, 2);
        let t = text::render(&r, text::Format::OpenMetrics);
        assert!(t.contains("\nringway_config_reloads_total{result=\"success\"} 1\n"));
        assert!(t.contains("\nringway_config_reloads_total{result=\"failure\"} 1\n"));
        assert!(t.contains("\nringway_config_generation 2\n"));
        assert!(t.contains("# TYPE ringway_config_reloads counter\n"));
        assert!(t.ends_with("# EOF\n"));
    }

    #[test]
    fn series_cross_a_reload_by_name() {
        let r = registry(1);
        let old = r.layout();
        old.upstreams[0].attempt(0, 0, Some(200), Duration::from_millis(1));
        old.request(0, 0, false, 200, (0, 0), Duration::from_millis(1));
        // "app" loses a server and moves after a new upstream; the unnamed
        // block goes.
        let text = r#"
[[upstream]]
name = "new"
servers = ["127.0.0.1:4000"]

[[upstream]]
name = "app"
servers = ["127.0.0.1:3000"]

[[server]]
listen = ["127.0.0.1:8080"]
server_name = ["a.test"]
[[server.location]]
path = "/"
proxy_pass = "http://app"
"#;
        let config = Arc::new(Config::parse(text, std::path::Path::new("t.toml")).unwrap());
        let a = "127.0.0.1:8080".parse().unwrap();
        let next = Arc::new(Layout::build(config, 1, &[(a, a)], None, Some(&old)));
        assert!(Arc::ptr_eq(
            &next.upstreams[1].peers[0],
            &old.upstreams[0].peers[0]
        ));
        assert!(Arc::ptr_eq(&next.servers[0], &old.servers[0]));
        r.set_layout(next.clone());
        next.upstreams[1].attempt(0, 0, Some(204), Duration::from_millis(1));
        let t = text::render(&r, text::Format::Prometheus);
        let has = |line: &str| assert!(t.lines().any(|l| l == line), "no {line:?} in\n{t}");
        has(
            r#"ringway_upstream_requests_total{upstream="app",server="127.0.0.1:3000",status_class="2xx"} 2"#,
        );
        has(
            r#"ringway_upstream_requests_total{upstream="new",server="127.0.0.1:4000",status_class="2xx"} 0"#,
        );
        has(r#"ringway_http_requests_total{server="a.test",protocol="http1",status_class="2xx"} 1"#);
        assert!(!t.contains("127.0.0.1:3001"), "a removed server is gone:\n{t}");
        assert!(!t.contains("127.0.0.1:8081"), "a removed block is gone:\n{t}");
    }

    #[test]
    fn blocks_sharing_a_first_name_get_their_address() {
        let text = r#"
[[server]]
listen = ["127.0.0.1:8080"]
server_name = ["a.test"]
[[server.location]]
path = "/"
return = { status = 204 }

[[server]]
listen = ["127.0.0.1:8081"]
server_name = ["a.test"]
[[server.location]]
path = "/"
return = { status = 204 }
"#;
        let config = Config::parse(text, std::path::Path::new("t.toml")).unwrap();
        assert_eq!(
            series::server_labels(&config),
            ["a.test@127.0.0.1:8080", "a.test@127.0.0.1:8081"]
        );
    }
}

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
//! across a restart (Prometheus's `rate()` sees no reset). The registry's
//! labels are taken from the config the process started with.

pub mod status;
pub mod text;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::config::Config;
use crate::ctx::WorkerCtx;
use crate::upstream::health::Probed;

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
fn class(status: u16) -> usize {
    (status / 100).clamp(1, 5) as usize - 1
}

/// One worker's counters. Sized once from the config: every index below is
/// a server block, listener, upstream or upstream server in config order.
pub struct WorkerMetrics {
    /// `[server][protocol][class]`.
    requests: Box<[Counter]>,
    /// `[server]`: from the request head read to the end of the response.
    durations: Box<[Histogram]>,
    request_bytes: Box<[Counter]>,
    response_bytes: Box<[Counter]>,
    /// `[listener]`.
    accepted: Box<[Counter]>,
    /// `[version][resumed]`.
    tls: [Counter; 4],
    tls_failed: Counter,
    /// `[peer][UP_CLASSES]`, a peer being an upstream's server (`peer_base`).
    up_requests: Box<[Counter]>,
    up_durations: Box<[Histogram]>,
    up_opened: Box<[Counter]>,
    up_reused: Box<[Counter]>,
    /// `[upstream]`: requests sent on to a next server.
    retries: Box<[Counter]>,
    /// First peer index of each upstream.
    peer_base: Box<[usize]>,
    // Published by the worker's tick (`publish`).
    open: Counter,
    pool_idle: Box<[Counter]>,
    in_flight: Box<[Counter]>,
    passive_down: Box<[Counter]>,
    /// The worker is serving (set while its `main` runs).
    pub running: AtomicBool,
}

fn counters(n: usize) -> Box<[Counter]> {
    (0..n).map(|_| Counter::default()).collect()
}

fn histograms(n: usize) -> Box<[Histogram]> {
    (0..n).map(|_| Histogram::default()).collect()
}

impl WorkerMetrics {
    pub fn new(config: &Config, listeners: usize) -> WorkerMetrics {
        let servers = config.servers.len();
        let mut peer_base = Vec::with_capacity(config.upstreams.len());
        let mut peers = 0;
        for u in &config.upstreams {
            peer_base.push(peers);
            peers += u.servers.len();
        }
        let ups = config.upstreams.len();
        WorkerMetrics {
            requests: counters(servers * PROTOCOLS.len() * CLASSES.len()),
            durations: histograms(servers),
            request_bytes: counters(servers),
            response_bytes: counters(servers),
            accepted: counters(listeners),
            tls: Default::default(),
            tls_failed: Counter::default(),
            up_requests: counters(peers * UP_CLASSES.len()),
            up_durations: histograms(peers),
            up_opened: counters(peers),
            up_reused: counters(peers),
            retries: counters(ups),
            peer_base: peer_base.into_boxed_slice(),
            open: Counter::default(),
            pool_idle: counters(ups),
            in_flight: counters(peers),
            passive_down: counters(peers),
            running: AtomicBool::new(false),
        }
    }

    #[inline]
    fn peer(&self, upstream: usize, server: usize) -> usize {
        self.peer_base[upstream] + server
    }

    /// Phase: logging: one finished request of server block `server`.
    #[inline]
    pub fn request(&self, server: usize, http2: bool, status: u16, bytes: (u64, u64), took: Duration) {
        let i = (server * PROTOCOLS.len() + http2 as usize) * CLASSES.len() + class(status);
        self.requests[i].add(1);
        self.durations[server].observe(took);
        self.request_bytes[server].add(bytes.0);
        self.response_bytes[server].add(bytes.1);
    }

    /// A request refused before its head could be read (400, 414, 431 and
    /// the like): counted as answered, outside the duration histogram.
    pub fn refused(&self, server: usize, http2: bool, status: u16, body_bytes: u64) {
        let i = (server * PROTOCOLS.len() + http2 as usize) * CLASSES.len() + class(status);
        self.requests[i].add(1);
        self.response_bytes[server].add(body_bytes);
    }

    #[inline]
    pub fn accepted(&self, listener: usize) {
        self.accepted[listener].add(1);
    }

    /// A client TLS handshake that finished (`version` as `TlsInfo` names it).
    pub fn tls_handshake(&self, version: &str, resumed: bool) {
        let v = if version == TLS_VERSIONS[0] { 0 } else { 1 };
        self.tls[v * 2 + resumed as usize].add(1);
    }

    pub fn tls_failed(&self) {
        self.tls_failed.add(1);
    }

    /// One attempt on an upstream server: its response head's status after
    /// `took`, or `None` when no response came.
    #[inline]
    pub fn upstream(&self, upstream: usize, server: usize, status: Option<u16>, took: Duration) {
        let p = self.peer(upstream, server);
        let c = status.map_or(UP_CLASSES.len() - 1, class);
        self.up_requests[p * UP_CLASSES.len() + c].add(1);
        if status.is_some() {
            self.up_durations[p].observe(took);
        }
    }

    /// A request went out on a connection opened for it, or on a pooled one.
    #[inline]
    pub fn upstream_conn(&self, upstream: usize, server: usize, reused: bool) {
        let p = self.peer(upstream, server);
        if reused {
            self.up_reused[p].add(1);
        } else {
            self.up_opened[p].add(1);
        }
    }

    /// A request was sent on to another server of `upstream`.
    pub fn retry(&self, upstream: usize) {
        self.retries[upstream].add(1);
    }
}

/// The worker's tick: copies the state it keeps in `Cell`s into its block.
pub fn publish(ctx: &WorkerCtx) {
    let m = &ctx.metrics;
    m.open.set(ctx.active.get() as u64);
    for (u, up) in ctx.upstreams.iter().enumerate() {
        if let Some(g) = m.pool_idle.get(u) {
            g.set(up.pool.idle_len() as u64);
        }
        for (s, peer) in up.peers.iter().enumerate() {
            let p = m.peer(u, s);
            m.in_flight[p].set(u64::from(peer.active()));
            m.passive_down[p].set(peer.is_down() as u64);
        }
    }
}

/// The process's metrics: every worker's block, and what is not per worker
/// (start, config generation, reloads, drain).
pub struct Registry {
    pub workers: Vec<Arc<WorkerMetrics>>,
    config: Arc<Config>,
    listeners: Vec<std::net::SocketAddr>,
    /// A label per server block: its first name, else its first listen
    /// address (with `@address` where two blocks would share one).
    server_labels: Vec<String>,
    probed: Option<Arc<Probed>>,
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
    pub fn new(
        config: Arc<Config>,
        workers: usize,
        listeners: Vec<std::net::SocketAddr>,
        probed: Option<Arc<Probed>>,
    ) -> Registry {
        let now = unix_now();
        Registry {
            workers: (0..workers)
                .map(|_| Arc::new(WorkerMetrics::new(&config, listeners.len())))
                .collect(),
            server_labels: server_labels(&config),
            config,
            listeners,
            probed,
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

    fn probed_down(&self, upstream: usize, server: usize) -> bool {
        self.probed.as_ref().is_some_and(|p| p.is_down(upstream, server))
    }

    /// Whether some worker has server `server` of `upstream` out of
    /// rotation after failed requests (as of its last tick).
    fn passive_down(&self, upstream: usize, server: usize) -> bool {
        self.workers
            .iter()
            .any(|w| w.passive_down[w.peer(upstream, server)].get() != 0)
    }

    fn in_flight(&self, upstream: usize, server: usize) -> u64 {
        self.workers
            .iter()
            .map(|w| w.in_flight[w.peer(upstream, server)].get())
            .sum()
    }

    fn sum(&self, f: impl Fn(&WorkerMetrics) -> u64) -> u64 {
        self.workers.iter().map(|w| f(w)).sum()
    }

    fn sum_histogram(&self, f: impl Fn(&WorkerMetrics) -> &Histogram) -> HistogramSum {
        let mut s = HistogramSum::default();
        for w in &self.workers {
            s.add(f(w));
        }
        s
    }
}

/// `ringway_*{server="..."}`: the first name of a block, else its first
/// listen address, made unique with `@address` where needed.
fn server_labels(config: &Config) -> Vec<String> {
    let base: Vec<String> = config
        .servers
        .iter()
        .map(|s| match (s.server_names.first(), s.listen.first()) {
            (Some(n), _) => n.clone(),
            (None, Some(l)) => l.to_string(),
            (None, None) => "default".to_string(),
        })
        .collect();
    base.iter()
        .enumerate()
        .map(|(i, b)| {
            let shared = base.iter().filter(|o| *o == b).count() > 1;
            match config.servers[i].listen.first() {
                Some(l) if shared && !config.servers[i].server_names.is_empty() => format!("{b}@{l}"),
                _ => b.clone(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
        Registry::new(
            Arc::new(config),
            workers,
            vec!["127.0.0.1:8080".parse().unwrap()],
            None,
        )
    }

    #[test]
    fn workers_are_summed_when_rendered() {
        let r = registry(2);
        let ms = Duration::from_millis(3);
        r.workers[0].request(0, false, 200, (1, 10), ms);
        r.workers[1].request(0, false, 204, (2, 20), ms);
        r.workers[1].request(1, true, 503, (0, 5), Duration::from_secs(100));
        r.workers[0].upstream(0, 1, Some(200), ms);
        r.workers[1].upstream(0, 1, None, ms);
        r.workers[1].retry(0);
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
            server_labels(&config),
            ["a.test@127.0.0.1:8080", "a.test@127.0.0.1:8081"]
        );
    }
}

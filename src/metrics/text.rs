//! The text exposition of the registry: Prometheus 0.0.4, or OpenMetrics
//! 1.0 when the scraper asks for it. Written here over the summed
//! per-worker counters rather than through a client library: the libraries'
//! registries own their metrics (behind `Arc` and atomics updated by
//! read-modify-write, or a lock per family), which is the sharing the
//! request path must not have; what would remain of them is this encoder.
//! Both formats are checked by Prometheus's own parser in the tests.
//!
//! The two formats differ here in three ways: an OpenMetrics counter
//! family is named without `_total` (its samples keep it), the exposition
//! ends with `# EOF`, and the content type.

use std::fmt::Write;

use super::{sum, sum_histogram, Registry, BOUNDS, CLASSES, PROTOCOLS, TLS_VERSIONS, UP_CLASSES};

/// Which exposition a scraper gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Prometheus,
    OpenMetrics,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }

    /// OpenMetrics when `Accept` lists `application/openmetrics-text` with
    /// a q-value above 0 (what Prometheus sends first), else the 0.0.4 text.
    pub fn negotiate(accept: Option<&[u8]>) -> Format {
        let Some(accept) = accept else {
            return Format::Prometheus;
        };
        for item in crate::http::list_items(accept) {
            let mut parts = item.split(|&b| b == b';');
            let media = crate::http::trim(parts.next().unwrap_or_default());
            if !media.eq_ignore_ascii_case(b"application/openmetrics-text") {
                continue;
            }
            let refused = parts.any(|p| {
                let p = crate::http::trim(p);
                p.len() > 2
                    && p[..2].eq_ignore_ascii_case(b"q=")
                    && std::str::from_utf8(&p[2..])
                        .ok()
                        .and_then(|q| q.trim().parse::<f32>().ok())
                        .is_some_and(|q| q <= 0.0)
            });
            if !refused {
                return Format::OpenMetrics;
            }
        }
        Format::Prometheus
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

struct Out {
    s: String,
    format: Format,
    /// The family being written, as its samples are named.
    name: &'static str,
}

impl Out {
    /// `# HELP` and `# TYPE` of a family. `name` is the family's base name;
    /// a counter's samples add `_total`.
    fn family(&mut self, name: &'static str, kind: Kind, help: &str) {
        let (kind_text, family) = match kind {
            Kind::Counter if self.format == Format::Prometheus => ("counter", format!("{name}_total")),
            Kind::Counter => ("counter", name.to_string()),
            Kind::Gauge => ("gauge", name.to_string()),
            Kind::Histogram => ("histogram", name.to_string()),
        };
        let _ = writeln!(self.s, "# HELP {family} {help}");
        let _ = writeln!(self.s, "# TYPE {family} {kind_text}");
        self.name = name;
    }

    fn sample(&mut self, suffix: &str, labels: &[(&str, &str)], value: &str) {
        self.s.push_str(self.name);
        self.s.push_str(suffix);
        if !labels.is_empty() {
            self.s.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.s.push(',');
                }
                self.s.push_str(k);
                self.s.push_str("=\"");
                escape_into(&mut self.s, v);
                self.s.push('"');
            }
            self.s.push('}');
        }
        self.s.push(' ');
        self.s.push_str(value);
        self.s.push('\n');
    }

    fn counter(&mut self, labels: &[(&str, &str)], v: u64) {
        self.sample("_total", labels, itoa::Buffer::new().format(v));
    }

    fn gauge(&mut self, labels: &[(&str, &str)], v: u64) {
        self.sample("", labels, itoa::Buffer::new().format(v));
    }

    fn histogram(&mut self, labels: &[(&str, &str)], h: &super::HistogramSum) {
        for (i, &c) in h.cumulative.iter().enumerate() {
            let le = BOUNDS.get(i).map_or_else(|| "+Inf".to_string(), |&b| float(b));
            let mut with_le: Vec<(&str, &str)> = labels.to_vec();
            with_le.push(("le", &le));
            self.sample("_bucket", &with_le, itoa::Buffer::new().format(c));
        }
        self.sample("_sum", labels, &float(h.sum_seconds));
        self.sample("_count", labels, itoa::Buffer::new().format(h.count()));
    }
}

/// Label values escape backslash, double quote and newline (both formats).
fn escape_into(out: &mut String, v: &str) {
    for ch in v.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// A float as both parsers take it: `1.0` rather than `1` (OpenMetrics
/// wants `le` values in that canonical form), no exponent.
fn float(f: f64) -> String {
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{f:.1}")
    } else {
        format!("{f}")
    }
}

/// The exposition of everything in `r`, summed over workers.
pub fn render(r: &Registry, format: Format) -> String {
    let mut o = Out {
        s: String::with_capacity(16 << 10),
        format,
        name: "",
    };
    let l = r.layout();

    o.family(
        "ringway_build_info",
        Kind::Gauge,
        "The running build: always 1, its version as a label.",
    );
    o.gauge(&[("version", env!("CARGO_PKG_VERSION"))], 1);
    o.family(
        "ringway_start_time_seconds",
        Kind::Gauge,
        "When the process started, in Unix time.",
    );
    o.sample("", &[], &float(r.started_unix.floor()));
    o.family("ringway_workers", Kind::Gauge, "Worker threads serving now.");
    o.gauge(&[], r.running() as u64);
    o.family(
        "ringway_draining",
        Kind::Gauge,
        "1 while a shutdown drains connections, else 0.",
    );
    o.gauge(&[], r.draining() as u64);
    o.family(
        "ringway_config_generation",
        Kind::Gauge,
        "The config in force: 1 at start, one more per successful reload.",
    );
    o.gauge(&[], r.generation());
    o.family(
        "ringway_config_load_timestamp_seconds",
        Kind::Gauge,
        "When the config in force was loaded, in Unix time.",
    );
    o.sample(
        "",
        &[],
        &float((r.loaded_ms.load(std::sync::atomic::Ordering::Relaxed) / 1000) as f64),
    );
    o.family(
        "ringway_config_reloads",
        Kind::Counter,
        "Config reloads, by result.",
    );
    o.counter(
        &[("result", "success")],
        r.reloads_ok.load(std::sync::atomic::Ordering::Relaxed),
    );
    o.counter(
        &[("result", "failure")],
        r.reloads_failed.load(std::sync::atomic::Ordering::Relaxed),
    );
    o.family(
        "ringway_access_log_lines_dropped",
        Kind::Counter,
        "Access log lines dropped because a log writer could not keep up.",
    );
    o.counter(&[], crate::log::dropped_log_lines());

    // Client side.
    o.family(
        "ringway_http_requests",
        Kind::Counter,
        "Client requests answered, by server block, protocol and status class.",
    );
    for s in &l.servers {
        for (p, proto) in PROTOCOLS.iter().enumerate() {
            for (c, class) in CLASSES.iter().enumerate() {
                let i = p * CLASSES.len() + c;
                let v = sum(&s.w, |b| b.requests[i].get());
                o.counter(
                    &[("server", &s.label), ("protocol", proto), ("status_class", class)],
                    v,
                );
            }
        }
    }
    o.family(
        "ringway_http_request_duration_seconds",
        Kind::Histogram,
        "From a request head read to the end of its response, by server block.",
    );
    for s in &l.servers {
        o.histogram(&[("server", &s.label)], &sum_histogram(&s.w, |b| &b.duration));
    }
    o.family(
        "ringway_http_request_body_bytes",
        Kind::Counter,
        "Request body bytes read from clients (bodies of a declared length), by server block.",
    );
    for s in &l.servers {
        o.counter(&[("server", &s.label)], sum(&s.w, |b| b.request_bytes.get()));
    }
    o.family(
        "ringway_http_response_body_bytes",
        Kind::Counter,
        "Response body bytes sent to clients, by server block.",
    );
    for s in &l.servers {
        o.counter(&[("server", &s.label)], sum(&s.w, |b| b.response_bytes.get()));
    }
    o.family(
        "ringway_client_connections_accepted",
        Kind::Counter,
        "Client connections accepted, by listen address.",
    );
    for li in &l.listeners {
        o.counter(&[("listener", &li.addr.to_string())], sum(&li.w, |c| c.get()));
    }
    o.family(
        "ringway_limit_requests",
        Kind::Counter,
        "Requests checked by a [[limit]], by limit and outcome (passed, delayed, refused; in dry run, what would have been).",
    );
    for li in &l.limits {
        for (outcome, f) in [
            (
                "passed",
                (|b| b.passed.get()) as fn(&crate::limit::LimitBlock) -> u64,
            ),
            ("delayed", |b| b.delayed.get()),
            ("refused", |b| b.refused.get()),
        ] {
            o.counter(
                &[("limit", &li.def.name), ("outcome", outcome)],
                sum(&li.counters.w, f),
            );
        }
    }
    o.family(
        "ringway_cache_requests",
        Kind::Counter,
        "Requests to a location with a cache, by zone and cache status (nginx's $upstream_cache_status).",
    );
    for z in &l.caches {
        for s in crate::cache::Status::ALL {
            o.counter(
                &[("zone", &z.def.name), ("status", s.as_str())],
                sum(&z.counters.w, |b| b[s as usize].get()),
            );
        }
    }
    o.family(
        "ringway_cache_bytes",
        Kind::Gauge,
        "Bytes held by a cache zone's memory tier, entries and index.",
    );
    for z in &l.caches {
        o.gauge(&[("zone", &z.def.name)], z.store.bytes() as u64);
    }
    o.family(
        "ringway_client_connections_open",
        Kind::Gauge,
        "Client connections open now.",
    );
    o.gauge(&[], r.sum(|w| w.open.get()));
    o.family(
        "ringway_tls_handshakes",
        Kind::Counter,
        "Client TLS handshakes completed, by version and resumption.",
    );
    for (v, version) in TLS_VERSIONS.iter().enumerate() {
        for resumed in [false, true] {
            let i = v * 2 + resumed as usize;
            let yes = if resumed { "true" } else { "false" };
            o.counter(
                &[("version", version), ("resumed", yes)],
                r.sum(|w| w.tls[i].get()),
            );
        }
    }
    o.family(
        "ringway_tls_handshake_failures",
        Kind::Counter,
        "Client TLS handshakes that failed or timed out.",
    );
    o.counter(&[], r.sum(|w| w.tls_failed.get()));

    // Upstream side.
    let peers = || {
        l.upstreams.iter().enumerate().flat_map(|(u, up)| {
            up.peers
                .iter()
                .enumerate()
                .map(move |(s, p)| (u, s, up.name.as_str(), p.as_ref()))
        })
    };
    o.family(
        "ringway_upstream_requests",
        Kind::Counter,
        "Attempts on upstream servers, by response status class (error: no response).",
    );
    for (_, _, name, p) in peers() {
        for (c, class) in UP_CLASSES.iter().enumerate() {
            let v = sum(&p.w, |b| b.requests[c].get());
            o.counter(
                &[
                    ("upstream", name),
                    ("server", &p.authority),
                    ("status_class", class),
                ],
                v,
            );
        }
    }
    o.family(
        "ringway_upstream_response_duration_seconds",
        Kind::Histogram,
        "From an attempt's start (connect or pooled connection) to the upstream's response head.",
    );
    for (_, _, name, p) in peers() {
        let h = sum_histogram(&p.w, |b| &b.duration);
        o.histogram(&[("upstream", name), ("server", &p.authority)], &h);
    }
    o.family(
        "ringway_upstream_connections_opened",
        Kind::Counter,
        "Upstream connections opened for a request.",
    );
    for (_, _, name, p) in peers() {
        o.counter(
            &[("upstream", name), ("server", &p.authority)],
            sum(&p.w, |b| b.opened.get()),
        );
    }
    o.family(
        "ringway_upstream_connections_reused",
        Kind::Counter,
        "Upstream requests sent on an idle pooled connection.",
    );
    for (_, _, name, p) in peers() {
        o.counter(
            &[("upstream", name), ("server", &p.authority)],
            sum(&p.w, |b| b.reused.get()),
        );
    }
    o.family(
        "ringway_upstream_pool_idle_connections",
        Kind::Gauge,
        "Idle keep-alive connections pooled, by upstream.",
    );
    for up in &l.upstreams {
        o.gauge(
            &[("upstream", &up.name)],
            sum(&up.totals.w, |b| b.pool_idle.get()),
        );
    }
    o.family(
        "ringway_upstream_server_up",
        Kind::Gauge,
        "1 when a server is in rotation by its check: active (probes) or passive (max_fails on any worker).",
    );
    for (u, s, name, p) in peers() {
        let server = p.authority.as_str();
        let active = !l.probed_down(u, s);
        let passive = !p.w.iter().any(|b| b.passive_down.get() != 0);
        o.gauge(
            &[("upstream", name), ("server", server), ("check", "active")],
            active as u64,
        );
        o.gauge(
            &[("upstream", name), ("server", server), ("check", "passive")],
            passive as u64,
        );
    }
    o.family(
        "ringway_upstream_server_in_flight",
        Kind::Gauge,
        "Requests on an upstream server now.",
    );
    for (_, _, name, p) in peers() {
        o.gauge(
            &[("upstream", name), ("server", &p.authority)],
            sum(&p.w, |b| b.in_flight.get()),
        );
    }
    o.family(
        "ringway_upstream_retries",
        Kind::Counter,
        "Requests sent on to a next server of their upstream.",
    );
    for up in &l.upstreams {
        o.counter(&[("upstream", &up.name)], sum(&up.totals.w, |b| b.retries.get()));
    }

    if format == Format::OpenMetrics {
        o.s.push_str("# EOF\n");
    }
    o.s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation() {
        let om =
            Some(&b"application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"[..]);
        assert_eq!(Format::negotiate(om), Format::OpenMetrics);
        assert_eq!(Format::negotiate(Some(b"text/plain")), Format::Prometheus);
        assert_eq!(Format::negotiate(None), Format::Prometheus);
        assert_eq!(
            Format::negotiate(Some(b"application/openmetrics-text; q=0, text/plain")),
            Format::Prometheus
        );
        assert_eq!(
            Format::negotiate(Some(b"Application/OpenMetrics-Text")),
            Format::OpenMetrics
        );
    }

    #[test]
    fn floats_and_escapes() {
        assert_eq!(float(1.0), "1.0");
        assert_eq!(float(0.0005), "0.0005");
        assert_eq!(float(60.0), "60.0");
        let mut s = String::new();
        escape_into(&mut s, "a\"b\\c\nd");
        assert_eq!(s, "a\\\"b\\\\c\\nd");
    }
}

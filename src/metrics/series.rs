//! The labelled series of one config generation, found by name across
//! reloads.
//!
//! A [`Layout`] is built off the workers for each config (at start and by
//! every reload) and handed to the workers in the generation's snapshot; it
//! is also what a scrape renders (the registry keeps the newest). Each
//! series holds one block per worker, written by that worker alone.
//!
//! A series is carried into the next layout by its key, so its counters go
//! on rising across a reload: a server block by its label (first name, else
//! first address), an upstream's totals by its name, each upstream server
//! by its upstream's name and its authority, a listener by its configured
//! address. A key the new config no longer has leaves the layout, and so
//! the scrape; a request still finishing under the old generation writes
//! into a series no one reads any more. A key the new config adds starts
//! from zero, as does one that comes back after a reload removed it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::{class, Counter, Histogram, CLASSES, PROTOCOLS, UP_CLASSES};
use crate::config::Config;
use crate::upstream::health::Probed;

/// One worker's counters of a server block.
#[derive(Default)]
pub struct ServerBlock {
    /// `[protocol][class]`.
    pub(super) requests: [Counter; PROTOCOLS.len() * CLASSES.len()],
    /// From the request head read to the end of the response.
    pub(super) duration: Histogram,
    pub(super) request_bytes: Counter,
    pub(super) response_bytes: Counter,
}

pub struct ServerSeries {
    pub label: String,
    pub(super) w: Box<[ServerBlock]>,
}

/// One worker's counters of an upstream server.
#[derive(Default)]
pub struct PeerBlock {
    pub(super) requests: [Counter; UP_CLASSES.len()],
    pub(super) duration: Histogram,
    pub(super) opened: Counter,
    pub(super) reused: Counter,
    // Published by the worker's tick.
    pub(super) in_flight: Counter,
    pub(super) passive_down: Counter,
}

pub struct PeerSeries {
    pub authority: String,
    pub(super) w: Box<[PeerBlock]>,
}

/// One worker's counters of an upstream as a whole.
#[derive(Default)]
pub struct UpstreamBlock {
    pub(super) retries: Counter,
    /// Published by the worker's tick.
    pub(super) pool_idle: Counter,
}

pub struct UpstreamTotals {
    pub(super) w: Box<[UpstreamBlock]>,
}

/// An upstream's series, as one generation's config lists its servers.
/// An `UpstreamState` holds its own (`metrics`), so a request counts into
/// the series of the upstream it was sent to, whatever the newest layout.
pub struct UpstreamSeries {
    pub name: String,
    pub(super) totals: Arc<UpstreamTotals>,
    /// By server index in that config.
    pub(super) peers: Vec<Arc<PeerSeries>>,
}

impl UpstreamSeries {
    /// One attempt on server `server`: its response head's status after
    /// `took`, or `None` when no response came.
    #[inline]
    pub fn attempt(&self, w: usize, server: usize, status: Option<u16>, took: Duration) {
        let p = &self.peers[server].w[w];
        let c = status.map_or(UP_CLASSES.len() - 1, class);
        p.requests[c].add(1);
        if status.is_some() {
            p.duration.observe(took);
        }
    }

    /// A request went out on a connection opened for it, or on a pooled one.
    #[inline]
    pub fn conn(&self, w: usize, server: usize, reused: bool) {
        let p = &self.peers[server].w[w];
        if reused {
            p.reused.add(1);
        } else {
            p.opened.add(1);
        }
    }

    /// A request was sent on to another server of this upstream.
    pub fn retry(&self, w: usize) {
        self.totals.w[w].retries.add(1);
    }

    /// The tick's gauges of worker `w`.
    pub(super) fn publish(&self, w: usize, pool_idle: usize, peers: impl Iterator<Item = (u32, bool)>) {
        self.totals.w[w].pool_idle.set(pool_idle as u64);
        for (p, (active, down)) in self.peers.iter().zip(peers) {
            p.w[w].in_flight.set(u64::from(active));
            p.w[w].passive_down.set(down as u64);
        }
    }
}

pub struct ListenerSeries {
    pub configured: SocketAddr,
    /// The address bound (the kernel's port for a configured port 0).
    pub addr: SocketAddr,
    pub(super) w: Box<[Counter]>,
}

/// Every series of one config, in its order.
pub struct Layout {
    pub config: Arc<Config>,
    pub servers: Vec<Arc<ServerSeries>>,
    pub upstreams: Vec<Arc<UpstreamSeries>>,
    pub listeners: Vec<Arc<ListenerSeries>>,
    /// Active health verdicts in this config's positions, when checked.
    pub probed: Option<Arc<Probed>>,
    /// `[[limit]]` tables and counters, process-wide, in the config's
    /// order (see `crate::limit`: carried across reloads by name).
    pub limits: Vec<Arc<crate::limit::LimitState>>,
    /// `[[cache]]` zones, process-wide, in the config's order (carried
    /// across reloads when unchanged, see `crate::cache::zones`).
    pub caches: Vec<Arc<crate::cache::Zone>>,
}

fn blocks<T: Default>(n: usize) -> Box<[T]> {
    (0..n).map(|_| T::default()).collect()
}

impl Layout {
    /// The layout of `config` for `workers` workers; `listeners` pairs each
    /// configured listen address with the one bound. Series whose key
    /// `previous` has are carried over.
    pub fn build(
        config: Arc<Config>,
        workers: usize,
        listeners: &[(SocketAddr, SocketAddr)],
        probed: Option<Arc<Probed>>,
        previous: Option<&Layout>,
    ) -> Layout {
        let servers = server_labels(&config)
            .into_iter()
            .map(|label| {
                previous
                    .and_then(|p| p.servers.iter().find(|s| s.label == label))
                    .cloned()
                    .unwrap_or_else(|| {
                        Arc::new(ServerSeries {
                            label,
                            w: blocks(workers),
                        })
                    })
            })
            .collect();
        let upstreams = config
            .upstreams
            .iter()
            .map(|u| {
                let old = previous.and_then(|p| p.upstreams.iter().find(|o| o.name == u.name));
                let peers = u
                    .servers
                    .iter()
                    .map(|s| {
                        old.and_then(|o| o.peers.iter().find(|p| p.authority == s.authority))
                            .cloned()
                            .unwrap_or_else(|| {
                                Arc::new(PeerSeries {
                                    authority: s.authority.clone(),
                                    w: blocks(workers),
                                })
                            })
                    })
                    .collect();
                let totals = old
                    .map(|o| o.totals.clone())
                    .unwrap_or_else(|| Arc::new(UpstreamTotals { w: blocks(workers) }));
                Arc::new(UpstreamSeries {
                    name: u.name.clone(),
                    totals,
                    peers,
                })
            })
            .collect();
        let listeners = listeners
            .iter()
            .map(|&(configured, addr)| {
                previous
                    .and_then(|p| p.listeners.iter().find(|l| l.configured == configured))
                    .cloned()
                    .unwrap_or_else(|| {
                        Arc::new(ListenerSeries {
                            configured,
                            addr,
                            w: blocks(workers),
                        })
                    })
            })
            .collect();
        let limits = crate::limit::states(
            &config.limits,
            workers,
            previous.map_or(&[][..], |p| &p.limits[..]),
        );
        let caches = crate::cache::zones(
            &config.caches,
            workers,
            previous.map_or(&[][..], |p| &p.caches[..]),
        );
        Layout {
            config,
            servers,
            upstreams,
            listeners,
            probed,
            limits,
            caches,
        }
    }

    /// Phase: logging: one finished request of server block `server`, on
    /// worker `w`.
    #[inline]
    pub fn request(
        &self,
        w: usize,
        server: usize,
        http2: bool,
        status: u16,
        bytes: (u64, u64),
        took: Duration,
    ) {
        let b = &self.servers[server].w[w];
        b.requests[http2 as usize * CLASSES.len() + class(status)].add(1);
        b.duration.observe(took);
        b.request_bytes.add(bytes.0);
        b.response_bytes.add(bytes.1);
    }

    /// A request refused before its head could be read (400, 414, 431 and
    /// the like): counted as answered, outside the duration histogram.
    pub fn refused(&self, w: usize, server: usize, http2: bool, status: u16, body_bytes: u64) {
        let b = &self.servers[server].w[w];
        b.requests[http2 as usize * CLASSES.len() + class(status)].add(1);
        b.response_bytes.add(body_bytes);
    }

    /// A client connection accepted on configured address `listen`.
    #[inline]
    pub fn accepted(&self, w: usize, listen: SocketAddr) {
        if let Some(l) = self.listeners.iter().find(|l| l.configured == listen) {
            l.w[w].add(1);
        }
    }

    pub(super) fn probed_down(&self, upstream: usize, server: usize) -> bool {
        self.probed.as_ref().is_some_and(|p| p.is_down(upstream, server))
    }
}

/// `ringway_*{server="..."}`: the first name of a block, else its first
/// listen address, made unique with `@address` where needed.
pub(super) fn server_labels(config: &Config) -> Vec<String> {
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

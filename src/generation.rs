//! One config generation: what a worker builds from one loaded config (its
//! router, upstream states with their pools and health, TLS blocks, access
//! logs), held as an `Rc<Generation>`.
//!
//! A reload hands every worker a new [`Snapshot`]; the worker builds the
//! next `Generation` from it between the polls of its tasks and makes it the
//! newest (`WorkerCtx::gen`). A request takes the newest generation when it
//! starts and keeps it to its end, so nothing changes under a request; an
//! older generation lives as long as a request or a connection holds it.
//!
//! What crosses generations is found by name, never by position: an
//! upstream with the same name and the same definition (`Upstream::same_as`)
//! is the same `Rc<UpstreamState>` in both, so it keeps its idle
//! connections, passive and active health and balancer position; any other
//! is retired (its idle connections closed, busy ones closed after their
//! request). Listeners are found by their configured address.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;

use crate::config::{Config, Server};
use crate::log::{AccessLogs, LogFiles};
use crate::route::{listen_addrs, Router};
use crate::tls::server::WorkerTls;
use crate::upstream::health::Probed;
use crate::upstream::UpstreamState;

/// What the process hands every worker for one config: built off the
/// workers (config read and checked, log files opened), immutable.
pub struct Snapshot {
    /// 1 for the config the process started with, then one more per reload.
    pub number: u64,
    pub config: Arc<Config>,
    /// Active health flags, per upstream, carried across reloads by name.
    pub probed: Option<Arc<Probed>>,
    pub logs: Arc<LogFiles>,
    /// The metrics' series of this config (see `metrics::series`).
    pub metrics: Arc<crate::metrics::Layout>,
}

pub struct Generation {
    pub number: u64,
    pub config: Arc<Config>,
    /// Listen addresses as configured, in the order the router indexes them.
    pub listen: Vec<SocketAddr>,
    pub router: Router,
    pub upstreams: Vec<Rc<UpstreamState>>,
    pub logs: AccessLogs,
    pub tls: WorkerTls,
    /// Where its requests are counted, by its server block positions.
    pub metrics: Arc<crate::metrics::Layout>,
}

impl Generation {
    /// Builds a generation; upstreams unchanged since `previous` are
    /// carried over, the others of `previous` retired.
    pub fn build(snap: &Snapshot, seed: u64, previous: Option<&Generation>) -> Generation {
        let config = snap.config.clone();
        let mut kept = vec![false; previous.map_or(0, |p| p.upstreams.len())];
        let upstreams = (0..config.upstreams.len())
            .map(|i| {
                let def = &config.upstreams[i];
                let carried = previous.and_then(|p| {
                    let j = p.upstreams.iter().position(|u| u.config().same_as(def))?;
                    kept[j] = true;
                    Some(p.upstreams[j].clone())
                });
                carried.unwrap_or_else(|| {
                    let mut up = UpstreamState::new(&config, i, seed);
                    up.probed = snap.probed.as_ref().and_then(|p| p.upstream(i));
                    let series = snap.metrics.upstreams.get(i).cloned();
                    up.h2.metrics.clone_from(&series);
                    up.metrics = series;
                    Rc::new(up)
                })
            })
            .collect();
        if let Some(p) = previous {
            for (up, kept) in p.upstreams.iter().zip(kept) {
                if !kept {
                    up.retire();
                }
            }
        }
        Generation {
            number: snap.number,
            listen: listen_addrs(&config),
            router: Router::new(&config),
            upstreams,
            logs: AccessLogs::new(&config, &snap.logs),
            tls: WorkerTls::new(&config),
            metrics: snap.metrics.clone(),
            config,
        }
    }

    pub fn server(&self, i: usize) -> &Server {
        &self.config.servers[i]
    }

    /// The router's index of a listen address, if this config listens on it.
    pub fn listener(&self, addr: SocketAddr) -> Option<usize> {
        self.listen.iter().position(|a| *a == addr)
    }
}

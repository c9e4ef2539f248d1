//! Upstream groups as a worker sees them: the balancer that picks a server,
//! what this worker knows of each server's health and load, the pool of idle
//! keep-alive connections, and connecting. Never parses HTTP.

pub mod balance;
pub mod connect;
pub mod health;
pub mod pool;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use monoio::net::TcpStream;

use crate::config::{Balance, Config, RequestKey, Upstream};

/// A connection to one upstream server, with its read buffer.
pub struct UpConn {
    pub stream: TcpStream,
    pub rbuf: BytesMut,
    /// Index of the server within its upstream.
    pub peer: usize,
    /// Taken from the pool rather than freshly connected: a failure before
    /// any response byte may then be the upstream having closed it while idle.
    pub reused: bool,
}

/// One upstream group, per worker.
pub struct UpstreamState {
    pub index: usize,
    pub balancer: balance::RoundRobin,
    pub pool: pool::Pool,
    /// Health and requests in flight, by server index.
    pub peers: Vec<health::PeerState>,
    weights: Vec<u32>,
    rng: balance::XorShift,
    /// For `hash`: the rings of the primaries and of the backups.
    rings: Option<[balance::Ring; 2]>,
    config: Arc<Config>,
}

impl UpstreamState {
    /// `seed` starts random_two's generator; each worker passes its own.
    pub fn new(config: &Arc<Config>, index: usize, seed: u64) -> UpstreamState {
        let up = &config.upstreams[index];
        UpstreamState {
            index,
            balancer: balance::RoundRobin::new(up.servers.iter().map(|s| s.weight)),
            pool: pool::Pool::new(up.keepalive, up.keepalive_timeout),
            peers: up.servers.iter().map(|_| health::PeerState::default()).collect(),
            weights: up.servers.iter().map(|s| s.weight).collect(),
            rng: balance::XorShift::new(seed ^ (index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)),
            rings: matches!(up.balance, Balance::Hash(_)).then(|| {
                [false, true].map(|backup| {
                    balance::Ring::new(
                        up.servers
                            .iter()
                            .enumerate()
                            .filter(|(_, s)| s.backup == backup)
                            .map(|(i, s)| (i, s.authority.as_str(), s.weight)),
                    )
                })
            }),
            config: config.clone(),
        }
    }

    pub fn config(&self) -> &Upstream {
        &self.config.upstreams[self.index]
    }

    /// The key `hash` hashes, if the upstream is balanced by one.
    pub fn hash_key(&self) -> Option<&RequestKey> {
        match &self.config().balance {
            Balance::Hash(k) => Some(k),
            _ => None,
        }
    }

    /// The server for a request from `client` whose [`Self::hash_key`]
    /// hashed to `key` (`None`: the request has no key, and `hash` falls back
    /// to round robin), leaving out those in `tried` (already tried for this
    /// request) and those that are down. Primaries first; backups only when
    /// no primary is left. `None`: no server is left.
    pub fn select(&self, client: IpAddr, key: Option<u32>, tried: &[usize]) -> Option<usize> {
        let up = self.config();
        if up.servers.len() == 1 {
            return (!tried.contains(&0)).then_some(0);
        }
        let live = |i: usize| !tried.contains(&i) && !self.peers[i].is_down();
        let active = |i: usize| self.peers[i].active();
        for backup in [false, true] {
            let tier = |i: usize| up.servers[i].backup == backup;
            let ok = |i: usize| tier(i) && live(i);
            let pick = match up.balance {
                Balance::RoundRobin => self.balancer.next_among(ok),
                Balance::LeastConn => balance::least_conn(&self.balancer, &self.weights, active, ok),
                Balance::IpHash => balance::ip_hash(client, &self.weights, tier, live)
                    .or_else(|| self.balancer.next_among(ok)),
                Balance::RandomTwo => balance::random_two(&self.rng, &self.weights, active, ok),
                Balance::Hash(_) => key
                    .zip(self.rings.as_ref())
                    .and_then(|(key, r)| r[usize::from(backup)].lookup(key, live))
                    .or_else(|| self.balancer.next_among(ok)),
            };
            if pick.is_some() {
                return pick;
            }
        }
        None
    }

    /// Counts a failure of server `i`; true when that marked it down.
    pub fn failure(&self, i: usize) -> bool {
        let up = self.config();
        if up.servers.len() == 1 {
            return false;
        }
        let s = &up.servers[i];
        self.peers[i].failure(Instant::now(), s.max_fails, s.fail_timeout)
    }
}

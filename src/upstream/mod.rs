//! Upstream groups as a worker sees them: the balancer that picks a server,
//! what this worker knows of each server's health and load, the pool of idle
//! keep-alive connections, and connecting. Never parses HTTP.

pub mod balance;
pub mod connect;
pub mod health;
pub mod pool;
pub mod probe;
pub mod resolve;

use std::cell::Cell;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use monoio::net::TcpStream;

use crate::config::{Balance, Config, HashKey, Upstream};

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
    /// What active checks say, shared by every worker; `None` without them.
    pub probed: Option<Arc<health::Probed>>,
    /// Each server's address: the one resolved at load until
    /// `resolve_interval` hands this worker another (`set_addr`).
    addrs: Vec<Cell<SocketAddr>>,
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
            probed: None,
            addrs: up.servers.iter().map(|s| Cell::new(s.addr)).collect(),
        }
    }

    /// The address to connect to for server `i`.
    pub fn addr(&self, i: usize) -> SocketAddr {
        self.addrs[i].get()
    }

    /// Server `i` has a new address: new connections go there, and the idle
    /// ones to the old address are closed. Requests in flight finish where
    /// they are.
    pub fn set_addr(&self, i: usize, addr: SocketAddr) {
        if let Some(cell) = self.addrs.get(i) {
            if cell.replace(addr) != addr {
                self.pool.drop_peer(i);
            }
        }
    }

    /// Taken out of rotation by active checks.
    fn probed_down(&self, i: usize) -> bool {
        self.probed.as_ref().is_some_and(|p| p.is_down(self.index, i))
    }

    pub fn config(&self) -> &Upstream {
        &self.config.upstreams[self.index]
    }

    /// The server for a request from `client` for `uri` (the request target
    /// as sent), leaving out those in `tried` (already tried for this
    /// request) and those that are down. Primaries first; backups only when
    /// no primary is left. `None`: no server is left.
    pub fn select(&self, client: IpAddr, uri: &[u8], tried: &[usize]) -> Option<usize> {
        let up = self.config();
        if up.servers.len() == 1 {
            // Passive health never takes the only server out; a probe does.
            return (!tried.contains(&0) && !self.probed_down(0)).then_some(0);
        }
        let live = |i: usize| !tried.contains(&i) && !self.peers[i].is_down() && !self.probed_down(i);
        let active = |i: usize| self.peers[i].active();
        let key_hash = match up.balance {
            Balance::Hash(HashKey::RequestUri) => balance::ring_hash(uri),
            _ => 0,
        };
        for backup in [false, true] {
            let tier = |i: usize| up.servers[i].backup == backup;
            let ok = |i: usize| tier(i) && live(i);
            let pick = match up.balance {
                Balance::RoundRobin => self.balancer.next_among(ok),
                Balance::LeastConn => balance::least_conn(&self.balancer, &self.weights, active, ok),
                Balance::IpHash => balance::ip_hash(client, &self.weights, tier, live)
                    .or_else(|| self.balancer.next_among(ok)),
                Balance::RandomTwo => balance::random_two(&self.rng, &self.weights, active, ok),
                Balance::Hash(_) => self
                    .rings
                    .as_ref()
                    .and_then(|r| r[usize::from(backup)].lookup(key_hash, live))
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

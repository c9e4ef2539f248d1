//! Upstream groups as a worker sees them: the balancer that picks a server,
//! the pool of idle keep-alive connections, and connecting. Never parses HTTP.

pub mod balance;
pub mod connect;
pub mod pool;

use std::sync::Arc;

use bytes::BytesMut;
use monoio::net::TcpStream;

use crate::config::{Config, Upstream};

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
    config: Arc<Config>,
}

impl UpstreamState {
    pub fn new(config: &Arc<Config>, index: usize) -> UpstreamState {
        let up = &config.upstreams[index];
        UpstreamState {
            index,
            balancer: balance::RoundRobin::new(up.servers.iter().map(|s| s.weight)),
            pool: pool::Pool::new(up.keepalive, up.keepalive_timeout),
            config: config.clone(),
        }
    }

    pub fn config(&self) -> &Upstream {
        &self.config.upstreams[self.index]
    }
}

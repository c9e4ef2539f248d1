//! Upstream groups as a worker sees them: the balancer that picks a server,
//! what this worker knows of each server's health and load, the pool of idle
//! keep-alive connections, and connecting. Never parses HTTP.

pub mod balance;
pub mod connect;
pub mod health;
pub mod pool;

use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent};
use monoio::net::TcpStream;
use monoio::BufResult;
use monoio_rustls::ClientTlsStream;

use crate::config::{Balance, Config, HashKey, Upstream};
use crate::tls::client::Connector;

/// The byte stream to an upstream server: plain TCP, or TLS over it. One
/// type for both, so the request path is the same code for either.
pub enum UpStream {
    Plain(TcpStream),
    /// Boxed: the TLS state (rustls' session and its two 16 KiB buffers) is
    /// much larger than a socket and would otherwise size every connection.
    Tls {
        stream: Box<ClientTlsStream<TcpStream>>,
        /// The socket under the TLS stream, for the pool's liveness peek.
        fd: RawFd,
    },
}

impl UpStream {
    pub fn tls(stream: ClientTlsStream<TcpStream>, fd: RawFd) -> UpStream {
        UpStream::Tls {
            stream: Box::new(stream),
            fd,
        }
    }

    /// The TCP socket, TLS or not.
    pub fn raw_fd(&self) -> RawFd {
        match self {
            UpStream::Plain(s) => s.as_raw_fd(),
            UpStream::Tls { fd, .. } => *fd,
        }
    }
}

impl AsyncReadRent for UpStream {
    async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            UpStream::Plain(s) => s.read(buf).await,
            UpStream::Tls { stream, .. } => tls_eof(stream.read(buf).await),
        }
    }

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            UpStream::Plain(s) => s.readv(buf).await,
            UpStream::Tls { stream, .. } => tls_eof(stream.readv(buf).await),
        }
    }
}

/// A TLS peer that closes the connection without a close_notify alert is
/// taken as having closed it, as over plain TCP (and as nginx does): many
/// servers end a close-delimited body that way. rustls reports it as
/// `UnexpectedEof`. A body with a length or chunked framing that ends early
/// is still caught as cut short by the framing.
fn tls_eof<T>((result, buf): BufResult<usize, T>) -> BufResult<usize, T> {
    match result {
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => (Ok(0), buf),
        r => (r, buf),
    }
}

impl AsyncWriteRent for UpStream {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            UpStream::Plain(s) => s.write(buf).await,
            UpStream::Tls { stream, .. } => stream.write(buf).await,
        }
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            UpStream::Plain(s) => s.writev(buf).await,
            UpStream::Tls { stream, .. } => stream.writev(buf).await,
        }
    }

    async fn flush(&mut self) -> io::Result<()> {
        match self {
            UpStream::Plain(s) => s.flush().await,
            UpStream::Tls { stream, .. } => stream.flush().await,
        }
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        match self {
            UpStream::Plain(s) => s.shutdown().await,
            UpStream::Tls { stream, .. } => stream.shutdown().await,
        }
    }
}

/// A connection to one upstream server, with its read buffer.
pub struct UpConn {
    pub stream: UpStream,
    pub rbuf: BytesMut,
    /// Index of the server within its upstream.
    pub peer: usize,
    /// Taken from the pool rather than freshly connected: a failure before
    /// any response byte may then be the upstream having closed it while idle.
    pub reused: bool,
    /// The TLS server name it was made for, when that came from the request
    /// (`tls_server_name = "$host"`): it serves only requests for that name.
    pub sni: Option<Box<str>>,
}

/// One upstream group, per worker.
pub struct UpstreamState {
    pub index: usize,
    pub balancer: balance::RoundRobin,
    pub pool: pool::Pool,
    /// For an upstream with `tls`: this worker's TLS client side of it.
    pub tls: Option<Connector>,
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
            tls: up.tls.as_ref().map(Connector::new),
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

    /// The server for a request from `client` for `uri` (the request target
    /// as sent), leaving out those in `tried` (already tried for this
    /// request) and those that are down. Primaries first; backups only when
    /// no primary is left. `None`: no server is left.
    pub fn select(&self, client: IpAddr, uri: &[u8], tried: &[usize]) -> Option<usize> {
        let up = self.config();
        if up.servers.len() == 1 {
            return (!tried.contains(&0)).then_some(0);
        }
        let live = |i: usize| !tried.contains(&i) && !self.peers[i].is_down();
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

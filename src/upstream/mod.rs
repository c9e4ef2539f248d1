//! Upstream groups as a worker sees them: the balancer that picks a server,
//! what this worker knows of each server's health and load, the pool of idle
//! keep-alive connections, and connecting. Never parses HTTP.

pub mod balance;
pub mod connect;
pub mod h2;
pub mod health;
pub mod pool;
pub mod probe;
pub mod resolve;

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent};
use monoio::net::TcpStream;
use monoio::BufResult;
use monoio_rustls::ClientTlsStream;

use crate::config::{Balance, Config, RequestKey, Upstream};
use crate::io::Either;
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
    fn read<T: IoBufMut>(&mut self, buf: T) -> impl Future<Output = BufResult<usize, T>> {
        match self {
            UpStream::Plain(s) => Either::Plain { fut: s.read(buf) },
            UpStream::Tls { stream, .. } => Either::Tls {
                fut: Box::pin(async move { tls_eof(stream.read(buf).await) }),
            },
        }
    }

    fn readv<T: IoVecBufMut>(&mut self, buf: T) -> impl Future<Output = BufResult<usize, T>> {
        match self {
            UpStream::Plain(s) => Either::Plain { fut: s.readv(buf) },
            UpStream::Tls { stream, .. } => Either::Tls {
                fut: Box::pin(async move { tls_eof(stream.readv(buf).await) }),
            },
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
    fn write<T: IoBuf>(&mut self, buf: T) -> impl Future<Output = BufResult<usize, T>> {
        match self {
            UpStream::Plain(s) => Either::Plain { fut: s.write(buf) },
            UpStream::Tls { stream, .. } => Either::Tls {
                fut: Box::pin(stream.write(buf)),
            },
        }
    }

    fn writev<T: IoVecBuf>(&mut self, buf: T) -> impl Future<Output = BufResult<usize, T>> {
        match self {
            UpStream::Plain(s) => Either::Plain { fut: s.writev(buf) },
            UpStream::Tls { stream, .. } => Either::Tls {
                fut: Box::pin(stream.writev(buf)),
            },
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
    /// For `protocol = "h2"`: this worker's HTTP/2 connections.
    pub h2: h2::H2Pool,
    /// For an upstream with `tls`: this worker's TLS client side of it.
    pub tls: Option<Connector>,
    /// Health and requests in flight, by server index.
    pub peers: Vec<health::PeerState>,
    weights: Vec<u32>,
    rng: balance::XorShift,
    /// For `hash`: the rings of the primaries and of the backups.
    rings: Option<[balance::Ring; 2]>,
    /// For `sticky`: each server's cookie id, and its `Set-Cookie` line.
    sticky: Option<StickyIds>,
    /// For `ewma`: each server's latency estimate.
    ewma: Vec<balance::PeakEwma>,
    config: Arc<Config>,
    /// What active checks say, shared by every worker; `None` without them.
    pub probed: Option<Arc<health::ProbedUpstream>>,
    /// Set when a reload removed or changed this upstream: connections
    /// that finish their request are closed, not pooled.
    pub retired: Cell<bool>,
    /// This upstream's metrics series, set by the generation that made it.
    pub metrics: Option<Arc<crate::metrics::UpstreamSeries>>,
    /// Each server's address: the one resolved at load until
    /// `resolve_interval` hands this worker another (`set_addr`).
    addrs: Vec<Cell<SocketAddr>>,
}

/// The cookie values that name the servers of a `sticky` upstream, and the
/// `Set-Cookie` field for each, written once when the worker starts.
struct StickyIds {
    ids: Vec<[u8; 16]>,
    set_cookie: Vec<Box<[u8]>>,
}

impl UpstreamState {
    /// `seed` starts random_two's generator; each worker passes its own.
    pub fn new(config: &Arc<Config>, index: usize, seed: u64) -> UpstreamState {
        let up = &config.upstreams[index];
        UpstreamState {
            index,
            balancer: balance::RoundRobin::new(up.servers.iter().map(|s| s.weight)),
            pool: pool::Pool::new(up.keepalive, up.keepalive_timeout),
            h2: h2::H2Pool::new(up.servers.len()),
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
            sticky: up.sticky.as_ref().map(|st| {
                let ids: Vec<[u8; 16]> = up
                    .servers
                    .iter()
                    .map(|s| balance::sticky_id(&s.authority))
                    .collect();
                let set_cookie = ids
                    .iter()
                    .map(|id| balance::set_cookie_line(st, id).into_boxed_slice())
                    .collect();
                StickyIds { ids, set_cookie }
            }),
            ewma: up.servers.iter().map(|_| balance::PeakEwma::default()).collect(),
            config: config.clone(),
            probed: None,
            retired: Cell::new(false),
            metrics: None,
            addrs: up.servers.iter().map(|s| Cell::new(s.addr)).collect(),
        }
    }

    /// `ewma`: server `i` took `latency` to send a response head (or to fail).
    pub fn observe(&self, i: usize, latency: std::time::Duration) {
        if let Balance::Ewma(decay) = self.config().balance {
            self.ewma[i].observe(latency, Instant::now(), decay);
        }
    }

    /// `sticky`: the server a cookie value names, if any (a forged or stale
    /// value names none).
    pub fn sticky_named(&self, value: &[u8]) -> Option<usize> {
        let st = self.sticky.as_ref()?;
        st.ids.iter().position(|id| id[..] == *value)
    }

    /// `sticky`: the server named by the cookie `value`, when it may take the
    /// request: not down, not tried for it already, and, for a backup, only
    /// while no primary can take it (so clients return to the primaries).
    pub fn sticky_server(&self, value: &[u8], tried: &[usize]) -> Option<usize> {
        let i = self.sticky_named(value)?;
        let servers = &self.config().servers;
        let usable = |i: usize| !tried.contains(&i) && !self.peers[i].is_down();
        if !usable(i) || (servers[i].backup && (0..servers.len()).any(|j| !servers[j].backup && usable(j))) {
            return None;
        }
        Some(i)
    }

    /// `sticky`: the `Set-Cookie` field (with its CRLF) that names server `i`.
    pub fn set_cookie(&self, i: usize) -> Option<&[u8]> {
        Some(&self.sticky.as_ref()?.set_cookie[i])
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
        self.probed.as_ref().is_some_and(|p| p.is_down(i))
    }

    /// A reload removed or changed this upstream: idle connections close
    /// now, busy ones when their request is done (`retired` keeps them out
    /// of the pool); requests still running under the old config go on.
    pub fn retire(&self) {
        self.retired.set(true);
        self.pool.clear();
        self.h2.retire_all();
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
            // Passive health never takes the only server out; a probe does.
            return (!tried.contains(&0) && !self.probed_down(0)).then_some(0);
        }
        let live = |i: usize| !tried.contains(&i) && !self.peers[i].is_down() && !self.probed_down(i);
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
                Balance::Ewma(decay) => {
                    let now = Instant::now();
                    let load = |i: usize| {
                        balance::ewma_load(self.ewma[i].cost_at(now, decay), active(i), self.weights[i])
                    };
                    balance::ewma_pick(&self.rng, &self.weights, load, ok)
                }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn state(servers: &str, extra: &str) -> UpstreamState {
        let text = format!(
            "[[upstream]]\nname = \"app\"\nservers = [{servers}]\n{extra}\n\
             [[server]]\nlisten = [\"127.0.0.1:0\"]\n"
        );
        let config = Arc::new(Config::parse(&text, Path::new("t.toml")).unwrap());
        UpstreamState::new(&config, 0, 1)
    }

    #[test]
    fn sticky_cookie_names_a_server_only_while_it_can_take_the_request() {
        let up = state(
            "\"127.0.0.1:1\", \"127.0.0.1:2\", { addr = \"127.0.0.1:3\", backup = true }",
            "sticky = {}",
        );
        let id = |i: usize| balance::sticky_id(&up.config().servers[i].authority);
        assert_eq!(up.sticky_named(&id(1)), Some(1));
        assert_eq!(up.sticky_named(b"0000000000000000"), None);
        assert_eq!(up.sticky_server(&id(1), &[]), Some(1));
        assert_eq!(up.sticky_server(&id(1), &[1]), None);
        // A backup only while no primary can take the request.
        assert_eq!(up.sticky_server(&id(2), &[]), None);
        assert_eq!(up.sticky_server(&id(2), &[0, 1]), Some(2));
        // Down: not named, so the balancer decides.
        assert!(up.failure(1));
        assert_eq!(up.sticky_server(&id(1), &[]), None);
        let line = up.set_cookie(0).unwrap();
        assert!(line.starts_with(b"Set-Cookie: rw_srv=") && line.ends_with(b"; Path=/\r\n"));
        assert!(state("\"127.0.0.1:1\"", "").set_cookie(0).is_none());
    }
}

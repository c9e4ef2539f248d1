//! HTTP/2 to upstream servers (`protocol = "h2"`): per worker and server, up
//! to `h2_connections` connections that every request of this worker is
//! multiplexed on, whatever protocol its client spoke. A connection is
//! opened on first use under `connect_timeout` (TCP, then TLS with ALPN h2,
//! then the HTTP/2 preface), driven by a task of its own, pinged while in
//! use so a dead peer is noticed, and closed after `keepalive_timeout` with
//! no stream, or at shutdown once its streams are done.
//!
//! A request takes the connection with the fewest open streams; h2 queues a
//! stream beyond the peer's SETTINGS_MAX_CONCURRENT_STREAMS until one ends.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use h2::client::SendRequest;

use crate::config::Upstream;
use crate::ctx::WorkerCtx;
use crate::deadline::Woke;
use crate::error::{Error, ErrorKind};
use crate::h2io::Io;
use crate::tls::client::Connector;

/// How often a connection with streams in flight is pinged, and how long
/// the answer may take before the connection is given up.
const PING_EVERY: Duration = Duration::from_secs(30);

/// One HTTP/2 connection to a server.
pub struct H2Conn {
    send: RefCell<Option<SendRequest<Bytes>>>,
    /// Streams opened on it and not yet ended.
    streams: Cell<usize>,
    /// When the last stream ended (for the idle close).
    idle_since: Cell<Instant>,
}

impl H2Conn {
    fn live(&self) -> bool {
        self.send.borrow().is_some()
    }

    /// Stops new streams: the connection closes once its streams are done.
    fn retire(&self) {
        self.send.borrow_mut().take();
    }
}

/// A stream's hold on its connection, for the stream count.
pub struct StreamGuard(Rc<H2Conn>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let c = &self.0;
        c.streams.set(c.streams.get() - 1);
        if c.streams.get() == 0 {
            c.idle_since.set(Instant::now());
        }
    }
}

/// This worker's HTTP/2 connections to one upstream, by server.
#[derive(Default)]
pub struct H2Pool {
    servers: RefCell<Vec<Vec<Rc<H2Conn>>>>,
    /// The upstream's metrics series.
    pub metrics: Option<Arc<crate::metrics::UpstreamSeries>>,
}

impl H2Pool {
    pub fn new(servers: usize) -> H2Pool {
        H2Pool {
            servers: RefCell::new(vec![Vec::new(); servers]),
            metrics: None,
        }
    }

    /// A handle to open a stream to server `peer` on, with the guard that
    /// counts it. `fresh`: do not reuse an open connection (the last one
    /// refused the stream, or went away before taking it).
    #[allow(clippy::too_many_arguments)]
    pub async fn stream(
        &self,
        ctx: &Rc<WorkerCtx>,
        up: &Upstream,
        peer: usize,
        addr: SocketAddr,
        tls: Option<(&Connector, Option<rustls::pki_types::ServerName<'static>>)>,
        fresh: bool,
    ) -> Result<(SendRequest<Bytes>, StreamGuard), Error> {
        let reuse = if fresh {
            None
        } else {
            self.least_busy(peer, up.h2_connections)
        };
        let reused = reuse.is_some();
        let conn = match reuse {
            Some(c) => c,
            None => {
                let c = connect(ctx, up, peer, addr, tls).await?;
                let mut servers = self.servers.borrow_mut();
                let list = &mut servers[peer];
                list.retain(|c| c.live());
                if list.len() >= up.h2_connections {
                    // Full: the busiest one stops taking streams.
                    if let Some(old) = list.iter().max_by_key(|c| c.streams.get()) {
                        old.retire();
                    }
                    list.retain(|c| c.live());
                }
                list.push(c.clone());
                c
            }
        };
        let send = conn
            .send
            .borrow()
            .clone()
            .ok_or_else(|| Error::new(ErrorKind::UpstreamClosed))?;
        // Waits for the connection to take one more stream (h2 queues it
        // past the peer's limit), within the connect deadline.
        let ready = ctx
            .deadlines
            .within(send.ready(), Instant::now() + up.connect_timeout)
            .await;
        let send = match ready {
            Woke::Ready(Ok(s)) => s,
            Woke::Ready(Err(e)) => {
                conn.retire();
                return Err(Error::io(ErrorKind::UpstreamClosed, io::Error::other(e)));
            }
            Woke::TimedOut | Woke::Closing => return Err(Error::new(ErrorKind::ConnectTimeout)),
        };
        conn.streams.set(conn.streams.get() + 1);
        if let Some(m) = &self.metrics {
            m.conn(ctx.id, peer, reused);
        }
        Ok((send, StreamGuard(conn)))
    }

    fn least_busy(&self, peer: usize, max: usize) -> Option<Rc<H2Conn>> {
        let mut servers = self.servers.borrow_mut();
        let list = servers.get_mut(peer)?;
        list.retain(|c| c.live());
        let best = list.iter().min_by_key(|c| c.streams.get())?;
        // Another connection is opened while fewer than `max` exist and
        // every one already carries streams.
        if best.streams.get() > 0 && list.len() < max {
            return None;
        }
        Some(best.clone())
    }

    /// Closes idle connections and stops new streams (shutdown).
    pub fn retire_all(&self) {
        for list in self.servers.borrow_mut().iter_mut() {
            for c in list.drain(..) {
                c.retire();
            }
        }
    }
}

async fn connect(
    ctx: &Rc<WorkerCtx>,
    up: &Upstream,
    peer: usize,
    addr: SocketAddr,
    tls: Option<(&Connector, Option<rustls::pki_types::ServerName<'static>>)>,
) -> Result<Rc<H2Conn>, Error> {
    let establish = async {
        let tcp = super::connect::tcp(addr).await?;
        let session = match tls {
            Some((c, name)) => Some(
                c.session(peer, name)
                    .map_err(|e| Error::io(ErrorKind::UpstreamTls, e))?,
            ),
            None => None,
        };
        let io = Io::upstream(tcp, session)
            .into_poll()
            .map_err(|e| Error::io(ErrorKind::ConnectRefused, e))?;
        let mut builder = h2::client::Builder::new();
        builder
            .initial_window_size(1 << 20)
            .initial_connection_window_size(4 << 20)
            .max_frame_size(16 << 10)
            .max_header_list_size(256 << 10)
            .enable_push(false);
        builder.handshake::<_, Bytes>(io).await.map_err(|e| {
            Error::io(
                ErrorKind::UpstreamClosed,
                io::Error::other(format!("{addr}: HTTP/2 handshake: {e}")),
            )
        })
    };
    let (send, conn) = match ctx
        .deadlines
        .within(Box::pin(establish), Instant::now() + up.connect_timeout)
        .await
    {
        Woke::Ready(r) => r?,
        Woke::TimedOut | Woke::Closing => return Err(Error::new(ErrorKind::ConnectTimeout)),
    };
    let shared = Rc::new(H2Conn {
        send: RefCell::new(Some(send)),
        streams: Cell::new(0),
        idle_since: Cell::new(Instant::now()),
    });
    monoio::spawn(drive(
        conn,
        shared.clone(),
        ctx.clone(),
        up.keepalive_timeout,
        up.read_timeout.min(PING_EVERY),
        addr,
    ));
    Ok(shared)
}

/// Runs the connection: its I/O, the idle close, PING keep-alive, and the
/// drain at shutdown. Ends when h2 has nothing left to do on it.
async fn drive(
    mut conn: h2::client::Connection<Io, Bytes>,
    shared: Rc<H2Conn>,
    ctx: Rc<WorkerCtx>,
    idle: Duration,
    pong_wait: Duration,
    addr: SocketAddr,
) {
    let mut ping = conn.ping_pong();
    let mut awaiting_pong: Option<Instant> = None;
    loop {
        let tick = Instant::now() + PING_EVERY.min(idle.max(Duration::from_secs(1)));
        let woke = monoio::select! {
            r = ctx.deadlines.within(&mut conn, tick) => r,
            _ = ctx.shutdown.wait(), if shared.live() => {
                shared.retire();
                continue;
            }
        };
        match woke {
            Woke::Ready(Ok(())) => break,
            Woke::Ready(Err(e)) => {
                tracing::debug!(upstream = %addr, "HTTP/2 connection ended: {e}");
                break;
            }
            // The worker's drain ran out: nothing more to wait for.
            Woke::TimedOut | Woke::Closing if ctx.deadlines.all_expired() => break,
            Woke::TimedOut | Woke::Closing => {}
        }
        if shared.streams.get() == 0 && shared.idle_since.get().elapsed() >= idle {
            // Idle: no new streams; h2 closes once the handles are gone.
            shared.retire();
        }
        if let Some(sent) = awaiting_pong {
            let got = poll_fn(|cx| match ping.as_mut().map(|p| p.poll_pong(cx)) {
                Some(std::task::Poll::Ready(r)) => std::task::Poll::Ready(r.is_ok()),
                _ => std::task::Poll::Ready(false),
            })
            .await;
            if got {
                awaiting_pong = None;
            } else if sent.elapsed() > pong_wait * 2 {
                tracing::warn!(upstream = %addr, "HTTP/2 connection did not answer a PING: closed");
                break;
            }
        } else if shared.streams.get() > 0 {
            if let Some(p) = ping.as_mut() {
                if p.send_ping(h2::Ping::opaque()).is_ok() {
                    awaiting_pong = Some(Instant::now());
                }
            }
        }
    }
    shared.retire();
}

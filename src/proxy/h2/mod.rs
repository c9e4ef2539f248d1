//! HTTP/2 from clients: the connection driver. The h2 codec (the maintained
//! `h2` crate: frames, HPACK, stream states, flow control) runs over
//! [`Io`]; this driver owns the connection, polls it for new streams and
//! spawns one local task per stream (`stream::run`), which serves the
//! request through the same phases as HTTP/1.1.
//!
//! What h2 does not do for a proxy is added here and in `meter.rs`, per
//! connection, without locks: settings from the config (h2's defaults allow
//! unlimited streams and 16 MiB header lists), the frame meter's budgets,
//! reset accounting, and every timeout (h2 has no timers): the preface
//! under `client_header_timeout`, idle with no open stream under
//! `idle_timeout`, then GOAWAY. Shutdown and `keepalive_requests` (streams
//! per connection) end a connection with a graceful GOAWAY: streams in
//! flight finish.

mod stream;

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use monoio::net::TcpStream;

use super::rewrite::FieldSink;
use super::session::ConnInfo;
use crate::ctx::WorkerCtx;
use crate::deadline::Woke;
use crate::h2io::meter::Meter;
pub use crate::h2io::Io;
use crate::tls::server::TlsInfo;
use http::{HeaderMap, HeaderName, HeaderValue};

/// The client connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Response bytes h2 may hold per stream beyond what the window allows.
const SEND_BUFFER: usize = 64 << 10;
/// The connection's receive window: room for several streams' bodies.
const CONNECTION_WINDOW: u32 = 1 << 20;
/// Streams reset before the server accepted them, at most (h2's rapid
/// reset guard).
const PENDING_ACCEPT_RESETS: usize = 20;
/// Resets ringway may send because of client errors before it sends
/// GOAWAY (MadeYouReset, CVE-2025-8671).
const LOCAL_ERROR_RESETS: usize = 200;
/// How long a GOAWAY and the streams in flight get to finish after an
/// abrupt end.
const ABRUPT_DRAIN: Duration = Duration::from_secs(1);

/// Fields into an h2 header map: names lowercased as HTTP/2 requires, a
/// field h2 could not carry left out.
pub(crate) struct H2Fields(pub HeaderMap);

impl FieldSink for H2Fields {
    fn field(&mut self, name: &[u8], value: &[u8]) {
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
            self.0.append(n, v);
        }
    }
}

/// What a connection's stream tasks share with it.
pub struct Shared {
    pub conn: ConnInfo,
    /// The generation of the connection's latest stream (see `h1::Downstream::gen`).
    pub gen: RefCell<Rc<crate::generation::Generation>>,
    pub tls: Option<TlsInfo>,
    pub meter: Rc<Meter>,
    open: Cell<usize>,
}

impl Shared {
    fn open_stream(self: &Rc<Self>) -> OpenStream {
        self.open.set(self.open.get() + 1);
        OpenStream(self.clone())
    }
}

/// Counts a stream as open for as long as its task lives.
struct OpenStream(Rc<Shared>);

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.open.set(self.0.open.get() - 1);
    }
}

/// Reads the first bytes of a cleartext connection, as many as it takes to
/// tell the HTTP/2 preface from an HTTP/1.1 request. `None`: the client
/// closed or said nothing within `wait`.
pub async fn sniff_preface(ctx: &WorkerCtx, s: &mut TcpStream, wait: Duration) -> Option<(bool, BytesMut)> {
    let mut buf = ctx.buffers.take_bytes();
    let deadline = Instant::now() + wait;
    loop {
        let n = buf.len().min(PREFACE.len());
        if buf[..n] != PREFACE[..n] {
            return Some((false, buf));
        }
        if n == PREFACE.len() {
            return Some((true, buf));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match crate::io::read_buf(s, &mut buf, super::HEAD_BUF, &ctx.deadlines, left).await {
            Ok(0) | Err(_) if buf.is_empty() => return None,
            // A partial, closed or stalled head is HTTP/1.1's to answer.
            Ok(0) | Err(_) => return Some((false, buf)),
            Ok(_) => {}
        }
    }
}

/// Serves an HTTP/2 connection until it closes.
pub async fn serve(ctx: &Rc<WorkerCtx>, gen: Rc<crate::generation::Generation>, io: Io, conn: ConnInfo) {
    let server = gen.server(gen.router.default_server(conn.listener));
    let (cfg, limits) = (&server.http2, &server.limits);
    let peer = conn.peer;
    let mut io = match io.into_poll() {
        Ok(io) => io,
        Err(e) => {
            tracing::warn!(peer = %peer, "HTTP/2: cannot drive the socket: {e}");
            return;
        }
    };
    let meter = Rc::new(Meter::new(cfg.max_concurrent_streams, true));
    io.meter = Some(meter.clone());
    let listen = conn.listen;
    let shared = Rc::new(Shared {
        gen: RefCell::new(gen.clone()),
        conn,
        tls: io.info.take(),
        meter: meter.clone(),
        open: Cell::new(0),
    });

    let mut builder = h2::server::Builder::new();
    builder
        .max_concurrent_streams(cfg.max_concurrent_streams)
        .initial_window_size(cfg.initial_window)
        .initial_connection_window_size(CONNECTION_WINDOW.max(cfg.initial_window))
        .max_frame_size(cfg.max_frame_size)
        .max_header_list_size(cfg.max_header_list)
        .header_table_size(4096)
        .max_send_buffer_size(SEND_BUFFER)
        .max_pending_accept_reset_streams(PENDING_ACCEPT_RESETS)
        .max_local_error_reset_streams(Some(LOCAL_ERROR_RESETS));
    if super::tunnel::rfc8441(&gen) {
        builder.enable_connect_protocol();
    }
    let handshake = builder.handshake::<_, Bytes>(io);
    let mut h2c = match ctx
        .deadlines
        .idle(handshake, Instant::now() + limits.header_timeout)
        .await
    {
        Woke::Ready(Ok(c)) => c,
        Woke::Ready(Err(e)) => {
            tracing::debug!(peer = %peer, "HTTP/2 handshake failed: {e}");
            return;
        }
        Woke::TimedOut | Woke::Closing => return,
    };

    let mut served: u64 = 0;
    let mut draining = false;
    loop {
        let idle = shared.open.get() == 0;
        let next = monoio::select! {
            r = ctx.deadlines.within(h2c.accept(), Instant::now() + cfg.idle_timeout) => r,
            b = poll_fn(|cx| meter.poll_breach(cx)) => {
                tracing::warn!(peer = %peer, "HTTP/2 connection cut: {}", b.as_str());
                h2c.abrupt_shutdown(h2::Reason::ENHANCE_YOUR_CALM);
                break;
            }
            _ = ctx.shutdown.wait(), if !draining => {
                h2c.graceful_shutdown();
                draining = true;
                continue;
            }
        };
        match next {
            Woke::Ready(Some(Ok((req, respond)))) => {
                served += 1;
                // A reload that removed this connection's listener: this
                // stream is served, and the client is told to go (GOAWAY).
                let current = ctx.gen_for(listen, &shared.gen.borrow().clone()).2;
                if (!current || served >= limits.keepalive_requests) && !draining {
                    // keepalive_requests counts streams: the connection is
                    // told to go once this one is under way.
                    h2c.graceful_shutdown();
                    draining = true;
                }
                let task = stream::run(ctx.clone(), shared.clone(), req, respond);
                monoio::spawn(crate::isolate::Isolated::new(task, peer));
            }
            Woke::Ready(Some(Err(e))) => {
                tracing::debug!(peer = %peer, "HTTP/2 connection error: {e}");
                return;
            }
            // Closed, or drained after GOAWAY.
            Woke::Ready(None) => return,
            // The drain ran out (the worker expired every wait): the
            // streams still open are dropped with the connection.
            Woke::TimedOut | Woke::Closing if ctx.deadlines.all_expired() => return,
            Woke::TimedOut | Woke::Closing if idle && !draining => {
                h2c.graceful_shutdown();
                draining = true;
            }
            Woke::TimedOut | Woke::Closing => {}
        }
    }
    // After an abrupt end: the GOAWAY goes out, then the connection closes.
    let _ = ctx
        .deadlines
        .within(poll_fn(|cx| h2c.poll_closed(cx)), Instant::now() + ABRUPT_DRAIN)
        .await;
}

//! The downstream side: one task per client connection, serving requests in
//! order until either side closes (HTTP/1.1 keep-alive and pipelining).
//!
//! Each request goes through the phases in `phases.rs`:
//! read_request_head → route → connect_upstream → send_request →
//! forward_request_body → read_response_head → forward_response_body → finish.

pub mod body;
pub mod phases;
pub mod respond;
pub mod rewrite;

use std::future::Future;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent};
use monoio::net::TcpStream;
use monoio::BufResult;

use crate::ctx::WorkerCtx;
use crate::deadline::Woke;
use crate::io::Either;
use crate::tls::server::{TlsInfo, TlsStream};

/// A client connection: plain TCP, or TLS over it once the handshake is
/// done. The request path reads and writes either through the same rent-style
/// traits, so it has one code path for both.
pub enum ClientStream {
    Plain(TcpStream),
    // Boxed: the TLS session is large and the plain case should not pay for it.
    Tls(Box<TlsStream>),
}

impl ClientStream {
    /// The handshake's outcome, for TLS connections.
    pub fn tls(&self) -> Option<&TlsInfo> {
        match self {
            ClientStream::Plain(_) => None,
            ClientStream::Tls(t) => Some(t.info()),
        }
    }
}

impl AsyncReadRent for ClientStream {
    fn read<T: IoBufMut>(&mut self, buf: T) -> impl Future<Output = BufResult<usize, T>> {
        match self {
            ClientStream::Plain(s) => Either::Plain { fut: s.read(buf) },
            ClientStream::Tls(s) => Either::Tls {
                fut: Box::pin(s.read(buf)),
            },
        }
    }

    fn readv<T: IoVecBufMut>(&mut self, buf: T) -> impl Future<Output = BufResult<usize, T>> {
        match self {
            ClientStream::Plain(s) => Either::Plain { fut: s.readv(buf) },
            ClientStream::Tls(s) => Either::Tls {
                fut: Box::pin(s.readv(buf)),
            },
        }
    }
}

impl AsyncWriteRent for ClientStream {
    fn write<T: IoBuf>(&mut self, buf: T) -> impl Future<Output = BufResult<usize, T>> {
        match self {
            ClientStream::Plain(s) => Either::Plain { fut: s.write(buf) },
            ClientStream::Tls(s) => Either::Tls {
                fut: Box::pin(s.write(buf)),
            },
        }
    }

    fn writev<T: IoVecBuf>(&mut self, buf: T) -> impl Future<Output = BufResult<usize, T>> {
        match self {
            ClientStream::Plain(s) => Either::Plain { fut: s.writev(buf) },
            ClientStream::Tls(s) => Either::Tls {
                fut: Box::pin(s.writev(buf)),
            },
        }
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        match self {
            ClientStream::Plain(s) => s.flush().await,
            ClientStream::Tls(s) => s.flush().await,
        }
    }

    async fn shutdown(&mut self) -> std::io::Result<()> {
        match self {
            ClientStream::Plain(s) => s.shutdown().await,
            ClientStream::Tls(s) => s.shutdown().await,
        }
    }
}

/// A client's read buffer is this large when a request starts arriving, and
/// grows only for larger heads and for bodies.
pub const HEAD_BUF: usize = 4096;

/// One client connection and the buffers it reuses from request to request.
pub struct Downstream {
    pub stream: ClientStream,
    /// Bytes read and not yet consumed: a head in progress, body bytes, or
    /// pipelined requests.
    pub rbuf: BytesMut,
    /// Heads written to the client.
    pub wbuf: Vec<u8>,
    /// Re-framed body bytes (chunked) in either direction.
    pub body_out: Vec<u8>,
    /// The upstream request head (and a small body), kept for a retry.
    pub upbuf: Vec<u8>,
    pub peer: SocketAddr,
    /// The peer's address and the port it connected to, as text for the
    /// forwarding headers (formatted once per connection).
    pub peer_text: rewrite::AddrText,
    pub port_text: rewrite::AddrText,
    /// Which of the worker's listeners accepted it.
    pub listener: usize,
    /// Requests served so far on this connection.
    pub served: u64,
}

pub async fn serve_connection(ctx: Rc<WorkerCtx>, listener: usize, stream: TcpStream, peer: SocketAddr) {
    let _guard = ctx.track_connection();
    // Responses are written whole; Nagle would hold back their last segment.
    let _ = stream.set_nodelay(true);
    let local = stream.local_addr().unwrap_or(peer);
    let limits = &ctx.server(ctx.router.default_server(listener)).limits;
    let stream = if ctx.tls.is_tls(listener) {
        // The handshake runs under the address's client_header_timeout, so
        // a client that connects and never speaks TLS costs one deadline
        // entry until it expires. Boxed, so the idle task stays small.
        let handshake = Box::pin(crate::tls::server::accept(
            stream,
            &ctx.tls,
            &ctx.router,
            listener,
        ));
        match ctx
            .deadlines
            .idle(handshake, Instant::now() + limits.header_timeout)
            .await
        {
            Woke::Ready(Ok(s)) => ClientStream::Tls(Box::new(s)),
            Woke::Ready(Err(e)) => {
                tracing::debug!(peer = %peer, "TLS handshake failed: {e}");
                return;
            }
            Woke::TimedOut | Woke::Closing => {
                tracing::debug!(peer = %peer, "TLS handshake timed out");
                return;
            }
        }
    } else {
        ClientStream::Plain(stream)
    };
    let mut ds = Downstream {
        stream,
        rbuf: BytesMut::new(),
        wbuf: Vec::new(),
        body_out: Vec::new(),
        upbuf: Vec::new(),
        peer,
        peer_text: rewrite::AddrText::ip(peer.ip()),
        port_text: rewrite::AddrText::port(local.port()),
        listener,
        served: 0,
    };
    let linger = loop {
        if ds.rbuf.is_empty() {
            // Nothing pipelined: the buffers go back to the worker's pool
            // while the client is quiet.
            recycle(&ctx, &mut ds);
            let wait = if ds.served == 0 {
                limits.header_timeout
            } else {
                limits.keepalive_timeout
            };
            if !wait_readable(&ctx, &mut ds.stream, wait).await {
                break false;
            }
            ds.rbuf = ctx.buffers.take_bytes();
            ds.wbuf = ctx.buffers.take_vec();
        }
        // The exchange runs as its own allocation, so the task parked above
        // stays small however deep the request path's futures are.
        match Box::pin(phases::exchange(&ctx, &mut ds)).await {
            phases::Next::KeepAlive => ds.served += 1,
            phases::Next::Close => break false,
            phases::Next::Linger => break true,
        }
    };
    if linger {
        // Boxed like the exchange: rare, and it must not size the idle task.
        Box::pin(linger_close(&ctx, &mut ds)).await;
    } else if matches!(ds.stream, ClientStream::Tls(_)) {
        // A TLS connection ends with close_notify. Without it a client may
        // take the last response as cut short, and OpenSSL-based clients
        // then drop the session, so their next connection cannot resume it.
        let _ = Box::pin(
            ctx.deadlines
                .within(ds.stream.shutdown(), Instant::now() + CLOSE_NOTIFY_WAIT),
        )
        .await;
    }
    recycle(&ctx, &mut ds);
}

/// The longest a TLS connection's close_notify may take to send.
const CLOSE_NOTIFY_WAIT: Duration = Duration::from_secs(1);

fn recycle(ctx: &WorkerCtx, ds: &mut Downstream) {
    ctx.buffers.put_bytes(std::mem::take(&mut ds.rbuf));
    ctx.buffers.put_vec(std::mem::take(&mut ds.wbuf));
    ctx.buffers.put_vec(std::mem::take(&mut ds.body_out));
    ctx.buffers.put_vec(std::mem::take(&mut ds.upbuf));
    if let ClientStream::Tls(t) = &mut ds.stream {
        t.release_buffers();
    }
}

/// Answers a connection accepted past `max_connections` with a 503 and
/// closes it. The write goes to an empty socket buffer and is bounded by a
/// short deadline, so a flood of these costs little.
pub async fn refuse_busy(ctx: Rc<WorkerCtx>, stream: TcpStream, peer: SocketAddr) {
    let mut stream = stream;
    let mut out = Vec::with_capacity(160);
    let body = respond::error_body(503);
    respond::Canned {
        status: 503,
        body: body.as_bytes(),
        location: None,
        close: true,
        keep_alive_10: false,
        head_only: false,
        hsts: None,
    }
    .write(&ctx.dates, &mut out);
    tracing::warn!(peer = %peer, "max_connections ({}) reached: refused", ctx.config.global.max_connections);
    let _ = crate::io::write_all(&mut stream, out, &ctx.deadlines, Duration::from_secs(1)).await;
    // The client's request was not read: linger briefly, so closing does not
    // answer its data with a reset that destroys the 503.
    let mut buf = bytes::BytesMut::new();
    linger(&ctx, &mut stream, &mut buf, Duration::from_secs(1), 64 * 1024).await;
}

/// Waits until the client sends something (or closes). False when the wait
/// expires or the worker starts shutting down: the connection just closes.
async fn wait_readable(ctx: &WorkerCtx, stream: &mut ClientStream, wait: Duration) -> bool {
    let tcp = match stream {
        ClientStream::Plain(s) => &*s,
        ClientStream::Tls(t) => {
            // rustls may already hold the next request, decrypted or not:
            // the socket may then never become readable again, so it must
            // not be waited on.
            if t.has_buffered() {
                return !ctx.shutdown.is_raised();
            }
            t.tcp()
        }
    };
    let woke = ctx
        .deadlines
        .idle(tcp.readable(false), Instant::now() + wait)
        .await;
    matches!(woke, crate::deadline::Woke::Ready(Ok(())))
}

/// Lingering close, as nginx does it: when the client may still be sending
/// (a refused body, a pipelined request), closing at once would make the
/// kernel answer its data with a reset, and a reset can destroy the response
/// it has not read yet. So: send FIN, then read and discard for a bounded
/// time and amount before closing.
async fn linger_close(ctx: &WorkerCtx, ds: &mut Downstream) {
    linger(ctx, &mut ds.stream, &mut ds.rbuf, Duration::from_secs(2), 1 << 20).await;
}

/// Sends FIN, then reads and discards what the client still sends, for at
/// most `time` and `max_bytes` (each read waits at most 500 ms).
async fn linger<S: AsyncReadRent + AsyncWriteRent>(
    ctx: &WorkerCtx,
    stream: &mut S,
    buf: &mut BytesMut,
    time: Duration,
    max_bytes: usize,
) {
    const READ_WAIT: Duration = Duration::from_millis(500);
    let _ = stream.shutdown().await;
    let deadline = Instant::now() + time;
    let mut discarded = 0;
    while discarded < max_bytes {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        buf.clear();
        match crate::io::read_buf(stream, buf, 16 * 1024, &ctx.deadlines, left.min(READ_WAIT)).await {
            Ok(n) if n > 0 => discarded += n,
            _ => break,
        }
    }
}

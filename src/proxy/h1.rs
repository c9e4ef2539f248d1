//! HTTP/1.1 on the client side: one task per connection, serving requests
//! in order until either side closes (keep-alive and pipelining). Each
//! request's head is read here and the request is handed to the phases as
//! the connection's current [`ClientSession`]; everything HTTP/1.1 about the
//! client (read and write buffers, framing, `100 Continue`, `Connection`,
//! coalescing the head with the first body bytes, lingering close) stays in
//! this file.

use std::borrow::Cow;
use std::future::Future;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent};
use monoio::net::TcpStream;
use monoio::BufResult;

use super::body::{self, BodyError, Copy, Trailers};
use super::phases::{self, Exchange};
use super::respond::{self, Canned};
use super::rewrite::{self, ClientFraming, Redirect, ResponseRewrite};
use super::session::{ClientSession, ConnInfo, RequestBody, UpBody, UpSink};
use super::tunnel::{self, Moved, Switch};
use crate::compress::Encoder;
use crate::config::ClientLimits;
use crate::ctx::WorkerCtx;
use crate::error::{Error, ErrorKind, Result};
use crate::generation::Generation;
use crate::http::chunked;
use crate::http::parse::{parse_request, HeadLimits, Parsed};
use crate::http::{BodyKind, RequestHead, ResponseHead, Version};
use crate::io::{self, Either, IoFail};
use crate::log::Entry;
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
    pub conn: ConnInfo,
    /// The generation of the connection's latest request (its accept's at
    /// first): its limits apply while it is idle.
    pub gen: Rc<Generation>,
    /// Requests served so far on this connection.
    pub served: u64,
}

/// What the connection does after an exchange.
pub enum Next {
    KeepAlive,
    Close,
    /// Close, but the client may still be sending: see `linger`.
    Linger,
}

/// Serves HTTP/1.1 requests on a connection until it closes. `rbuf` holds
/// bytes already read (by the HTTP/2 preface check of an h2c listener).
pub async fn serve(
    ctx: &Rc<WorkerCtx>,
    gen: Rc<Generation>,
    stream: ClientStream,
    conn: ConnInfo,
    rbuf: BytesMut,
) {
    let mut ds = Downstream {
        gen,
        stream,
        rbuf,
        wbuf: Vec::new(),
        body_out: Vec::new(),
        upbuf: Vec::new(),
        conn,
        served: 0,
    };
    let linger = loop {
        if ds.rbuf.is_empty() {
            // Nothing pipelined: the buffers go back to the worker's pool
            // while the client is quiet.
            recycle(ctx, &mut ds);
            let limits = &ds
                .gen
                .server(ds.gen.router.default_server(ds.conn.listener))
                .limits;
            let wait = if ds.served == 0 {
                limits.header_timeout
            } else {
                limits.keepalive_timeout
            };
            if !wait_readable(ctx, &mut ds.stream, wait).await {
                break false;
            }
            ds.rbuf = ctx.buffers.take_bytes();
        }
        if ds.wbuf.capacity() == 0 {
            ds.wbuf = ctx.buffers.take_vec();
        }
        // The exchange runs as its own allocation, so the task parked above
        // stays small however deep the request path's futures are.
        let exchange = Box::pin(exchange(ctx, &mut ds));
        // An alignment above malloc's 16 bytes makes that allocation an
        // aligned one, several times dearer, once per request: nothing
        // over-aligned (monoio's timer entries are) may sit in it inline.
        debug_assert!(
            std::mem::align_of_val(&*exchange) <= 16,
            "exchange future over-aligned"
        );
        match exchange.await {
            Next::KeepAlive => ds.served += 1,
            Next::Close => break false,
            Next::Linger => break true,
        }
    };
    if linger {
        // Boxed like the exchange: rare, and it must not size the idle task.
        Box::pin(linger_close(ctx, &mut ds)).await;
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
    recycle(ctx, &mut ds);
}

/// Serves one request on a downstream connection.
async fn exchange(ctx: &Rc<WorkerCtx>, ds: &mut Downstream) -> Next {
    // A request runs under the newest generation (the connection's own if
    // a reload removed its listener: then it is the last one here).
    let at = ctx.gen_for(ds.conn.listen, &ds.gen);
    ds.gen = at.0.clone();
    ds.conn.listener = at.1;
    let gen = at.0.clone();
    let default = gen.router.default_server(at.1);
    let head = match read_request_head(ctx, ds, &gen.server(default).limits).await {
        Ok(Some(head)) => head,
        Ok(None) => return Next::Close,
        Err(e) => {
            // Nothing usable was received: answer if there is something to
            // say (400, 408, 414, 431) and close.
            if let Some(status) = e.kind.status() {
                tracing::debug!(peer = %ds.conn.peer, "refused request: {e}");
                log_refused(ctx, ds, status);
                let _ = phases::send_error(ctx, ds, status, (&gen, default), true, false, false).await;
                return Next::Linger;
            }
            return Next::Close;
        }
    };
    let mut ex = Exchange::new(head, at, ds.conn.peer);
    phases::serve(ctx, ds, &mut ex).await;
    if !ex.close {
        Next::KeepAlive
    } else if !ex.req_body_done || !ds.rbuf.is_empty() {
        Next::Linger
    } else {
        Next::Close
    }
}

/// Phase: read_request_head. Called once the client has sent something;
/// waits for a complete head under `client_header_timeout`. `Ok(None)`: the
/// client closed before sending a byte; the connection just closes.
async fn read_request_head(
    ctx: &WorkerCtx,
    ds: &mut Downstream,
    limits: &ClientLimits,
) -> Result<Option<RequestHead>> {
    let head_limits = HeadLimits {
        max_request_line: limits.max_request_line,
        max_header_size: limits.max_header_size,
        max_headers: limits.max_headers,
    };
    let deadline = Instant::now() + limits.header_timeout;
    loop {
        if !ds.rbuf.is_empty() {
            match parse_request(&ds.rbuf, &head_limits) {
                Ok(Parsed::Complete(parts, len)) => {
                    let buf = ds.rbuf.split_to(len).freeze();
                    return Ok(Some(parts.into_head(buf)));
                }
                Ok(Parsed::Partial) => {}
                Err(e) => return Err(ErrorKind::from(e).into()),
            }
        }
        let wait = deadline.saturating_duration_since(Instant::now());
        match io::read_buf(&mut ds.stream, &mut ds.rbuf, HEAD_READ, &ctx.deadlines, wait).await {
            Ok(0) if ds.rbuf.is_empty() => return Ok(None),
            Ok(0) => return Err(ErrorKind::ClientGone.into()),
            Ok(_) => {}
            Err(IoFail::Timeout) => return Err(ErrorKind::HeaderTimeout.into()),
            Err(IoFail::Io(e)) if ds.rbuf.is_empty() => {
                // A reset while idle is a client going away, not an error.
                tracing::trace!(peer = %ds.conn.peer, "client closed: {e}");
                return Ok(None);
            }
            Err(IoFail::Io(e)) => return Err(Error::io(ErrorKind::ClientGone, e)),
        }
    }
}

const HEAD_READ: usize = HEAD_BUF;

/// Logs a request refused before its head could be parsed, with its first
/// line as received (nginx logs these too).
fn log_refused(ctx: &WorkerCtx, ds: &Downstream, status: u16) {
    let gen = &ds.gen;
    let server = gen.router.default_server(ds.conn.listener);
    gen.metrics.refused(
        ctx.id,
        server,
        false,
        status,
        respond::error_body(status).len() as u64,
    );
    if !gen.logs.enabled(server) {
        return;
    }
    let start = ds
        .rbuf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(ds.rbuf.len());
    let line = &ds.rbuf[start..];
    let end = line
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(line.len());
    let limit = gen.server(server).limits.max_request_line;
    gen.logs.write(
        server,
        &ctx.dates,
        &Entry {
            client: ds.conn.peer.ip().to_canonical(),
            request_line: &line[..end.min(limit)],
            status,
            body_bytes: respond::error_body(status).len() as u64,
            referer: None,
            user_agent: None,
            tries: None,
            tried: 0,
            tls: ds.stream.tls().map(|t| (t.version, t.cipher)),
            request_id: None,
            trace_id: None,
            template: None,
        },
    );
}

impl ClientSession for Downstream {
    fn conn(&self) -> &ConnInfo {
        &self.conn
    }

    fn tls(&self) -> Option<&TlsInfo> {
        self.stream.tls()
    }

    fn connection_exhausted(&self, limits: &ClientLimits) -> bool {
        self.served + 1 >= limits.keepalive_requests || limits.keepalive_timeout.is_zero()
    }

    fn log_line<'a>(&self, head: &'a RequestHead) -> Cow<'a, [u8]> {
        Cow::Borrowed(head.request_line())
    }

    fn take_whole_body(&mut self, body: BodyKind) -> Option<BytesMut> {
        // A body small enough to have come with the head is kept.
        match body {
            BodyKind::Length(n) if self.rbuf.len() as u64 >= n => Some(self.rbuf.split_to(n as usize)),
            BodyKind::Length(_) | BodyKind::Chunked => None,
            BodyKind::Empty | BodyKind::UntilClose => Some(BytesMut::new()),
        }
    }

    fn check_body_start(&self, body: BodyKind) -> Result<()> {
        if body == BodyKind::Chunked {
            // What has arrived of a chunked body is checked before an upstream
            // sees the head. A fault further on aborts the upstream request
            // mid-body, which no server takes for a complete request.
            chunked::check_prefix(&self.rbuf).map_err(|e| ErrorKind::BadRequest(e.as_str()))?;
        }
        Ok(())
    }

    fn upstream_buf(&mut self) -> &mut Vec<u8> {
        &mut self.upbuf
    }

    fn takes_interim(&self, head: &RequestHead) -> bool {
        // Interim responses go on to HTTP/1.1 clients only (RFC 9110 §15.2).
        head.version == Version::Http11
    }

    async fn send_canned(
        &mut self,
        ctx: &WorkerCtx,
        reply: &Canned<'_>,
        t: Duration,
    ) -> std::result::Result<(), IoFail> {
        self.wbuf.clear();
        reply.write(&ctx.dates, &mut self.wbuf);
        io::flush_vec(&mut self.stream, &mut self.wbuf, &ctx.deadlines, t).await
    }

    async fn send_interim(
        &mut self,
        ctx: &WorkerCtx,
        head: &ResponseHead,
        redirect: &Redirect<'_>,
        t: Duration,
    ) -> std::result::Result<(), IoFail> {
        let mut out = Vec::with_capacity(head.buf.len() + 32);
        rewrite::interim_head(head, redirect, &mut out);
        io::write_all(&mut self.stream, out, &ctx.deadlines, t)
            .await
            .map(drop)
    }

    async fn send_response_head(
        &mut self,
        ctx: &WorkerCtx,
        r: &ResponseRewrite<'_>,
        body: &mut BytesMut,
        t: Duration,
    ) -> std::result::Result<(BodyKind, u64), IoFail> {
        // The head, with the first body bytes when they fit: one write.
        self.wbuf.clear();
        rewrite::response_head(r, &ctx.dates, &mut self.wbuf);
        // A HEAD's local response has a GET's framing: no body goes out.
        let mut left = if r.head_request {
            BodyKind::Empty
        } else {
            r.meta.body
        };
        let mut sent = 0;
        // A compressed body goes through its encoder, none of it with the head.
        let compressed = r.compress.is_some_and(|e| e.encoding.is_some());
        if let (BodyKind::Length(n), false) = (left, compressed) {
            let first = (body.len() as u64).min(n) as usize;
            if first <= COALESCE {
                self.wbuf.extend_from_slice(&body.split_to(first));
                sent = first as u64;
                left = if first as u64 == n {
                    BodyKind::Empty
                } else {
                    BodyKind::Length(n - first as u64)
                };
            }
        }
        io::flush_vec(&mut self.stream, &mut self.wbuf, &ctx.deadlines, t).await?;
        Ok((left, sent))
    }

    async fn forward_request_body(
        &mut self,
        ctx: &WorkerCtx,
        req: &RequestBody,
        to: UpSink<'_>,
        limits: &ClientLimits,
        send_timeout: Duration,
    ) -> std::result::Result<(), BodyError> {
        let (body, expect_continue, max_body) = (req.kind, req.expect_continue, req.max);
        if expect_continue && self.rbuf.is_empty() {
            // The upstream connection is ready, so now the client may send.
            io::write_all(
                &mut self.stream,
                respond::CONTINUE,
                &ctx.deadlines,
                limits.send_timeout,
            )
            .await
            .map_err(|e| BodyError::Read(Some(e)))?;
        }
        let copy = Copy {
            deadlines: &ctx.deadlines,
            kind: body,
            chunked_out: body == BodyKind::Chunked,
            read_timeout: limits.body_timeout,
            write_timeout: send_timeout,
            limit: max_body,
            // Chunked to an HTTP/1.1 upstream: the client's trailer fields
            // go on in the last chunk.
            trailers: Trailers::Pass,
            tee: None,
        };
        to.copy_from(copy, &mut self.stream, &mut self.rbuf, &mut self.body_out)
            .await
            .map(drop)
    }

    async fn forward_response_body(
        &mut self,
        ctx: &WorkerCtx,
        from: UpBody<'_>,
        body: BodyKind,
        framing: ClientFraming,
        enc: Option<&mut Encoder>,
        read_timeout: Duration,
        send_timeout: Duration,
        tee: Option<&crate::cache::Tee>,
    ) -> std::result::Result<u64, BodyError> {
        let chunked_out = framing == ClientFraming::Chunked;
        let mut copy = Copy {
            deadlines: &ctx.deadlines,
            kind: body,
            chunked_out,
            read_timeout,
            write_timeout: send_timeout,
            limit: None,
            // A chunked upstream body's trailer fields go on in the last
            // chunk to the client.
            trailers: Trailers::Pass,
            tee,
        };
        match (from, enc) {
            (UpBody::H1(conn), Some(enc)) => {
                copy.run_encoded(
                    &mut conn.stream,
                    &mut conn.rbuf,
                    &mut self.stream,
                    &mut self.body_out,
                    enc,
                    None,
                )
                .await
            }
            (UpBody::H2(recv), Some(enc)) => {
                let mut none = BytesMut::new();
                copy.run_encoded(recv, &mut none, &mut self.stream, &mut self.body_out, enc, None)
                    .await
            }
            (UpBody::H1(conn), None) => {
                copy.run(
                    &mut conn.stream,
                    &mut conn.rbuf,
                    &mut self.stream,
                    &mut self.body_out,
                )
                .await
            }
            // An HTTP/2 upstream's trailers end the chunked body to the
            // client (without chunking there is no place for them).
            (UpBody::H2(recv), None) => {
                let mut none = BytesMut::new();
                if chunked_out {
                    copy.trailers = Trailers::Caller;
                }
                let n = copy
                    .run(&mut *recv, &mut none, &mut self.stream, &mut self.body_out)
                    .await?;
                if chunked_out {
                    let fields = recv
                        .trailers(&ctx.deadlines, read_timeout)
                        .await
                        .map_err(|e| BodyError::Read(Some(IoFail::Io(e))))?
                        .unwrap_or_default();
                    self.body_out.clear();
                    body::last_chunk(
                        fields.iter().map(|(n, v)| (n.as_str().as_bytes(), v.as_bytes())),
                        &mut self.body_out,
                    );
                    io::flush_vec(&mut self.stream, &mut self.body_out, &ctx.deadlines, send_timeout)
                        .await
                        .map_err(BodyError::Write)?;
                }
                Ok(n)
            }
            // A local body: what `early` still holds, then the file.
            (UpBody::Local(src), enc) => {
                let mut early = std::mem::take(&mut src.early);
                match enc {
                    Some(enc) => {
                        copy.run_encoded(src, &mut early, &mut self.stream, &mut self.body_out, enc, None)
                            .await
                    }
                    // Bytes held in memory (a cache hit, a small file) go
                    // out as they are, without a copy, when nothing frames
                    // them again; what follows (a file) through the copy.
                    None if !chunked_out => {
                        let BodyKind::Length(mut left) = body else {
                            return copy
                                .run(src, &mut early, &mut self.stream, &mut self.body_out)
                                .await;
                        };
                        let mut sent = 0;
                        let d = &ctx.deadlines;
                        while left > 0 {
                            let piece = if early.is_empty() {
                                match src.take_front_bytes() {
                                    Some(b) => b,
                                    None => break,
                                }
                            } else {
                                std::mem::take(&mut early).freeze()
                            };
                            let piece =
                                bytes::Bytes::slice(&piece, ..(piece.len() as u64).min(left) as usize);
                            let n = piece.len() as u64;
                            io::write_all(&mut self.stream, piece, d, send_timeout)
                                .await
                                .map_err(BodyError::Write)?;
                            (left, sent) = (left - n, sent + n);
                        }
                        copy.kind = if left == 0 {
                            BodyKind::Empty
                        } else {
                            BodyKind::Length(left)
                        };
                        let rest = copy
                            .run(src, &mut early, &mut self.stream, &mut self.body_out)
                            .await?;
                        Ok(sent + rest)
                    }
                    None => {
                        copy.run(src, &mut early, &mut self.stream, &mut self.body_out)
                            .await
                    }
                }
            }
        }
    }

    async fn tunnel(&mut self, ctx: &WorkerCtx, sw: Switch<'_>) -> Result<Moved> {
        self.wbuf.clear();
        tunnel::switching_head(sw.response, &mut self.wbuf);
        io::flush_vec(
            &mut self.stream,
            &mut self.wbuf,
            &ctx.deadlines,
            sw.client_send_timeout,
        )
        .await
        .map_err(|_| Error::new(ErrorKind::ClientGone))?;
        if let ClientStream::Tls(t) = &mut self.stream {
            t.split_safe();
        }
        // Bytes the client sent after its head are the tunnel's first.
        let early = std::mem::take(&mut self.rbuf);
        let to_client = tunnel::splice(ctx, &mut self.stream, early, sw).await;
        Ok(Moved {
            status: 101,
            to_client,
        })
    }
}

/// Body bytes sent in the same write as the response head, at most.
const COALESCE: usize = 16 * 1024;

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
        grpc: None,
        extra: b"",
    }
    .write(&ctx.dates, &mut out);
    tracing::warn!(peer = %peer, "max_connections ({}) reached: refused", ctx.gen().config.global.max_connections);
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
            // not be waited on. Only a stop that closes idle connections
            // drops it; after an upgrade it is served (and told to close).
            if t.has_buffered() {
                return !ctx.deadlines.closing();
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

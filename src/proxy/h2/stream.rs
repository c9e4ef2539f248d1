//! One HTTP/2 stream as a [`ClientSession`]: its request head is turned
//! into the head the phases read, its body is read from DATA frames under
//! flow control, and the response goes back as HEADERS, DATA and trailers.
//!
//! The request head is rebuilt as an HTTP/1.1 head (`:method :path` the
//! request line, `:authority` the Host field, cookies joined, RFC 9113
//! §8.2.3) and parsed by the same parser and limits as an HTTP/1.1 request,
//! so routing, rewriting and logging have one input type. h2 has already
//! refused what RFC 9113 calls malformed at the frame level (pseudo-headers
//! out of place or unknown, connection-specific fields, uppercase names, a
//! `te` other than `trailers`, CR, LF or NUL in values); the rebuilt head
//! is checked again by httparse.
//!
//! Flow control bounds memory both ways: request DATA is released to the
//! client's window only once the phases asked for more (so after the bytes
//! before it were written upstream), and response bytes are sent only as
//! the client's window grants capacity, each wait under `send_timeout`.

use std::borrow::Cow;
use std::cell::RefCell;
use std::future::poll_fn;
use std::io;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use h2::server::SendResponse;
use h2::RecvStream;
use http::{HeaderMap, HeaderValue, Response, StatusCode};

use super::{H2Fields, Shared};
use crate::compress::Encoder;
use crate::config::ClientLimits;
use crate::ctx::WorkerCtx;
use crate::error::{ErrorKind, Result};
use crate::h2io::body::{RecvBody, Send, SendBody};
use crate::http::parse::{parse_request, HeadLimits, Parsed};
use crate::http::{BodyKind, RequestHead, ResponseHead};
use crate::io::{self as rio, IoFail};
use crate::proxy::body::{self, BodyError, Copy, Trailers};
use crate::proxy::phases::{self, Exchange};
use crate::proxy::respond::Canned;
use crate::proxy::rewrite::{self, ClientFraming, FieldSink, Redirect, ResponseRewrite};
use crate::proxy::session::{ClientSession, ConnInfo, RequestBody, UpBody, UpSink};
use crate::proxy::tunnel::{Moved, Switch};
use crate::tls::server::TlsInfo;

/// Serves one stream, from its request head to the end of its response;
/// a reset from the client stops the work at once (the exchange is dropped:
/// an upstream connection in use is closed, not pooled).
pub async fn run(
    ctx: Rc<WorkerCtx>,
    shared: Rc<Shared>,
    req: http::Request<RecvStream>,
    respond: SendResponse<Bytes>,
) {
    let _open = shared.open_stream();
    let (mut parts, body) = req.into_parts();
    // RFC 8441 WebSocket: rebuilt as an HTTP/1.1 upgrade (proxy/tunnel.rs).
    let websocket = crate::proxy::tunnel::extended_connect(&mut parts);
    // The stream runs under the newest generation (see WorkerCtx::gen_for).
    let last = shared.gen.borrow().clone();
    let at = ctx.gen_for(shared.conn.listen, &last);
    *shared.gen.borrow_mut() = at.0.clone();
    let gen = at.0.clone();
    let default = gen.router.default_server(at.1);
    let limits = gen.server(default).limits.clone();
    let body_ends = body.is_end_stream();
    let send = Rc::new(RefCell::new(Send::Head(respond)));
    let mut sess = StreamSession {
        shared: shared.clone(),
        recv: Some(RecvBody::new(body)),
        body_buf: BytesMut::new(),
        send: send.clone(),
        upbuf: Vec::new(),
        body_out: Vec::new(),
        reached_upstream: false,
        head_sent: false,
    };
    let head = match request_head(&parts, body_ends || websocket, &limits) {
        Ok(h) => h,
        Err(e) => {
            let status = e.kind.status().unwrap_or(400);
            tracing::debug!(peer = %shared.conn.peer, "refused HTTP/2 request: {e}");
            let body = if parts.method == http::Method::HEAD {
                0
            } else {
                crate::proxy::respond::error_body(status).len() as u64
            };
            gen.metrics.refused(ctx.id, default, true, status, body);
            let _ = phases::send_error(
                &ctx,
                &mut sess,
                status,
                (&gen, default),
                false,
                false,
                parts.method == http::Method::HEAD,
            )
            .await;
            return;
        }
    };
    let mut ex = Exchange::new(head, at, shared.conn.peer);
    let reset = poll_fn(|cx| send.borrow_mut().poll_reset(cx));
    let reset = monoio::select! {
        _ = phases::serve(&ctx, &mut sess, &mut ex) => None,
        r = reset => Some(r),
    };
    if let Some(reason) = reset {
        tracing::debug!(peer = %shared.conn.peer, "stream reset by the client ({reason:?})");
        if sess.reached_upstream && !sess.head_sent {
            shared.meter.upstream_reset();
        }
    }
}

pub struct StreamSession {
    shared: Rc<Shared>,
    /// The request body; taken by `detach_body`.
    recv: Option<RecvBody>,
    /// Request body bytes received ahead of the phases' reads.
    body_buf: BytesMut,
    send: Rc<RefCell<Send>>,
    upbuf: Vec<u8>,
    body_out: Vec<u8>,
    reached_upstream: bool,
    head_sent: bool,
}

/// The request head for the phases, rebuilt from the stream's HEADERS.
fn request_head(parts: &http::request::Parts, body_ends: bool, limits: &ClientLimits) -> Result<RequestHead> {
    let target = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .filter(|p| !p.is_empty())
        .ok_or(ErrorKind::BadRequest("no :path"))?;
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let authority = parts.uri.authority().map(|a| a.as_str());
    if let Some(a) = authority {
        // RFC 9113 §8.3.1: a Host that names another entity than
        // :authority makes the request malformed.
        for h in parts.headers.get_all(http::header::HOST) {
            if !h.as_bytes().eq_ignore_ascii_case(a.as_bytes()) {
                return Err(ErrorKind::BadRequest("Host differs from :authority").into());
            }
        }
        out.field(b"host", a.as_bytes());
    }
    let mut cookies = 0;
    let mut has_length = false;
    for (name, value) in &parts.headers {
        if name == http::header::HOST && authority.is_some() {
            continue;
        }
        if name == http::header::COOKIE {
            cookies += 1;
            continue;
        }
        has_length |= name == http::header::CONTENT_LENGTH;
        out.field(name.as_str().as_bytes(), value.as_bytes());
    }
    if cookies > 0 {
        // RFC 9113 §8.2.3: crumbs are joined with "; " for HTTP/1.1.
        out.extend_from_slice(b"cookie: ");
        for (i, v) in parts.headers.get_all(http::header::COOKIE).iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(b"; ");
            }
            out.extend_from_slice(v.as_bytes());
        }
        out.extend_from_slice(b"\r\n");
    }
    if !body_ends && !has_length {
        // A body of unknown length: chunked toward an HTTP/1.1 upstream.
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    out.extend_from_slice(b"\r\n");
    let head_limits = HeadLimits {
        max_request_line: limits.max_request_line,
        max_header_size: limits.max_header_size.max(out.len()),
        max_headers: limits.max_headers,
    };
    match parse_request(&out, &head_limits) {
        Ok(Parsed::Complete(parts, len)) if len == out.len() => Ok(parts.into_head(Bytes::from(out))),
        Ok(_) => Err(ErrorKind::BadRequest("invalid request head").into()),
        Err(e) => Err(ErrorKind::from(e).into()),
    }
}

/// Trailer fields for HTTP/2: hop-by-hop and framing fields are dropped
/// (RFC 9110 §6.5.1 forbids framing and routing fields in trailers).
struct TrailerFields(H2Fields);

impl FieldSink for TrailerFields {
    fn field(&mut self, name: &[u8], value: &[u8]) {
        if crate::http::encode::allowed_in_trailers(name) {
            self.0.field(name, value);
        }
    }
}

fn response(status: u16, fields: HeaderMap) -> Response<()> {
    let mut r = Response::new(());
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    *r.headers_mut() = fields;
    r
}

fn h2_err(e: h2::Error) -> IoFail {
    IoFail::Io(io::Error::other(e))
}

impl StreamSession {
    fn send_head(&mut self, resp: Response<()>, end: bool) -> std::result::Result<(), IoFail> {
        let mut send = self.send.borrow_mut();
        let Send::Head(respond) = std::mem::replace(&mut *send, Send::Done) else {
            return Err(IoFail::Io(io::Error::other("response already sent")));
        };
        let mut respond = respond;
        let stream = respond.send_response(resp, end).map_err(h2_err)?;
        self.head_sent = true;
        if !end {
            *send = Send::Body(stream);
        }
        Ok(())
    }

    /// Ends the response body (an empty DATA frame with END_STREAM).
    fn end_body(&mut self) -> std::result::Result<(), IoFail> {
        let mut send = self.send.borrow_mut();
        if let Send::Body(s) = &mut *send {
            s.send_data(Bytes::new(), true).map_err(h2_err)?;
        }
        *send = Send::Done;
        Ok(())
    }
}

impl ClientSession for StreamSession {
    const HTTP2: bool = true;

    fn conn(&self) -> &ConnInfo {
        &self.shared.conn
    }

    fn tls(&self) -> Option<&TlsInfo> {
        self.shared.tls.as_ref()
    }

    fn connection_exhausted(&self, _limits: &ClientLimits) -> bool {
        false
    }

    fn log_line<'a>(&self, head: &'a RequestHead) -> Cow<'a, [u8]> {
        let mut line = Vec::with_capacity(head.method().len() + head.target().len() + 10);
        line.extend_from_slice(head.method());
        line.push(b' ');
        line.extend_from_slice(head.target());
        line.extend_from_slice(b" HTTP/2.0");
        Cow::Owned(line)
    }

    fn take_whole_body(&mut self, body: BodyKind) -> Option<BytesMut> {
        self.reached_upstream = true;
        let n = match body {
            BodyKind::Empty => return Some(BytesMut::new()),
            BodyKind::Length(n) => n,
            BodyKind::Chunked | BodyKind::UntilClose => return None,
        };
        // What has already arrived is taken without waiting; if it is the
        // whole body, the request can be sent again on a retry. What is
        // held is bounded by the stream's window.
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let recv = self.recv.as_mut()?;
        while (self.body_buf.len() as u64) < n {
            match recv.stream.poll_data(&mut cx) {
                Poll::Ready(Some(Ok(chunk))) => {
                    recv.unreleased += chunk.len();
                    self.body_buf.extend_from_slice(&chunk);
                }
                _ => break,
            }
        }
        if self.body_buf.len() as u64 == n && recv.stream.is_end_stream() {
            recv.release();
            Some(std::mem::take(&mut self.body_buf))
        } else {
            None
        }
    }

    fn check_body_start(&self, _body: BodyKind) -> Result<()> {
        Ok(())
    }

    fn upstream_buf(&mut self) -> &mut Vec<u8> {
        &mut self.upbuf
    }

    fn takes_interim(&self, _head: &RequestHead) -> bool {
        true
    }

    async fn send_canned(
        &mut self,
        ctx: &WorkerCtx,
        reply: &Canned<'_>,
        _t: Duration,
    ) -> std::result::Result<(), IoFail> {
        let mut fields = H2Fields(HeaderMap::new());
        reply.fields(&ctx.dates, &mut fields);
        // A gRPC answer is trailers-only: one HEADERS frame, END_STREAM.
        let end = reply.head_only || reply.body.is_empty() || reply.grpc.is_some();
        self.send_head(response(reply.http_status(), fields.0), end)?;
        if !end {
            // Small and within the initial window: h2 buffers it.
            let body = Bytes::copy_from_slice(reply.body);
            self.send
                .borrow_mut()
                .body()
                .map_err(IoFail::Io)?
                .send_data(body, true)
                .map_err(h2_err)?;
            *self.send.borrow_mut() = Send::Done;
        }
        Ok(())
    }

    async fn send_interim(
        &mut self,
        _ctx: &WorkerCtx,
        head: &ResponseHead,
        redirect: &Redirect<'_>,
        _t: Duration,
    ) -> std::result::Result<(), IoFail> {
        let mut fields = H2Fields(HeaderMap::new());
        rewrite::interim_fields(head, Some(redirect), &mut fields);
        match &mut *self.send.borrow_mut() {
            Send::Head(r) => r
                .send_informational(response(head.status, fields.0))
                .map_err(h2_err),
            _ => Ok(()),
        }
    }

    async fn send_response_head(
        &mut self,
        ctx: &WorkerCtx,
        r: &ResponseRewrite<'_>,
        _body: &mut BytesMut,
        _t: Duration,
    ) -> std::result::Result<(BodyKind, u64), IoFail> {
        let mut fields = H2Fields(HeaderMap::new());
        rewrite::response_fields(r, &ctx.dates, &mut fields);
        if let ClientFraming::Length(n) = r.framing {
            fields
                .0
                .insert(http::header::CONTENT_LENGTH, HeaderValue::from(n));
        }
        // A HEAD's local response has a GET's framing: no body goes out.
        let body = if r.head_request {
            BodyKind::Empty
        } else {
            r.meta.body
        };
        self.send_head(response(r.head.status, fields.0), body == BodyKind::Empty)?;
        Ok((body, 0))
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
        if expect_continue && self.body_buf.is_empty() {
            let mut send = self.send.borrow_mut();
            if let Send::Head(r) = &mut *send {
                let _ = r.send_informational(response(100, HeaderMap::new()));
            }
        }
        let copy = Copy {
            deadlines: &ctx.deadlines,
            // DATA frames carry the bytes alone: read to the stream's end,
            // framed as chunked when the length is not known.
            kind: if body == BodyKind::Chunked {
                BodyKind::UntilClose
            } else {
                body
            },
            chunked_out: body == BodyKind::Chunked,
            read_timeout: limits.body_timeout,
            write_timeout: send_timeout,
            limit: max_body,
            // The stream's trailers end a chunked body to an HTTP/1.1
            // upstream, written below.
            trailers: Trailers::Caller,
            tee: None,
        };
        let Some(src) = self.recv.as_mut() else {
            return Err(BodyError::Read(None));
        };
        let UpSink::H1(conn) = to else {
            return to
                .copy_from(copy, src, &mut self.body_buf, &mut self.body_out)
                .await
                .map(drop);
        };
        copy.run(src, &mut self.body_buf, &mut conn.stream, &mut self.body_out)
            .await?;
        if copy.chunked_out {
            let fields = src
                .trailers(&ctx.deadlines, limits.body_timeout)
                .await
                .map_err(|e| BodyError::Read(Some(IoFail::Io(e))))?
                .unwrap_or_default();
            self.body_out.clear();
            body::last_chunk(
                fields.iter().map(|(n, v)| (n.as_str().as_bytes(), v.as_bytes())),
                &mut self.body_out,
            );
            rio::flush_vec(&mut conn.stream, &mut self.body_out, &ctx.deadlines, send_timeout)
                .await
                .map_err(BodyError::Write)?;
        }
        Ok(())
    }

    fn detach_body(&mut self) -> Option<(RecvBody, BytesMut)> {
        let body = self.recv.take()?;
        Some((body, std::mem::take(&mut self.body_buf)))
    }

    fn upgrades_by_connect(&self) -> bool {
        true
    }

    async fn tunnel(&mut self, ctx: &WorkerCtx, sw: Switch<'_>) -> Result<Moved> {
        // The stream itself is the tunnel: proxy/tunnel.rs answers and runs it.
        let Send::Head(respond) = std::mem::replace(&mut *self.send.borrow_mut(), Send::Done) else {
            return Err(ErrorKind::Internal.into());
        };
        self.head_sent = true;
        let Some(recv) = self.recv.as_mut() else {
            return Err(ErrorKind::Internal.into());
        };
        crate::proxy::tunnel::over_stream(ctx, sw, respond, recv).await
    }

    async fn forward_response_body(
        &mut self,
        ctx: &WorkerCtx,
        from: UpBody<'_>,
        body: BodyKind,
        _framing: ClientFraming,
        enc: Option<&mut Encoder>,
        read_timeout: Duration,
        send_timeout: Duration,
        tee: Option<&crate::cache::Tee>,
    ) -> std::result::Result<u64, BodyError> {
        if body == BodyKind::Empty {
            return Ok(0);
        }
        let copy = Copy {
            deadlines: &ctx.deadlines,
            kind: body,
            chunked_out: false,
            read_timeout,
            write_timeout: send_timeout,
            limit: None,
            trailers: Trailers::Drop,
            tee,
        };
        let mut sink = SendBody {
            send: &self.send,
            deadlines: &ctx.deadlines,
            t: send_timeout,
        };
        let n = match from {
            UpBody::H1(conn) => {
                let (n, raw) = match enc {
                    Some(enc) => {
                        let mut raw = Vec::new();
                        let n = copy
                            .run_encoded(
                                &mut conn.stream,
                                &mut conn.rbuf,
                                &mut sink,
                                &mut self.body_out,
                                enc,
                                Some(&mut raw),
                            )
                            .await?;
                        (n, raw)
                    }
                    None => {
                        copy.run_keeping_trailers(
                            &mut conn.stream,
                            &mut conn.rbuf,
                            &mut sink,
                            &mut self.body_out,
                        )
                        .await?
                    }
                };
                // A chunked body's trailer fields go on as HTTP/2 trailers,
                // less those that describe a connection or framing.
                if !raw.is_empty() {
                    let mut fields = TrailerFields(H2Fields(HeaderMap::new()));
                    rewrite::lines_into(&raw, &mut fields);
                    if !fields.0 .0.is_empty() {
                        let mut send = self.send.borrow_mut();
                        send.body()
                            .map_err(|e| BodyError::Write(IoFail::Io(e)))?
                            .send_trailers(fields.0 .0)
                            .map_err(|e| BodyError::Write(h2_err(e)))?;
                        *send = Send::Done;
                        return Ok(n);
                    }
                }
                n
            }
            UpBody::H2(recv) => {
                let mut none = BytesMut::new();
                let n = match enc {
                    Some(enc) => {
                        copy.run_encoded(&mut *recv, &mut none, &mut sink, &mut self.body_out, enc, None)
                            .await?
                    }
                    None => {
                        copy.run(&mut *recv, &mut none, &mut sink, &mut self.body_out)
                            .await?
                    }
                };
                // Trailers (gRPC's status) go on as trailers.
                let trailers = recv
                    .trailers(&ctx.deadlines, read_timeout)
                    .await
                    .map_err(|e| BodyError::Read(Some(IoFail::Io(e))))?;
                if let Some(t) = trailers {
                    let mut send = self.send.borrow_mut();
                    send.body()
                        .map_err(|e| BodyError::Write(IoFail::Io(e)))?
                        .send_trailers(t)
                        .map_err(|e| BodyError::Write(h2_err(e)))?;
                    *send = Send::Done;
                    return Ok(n);
                }
                n
            }
            UpBody::Local(src) => {
                let mut early = std::mem::take(&mut src.early);
                match enc {
                    Some(enc) => {
                        copy.run_encoded(src, &mut early, &mut sink, &mut self.body_out, enc, None)
                            .await?
                    }
                    None => copy.run(src, &mut early, &mut sink, &mut self.body_out).await?,
                }
            }
        };
        self.end_body().map_err(BodyError::Write)?;
        Ok(n)
    }
}

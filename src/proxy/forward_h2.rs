//! The `proxy_pass` content phase toward an HTTP/2 upstream (`protocol =
//! "h2"`, what gRPC needs): select → a stream on this worker's connection
//! to the server (`upstream::h2`) → send_request → forward_request_body →
//! read_response_head → the shared response phases (`forward::respond`),
//! trailers included.
//!
//! Differences from HTTP/1.1 upstreams, each for a reason:
//! - The request body is sent while the response comes back when the
//!   client is on HTTP/2 too (gRPC's bidirectional streams need it): the
//!   body goes in a task of its own, bounded like any body copy.
//! - A stream the server refused (REFUSED_STREAM, or one above a GOAWAY's
//!   last stream id: RFC 9113 §8.7, never processed) is sent again on a new
//!   connection, whatever its method, without counting against `tries`.
//! - `grpc-timeout`, when shorter than `read_timeout`, bounds the whole
//!   call; past it the upstream stream is reset and a gRPC client gets
//!   DEADLINE_EXCEEDED.
//! - Interim (1xx) responses never reach the client: the `h2` client drops
//!   informational HEADERS (0.4, `proto::streams::recv`), so the response
//!   future yields the final head only. Nothing of an answer has gone to
//!   the client before it, so sending a request again cannot mix answers.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use h2::RecvStream;
use http::{HeaderMap, HeaderValue};

use super::body::{BodyError, Copy, Trailers};
use super::forward::{self, idempotent, Failure, Plan, Select};
use super::h2::H2Fields;
use super::phases::Exchange;
use super::rewrite::{self, AddrText};
use super::session::{ClientSession, RequestBody, UpBody, UpSink};
use crate::ctx::WorkerCtx;
use crate::deadline::Woke;
use crate::error::{Error, ErrorKind, Result};
use crate::h2io::body::{RecvBody, Send, SendBody};
use crate::http::framing::response_meta;
use crate::http::parse::{parse_response, Parsed};
use crate::http::{BodyKind, ResponseHead};
use crate::upstream::h2::StreamGuard;

/// Streams refused by a server that are sent again, at most, per request.
const REFUSED_RETRIES: usize = 2;
/// Response fields accepted from an HTTP/2 upstream, as from HTTP/1.1.
const MAX_RESPONSE_HEADERS: usize = 200;

/// How an attempt on one server ended before a response head.
enum Miss {
    /// The server did not process the stream: send it again, elsewhere or
    /// on a new connection.
    Refused(Error),
    Failed(Failure),
}

/// A response head from the upstream, with its body stream.
struct Answer {
    head: ResponseHead,
    body: RecvStream,
    _stream: StreamGuard,
}

pub(super) async fn proxy<S: ClientSession>(
    ctx: &Rc<WorkerCtx>,
    ds: &mut S,
    ex: &mut Exchange,
    plan: &Plan<'_>,
) -> Result<()> {
    let up_cfg = plan.up.config();
    let body = ex.meta.body();
    let whole = ds.take_whole_body(body).map(BytesMut::freeze);
    if whole.is_some() {
        ex.req_body_done = true;
    }
    let call_deadline = grpc_timeout(&ex.head)
        .filter(|d| *d < up_cfg.read_timeout)
        .map(|d| Instant::now() + d);
    let select = Select::new(plan, ex, ds.tls().is_some(), ds.conn().local_port);
    let method_idempotent = idempotent(ex.head.method());
    let started = (!up_cfg.tries_timeout.is_zero()).then(Instant::now);
    let mut tried: Vec<usize> = Vec::new();
    let mut last_error: Option<Error> = None;
    let mut refused = 0;
    let mut fresh = false;
    let (answer, peer_idx, _active) = loop {
        let Some(peer_idx) = select.pick(plan, &tried) else {
            return Err(last_error.unwrap_or_else(|| ErrorKind::NoLiveUpstream.into()));
        };
        let active = plan.up.peers[peer_idx].begin();
        let attempt_start = Instant::now();
        let outcome = attempt(ctx, ds, ex, plan, peer_idx, fresh, whole.clone(), call_deadline).await;
        fresh = false;
        match outcome {
            Ok(a) => {
                let took = attempt_start.elapsed();
                plan.up.observe(peer_idx, took);
                if let Some(m) = &plan.up.metrics {
                    m.attempt(ctx.id, peer_idx, Some(a.head.status), took);
                }
                if up_cfg.next_upstream.status_is_failure(a.head.status) {
                    if plan.up.failure(peer_idx) {
                        tracing::warn!(upstream = %up_cfg.name, "server marked down: status {}", a.head.status);
                    }
                } else {
                    plan.up.peers[peer_idx].success();
                }
                ex.answered = Some((plan.up.index, peer_idx, a.head.status));
                ex.upstream_timing = Some((attempt_start, took));
                if !ex.tries.is_empty() {
                    ex.tries.push((plan.up.index, peer_idx, a.head.status));
                }
                break (a, peer_idx, active);
            }
            Err(Miss::Refused(e))
                if refused < REFUSED_RETRIES && (whole.is_some() || body == BodyKind::Empty) =>
            {
                tracing::debug!(upstream = %up_cfg.name, "stream not processed ({e}); sent again on a new connection");
                refused += 1;
                fresh = true;
            }
            Err(Miss::Refused(error)) => {
                return Err(error);
            }
            Err(Miss::Failed(f)) => {
                drop(active);
                // Not processed (no stream opened, nothing sent), or sent
                // whole and harmless to send again.
                let replayable = whole.is_some() || body == BodyKind::Empty;
                let f = Failure {
                    next_safe: f.next_safe || (replayable && method_idempotent),
                    ..f
                };
                if !forward::failed(ctx.id, plan, ex, peer_idx, &f, attempt_start, &mut tried, started) {
                    return Err(f.error);
                }
                last_error = Some(f.error);
            }
        }
    };

    // The guard keeps the stream counted on its connection until the
    // response has been forwarded.
    let Answer {
        head,
        body: recv,
        _stream: _counted,
    } = answer;
    let ended = recv.is_end_stream();
    let mut meta = response_meta(&head, ex.head.method() == b"HEAD")
        .map_err(|_| Error::new(ErrorKind::BadResponse("invalid response head")))?;
    if ended {
        // HEADERS with END_STREAM (gRPC's trailers-only answers): so it goes
        // on, as one HEADERS frame to an HTTP/2 client.
        meta.body = BodyKind::Empty;
    }
    // The cache's own answers (see forward.rs); dropping the rest of
    // the answer resets the upstream stream.
    if let Some(c) = plan.cache.filter(|c| c.catches(head.status)) {
        c.catch(&head);
        return Ok(());
    }
    if super::files::intercepts(plan.location, head.status) {
        // Dropping the answer resets the upstream stream.
        return Err(ErrorKind::Answer(head.status).into());
    }
    let mut recv = RecvBody::new(recv);
    let respond = forward::respond(
        ctx,
        ds,
        ex,
        plan,
        &head,
        &meta,
        peer_idx,
        false,
        select.sticky,
        UpBody::H2(&mut recv),
    );
    match call_deadline {
        None => respond.await,
        Some(d) => match ctx.deadlines.within(respond, d).await {
            Woke::Ready(r) => r,
            // Dropping the exchange resets the upstream stream.
            Woke::TimedOut | Woke::Closing => Err(ErrorKind::ReadTimeout.into()),
        },
    }
}

/// One try on server `peer_idx`: a stream, the request head and body, and
/// the response head, each under its deadline.
#[allow(clippy::too_many_arguments)]
async fn attempt<S: ClientSession>(
    ctx: &Rc<WorkerCtx>,
    ds: &mut S,
    ex: &mut Exchange,
    plan: &Plan<'_>,
    peer_idx: usize,
    fresh: bool,
    whole: Option<Bytes>,
    call_deadline: Option<Instant>,
) -> std::result::Result<Answer, Miss> {
    let up_cfg = plan.up.config();
    let peer = &up_cfg.servers[peer_idx];
    let failed = |error: Error, next_safe: bool| {
        Miss::Failed(Failure {
            error,
            next_safe,
            reused: false,
        })
    };
    // Phase: connect_upstream (a stream on a shared connection).
    let tls = plan.up.tls.as_ref().map(|t| (t, t.name_for_request(plan.host)));
    let (send_req, guard) = plan
        .up
        .h2
        .stream(ctx, up_cfg, peer_idx, plan.up.addr(peer_idx), tls, fresh)
        .await
        // Nothing was sent: always safe to try elsewhere.
        .map_err(|e| failed(e, true))?;

    // Phase: send_request.
    let request = request(ds, ex, plan, &peer.authority);
    let body = ex.meta.body();
    let no_body = body == BodyKind::Empty;
    let mut send_req = send_req;
    let (response, stream) = match send_req.send_request(request, no_body) {
        Ok(r) => r,
        Err(e) if not_processed(&e) => return Err(Miss::Refused(h2_error(e))),
        Err(e) => return Err(failed(h2_error(e), true)),
    };
    let send = Rc::new(RefCell::new(Send::Body(stream)));

    // Phase: forward_request_body.
    let limits = ex.gen.server(ex.server).limits.clone();
    if let Some(bytes) = whole.filter(|_| !no_body) {
        let mut s = send.borrow_mut();
        if let Ok(st) = s.body() {
            let _ = st.send_data(bytes, true);
        }
        *s = Send::Done;
    } else if !no_body {
        if let Some((recv, early)) = ds.detach_body() {
            // Both ways at once: the body in a task of its own.
            monoio::spawn(pump(
                ctx.clone(),
                recv,
                early,
                send.clone(),
                body,
                plan.max_body,
                limits.body_timeout,
                up_cfg.send_timeout,
            ));
        } else {
            let sink = &mut SendBody {
                send: &send,
                deadlines: &ctx.deadlines,
                t: up_cfg.send_timeout,
            };
            let req = RequestBody {
                kind: body,
                expect_continue: ex.meta.expect_continue,
                max: plan.max_body,
            };
            match ds
                .forward_request_body(ctx, &req, UpSink::H2(sink), &limits, up_cfg.send_timeout)
                .await
            {
                Ok(()) => {
                    ex.req_body_done = true;
                    let _ = SendBody {
                        send: &send,
                        deadlines: &ctx.deadlines,
                        t: up_cfg.send_timeout,
                    }
                    .finish();
                }
                Err(e) => return Err(Miss::Failed(body_failure(e))),
            }
        }
    }

    // Phase: read_response_head.
    let wait = Instant::now() + up_cfg.read_timeout;
    let wait = call_deadline.map_or(wait, |d| d.min(wait));
    let resp = match ctx.deadlines.within(response, wait).await {
        Woke::Ready(Ok(r)) => r,
        Woke::Ready(Err(e)) if not_processed(&e) => return Err(Miss::Refused(h2_error(e))),
        Woke::Ready(Err(e)) => return Err(failed(h2_error(e), false)),
        Woke::TimedOut | Woke::Closing => return Err(failed(ErrorKind::ReadTimeout.into(), false)),
    };
    let (parts, body) = resp.into_parts();
    let head = response_head(&parts).map_err(|e| failed(e, false))?;
    Ok(Answer {
        head,
        body,
        _stream: guard,
    })
}

/// The upstream request: the method, the path, `:authority` from Host, the
/// fields as for HTTP/1.1 (hop-by-hop ones out, forwarding ones in), a
/// content-length when known, and `te: trailers` when the client sent it.
fn request<S: ClientSession>(ds: &S, ex: &Exchange, plan: &Plan<'_>, authority: &str) -> http::Request<()> {
    let client_text = if ex.client == ds.conn().peer.ip().to_canonical() {
        ds.conn().peer_text
    } else {
        AddrText::ip(ex.client)
    };
    let mut fields = H2Fields(HeaderMap::new());
    rewrite::request_fields(
        &forward::request_rewrite(ds, ex, plan, authority, &client_text, None),
        &mut fields,
    );
    let mut headers = fields.0;
    let host = headers
        .remove(http::header::HOST)
        .and_then(|h| h.to_str().ok().map(str::to_owned))
        .unwrap_or_else(|| authority.to_owned());
    if let BodyKind::Length(n) = ex.meta.body() {
        headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(n));
    }
    let te_trailers = ex
        .head
        .headers()
        .filter(|(n, _)| n.eq_ignore_ascii_case(b"te"))
        .flat_map(|(_, v)| crate::http::list_items(v))
        .any(|t| t.eq_ignore_ascii_case(b"trailers"));
    if te_trailers {
        headers.insert(http::header::TE, HeaderValue::from_static("trailers"));
    }
    let scheme = if plan.up.tls.is_some() { "https" } else { "http" };
    let target = String::from_utf8_lossy(plan.target);
    let uri = http::Uri::builder()
        .scheme(scheme)
        .authority(host.as_str())
        .path_and_query(target.as_ref())
        .build()
        .unwrap_or_else(|_| http::Uri::from_static("/"));
    let mut req = http::Request::new(());
    *req.method_mut() = http::Method::from_bytes(ex.head.method()).unwrap_or(http::Method::GET);
    *req.uri_mut() = uri;
    *req.headers_mut() = headers;
    req
}

/// The response head as the response phases read it, rebuilt as an
/// HTTP/1.1 head and parsed by the same parser, as request heads of
/// HTTP/2 clients are.
fn response_head(parts: &http::response::Parts) -> Result<ResponseHead> {
    let mut out = Vec::with_capacity(256);
    crate::http::encode::status_line(parts.status.as_u16(), b"", &mut out);
    for (name, value) in &parts.headers {
        crate::http::encode::header(name.as_str().as_bytes(), value.as_bytes(), &mut out);
    }
    out.extend_from_slice(b"\r\n");
    match parse_response(&out, MAX_RESPONSE_HEADERS) {
        Ok(Parsed::Complete(mut head, len)) if len == out.len() => {
            head.buf = Bytes::from(out);
            Ok(head)
        }
        _ => Err(ErrorKind::BadResponse("invalid HTTP/2 response head").into()),
    }
}

/// The request body of an HTTP/2 client, sent upstream while the response
/// comes back. It ends with the body, at a fault of either side (the
/// upstream stream is then reset), or at `body_timeout` between reads.
#[allow(clippy::too_many_arguments)]
async fn pump(
    ctx: Rc<WorkerCtx>,
    mut recv: RecvBody,
    mut early: BytesMut,
    send: Rc<RefCell<Send>>,
    body: BodyKind,
    max: Option<u64>,
    body_timeout: Duration,
    send_timeout: Duration,
) {
    let copy = Copy {
        deadlines: &ctx.deadlines,
        kind: if body == BodyKind::Chunked {
            BodyKind::UntilClose
        } else {
            body
        },
        chunked_out: false,
        read_timeout: body_timeout,
        write_timeout: send_timeout,
        limit: max,
        trailers: Trailers::Drop,
        tee: None,
    };
    let mut sink = SendBody {
        send: &send,
        deadlines: &ctx.deadlines,
        t: send_timeout,
    };
    let mut out = Vec::new();
    match copy.run(&mut recv, &mut early, &mut sink, &mut out).await {
        // Request trailers go on as trailers (HTTP/2 on both sides).
        Ok(_) => match recv.trailers(&ctx.deadlines, body_timeout).await {
            Ok(Some(t)) => {
                let mut s = send.borrow_mut();
                if let Ok(st) = s.body() {
                    let _ = st.send_trailers(t);
                }
                *s = Send::Done;
            }
            _ => {
                let _ = sink.finish();
            }
        },
        Err(e) => {
            tracing::debug!("request body to an HTTP/2 upstream ended: {e:?}");
            if let Ok(s) = send.borrow_mut().body() {
                s.send_reset(h2::Reason::CANCEL);
            }
        }
    }
}

fn body_failure(e: BodyError) -> Failure {
    let error = match e {
        BodyError::Read(Some(crate::io::IoFail::Timeout)) => ErrorKind::BodyTimeout.into(),
        BodyError::Read(_) => ErrorKind::ClientGone.into(),
        BodyError::Framing(f) => ErrorKind::BadRequest(f.as_str()).into(),
        BodyError::TooLarge => ErrorKind::BodyTooLarge.into(),
        BodyError::Write(_) => ErrorKind::UpstreamClosed.into(),
    };
    Failure {
        error,
        next_safe: false,
        reused: false,
    }
}

/// RFC 9113 §8.7: a stream refused, or above a GOAWAY's last stream id, was
/// not processed and may be sent again whatever its method.
fn not_processed(e: &h2::Error) -> bool {
    e.reason() == Some(h2::Reason::REFUSED_STREAM) || (e.is_go_away() && e.is_remote())
}

fn h2_error(e: h2::Error) -> Error {
    Error::io(ErrorKind::UpstreamClosed, std::io::Error::other(e))
}

/// `grpc-timeout: 250m` (gRPC over HTTP/2: at most 8 digits, then H, M,
/// S, m, u or n).
pub fn grpc_timeout(head: &crate::http::RequestHead) -> Option<Duration> {
    let v = head.header("grpc-timeout")?.trim_ascii();
    let (digits, unit) = v.split_at(v.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(match unit {
        b"H" => Duration::from_secs(n * 3600),
        b"M" => Duration::from_secs(n * 60),
        b"S" => Duration::from_secs(n),
        b"m" => Duration::from_millis(n),
        b"u" => Duration::from_micros(n),
        b"n" => Duration::from_nanos(n),
        _ => return None,
    })
}

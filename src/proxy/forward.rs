//! The `proxy_pass` content phase: select → connect_upstream → send_request
//! → forward_request_body → read_response_head → forward_response_body →
//! finish, with the retry policy between them. Written over
//! [`ClientSession`], so it serves HTTP/1.1 and HTTP/2 clients alike.

use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;

use super::body::BodyError;
use super::locate::VarBase;
use super::phases::Exchange;
use super::reply;
use super::rewrite::{self, Redirect, RequestRewrite};
use super::session::{ClientSession, RequestBody, UpBody, UpSink};
use super::tunnel;
use crate::config::{Location, NextUpstream, ProxyPass, UpstreamProtocol};
use crate::ctx::WorkerCtx;
use crate::error::{Error, ErrorKind, Result};
use crate::http::{BodyKind, ResponseHead, ResponseMeta};
use crate::io::{self, IoFail};
use crate::route;
use crate::upstream::balance::KeyHasher;
use crate::upstream::{connect, UpConn, UpstreamState};

/// The largest response head accepted from an upstream (nginx's
/// `proxy_buffer_size` is 4k or 8k; this is more forgiving), interim (1xx)
/// heads before it included.
pub(super) const MAX_RESPONSE_HEAD: usize = 64 * 1024;
pub(super) const MAX_RESPONSE_HEADERS: usize = 200;
/// An upstream connection's read buffer starts this large.
const UPSTREAM_BUF: usize = 16 * 1024;

/// Everything `proxy` needs about where the request goes.
pub(super) struct Plan<'a> {
    pub(super) up: &'a UpstreamState,
    pub(super) location: &'a Location,
    pub(super) pass: &'a ProxyPass,
    /// The path as routed (`$uri`) and the query (`$args`), for `hash` keys.
    pub(super) path: &'a [u8],
    pub(super) args: &'a [u8],
    pub(super) server: &'a crate::config::Server,
    /// `request_headers` and `response_headers` fields, expanded for this
    /// request (whole lines; empty without rules).
    pub(super) req_lines: &'a [u8],
    pub(super) resp_lines: &'a [u8],
    pub(super) target: &'a [u8],
    pub(super) host: Option<&'a [u8]>,
    pub(super) public_host: &'a [u8],
    pub(super) max_body: Option<u64>,
    /// Request fields that never go upstream: those auth sets, and an API
    /// key's (lower-case).
    pub(super) dropped: &'a [String],
    /// The cache's part in a proxied request (`proxy/cache.rs`), if the
    /// location caches.
    pub(super) cache: Option<&'a super::cache::Hook<'a>>,
}

/// RFC 9110 §9.2.2.
pub(super) fn idempotent(method: &[u8]) -> bool {
    matches!(
        method,
        b"GET" | b"HEAD" | b"OPTIONS" | b"PUT" | b"DELETE" | b"TRACE"
    )
}

/// The `next_upstream` kind of a failure before a response head (nginx's
/// names): a timeout, a response that is not HTTP, or any other error.
fn next_upstream_kind(kind: ErrorKind) -> u16 {
    match kind {
        ErrorKind::ConnectTimeout | ErrorKind::SendTimeout | ErrorKind::ReadTimeout => NextUpstream::TIMEOUT,
        ErrorKind::BadResponse(_) => NextUpstream::INVALID_HEADER,
        _ => NextUpstream::ERROR,
    }
}

/// How one server failed a request, and whether the next may be tried.
pub(super) struct Failure {
    pub(super) error: Error,
    /// Trying another server cannot repeat a side effect or lose body bytes.
    pub(super) next_safe: bool,
    /// The failure was on a connection taken from the pool.
    pub(super) reused: bool,
}

/// Phase: select's inputs for one request: the `hash` key and the
/// `sticky` cookie, found once and used for every server tried.
pub(super) struct Select {
    key: Option<u32>,
    /// The cookie the client sent, when it can be a server's id.
    pub(super) sticky: Option<[u8; 16]>,
    client: std::net::IpAddr,
}

impl Select {
    #[inline]
    pub(super) fn new(plan: &Plan<'_>, ex: &Exchange, https: bool, port: u16) -> Select {
        // `hash`: the request's key, hashed where its parts lie in the head.
        let key = plan.up.hash_key().and_then(|k| {
            let mut h = KeyHasher::default();
            let base = VarBase {
                head: &ex.head,
                host: plan.host,
                server: plan.server,
                https,
                client: ex.client,
                port,
                request_id: ex.request_id.as_bytes(),
                trace_id: ex.trace.as_ref().map_or(&b""[..], |t| t.trace_id()),
            };
            route::feed_key(k, &base.request(plan.path, plan.args, None), |b| h.write(b)).then(|| h.finish())
        });
        let sticky = plan
            .up
            .config()
            .sticky
            .as_ref()
            .and_then(|st| route::cookie(&ex.head, st.cookie.as_bytes()))
            .and_then(|v| v.try_into().ok());
        Select {
            key,
            sticky,
            client: ex.client,
        }
    }

    /// Phase: select (balance), among the servers that are up and not yet
    /// tried. A `sticky` cookie naming a server that can take the request wins.
    #[inline]
    pub(super) fn pick(&self, plan: &Plan<'_>, tried: &[usize]) -> Option<usize> {
        self.sticky
            .and_then(|v| plan.up.sticky_server(&v, tried))
            .or_else(|| plan.up.select(self.client, self.key, tried))
    }
}

/// The inputs of the upstream request head, for either upstream protocol.
pub(super) fn request_rewrite<'a, S: ClientSession>(
    ds: &'a S,
    ex: &'a Exchange,
    plan: &'a Plan<'_>,
    authority: &'a str,
    client_text: &'a rewrite::AddrText,
    upgrade: Option<&'a [u8]>,
) -> RequestRewrite<'a> {
    RequestRewrite {
        head: &ex.head,
        meta: &ex.meta,
        target: plan.target,
        host: plan.host,
        preserve_host: plan.pass.preserve_host,
        upstream_authority: authority,
        peer: &ds.conn().peer_text,
        client: client_text,
        local_port: &ds.conn().port_text,
        https: ds.tls().is_some(),
        // Only to the block whose CA verified it.
        client_cert_subject: ds
            .tls()
            .filter(|t| t.server == ex.server)
            .and_then(|t| t.client_subject.as_deref())
            .map(str::as_bytes),
        upgrade,
        hidden: match plan.cache {
            Some(c) => &c.hidden,
            None => plan
                .location
                .request_headers
                .as_deref()
                .map_or(&[][..], |h| &h.hidden),
        },
        dropped: plan.dropped,
        extra: plan.req_lines,
        request_id: ex.request_id.as_bytes(),
        traceparent: ex.trace.as_ref().map(|t| t.header()),
        tracestate: ex.trace.as_ref().is_some_and(|t| t.continued),
        forwarded: plan.server.forwarded.as_ref().map(|f| {
            let peer = ds.conn().peer.ip().to_canonical();
            rewrite::ForwardedHop {
                by: f.by.as_deref(),
                keep: ex
                    .gen
                    .config
                    .global
                    .trusted_proxies
                    .iter()
                    .any(|n| n.contains(&peer)),
            }
        }),
    }
}

/// A server failed before a response head: counts it against the server's
/// health (unless it says nothing of the server) and decides whether the
/// next server may be tried.
#[allow(clippy::too_many_arguments)]
pub(super) fn failed(
    worker: usize,
    plan: &Plan<'_>,
    ex: &mut Exchange,
    peer_idx: usize,
    f: &Failure,
    attempt_start: Instant,
    tried: &mut Vec<usize>,
    started: Option<Instant>,
) -> bool {
    let up_cfg = plan.up.config();
    let peer = &up_cfg.servers[peer_idx];
    let kind = f.error.kind;
    // A pooled connection found closed says nothing about the server.
    let stale = f.reused && kind == ErrorKind::UpstreamClosed;
    if kind.is_server_failure() {
        if let Some(m) = &plan.up.metrics {
            m.attempt(worker, peer_idx, None, attempt_start.elapsed());
        }
    }
    if kind.is_server_failure() && !stale {
        // A failure is no fast answer: `ewma` counts it as taking at least
        // connect_timeout, so a server that refuses at once does not look
        // like the quickest.
        plan.up
            .observe(peer_idx, attempt_start.elapsed().max(up_cfg.connect_timeout));
        if plan.up.failure(peer_idx) {
            tracing::warn!(upstream = %up_cfg.name, server = %peer.authority, "server marked down: {}", f.error);
        }
    }
    tried.push(peer_idx);
    ex.tries
        .push((plan.up.index, peer_idx, kind.status().unwrap_or(502)));
    let in_time = started.is_none_or(|t| t.elapsed() < up_cfg.tries_timeout);
    let next = kind.is_server_failure()
        && up_cfg.next_upstream.has(next_upstream_kind(kind))
        && f.next_safe
        && tried.len() < up_cfg.tries
        && in_time;
    if next {
        if let Some(m) = &plan.up.metrics {
            m.retry(worker);
        }
        tracing::debug!(upstream = %up_cfg.name, server = %peer.authority, "{}; trying the next server", f.error);
    }
    next
}

/// Phases select → connect_upstream → finish for a proxied request. A server
/// that fails before a response head comes back counts against its health
/// and, within `tries` and `tries_timeout` and when it is safe, the request
/// goes to the next server the balancer picks.
pub(super) async fn proxy<S: ClientSession>(
    ctx: &Rc<WorkerCtx>,
    ds: &mut S,
    ex: &mut Exchange,
    plan: &Plan<'_>,
) -> Result<()> {
    let up_cfg = plan.up.config();
    if up_cfg.protocol == UpstreamProtocol::H2 {
        // Boxed: its state would otherwise size every HTTP/1.1 exchange's
        // future, which is copied into place once per request.
        return Box::pin(super::forward_h2::proxy(ctx, ds, ex, plan)).await;
    }
    let limits = ex.gen.server(ex.server).limits.clone();
    let body = ex.meta.body();
    let client_text = if ex.client == ds.conn().peer.ip().to_canonical() {
        ds.conn().peer_text
    } else {
        rewrite::AddrText::ip(ex.client)
    };
    // A body small enough to have come with the head is kept: such a request
    // can be sent again as it is, to the same server or the next one.
    let (replayable, body_prefix) = match ds.take_whole_body(body) {
        Some(whole) => {
            ex.req_body_done |= matches!(body, BodyKind::Length(_));
            (true, whole)
        }
        None => (false, BytesMut::new()),
    };
    let mut out = std::mem::take(ds.upstream_buf());
    if out.capacity() == 0 {
        out = ctx.buffers.take_vec();
    }
    // Kept across a retry: a failed write hands the buffer back.
    let mut request = Some(out);
    // The server the head in `request` was written for.
    let mut written_for: Option<usize> = None;

    // The Upgrade the client offered and the location passes on (tunnel.rs).
    let upgrade = tunnel::offer(&ex.head, &ex.meta, plan.location);
    let method_idempotent = idempotent(ex.head.method());
    // Servers tried for this request, in order; empty until one fails.
    let mut tried: Vec<usize> = Vec::new();
    let mut last_error: Option<Error> = None;
    let started = (!up_cfg.tries_timeout.is_zero()).then(Instant::now);
    let select = Select::new(plan, ex, ds.tls().is_some(), ds.conn().local_port);
    let sticky = select.sticky;
    let pick = |tried: &[usize]| select.pick(plan, tried);
    // Chosen before a response was let go, to be sure there was a next server.
    let mut next_pick: Option<usize> = None;
    // With `tls_server_name = "$host"`, the TLS name is the request's, and
    // only connections made for it may be reused.
    let request_name = plan.up.tls.as_ref().and_then(|t| t.name_for_request(plan.host));
    let sni: Option<Box<str>> = request_name.as_ref().map(|n| n.to_str().into());
    // An interim response went to the client: from then on the exchange
    // belongs to the server that sent it. Sending the request again, to it
    // or another, would give the client the start of one answer and the
    // rest of another, so whatever follows is the client's answer.
    let mut interim_sent = false;
    // Interim responses' redirects are mapped as the final one's will be.
    let local_port = ds.conn().port_text;
    let redirect = redirect_for(plan, ds.tls().is_some(), &local_port);
    let (mut conn, resp, early, _active) = loop {
        let Some(peer_idx) = next_pick.take().or_else(|| pick(&tried)) else {
            return Err(last_error.unwrap_or_else(|| ErrorKind::NoLiveUpstream.into()));
        };
        let peer = &up_cfg.servers[peer_idx];
        // The head may name the server (Host, when the client's is not
        // kept or there was none), so each server tried gets its own.
        if written_for != Some(peer_idx) {
            let Some(out) = request.as_mut() else {
                return Err(ErrorKind::Internal.into());
            };
            out.clear();
            rewrite::request_head(
                &request_rewrite(ds, ex, plan, &peer.authority, &client_text, upgrade.as_deref()),
                out,
            );
            out.extend_from_slice(&body_prefix);
            written_for = Some(peer_idx);
        }
        // In flight on this server until the exchange ends, however it ends.
        let active = plan.up.peers[peer_idx].begin();
        // `ewma` learns each server's latency: from here to the response head.
        let attempt_start = Instant::now();

        let outcome: std::result::Result<_, Failure> = 'attempt: {
            let mut retried = false;
            loop {
                // Phase: connect_upstream.
                let pooled = if retried {
                    None
                } else {
                    plan.up.pool.take(peer_idx, sni.as_deref())
                };
                let mut conn = match pooled {
                    Some(c) => c,
                    None => match connect::connect(
                        plan.up.addr(peer_idx),
                        up_cfg.connect_timeout,
                        plan.up.tls.as_ref().map(|t| (t, peer_idx, request_name.clone())),
                    )
                    .await
                    {
                        Ok(stream) => UpConn {
                            stream,
                            rbuf: BytesMut::with_capacity(UPSTREAM_BUF),
                            peer: peer_idx,
                            reused: false,
                            sni: sni.clone(),
                        },
                        // Nothing was sent: always safe to try elsewhere.
                        Err(error) => {
                            break 'attempt Err(Failure {
                                error,
                                next_safe: true,
                                reused: false,
                            })
                        }
                    },
                };
                if let Some(m) = &plan.up.metrics {
                    m.conn(ctx.id, peer_idx, conn.reused);
                }
                // A request that failed on a reused connection before any response
                // byte is sent once more on a fresh one, when that cannot repeat a
                // side effect: an idempotent method, or the write itself failed.
                let may_retry = |conn: &UpConn, write_failed: bool| {
                    conn.reused && !retried && replayable && (write_failed || method_idempotent)
                };

                // Phase: send_request.
                let Some(req) = request.take() else {
                    return Err(ErrorKind::Internal.into());
                };
                match io::write_all_keep(&mut conn.stream, req, &ctx.deadlines, up_cfg.send_timeout).await {
                    Ok(req) => request = Some(req),
                    Err((IoFail::Io(e), Some(req))) => {
                        request = Some(req);
                        if may_retry(&conn, true) {
                            retried = true;
                            continue;
                        }
                        // The server has at most part of the head (and no
                        // streamed body byte): it cannot act on it.
                        break 'attempt Err(Failure {
                            error: Error::io(ErrorKind::UpstreamClosed, e),
                            next_safe: true,
                            reused: conn.reused,
                        });
                    }
                    Err(_) => {
                        break 'attempt Err(Failure {
                            error: Error::new(ErrorKind::SendTimeout),
                            next_safe: false,
                            reused: conn.reused,
                        })
                    }
                }

                // Phase: forward_request_body.
                let mut early = false;
                if !replayable {
                    match ds
                        .forward_request_body(
                            ctx,
                            &RequestBody {
                                kind: body,
                                expect_continue: ex.meta.expect_continue,
                                max: plan.max_body,
                            },
                            UpSink::H1(&mut conn),
                            &limits,
                            up_cfg.send_timeout,
                        )
                        .await
                    {
                        Ok(()) => ex.req_body_done = true,
                        // The upstream stopped reading: it may have answered already
                        // (a 413 of its own, say). Read that answer, then close.
                        Err(BodyError::Write(_)) => early = true,
                        Err(BodyError::Read(Some(IoFail::Timeout))) => {
                            return Err(ErrorKind::BodyTimeout.into())
                        }
                        Err(BodyError::Read(_)) => return Err(ErrorKind::ClientGone.into()),
                        Err(BodyError::Framing(e)) => return Err(ErrorKind::BadRequest(e.as_str()).into()),
                        Err(BodyError::TooLarge) => return Err(ErrorKind::BodyTooLarge.into()),
                    }
                }

                // Phase: read_response_head.
                // Interim responses go on to HTTP/1.1 and HTTP/2 clients, not
                // HTTP/1.0 ones (RFC 9110 §15.2).
                let interim = ds.takes_interim(&ex.head).then_some(InterimTo {
                    client: &mut *ds,
                    send_timeout: limits.send_timeout,
                    redirect: &redirect,
                });
                match super::response_head::read_response_head(
                    ctx,
                    &mut conn,
                    up_cfg.read_timeout,
                    ex.head.method() == b"HEAD",
                    upgrade.is_some(),
                    interim,
                    &mut interim_sent,
                )
                .await
                {
                    Ok(resp) => break 'attempt Ok((conn, resp, early)),
                    Err(e)
                        if e.kind == ErrorKind::UpstreamClosed
                            && !interim_sent
                            && may_retry(&conn, false) =>
                    {
                        tracing::debug!(upstream = %up_cfg.name, "pooled connection was closed; retrying on a new one");
                        retried = true;
                    }
                    // The whole request was sent: another server may only
                    // have it if it can be sent again, doing it twice is
                    // harmless, and the client has seen nothing of this
                    // server's answer.
                    Err(error) => {
                        break 'attempt Err(Failure {
                            error,
                            next_safe: replayable && method_idempotent && !interim_sent,
                            reused: conn.reused,
                        })
                    }
                }
            }
        };
        match outcome {
            Ok((conn, resp, early)) => {
                let took = attempt_start.elapsed();
                plan.up.observe(peer_idx, took);
                let status = resp.0.status;
                if let Some(m) = &plan.up.metrics {
                    m.attempt(ctx.id, peer_idx, Some(status), took);
                }
                let next = up_cfg.next_upstream;
                // Statuses listed in next_upstream: the 5xx ones count
                // against the server, and each may go on to the next.
                if next.status_is_failure(status) {
                    if plan.up.failure(peer_idx) {
                        tracing::warn!(upstream = %up_cfg.name, server = %peer.authority, "server marked down: status {status}");
                    }
                } else {
                    plan.up.peers[peer_idx].success();
                }
                let in_time = started.is_none_or(|t| t.elapsed() < up_cfg.tries_timeout);
                // The answer is let go only if the request can be sent again
                // (idempotent, whole body in memory), no interim response
                // of it reached the client, and a server is left to take
                // it; otherwise the client gets this answer, as in nginx.
                if next.on_status(status)
                    && !interim_sent
                    && !early
                    && replayable
                    && method_idempotent
                    && tried.len() + 1 < up_cfg.tries
                    && in_time
                    && request.is_some()
                {
                    tried.push(peer_idx);
                    next_pick = pick(&tried);
                    if next_pick.is_some() {
                        tracing::debug!(upstream = %up_cfg.name, server = %peer.authority, "status {status}; trying the next server");
                        ex.tries.push((plan.up.index, peer_idx, status));
                        if let Some(m) = &plan.up.metrics {
                            m.retry(ctx.id);
                        }
                        // The connection closes with the unread answer.
                        continue;
                    }
                    tried.pop();
                }
                ex.answered = Some((plan.up.index, peer_idx, status));
                ex.upstream_timing = Some((attempt_start, took));
                if !ex.tries.is_empty() {
                    ex.tries.push((plan.up.index, peer_idx, status));
                }
                break (conn, resp, early, active);
            }
            Err(f) => {
                drop(active);
                if !(failed(ctx.id, plan, ex, peer_idx, &f, attempt_start, &mut tried, started)
                    && request.is_some())
                {
                    return Err(f.error);
                }
                last_error = Some(f.error);
            }
        }
    };
    let (head, meta) = resp;
    if let Some(mut req) = request {
        req.clear();
        *ds.upstream_buf() = req;
    }

    // Phase: content = tunnel, when the client asked for an upgrade.
    if let Some(offered) = &upgrade {
        if head.status == 101 && early {
            // The upstream stopped reading the body: no clean switch.
            return Err(ErrorKind::BadResponse("101 before the request body was read").into());
        }
        if head.status == 101 {
            // Boxed, as the HTTP/2 path: rare, and large.
            return Box::pin(tunnel::switch(
                ctx,
                ds,
                ex,
                conn,
                &head,
                offered,
                up_cfg,
                limits.send_timeout,
            ))
            .await;
        }
        tunnel::check_refusal(ds, &head)?;
    }

    // The cache takes some answers itself (a 304 to its revalidation, an
    // error it has a stale entry for); a body-less one leaves the
    // connection as good as a forwarded one.
    if let Some(c) = plan.cache.filter(|c| c.catches(head.status)) {
        c.catch(&head);
        if meta.body == BodyKind::Empty
            && !early
            && !meta.close
            && conn.rbuf.is_empty()
            && !ctx.shutdown.is_raised()
        {
            plan.up.pool.put(conn);
        }
        return Ok(());
    }
    // `intercept_errors`: the page replaces the answer, whose connection
    // closes unread.
    if super::files::intercepts(plan.location, head.status) {
        return Err(ErrorKind::Answer(head.status).into());
    }
    let peer = conn.peer;
    respond(
        ctx,
        ds,
        ex,
        plan,
        &head,
        &meta,
        peer,
        early,
        sticky,
        UpBody::H1(&mut conn),
    )
    .await?;

    // Phase: finish (upstream side). nginx's checklist for keeping the
    // connection: request fully sent, response fully read, no error, the
    // upstream allows keep-alive, not shutting down.
    let reusable =
        !early && !meta.close && conn.rbuf.is_empty() && !ctx.shutdown.is_raised() && !plan.up.retired.get();
    if reusable {
        plan.up.pool.put(conn);
    }
    Ok(())
}

/// How a response's `Location` and `Content-Location` are mapped for this
/// request (`rewrite::rewrite_redirect`): the same for its interim
/// responses and its final one.
pub(super) fn redirect_for<'a>(
    plan: &Plan<'a>,
    https: bool,
    local_port: &'a rewrite::AddrText,
) -> Redirect<'a> {
    let up: &'a UpstreamState = plan.up;
    Redirect {
        upstream: up.config(),
        location: plan.location,
        pass: plan.pass,
        public_host: plan.public_host,
        https,
        local_port,
    }
}

/// Where interim responses go: the client's session, its send timeout,
/// and the mapping of their redirects.
pub(super) struct InterimTo<'s, 'r, S> {
    pub(super) client: &'s mut S,
    pub(super) send_timeout: Duration,
    pub(super) redirect: &'s Redirect<'r>,
}

/// The response phases, whichever protocol the upstream spoke: `sticky`'s
/// cookie and the mapping of redirects, then `send_response`.
#[allow(clippy::too_many_arguments)]
pub(super) async fn respond<S: ClientSession>(
    ctx: &WorkerCtx,
    ds: &mut S,
    ex: &mut Exchange,
    plan: &Plan<'_>,
    head: &ResponseHead,
    meta: &ResponseMeta,
    peer: usize,
    early: bool,
    sticky: Option<[u8; 16]>,
    from: UpBody<'_>,
) -> Result<()> {
    if let Some(c) = plan.cache {
        c.observe(&ex.head, head, meta);
    }
    // `sticky`: a client whose cookie did not name this server (none, a
    // forged one, or one whose server is down) is given one that does.
    let set_cookie = match sticky.and_then(|v| plan.up.sticky_named(&v)) {
        Some(named) if named == peer => None,
        _ => plan.up.set_cookie(peer),
    };
    let local_port = ds.conn().port_text;
    // The cache's status field goes beside sticky's cookie.
    let joined;
    let extra = match (set_cookie, plan.cache) {
        (Some(s), Some(c)) if !c.lines.is_empty() => {
            joined = [s, &c.lines[..]].concat();
            &joined[..]
        }
        (s, Some(c)) if s.is_none() => &c.lines[..],
        (s, _) => s.unwrap_or_default(),
    };
    let reply = reply::Reply {
        location: plan.location,
        resp_lines: plan.resp_lines,
        extra,
        redirect: Some(redirect_for(plan, ds.tls().is_some(), &local_port)),
        early,
        read_timeout: plan.up.config().read_timeout,
        tee: plan.cache.and_then(|c| c.tee.as_ref()),
    };
    reply::send_response(ctx, ds, ex, &reply, head, meta, from).await
}

/// Interim (1xx) responses accepted ahead of one final response. Real
/// servers send one or two (102 Processing, 103 Early Hints); without a
/// bound, an upstream could hold a request open forever with a stream of
/// them, each read arriving within read_timeout.
pub(super) const MAX_INTERIM: usize = 16;

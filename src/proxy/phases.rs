//! The request lifecycle, one named phase per function. The names match
//! nginx's and pingora's so the flow can be read against theirs.

use std::net::IpAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;

use super::body::{BodyError, Copy};
use super::respond::{self, Canned};
use super::rewrite::{self, ClientFraming, Redirect, RequestRewrite, ResponseRewrite};
use super::Downstream;
use crate::config::{Action, ClientLimits, Location, NextUpstream, ProxyPass, Return};
use crate::ctx::WorkerCtx;
use crate::error::{Error, ErrorKind, Result, Side};
use crate::http::chunked;
use crate::http::framing::{request_meta, response_meta};
use crate::http::parse::{parse_request, parse_response, HeadLimits, Parsed};
use crate::http::{BodyKind, RequestHead, RequestMeta, ResponseHead, Version};
use crate::io::{self, IoFail};
use crate::log::Entry;
use crate::route::{self, KeyInput};
use crate::upstream::balance::KeyHasher;
use crate::upstream::{connect, UpConn, UpstreamState};

/// The largest response head accepted from an upstream (nginx's
/// `proxy_buffer_size` is 4k or 8k; this is more forgiving).
const MAX_RESPONSE_HEAD: usize = 64 * 1024;
const MAX_RESPONSE_HEADERS: usize = 200;
/// An upstream connection's read buffer starts this large.
const UPSTREAM_BUF: usize = 16 * 1024;

pub enum Next {
    KeepAlive,
    Close,
    /// Close, but the client may still be sending: see `super::linger`.
    Linger,
}

/// One request and what has happened to it so far.
struct Exchange {
    head: RequestHead,
    meta: RequestMeta,
    server: usize,
    client: IpAddr,
    /// Status sent to the client (0 until a head is sent).
    status: u16,
    body_bytes: u64,
    /// The request body has been read to its end (or had none).
    req_body_done: bool,
    /// Close the client connection after this exchange.
    close: bool,
    /// When a request was tried on more than one server: each try's server
    /// (upstream, server index) and status, for the access log.
    tries: Vec<(usize, usize, u16)>,
}

/// Serves one request on a downstream connection.
pub async fn exchange(ctx: &Rc<WorkerCtx>, ds: &mut Downstream) -> Next {
    let default = ctx.router.default_server(ds.listener);
    let head = match read_request_head(ctx, ds, &ctx.server(default).limits).await {
        Ok(Some(head)) => head,
        Ok(None) => return Next::Close,
        Err(e) => {
            // Nothing usable was received: answer if there is something to
            // say (400, 408, 414, 431) and close.
            if let Some(status) = e.kind.status() {
                tracing::debug!(peer = %ds.peer, "refused request: {e}");
                log_refused(ctx, ds, status);
                let _ = send_canned(ctx, ds, status, None, true, false, false).await;
                return Next::Linger;
            }
            return Next::Close;
        }
    };
    let mut ex = Exchange {
        meta: RequestMeta::default(),
        server: default,
        client: ds.peer.ip().to_canonical(),
        status: 0,
        body_bytes: 0,
        req_body_done: false,
        close: true,
        tries: Vec::new(),
        head,
    };
    let result = handle(ctx, ds, &mut ex).await;
    if let Err(e) = result {
        answer_error(ctx, ds, &mut ex, e).await;
    }
    finish_request(ctx, ds, &ex)
}

/// Whether the client connection must close after this response: the client
/// asked for it, its body was not read to the end, the worker is shutting
/// down, or keep-alive limits are reached. One rule for every response.
fn must_close(ctx: &WorkerCtx, ds: &Downstream, ex: &Exchange) -> bool {
    let limits = &ctx.server(ex.server).limits;
    ex.close
        || !ex.req_body_done
        || ctx.shutdown.is_raised()
        || ds.served + 1 >= limits.keepalive_requests
        || limits.keepalive_timeout.is_zero()
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
                tracing::trace!(peer = %ds.peer, "client closed: {e}");
                return Ok(None);
            }
            Err(IoFail::Io(e)) => return Err(Error::io(ErrorKind::ClientGone, e)),
        }
    }
}

const HEAD_READ: usize = super::HEAD_BUF;

/// The request target, split for routing and rewriting.
struct Target<'a> {
    /// Path used for routing (dot segments removed).
    path: std::borrow::Cow<'a, [u8]>,
    query: &'a [u8],
    normalized: bool,
    /// The authority of an absolute-form target, which overrides Host
    /// (RFC 9112 §3.2.2).
    authority: Option<&'a [u8]>,
}

fn split_target(target: &[u8]) -> Result<Target<'_>> {
    let (authority, origin) = if target.first() == Some(&b'/') {
        (None, target)
    } else if let Some(rest) =
        strip_prefix_ignore_case(target, b"http://").or_else(|| strip_prefix_ignore_case(target, b"https://"))
    {
        let end = rest
            .iter()
            .position(|&b| b == b'/' || b == b'?')
            .unwrap_or(rest.len());
        let path = &rest[end..];
        if end == 0 {
            return Err(ErrorKind::BadRequest("absolute-form target without host").into());
        }
        (Some(&rest[..end]), path)
    } else {
        return Err(ErrorKind::BadRequest("request target is not a path or absolute URI").into());
    };
    let q = origin.iter().position(|&b| b == b'?').unwrap_or(origin.len());
    let (raw_path, query) = origin.split_at(q);
    let raw_path: &[u8] = if raw_path.is_empty() { b"/" } else { raw_path };
    let path = route::normalize_path(raw_path).ok_or(ErrorKind::BadRequest("path climbs above the root"))?;
    let normalized = matches!(path, std::borrow::Cow::Owned(_)) || authority.is_some() || origin.is_empty();
    Ok(Target {
        path,
        query,
        normalized,
        authority,
    })
}

/// A host must be a name, an IPv4 address or a bracketed IPv6 address, with
/// an optional port (RFC 9110 §7.2). Slashes, backslashes and the like would
/// let a client smuggle a path into what the backend and the logs take as a
/// host name, so such requests are refused, as nginx does.
fn check_host(host: &[u8]) -> Result<()> {
    let ok = host
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':' | b'[' | b']'));
    if ok && !host.starts_with(b".") {
        Ok(())
    } else {
        Err(ErrorKind::BadRequest("invalid Host").into())
    }
}

fn strip_prefix_ignore_case<'a>(s: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    (s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix)).then(|| &s[prefix.len()..])
}

/// Phases from route to finish, for a request whose head was read.
async fn handle(ctx: &Rc<WorkerCtx>, ds: &mut Downstream, ex: &mut Exchange) -> Result<()> {
    ex.meta = request_meta(&ex.head).map_err(ErrorKind::from)?;
    ex.close = ex.meta.close;
    ex.req_body_done = ex.meta.body() == BodyKind::Empty;
    // CONNECT would turn the proxy into an open tunnel and TRACE reflects
    // credentials back; neither is served (nginx answers 405 too).
    if matches!(ex.head.method(), b"CONNECT" | b"TRACE") {
        return Err(ErrorKind::MethodNotAllowed.into());
    }
    // A second handle on the head's bytes (a reference count, not a copy),
    // so slices of it can live while `ex` is updated.
    let buf = ex.head.buf.clone();
    let target = split_target(ex.head.target.of(&buf))?;

    // Phase: route.
    let host = target.authority.or_else(|| ex.meta.host.map(|s| s.of(&buf)));
    if let Some(h) = host {
        check_host(h)?;
    }
    ex.server = ctx.router.server_for(ds.listener, host);
    let server = ctx.server(ex.server);
    ex.client = rewrite::client_addr(ds.peer.ip(), &ex.head, &ctx.config.global.trusted_proxies);
    if let (Some(port), None) = (server.redirect_https, ds.stream.tls()) {
        return redirect_to_https(ctx, ds, ex, host, port).await;
    }
    if let Some(t) = ds.stream.tls() {
        // The handshake was made for the block SNI chose. A Host naming a
        // block that checks client certificates must not ride on a
        // connection that was not checked by it (nginx answers 421 too).
        let checks = server
            .tls
            .as_ref()
            .is_some_and(|t| t.verify_client != crate::config::VerifyClient::Off);
        if t.server != ex.server && checks {
            ex.close = true;
            let ret = Return {
                status: 421,
                body: respond::error_body(421),
                location: None,
            };
            return respond_return(ctx, ds, ex, &ret).await;
        }
    }
    let loc_idx = ctx
        .router
        .location_for(ex.server, &target.path)
        .ok_or(ErrorKind::NotFound)?;
    let location = &server.locations[loc_idx];
    let max_body = location
        .client_max_body_size
        .unwrap_or(server.limits.client_max_body_size);
    if let (Some(max), BodyKind::Length(n)) = (max_body, ex.meta.body()) {
        if n > max {
            return Err(ErrorKind::BodyTooLarge.into());
        }
    }

    if ex.meta.body() == BodyKind::Chunked {
        // What has arrived of a chunked body is checked before an upstream
        // sees the head. A fault further on aborts the upstream request
        // mid-body, which no server takes for a complete request.
        chunked::check_prefix(&ds.rbuf).map_err(|e| ErrorKind::BadRequest(e.as_str()))?;
    }

    match &location.action {
        Action::Return(ret) => respond_return(ctx, ds, ex, ret).await,
        Action::Proxy(pass) => {
            // `split`: this request may go to another upstream than proxy_pass's.
            let input = KeyInput {
                head: &ex.head,
                path: &target.path,
                client: ex.client,
            };
            let up = &ctx.upstreams[ctx.router.upstream_for(ex.server, loc_idx, pass, &input)];
            let public_host = host.unwrap_or_default();
            let upstream_target = rewrite::upstream_target(
                ex.head.target.of(&buf),
                &target.path,
                target.query,
                target.normalized,
                location,
                pass,
            );
            let plan = Plan {
                up,
                location,
                pass,
                path: &target.path,
                target: &upstream_target,
                host,
                public_host,
                max_body,
            };
            proxy(ctx, ds, ex, &plan).await
        }
    }
}

/// A `return` location: a fixed response, no upstream.
async fn respond_return(ctx: &WorkerCtx, ds: &mut Downstream, ex: &mut Exchange, ret: &Return) -> Result<()> {
    // A body, if any, is not read, so the connection cannot be reused after it.
    ex.close = must_close(ctx, ds, ex);
    ex.status = ret.status;
    ex.body_bytes = ret.body.len() as u64;
    ds.wbuf.clear();
    Canned {
        status: ret.status,
        body: ret.body.as_bytes(),
        location: ret.location.as_deref().map(str::as_bytes),
        close: ex.close,
        keep_alive_10: ex.head.version == Version::Http10,
        head_only: ex.head.method() == b"HEAD",
        hsts: hsts(ctx, ds, ex.server),
    }
    .write(&ctx.dates, &mut ds.wbuf);
    let limits = &ctx.server(ex.server).limits;
    io::flush_vec(&mut ds.stream, &mut ds.wbuf, &ctx.deadlines, limits.send_timeout)
        .await
        .map_err(|_| Error::new(ErrorKind::ClientGone))
}

/// The block's `Strict-Transport-Security` value, for responses over TLS only.
fn hsts<'a>(ctx: &'a WorkerCtx, ds: &Downstream, server: usize) -> Option<&'a [u8]> {
    ds.stream.tls()?;
    ctx.server(server).hsts.as_deref().map(str::as_bytes)
}

/// `redirect_https`: 301 to the same host, path and query over https, as
/// nginx's `return 301 https://$host$request_uri`. The port is the one
/// configured (443 is left out of the URL), since the TLS listener a client
/// should use is not necessarily on this machine's view of the address.
async fn redirect_to_https(
    ctx: &WorkerCtx,
    ds: &mut Downstream,
    ex: &mut Exchange,
    host: Option<&[u8]>,
    port: u16,
) -> Result<()> {
    let server = ctx.server(ex.server);
    let host: &[u8] = match host.map(route::host_without_port) {
        Some(h) if !h.is_empty() => h,
        // No Host (HTTP/1.0): the block's first exact name, as nginx's $host.
        _ => server
            .server_names
            .iter()
            .find(|n| !n.starts_with('*'))
            .map(|n| n.as_bytes())
            .ok_or(ErrorKind::BadRequest("no host to redirect to"))?,
    };
    let target = ex.head.target.of(&ex.head.buf);
    // $request_uri: the target as sent; of an absolute-form target, its path.
    let uri: &[u8] = if target.first() == Some(&b'/') {
        target
    } else {
        let after = target
            .windows(3)
            .position(|w| w == b"://")
            .map_or(target, |i| &target[i + 3..]);
        match after.iter().position(|&b| b == b'/' || b == b'?') {
            Some(i) if after[i] == b'/' => &after[i..],
            _ => b"/",
        }
    };
    let mut location = Vec::with_capacity(16 + host.len() + uri.len());
    location.extend_from_slice(b"https://");
    location.extend_from_slice(host);
    if port != 443 {
        location.push(b':');
        location.extend_from_slice(itoa::Buffer::new().format(port).as_bytes());
    }
    location.extend_from_slice(uri);
    let ret = Return {
        status: 301,
        body: respond::error_body(301),
        location: Some(String::from_utf8_lossy(&location).into_owned()),
    };
    respond_return(ctx, ds, ex, &ret).await
}

/// Everything `proxy` needs about where the request goes.
struct Plan<'a> {
    up: &'a UpstreamState,
    location: &'a Location,
    pass: &'a ProxyPass,
    /// The path as routed (`$uri`).
    path: &'a [u8],
    target: &'a [u8],
    host: Option<&'a [u8]>,
    public_host: &'a [u8],
    max_body: Option<u64>,
}

/// RFC 9110 §9.2.2.
fn idempotent(method: &[u8]) -> bool {
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
struct Failure {
    error: Error,
    /// Trying another server cannot repeat a side effect or lose body bytes.
    next_safe: bool,
    /// The failure was on a connection taken from the pool.
    reused: bool,
}

/// Phases select → connect_upstream → finish for a proxied request. A server
/// that fails before a response head comes back counts against its health
/// and, within `tries` and `tries_timeout` and when it is safe, the request
/// goes to the next server the balancer picks.
async fn proxy(ctx: &Rc<WorkerCtx>, ds: &mut Downstream, ex: &mut Exchange, plan: &Plan<'_>) -> Result<()> {
    let up_cfg = plan.up.config();
    let limits = ctx.server(ex.server).limits.clone();
    let body = ex.meta.body();
    let client_text = if ex.client == ds.peer.ip().to_canonical() {
        ds.peer_text
    } else {
        rewrite::AddrText::ip(ex.client)
    };
    // A body small enough to have come with the head is kept: such a request
    // can be sent again as it is, to the same server or the next one.
    let (replayable, body_prefix) = match body {
        BodyKind::Length(n) if ds.rbuf.len() as u64 >= n => {
            ex.req_body_done = true;
            (true, ds.rbuf.split_to(n as usize))
        }
        BodyKind::Length(_) | BodyKind::Chunked => (false, BytesMut::new()),
        BodyKind::Empty | BodyKind::UntilClose => (true, BytesMut::new()),
    };
    let mut out = std::mem::take(&mut ds.upbuf);
    if out.capacity() == 0 {
        out = ctx.buffers.take_vec();
    }
    // Kept across a retry: a failed write hands the buffer back.
    let mut request = Some(out);
    // The server the head in `request` was written for.
    let mut written_for: Option<usize> = None;

    let method_idempotent = idempotent(ex.head.method());
    // Servers tried for this request, in order; empty until one fails.
    let mut tried: Vec<usize> = Vec::new();
    let mut last_error: Option<Error> = None;
    let started = (!up_cfg.tries_timeout.is_zero()).then(Instant::now);
    // `hash`: the request's key, hashed where its parts lie in the head.
    let key = plan.up.hash_key().and_then(|k| {
        let mut h = KeyHasher::default();
        let input = KeyInput {
            head: &ex.head,
            path: plan.path,
            client: ex.client,
        };
        route::feed_key(k, &input, |b| h.write(b)).then(|| h.finish())
    });
    // `sticky`: the cookie the client sent, when it can be a server's id.
    let sticky: Option<[u8; 16]> = up_cfg
        .sticky
        .as_ref()
        .and_then(|st| route::cookie(&ex.head, st.cookie.as_bytes()))
        .and_then(|v| v.try_into().ok());
    // Phase: select (balance), among the servers that are up and not yet
    // tried. A `sticky` cookie naming a server that can take the request wins.
    let client = ex.client;
    let pick = |tried: &[usize]| {
        sticky
            .and_then(|v| plan.up.sticky_server(&v, tried))
            .or_else(|| plan.up.select(client, key, tried))
    };
    // Chosen before a response was let go, to be sure there was a next server.
    let mut next_pick: Option<usize> = None;
    // With `tls_server_name = "$host"`, the TLS name is the request's, and
    // only connections made for it may be reused.
    let request_name = plan.up.tls.as_ref().and_then(|t| t.name_for_request(plan.host));
    let sni: Option<Box<str>> = request_name.as_ref().map(|n| n.to_str().into());
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
                &RequestRewrite {
                    head: &ex.head,
                    meta: &ex.meta,
                    target: plan.target,
                    host: plan.host,
                    preserve_host: plan.pass.preserve_host,
                    upstream_authority: &peer.authority,
                    peer: &ds.peer_text,
                    client: &client_text,
                    local_port: &ds.port_text,
                    https: ds.stream.tls().is_some(),
                    // Only to the block whose CA verified it.
                    client_cert_subject: ds
                        .stream
                        .tls()
                        .filter(|t| t.server == ex.server)
                        .and_then(|t| t.client_subject.as_deref())
                        .map(str::as_bytes),
                },
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
                    match forward_request_body(
                        ctx,
                        ds,
                        ex,
                        &mut conn,
                        plan.max_body,
                        &limits,
                        up_cfg.send_timeout,
                    )
                    .await
                    {
                        Ok(()) => {}
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
                // Interim responses go on to HTTP/1.1 clients only (RFC 9110 §15.2).
                let interim =
                    (ex.head.version == Version::Http11).then_some((&mut ds.stream, limits.send_timeout));
                match read_response_head(
                    ctx,
                    &mut conn,
                    up_cfg.read_timeout,
                    ex.head.method() == b"HEAD",
                    interim,
                )
                .await
                {
                    Ok(resp) => break 'attempt Ok((conn, resp, early)),
                    Err(e) if e.kind == ErrorKind::UpstreamClosed && may_retry(&conn, false) => {
                        tracing::debug!(upstream = %up_cfg.name, "pooled connection was closed; retrying on a new one");
                        retried = true;
                    }
                    // The whole request was sent: another server may only
                    // have it if it can be sent again and doing it twice is
                    // harmless.
                    Err(error) => {
                        break 'attempt Err(Failure {
                            error,
                            next_safe: replayable && method_idempotent,
                            reused: conn.reused,
                        })
                    }
                }
            }
        };
        match outcome {
            Ok((conn, resp, early)) => {
                plan.up.observe(peer_idx, attempt_start.elapsed());
                let status = resp.0.status;
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
                // (idempotent, whole body in memory) and a server is left to
                // take it; otherwise the client gets this answer, as in nginx.
                if next.on_status(status)
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
                        // The connection closes with the unread answer.
                        continue;
                    }
                    tried.pop();
                }
                if !ex.tries.is_empty() {
                    ex.tries.push((plan.up.index, peer_idx, status));
                }
                break (conn, resp, early, active);
            }
            Err(f) => {
                drop(active);
                let kind = f.error.kind;
                // A pooled connection found closed says nothing about the server.
                let stale = f.reused && kind == ErrorKind::UpstreamClosed;
                if kind.is_server_failure() && !stale {
                    // A failure is no fast answer: `ewma` counts it as taking
                    // at least connect_timeout, so a server that refuses
                    // at once does not look like the quickest.
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
                if !(kind.is_server_failure()
                    && up_cfg.next_upstream.has(next_upstream_kind(kind))
                    && f.next_safe
                    && tried.len() < up_cfg.tries
                    && in_time
                    && request.is_some())
                {
                    return Err(f.error);
                }
                tracing::debug!(upstream = %up_cfg.name, server = %peer.authority, "{}; trying the next server", f.error);
                last_error = Some(f.error);
            }
        }
    };
    let (head, meta) = resp;
    if let Some(mut req) = request {
        req.clear();
        ds.upbuf = req;
    }

    // The client connection stays open only if this exchange ends cleanly.
    ex.close = early || must_close(ctx, ds, ex);
    let framing = rewrite::client_framing(meta.body, ex.head.version);
    ex.close |= framing == ClientFraming::Close;

    // `sticky`: a client whose cookie did not name this server (none, a
    // forged one, or one whose server is down) is given one that does.
    let set_cookie = match sticky.and_then(|v| plan.up.sticky_named(&v)) {
        Some(named) if named == conn.peer => None,
        _ => plan.up.set_cookie(conn.peer),
    };

    // Write the response head, with the first body bytes when they fit.
    ds.wbuf.clear();
    rewrite::response_head(
        &ResponseRewrite {
            head: &head,
            meta: &meta,
            framing,
            head_request: ex.head.method() == b"HEAD",
            close: ex.close,
            client_version: ex.head.version,
            extra: set_cookie.unwrap_or_default(),
            redirect: Redirect {
                upstream: up_cfg,
                location: plan.location,
                pass: plan.pass,
                public_host: plan.public_host,
                https: ds.stream.tls().is_some(),
                local_port: &ds.port_text,
            },
            hsts: hsts(ctx, ds, ex.server),
        },
        &ctx.dates,
        &mut ds.wbuf,
    );
    let mut body_left = meta.body;
    if let BodyKind::Length(n) = meta.body {
        let first = (conn.rbuf.len() as u64).min(n) as usize;
        if first <= 16 * 1024 {
            ds.wbuf.extend_from_slice(&conn.rbuf.split_to(first));
            ex.body_bytes = first as u64;
            body_left = if first as u64 == n {
                BodyKind::Empty
            } else {
                BodyKind::Length(n - first as u64)
            };
        }
    }
    ex.status = head.status;
    io::flush_vec(&mut ds.stream, &mut ds.wbuf, &ctx.deadlines, limits.send_timeout)
        .await
        .map_err(|_| Error::new(ErrorKind::ClientGone))?;

    // Phase: forward_response_body.
    let copy = Copy {
        deadlines: &ctx.deadlines,
        kind: body_left,
        chunked_out: framing == ClientFraming::Chunked,
        read_timeout: up_cfg.read_timeout,
        write_timeout: limits.send_timeout,
        limit: None,
    };
    match copy
        .run(&mut conn.stream, &mut conn.rbuf, &mut ds.stream, &mut ds.body_out)
        .await
    {
        Ok(n) => ex.body_bytes += n,
        Err(BodyError::Write(_)) => return Err(ErrorKind::ClientGone.into()),
        Err(BodyError::Read(Some(IoFail::Timeout))) => return Err(ErrorKind::ReadTimeout.into()),
        Err(_) => return Err(ErrorKind::UpstreamTruncated.into()),
    }

    // Phase: finish (upstream side). nginx's checklist for keeping the
    // connection: request fully sent, response fully read, no error, the
    // upstream allows keep-alive, not shutting down.
    let reusable = !early && !meta.close && conn.rbuf.is_empty() && !ctx.shutdown.is_raised();
    if reusable {
        plan.up.pool.put(conn);
    }
    Ok(())
}

/// Phase: forward_request_body, with `100 Continue` first when the client
/// waits for it. Request bodies are never replayed, so they stream.
async fn forward_request_body(
    ctx: &WorkerCtx,
    ds: &mut Downstream,
    ex: &mut Exchange,
    conn: &mut UpConn,
    max_body: Option<u64>,
    limits: &ClientLimits,
    send_timeout: Duration,
) -> std::result::Result<(), BodyError> {
    if ex.meta.expect_continue && ds.rbuf.is_empty() {
        // The upstream connection is ready, so now the client may send.
        io::write_all(
            &mut ds.stream,
            respond::CONTINUE,
            &ctx.deadlines,
            limits.send_timeout,
        )
        .await
        .map_err(|e| BodyError::Read(Some(e)))?;
    }
    let copy = Copy {
        deadlines: &ctx.deadlines,
        kind: ex.meta.body(),
        chunked_out: ex.meta.body() == BodyKind::Chunked,
        read_timeout: limits.body_timeout,
        write_timeout: send_timeout,
        limit: max_body,
    };
    copy.run(&mut ds.stream, &mut ds.rbuf, &mut conn.stream, &mut ds.body_out)
        .await?;
    ex.req_body_done = true;
    Ok(())
}

/// Interim (1xx) responses accepted ahead of one final response. Real
/// servers send one or two (102 Processing, 103 Early Hints); without a
/// bound, an upstream could hold a request open forever with a stream of
/// them, each read arriving within read_timeout.
const MAX_INTERIM: usize = 16;

/// Phase: read_response_head. Interim 1xx responses are passed on to the
/// client as they arrive (`interim`: the client's stream and send timeout,
/// `None` for an HTTP/1.0 client, which must not get them), except 100
/// Continue: ringway answers a client's `Expect: 100-continue` itself and
/// does not forward Expect, so an upstream's 100 is not the client's. A 1xx
/// is only a hint: if the exchange fails after one went out, the client
/// still gets an error response, or, on a retry, the next server's answer.
async fn read_response_head(
    ctx: &WorkerCtx,
    conn: &mut UpConn,
    read_timeout: Duration,
    head_request: bool,
    mut interim: Option<(&mut super::ClientStream, Duration)>,
) -> Result<(ResponseHead, crate::http::ResponseMeta)> {
    let mut interims = 0;
    loop {
        if !conn.rbuf.is_empty() {
            match parse_response(&conn.rbuf, MAX_RESPONSE_HEADERS) {
                Ok(Parsed::Complete(mut head, len)) => {
                    head.buf = conn.rbuf.split_to(len).freeze();
                    if head.status == 101 {
                        return Err(
                            ErrorKind::BadResponse("101 Switching Protocols was not asked for").into(),
                        );
                    }
                    if (100..200).contains(&head.status) {
                        interims += 1;
                        if interims > MAX_INTERIM {
                            return Err(ErrorKind::BadResponse("too many interim (1xx) responses").into());
                        }
                        if let (Some((client, send_timeout)), false) = (interim.as_mut(), head.status == 100)
                        {
                            let mut out = Vec::with_capacity(head.buf.len() + 32);
                            rewrite::interim_head(&head, &mut out);
                            io::write_all(&mut **client, out, &ctx.deadlines, *send_timeout)
                                .await
                                .map_err(|_| Error::new(ErrorKind::ClientGone))?;
                        }
                        continue;
                    }
                    let meta = response_meta(&head, head_request).map_err(|e| match e {
                        crate::http::HttpError::Malformed(why) => Error::new(ErrorKind::BadResponse(why)),
                        _ => Error::new(ErrorKind::BadResponse("invalid response head")),
                    })?;
                    return Ok((head, meta));
                }
                Ok(Parsed::Partial) if conn.rbuf.len() > MAX_RESPONSE_HEAD => {
                    return Err(ErrorKind::BadResponse("response head too large").into());
                }
                Ok(Parsed::Partial) => {}
                Err(crate::http::HttpError::HeadersTooLarge) => {
                    return Err(ErrorKind::BadResponse("too many response header fields").into());
                }
                Err(_) => return Err(ErrorKind::BadResponse("invalid response head").into()),
            }
        }
        let had_bytes = !conn.rbuf.is_empty();
        match io::read_buf(
            &mut conn.stream,
            &mut conn.rbuf,
            HEAD_READ,
            &ctx.deadlines,
            read_timeout,
        )
        .await
        {
            Ok(0) if had_bytes => return Err(ErrorKind::BadResponse("response head cut short").into()),
            Ok(0) => return Err(ErrorKind::UpstreamClosed.into()),
            Ok(_) => {}
            Err(IoFail::Timeout) => return Err(ErrorKind::ReadTimeout.into()),
            Err(IoFail::Io(e)) if had_bytes => {
                return Err(Error::io(ErrorKind::BadResponse("response head cut short"), e))
            }
            Err(IoFail::Io(e)) => return Err(Error::io(ErrorKind::UpstreamClosed, e)),
        }
    }
}

/// Sends the error's status if no response has started; otherwise the
/// client connection is closed, so a cut-short body is never taken as whole.
async fn answer_error(ctx: &WorkerCtx, ds: &mut Downstream, ex: &mut Exchange, e: Error) {
    match e.kind.side() {
        Side::Upstream | Side::Internal => {
            tracing::warn!(peer = %ds.peer, request = %String::from_utf8_lossy(ex.head.request_line()), "{e}")
        }
        Side::Downstream => {
            tracing::debug!(peer = %ds.peer, request = %String::from_utf8_lossy(ex.head.request_line()), "{e}")
        }
    }
    let status = match e.kind.status() {
        Some(s) if ex.status == 0 => s,
        _ => {
            ex.close = true;
            if ex.status == 0 {
                // Nothing was sent; log it as nginx does a dropped request.
                ex.status = if e.kind.side() == Side::Upstream { 502 } else { 499 };
            }
            return;
        }
    };
    // After an upstream failure or a 404 the client's request was complete,
    // so its connection can carry on; after a client error it cannot.
    let clean = matches!(e.kind.side(), Side::Upstream) || e.kind == ErrorKind::NotFound;
    ex.close = !clean || must_close(ctx, ds, ex);
    ex.status = status;
    let head_only = ex.head.method() == b"HEAD";
    ex.body_bytes = if head_only {
        0
    } else {
        respond::error_body(status).len() as u64
    };
    let keep_alive_10 = ex.head.version == Version::Http10;
    if send_canned(
        ctx,
        ds,
        status,
        Some(ex.server),
        ex.close,
        keep_alive_10,
        head_only,
    )
    .await
    .is_err()
    {
        ex.close = true;
    }
}

async fn send_canned(
    ctx: &WorkerCtx,
    ds: &mut Downstream,
    status: u16,
    server: Option<usize>,
    close: bool,
    keep_alive_10: bool,
    head_only: bool,
) -> std::result::Result<(), IoFail> {
    let body = respond::error_body(status);
    ds.wbuf.clear();
    Canned {
        status,
        body: body.as_bytes(),
        location: None,
        close,
        keep_alive_10,
        head_only,
        hsts: hsts(
            ctx,
            ds,
            server.unwrap_or_else(|| ctx.router.default_server(ds.listener)),
        ),
    }
    .write(&ctx.dates, &mut ds.wbuf);
    let server = server.unwrap_or_else(|| ctx.router.default_server(ds.listener));
    let t = ctx.server(server).limits.send_timeout;
    io::flush_vec(&mut ds.stream, &mut ds.wbuf, &ctx.deadlines, t).await
}

/// Logs a request refused before its head could be parsed, with its first
/// line as received (nginx logs these too).
fn log_refused(ctx: &WorkerCtx, ds: &Downstream, status: u16) {
    let server = ctx.router.default_server(ds.listener);
    if !ctx.logs.enabled(server) {
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
    let limit = ctx.server(server).limits.max_request_line;
    ctx.logs.write(
        server,
        &ctx.dates,
        &Entry {
            client: ds.peer.ip().to_canonical(),
            request_line: &line[..end.min(limit)],
            status,
            body_bytes: respond::error_body(status).len() as u64,
            referer: None,
            user_agent: None,
            tries: None,
            tls: ds.stream.tls().map(|t| (t.version, t.cipher)),
        },
    );
}

/// Phase: finish (downstream side): access log, keep-alive decision.
fn finish_request(ctx: &WorkerCtx, ds: &Downstream, ex: &Exchange) -> Next {
    if ctx.logs.enabled(ex.server) {
        // A request tried on several servers: nginx's $upstream_addr and
        // $upstream_status ("a, b" and "502, 200"). Built only then.
        let tries = (ex.tries.len() > 1).then(|| {
            let mut addrs = String::new();
            let mut statuses = String::new();
            for (k, &(up, peer, status)) in ex.tries.iter().enumerate() {
                let sep = if k == 0 { "" } else { ", " };
                addrs.push_str(sep);
                addrs.push_str(&ctx.config.upstreams[up].servers[peer].addr_text);
                statuses.push_str(sep);
                statuses.push_str(&status.to_string());
            }
            (addrs, statuses)
        });
        ctx.logs.write(
            ex.server,
            &ctx.dates,
            &Entry {
                client: ex.client,
                request_line: ex.head.request_line(),
                status: ex.status,
                body_bytes: ex.body_bytes,
                referer: ex.head.header("referer"),
                user_agent: ex.head.header("user-agent"),
                tries: tries.as_ref().map(|(a, s)| (a.as_str(), s.as_str())),
                tls: ds.stream.tls().map(|t| (t.version, t.cipher)),
            },
        );
    }
    if !ex.close {
        Next::KeepAlive
    } else if !ex.req_body_done || !ds.rbuf.is_empty() {
        Next::Linger
    } else {
        Next::Close
    }
}

//! The request lifecycle over a [`ClientSession`], whichever protocol
//! carried the request: route, then the content phase (`return`, the
//! `redirect_https` answer, or `proxy_pass` in `forward.rs`), errors and the
//! access log. The names match nginx's and pingora's so the flow can be read
//! against theirs.

use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::Instant;

use super::content;
use super::files::Next;
use super::respond::{self, Canned};
use super::rewrite;
use super::session::ClientSession;
use std::borrow::Cow;

use super::locate;
use crate::ctx::WorkerCtx;
use crate::error::{Error, ErrorKind, Result, Side};
use crate::files::PageTarget;
use crate::generation::Generation;
use crate::http::framing::request_meta;
use crate::http::{BodyKind, RequestHead, RequestMeta, Version};
use crate::io::IoFail;
use crate::reqid::RequestId;
use crate::route;
use crate::vars::{self, Mode, Template};

/// One request and what has happened to it so far.
pub struct Exchange {
    pub head: RequestHead,
    pub meta: RequestMeta,
    /// The config generation the request runs under, start to end.
    pub gen: Rc<Generation>,
    /// The listener's index in `gen`.
    pub listener: usize,
    /// A reload removed the listener: the connection closes after this.
    pub retiring: bool,
    pub server: usize,
    pub client: IpAddr,
    /// Status sent to the client (0 until a head is sent).
    pub status: u16,
    pub body_bytes: u64,
    /// The request body has been read to its end (or had none).
    pub req_body_done: bool,
    /// Close the client connection after this exchange.
    pub close: bool,
    /// When a request was tried on more than one server: each try's server
    /// (upstream, server index) and status, for the access log.
    pub tries: Vec<(usize, usize, u16)>,
    /// The server whose answer went to the client (upstream, server
    /// index, status): a plain copy, no allocation, for the access log.
    pub answered: Option<(usize, usize, u16)>,
    /// `X-Request-ID`: a trusted proxy's, or one made here (see reqid.rs).
    pub request_id: RequestId,
    /// The trace context sent upstream, if any (see trace.rs).
    pub trace: Option<crate::trace::Trace>,
    /// `response_headers` with `always = true`: the fields for ringway's
    /// own error answer, should there be one (whole lines).
    pub always_lines: Vec<u8>,
    /// When the request head had been read (the metrics' duration).
    pub start: Instant,
    /// When the answering server's try began, and how long its response
    /// head took (`$upstream_response_time`, `$upstream_header_time`).
    pub upstream_timing: Option<(Instant, std::time::Duration)>,
}

impl Exchange {
    /// `at`: the generation, the listener's index in it, and whether the
    /// newest generation still listens there (`WorkerCtx::gen_for`).
    pub fn new(head: RequestHead, at: (Rc<Generation>, usize, bool), peer: SocketAddr) -> Exchange {
        let (gen, listener, current) = at;
        let server = gen.router.default_server(listener);
        Exchange {
            gen,
            listener,
            retiring: !current,
            meta: RequestMeta::default(),
            server,
            client: peer.ip().to_canonical(),
            status: 0,
            body_bytes: 0,
            req_body_done: false,
            close: true,
            tries: Vec::new(),
            answered: None,
            request_id: RequestId::default(),
            trace: None,
            always_lines: Vec::new(),
            start: Instant::now(),
            upstream_timing: None,
            head,
        }
    }
}

/// Serves a request whose head was read: the phases from route to the
/// access log. On return `ex` says how it ended (status, whether the
/// connection may carry on).
pub async fn serve<S: ClientSession>(ctx: &Rc<WorkerCtx>, ds: &mut S, ex: &mut Exchange) {
    if let Err(e) = handle(ctx, ds, ex).await {
        answer_error(ctx, ds, ex, e).await;
    }
    super::logging::log_request(ctx, ds, ex);
}

/// Whether the client connection must close after this response: the client
/// asked for it, its body was not read to the end, the worker is shutting
/// down, or keep-alive limits are reached. One rule for every response.
pub(super) fn must_close<S: ClientSession>(ctx: &WorkerCtx, ds: &S, ex: &Exchange) -> bool {
    let limits = &ex.gen.server(ex.server).limits;
    ex.close
        || ex.retiring
        || !ex.req_body_done
        || ctx.shutdown.is_raised()
        || ds.connection_exhausted(limits)
}

/// The request target, split for routing and rewriting.
pub(super) struct Target<'a> {
    /// Path used for routing (dot segments removed).
    pub(super) path: std::borrow::Cow<'a, [u8]>,
    pub(super) query: &'a [u8],
    pub(super) normalized: bool,
    /// The authority of an absolute-form target, which overrides Host
    /// (RFC 9112 §3.2.2).
    pub(super) authority: Option<&'a [u8]>,
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
async fn handle<S: ClientSession>(ctx: &Rc<WorkerCtx>, ds: &mut S, ex: &mut Exchange) -> Result<()> {
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
    let gen = ex.gen.clone();
    ex.server = gen.router.server_for(ex.listener, host);
    let server = gen.server(ex.server);
    let trusted = &gen.config.global.trusted_proxies;
    ex.client = rewrite::client_addr(ds.conn().peer.ip(), &ex.head, trusted, server.forwarded.is_some());
    ex.request_id = request_id(ctx, ds.conn().peer.ip(), &ex.head, trusted);
    let start = gen.config.global.trace;
    let received = ex.head.header("traceparent");
    if received.is_some() || start {
        ex.trace = ctx.spans.trace(received, start);
    }
    if let (Some(port), None) = (server.redirect_https, ds.tls()) {
        return redirect_to_https(ctx, ds, ex, host, port).await;
    }
    if let Some(t) = ds.tls() {
        // The handshake was made for the block SNI chose. A Host naming a
        // block that checks client certificates must not ride on a
        // connection that was not checked by it (nginx answers 421 too).
        let checks = server
            .tls
            .as_ref()
            .is_some_and(|t| t.verify_client != crate::config::VerifyClient::Off);
        if checks && t.block != gen.tls.keys[ex.server] {
            ex.close = true;
            let body = respond::error_body(421);
            return respond_return(ctx, ds, ex, 421, body.as_bytes(), None, b"").await;
        }
    }
    // Phases route to content, again for each internal redirect
    // (`try_files`' fallback, a named location, an error page).
    let req = content::Req {
        gen: &gen,
        target: &target,
        host,
        buf: &buf,
    };
    let mut hop = content::Hop::First;
    let mut error_status: Option<u16> = None;
    let mut body_checked = false;
    for _ in 0..=locate::MAX_REROUTES {
        let (at, r) = content::run(ctx, ds, ex, &req, &hop, error_status, &mut body_checked).await;
        let e = match r {
            Ok(Next::Done) => return Ok(()),
            Ok(Next::Uri(u)) => {
                hop = content::Hop::Uri(u);
                continue;
            }
            Ok(Next::Named(i)) => {
                hop = content::Hop::Named(i);
                continue;
            }
            Err(e) => e,
        };
        // `error_pages` of the location that failed (else the block's),
        // once: an error page that fails itself gets the built-in page.
        let srv = gen.server(ex.server);
        let pages = match at {
            Some(l) => srv.locations[l].error_pages.as_deref(),
            None => srv.error_pages.as_deref(),
        };
        let page = match (error_status, e.kind.status()) {
            (None, Some(s)) if ex.status == 0 => pages.and_then(|p| p.get(s)).map(|t| (s, t)),
            _ => None,
        };
        match page {
            Some((s, PageTarget::Uri(u))) => {
                tracing::debug!("{e}; error page {u}");
                error_status = Some(s);
                hop = content::Hop::Uri(locate::Uri {
                    path: u.as_bytes().to_vec(),
                    args: Vec::new(),
                });
            }
            Some((s, PageTarget::Named(i))) => {
                tracing::debug!("{e}; error page in a named location");
                error_status = Some(s);
                hop = content::Hop::Named(*i);
            }
            _ => return Err(e),
        }
    }
    // Internal redirects in a loop: nginx's 500 too.
    Err(ErrorKind::Internal.into())
}

/// A template's expansion: borrowed when it has no variables.
pub(super) fn expanded<'t>(t: &'t Template, vars: &vars::Request, mode: Mode) -> Result<Cow<'t, [u8]>> {
    if let Some(lit) = t.as_literal() {
        return Ok(Cow::Borrowed(lit.as_bytes()));
    }
    let mut out = Vec::new();
    t.expand(vars, mode, &mut out).map_err(|_| {
        tracing::warn!("expansion of {:?} is over {} bytes", t.text, vars::MAX_EXPANDED);
        ErrorKind::Internal
    })?;
    Ok(Cow::Owned(out))
}

/// A `return` location (or a rewrite's redirect): a fixed response, no upstream.
pub(super) async fn respond_return<S: ClientSession>(
    ctx: &WorkerCtx,
    ds: &mut S,
    ex: &mut Exchange,
    status: u16,
    body: &[u8],
    location: Option<&[u8]>,
    extra: &[u8],
) -> Result<()> {
    // A body, if any, is not read, so the connection cannot be reused after it.
    ex.close = must_close(ctx, ds, ex);
    ex.status = status;
    ex.body_bytes = body.len() as u64;
    let reply = Canned {
        status,
        body,
        location,
        close: ex.close,
        keep_alive_10: ex.head.version == Version::Http10,
        head_only: ex.head.method() == b"HEAD",
        hsts: hsts(&ex.gen, ds, ex.server),
        grpc: None,
        extra,
    };
    let limits = &ex.gen.server(ex.server).limits;
    ds.send_canned(ctx, &reply, limits.send_timeout)
        .await
        .map_err(|_| Error::new(ErrorKind::ClientGone))
}

/// The block's `Strict-Transport-Security` value, for responses over TLS only.
pub(super) fn hsts<'a, S: ClientSession>(gen: &'a Generation, ds: &S, server: usize) -> Option<&'a [u8]> {
    ds.tls()?;
    gen.server(server).hsts.as_deref().map(str::as_bytes)
}

/// `redirect_https`: 301 to the same host, path and query over https, as
/// nginx's `return 301 https://$host$request_uri`. The port is the one
/// configured (443 is left out of the URL), since the TLS listener a client
/// should use is not necessarily on this machine's view of the address.
async fn redirect_to_https<S: ClientSession>(
    ctx: &WorkerCtx,
    ds: &mut S,
    ex: &mut Exchange,
    host: Option<&[u8]>,
    port: u16,
) -> Result<()> {
    let gen = ex.gen.clone();
    let server = gen.server(ex.server);
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
    let body = respond::error_body(301);
    respond_return(ctx, ds, ex, 301, body.as_bytes(), Some(&location), b"").await
}

/// Sends the error's status if no response has started; otherwise the
/// client connection is closed, so a cut-short body is never taken as whole.
async fn answer_error<S: ClientSession>(ctx: &WorkerCtx, ds: &mut S, ex: &mut Exchange, e: Error) {
    match e.kind.side() {
        Side::Upstream | Side::Internal => {
            tracing::warn!(peer = %ds.conn().peer, request = %String::from_utf8_lossy(&ds.log_line(&ex.head)), "{e}")
        }
        Side::Downstream => {
            tracing::debug!(peer = %ds.conn().peer, request = %String::from_utf8_lossy(&ds.log_line(&ex.head)), "{e}")
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
    let clean = matches!(e.kind.side(), Side::Upstream)
        || matches!(
            e.kind,
            ErrorKind::NotFound
                | ErrorKind::NoFile
                | ErrorKind::Forbidden
                | ErrorKind::Answer(_)
                | ErrorKind::FilesBusy
        );
    ex.close = !clean || must_close(ctx, ds, ex);
    ex.status = status;
    let head_only = ex.head.method() == b"HEAD";
    ex.body_bytes = if head_only {
        0
    } else {
        respond::error_body(status).len() as u64
    };
    let keep_alive_10 = ex.head.version == Version::Http10;
    // A gRPC client reads its error from grpc-status, not from an HTML
    // page: it gets UNAVAILABLE, DEADLINE_EXCEEDED and the like.
    let grpc = is_grpc(&ex.head);
    if grpc {
        ex.body_bytes = 0;
    }
    if send_error_to(
        ctx,
        ds,
        status,
        (&ex.gen.clone(), ex.server),
        (ex.close, keep_alive_10, head_only),
        grpc,
        &ex.always_lines,
    )
    .await
    .is_err()
    {
        ex.close = true;
    }
}

/// Sends ringway's own error response for `status`.
pub(super) async fn send_error<S: ClientSession>(
    ctx: &WorkerCtx,
    ds: &mut S,
    status: u16,
    at: (&Generation, usize),
    close: bool,
    keep_alive_10: bool,
    head_only: bool,
) -> std::result::Result<(), IoFail> {
    send_error_to(ctx, ds, status, at, (close, keep_alive_10, head_only), false, b"").await
}

/// `send_error`, also for gRPC requests (`grpc`: answered with the gRPC
/// status for `status`). `how`: close, HTTP/1.0 keep-alive, HEAD.
async fn send_error_to<S: ClientSession>(
    ctx: &WorkerCtx,
    ds: &mut S,
    status: u16,
    (gen, server): (&Generation, usize),
    (close, keep_alive_10, head_only): (bool, bool, bool),
    grpc: bool,
    extra: &[u8],
) -> std::result::Result<(), IoFail> {
    let body = respond::error_body(status);
    let reply = Canned {
        status,
        body: body.as_bytes(),
        location: None,
        close,
        keep_alive_10,
        head_only,
        hsts: hsts(gen, ds, server),
        grpc: grpc.then(|| respond::grpc_status(status)),
        extra,
    };
    let t = gen.server(server).limits.send_timeout;
    ds.send_canned(ctx, &reply, t).await
}

/// `content-type: application/grpc` (and `application/grpc+proto` etc.).
pub fn is_grpc(head: &RequestHead) -> bool {
    head.header("content-type")
        .is_some_and(|v| v.len() >= 16 && v[..16].eq_ignore_ascii_case(b"application/grpc"))
}

/// The request's id: the `X-Request-ID` of a trusted proxy when it is a
/// valid one, else a new one (a client's own is replaced: it could reuse
/// another request's id).
#[inline]
fn request_id(
    ctx: &WorkerCtx,
    peer: std::net::IpAddr,
    head: &RequestHead,
    trusted: &[ipnet::IpNet],
) -> RequestId {
    if !trusted.is_empty() {
        let peer = peer.to_canonical();
        if trusted.iter().any(|n| n.contains(&peer)) {
            if let Some(id) = head.header("x-request-id").and_then(RequestId::parse) {
                return id;
            }
        }
    }
    ctx.ids.next()
}

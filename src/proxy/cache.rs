//! The cache in the content phase of a `proxy_pass` location with `cache`
//! (after its limits and access rules): a lookup by the location's key and
//! the request's Vary values; a fresh hit is answered through the
//! local-response seam (the response phases of a proxied response, over
//! HTTP/1.1 and HTTP/2 alike) with `Age` and the status field; anything
//! else is proxied as usual while the tee copies the body, and is stored
//! when RFC 9111 (`cache::policy`) allows it and the body ended cleanly.
//! Unsafe methods invalidate what they name (§4.4).

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use super::forward::{self, Plan};
use super::phases::Exchange;
use super::session::ClientSession;
use crate::cache::lock::Lock;
use crate::cache::policy::{self, Rules, Stored, Use};
use crate::cache::{Cache, Entry, Status, Tee, Zone};
use crate::ctx::WorkerCtx;
use crate::deadline::Woke;
use crate::error::{ErrorKind, Result, Side};
use crate::http::{encode, RequestHead, ResponseHead};
use crate::vars::{self, Mode, Template};

/// The cache's part in one proxied request, read by `forward.rs`.
pub(super) struct Hook<'c> {
    cache: &'c Cache,
    req_cc: policy::Directives,
    /// Copies a miss's head and body (`None`: nothing will be stored).
    pub(super) tee: Option<Tee>,
    /// Whole lines the client gets with the response (the status field).
    pub(super) lines: Vec<u8>,
    /// Request fields not sent upstream: the location's, and the client's
    /// own conditionals and ranges when the answer is to be stored (it
    /// must be a whole response, not the client's 304 or 206).
    /// Borrowed from the location unless conditionals are added.
    pub(super) hidden: std::borrow::Cow<'c, [String]>,
    /// Statuses taken here instead of being forwarded.
    catch: Vec<u16>,
    caught: RefCell<Option<ResponseHead>>,
}

impl<'c> Hook<'c> {
    pub(super) fn new(
        cache: &'c Cache,
        req_cc: policy::Directives,
        tee: Option<Tee>,
        location: &'c crate::config::Location,
    ) -> Hook<'c> {
        Hook {
            cache,
            req_cc,
            tee,
            lines: Vec::new(),
            hidden: std::borrow::Cow::Borrowed(
                location.request_headers.as_deref().map_or(&[][..], |h| &h.hidden),
            ),
            catch: Vec::new(),
            caught: RefCell::new(None),
        }
    }

    /// The client's conditionals and ranges are not sent upstream.
    pub(super) fn hide_conditionals(&mut self) {
        self.hidden
            .to_mut()
            .extend(CONDITIONALS.iter().map(|s| s.to_string()));
    }

    /// §4.3.1: the validators of `e` as request lines; whether it had any.
    pub(super) fn ask_conditionally(&self, e: &Entry, lines: &mut Vec<u8>) -> bool {
        let before = lines.len();
        if let Some(v) = &e.etag {
            encode::header(b"If-None-Match", v, lines);
        }
        if let Some(v) = &e.last_modified {
            encode::header(b"If-Modified-Since", v, lines);
        }
        lines.len() > before
    }

    pub(super) fn catch_status(&mut self, status: u16) {
        self.catch.push(status);
    }

    /// The upstream's head, before its body is copied: a response that
    /// will not be stored (or is announced larger than `max_object`) is
    /// not copied at all.
    pub(super) fn observe(&self, req: &RequestHead, head: &ResponseHead, meta: &crate::http::ResponseMeta) {
        let Some(tee) = &self.tee else { return };
        let too_large = matches!(meta.body, crate::http::BodyKind::Length(n) if n > tee.max() as u64);
        if too_large || policy::storable(req, &self.req_cc, head, &rules(self.cache)).is_err() {
            tee.abandon();
        }
    }

    pub(super) fn catches(&self, status: u16) -> bool {
        self.catch.contains(&status)
    }

    pub(super) fn catch(&self, head: &ResponseHead) {
        *self.caught.borrow_mut() = Some(head.clone());
    }
}

/// Request fields a stored answer must not depend on.
const CONDITIONALS: [&str; 6] = [
    "if-none-match",
    "if-modified-since",
    "if-match",
    "if-unmodified-since",
    "if-range",
    "range",
];

pub(super) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn rules(c: &Cache) -> Rules<'_> {
    Rules {
        valid: &c.valid,
        heuristic: c.heuristic,
        credentials: c.credentials,
        ignore_set_cookie: c.ignore_set_cookie,
        ignore_cache_control: c.ignore_cache_control,
        ignore_expires: c.ignore_expires,
    }
}

/// `bypass`: any value non-empty and not "0" (nginx's rule).
fn bypassed(c: &Cache, vars: &vars::Request) -> bool {
    let mut out = Vec::new();
    c.bypass.iter().any(|t| {
        out.clear();
        t.expand(vars, Mode::Raw, &mut out).is_ok() && !out.is_empty() && out != b"0"
    })
}

/// The status field's line, if the location has one.
pub(super) fn status_line(c: &Cache, s: Status, out: &mut Vec<u8>) {
    if let Some(name) = &c.status_header {
        encode::header(name.as_bytes(), s.as_str().as_bytes(), out);
    }
}

/// The stored variant for this request: the key's entries, the one whose
/// Vary values are the request's.
fn lookup(zone: &Zone, key: &[u8], head: &RequestHead) -> Option<Arc<Entry>> {
    let any = zone.store.any(key)?;
    if any.vary.is_empty() {
        return Some(any);
    }
    let values = policy::vary_values(head, &any.vary_names());
    zone.store.get(key, |e| e.matches(&values))
}

/// What the request's variables say to the cache, found before the
/// exchange goes on (they borrow its head).
pub(super) struct Ask {
    key: Vec<u8>,
    bypass: bool,
    /// `$scheme$host`, and the scheme's length in it, for §4.4 with the
    /// default key.
    origin: Option<(Vec<u8>, usize)>,
}

impl Ask {
    pub(super) fn new(cache: &Cache, vars: &vars::Request<'_>) -> Result<Ask> {
        let mut key = Vec::new();
        if cache.key.expand(vars, Mode::Raw, &mut key).is_err() {
            return Err(ErrorKind::Internal.into());
        }
        let unsafe_method = !matches!(vars.head.method(), b"GET" | b"HEAD");
        let origin = (unsafe_method && cache.key_is_default)
            .then(|| {
                let t = Template::parse("$scheme$host", Default::default()).ok()?;
                let mut o = Vec::new();
                t.expand(vars, Mode::Raw, &mut o).ok()?;
                Some((o, if vars.https { 5 } else { 4 }))
            })
            .flatten();
        Ok(Ask {
            key,
            bypass: bypassed(cache, vars),
            origin,
        })
    }
}

/// The content phase of a location with `cache`.
pub(super) async fn serve<S: ClientSession>(
    ctx: &Rc<WorkerCtx>,
    ds: &mut S,
    ex: &mut Exchange,
    plan: &Plan<'_>,
    cache: &Cache,
    ask: Ask,
) -> Result<()> {
    let Some(zone) = ex.gen.metrics.caches.get(cache.zone).cloned() else {
        return forward::proxy(ctx, ds, ex, plan).await;
    };
    let method = ex.head.method();
    // An upgrade (a WebSocket, HTTP/2's extended CONNECT) is a tunnel, not
    // a response to keep: what refuses it must not answer a plain GET.
    if method == b"CONNECT" || super::tunnel::offer(&ex.head, &ex.meta, plan.location).is_some() {
        return forward::proxy(ctx, ds, ex, plan).await;
    }
    if method == b"PURGE" {
        return purge(ctx, ds, ex, cache, &zone, &ask.key).await;
    }
    if method != b"GET" && method != b"HEAD" {
        return unsafe_method(ctx, ds, ex, plan, cache, &zone, ask).await;
    }
    let key = ask.key;
    let req_cc = policy::request_directives(&ex.head);
    let bypass = ask.bypass;
    let mut status = if bypass { Status::Bypass } else { Status::Miss };
    // The entry that was there but may not be served as it is: revalidated
    // with its validators, or served when the origin fails and that is
    // allowed.
    let mut stale: Option<Arc<Entry>> = None;
    if !bypass {
        if let Some(e) = lookup(&zone, &key, &ex.head) {
            let st = stored(&e, Instant::now());
            match policy::usable(&st, &req_cc) {
                Use::Fresh => {
                    return super::cache_reply::send_entry(ctx, ds, ex, plan, cache, &e, Status::Hit).await
                }
                Use::Revalidate => {
                    status = Status::Expired;
                    stale = Some(e);
                }
            }
        }
        // §5.2.1.7: nothing usable is stored, and the client wants nothing else.
        if req_cc.only_if_cached {
            return Err(ErrorKind::Answer(504).into());
        }
    }
    let mut store = method == b"GET" && !req_cc.no_store;
    // `min_uses`: only a key asked for often enough is stored (an entry
    // being refreshed or bypassed is stored whatever the count).
    if store && cache.min_uses > 1 && stale.is_none() && !bypass && zone.uses.count(&key) < cache.min_uses {
        store = false;
    }
    // `lock`: one fetch per key across every worker; the others wait for
    // it to be stored (woken, not polling), then read the cache. After
    // `lock_timeout` a waiter goes to the origin itself and, as in nginx,
    // does not store what it gets.
    //
    // A stale entry that may be served while it is refreshed (`use_stale`
    // with `updating`, or its stale-while-revalidate window) goes to the
    // requests that find a refresh already under way (UPDATING); the
    // first one refreshes it in the foreground.
    let swr = stale.as_ref().is_some_and(|e| {
        policy::stale_while_revalidate_ok(&stored(e, Instant::now()), e.stale_while_revalidate)
    });
    let while_updating = stale
        .as_ref()
        .is_some_and(|e| !e.must_revalidate && !req_cc.no_cache)
        && (cache.use_stale.updating || swr);
    // In the background (`background_update`, or the response's
    // stale-while-revalidate): this request too is answered from the
    // stale entry, and a task on this worker refreshes it.
    if while_updating && store && !bypass && (swr || cache.background_update) {
        if let Some(e) = &stale {
            if let Lock::Leader(g) = zone.locks.acquire(&key) {
                match super::cache_refresh::Refresh::new(
                    ds,
                    ex,
                    plan,
                    zone.clone(),
                    key.clone(),
                    e.clone(),
                    g,
                ) {
                    Some(r) => super::cache_refresh::spawn(ctx, ex, r),
                    None => tracing::debug!("no background refresh: the location was not found"),
                }
            }
            return super::cache_reply::send_entry(ctx, ds, ex, plan, cache, e, Status::Updating).await;
        }
    }
    let mut _leader = None;
    if (cache.lock || while_updating) && store && !bypass {
        match zone.locks.acquire(&key) {
            Lock::Leader(g) => _leader = Some(g),
            Lock::Waiter(_) if while_updating => {
                if let Some(e) = &stale {
                    return super::cache_reply::send_entry(ctx, ds, ex, plan, cache, e, Status::Updating)
                        .await;
                }
            }
            // Without `lock`, a request that cannot have the stale entry
            // goes to the origin beside the one refreshing it.
            Lock::Waiter(_) if !cache.lock => {}
            Lock::Waiter(rx) => {
                let deadline = Instant::now() + cache.lock_timeout;
                match ctx.deadlines.within(rx.recv_async(), deadline).await {
                    Woke::Ready(_) => {
                        if let Some(e) = lookup(&zone, &key, &ex.head) {
                            if policy::usable(&stored(&e, Instant::now()), &req_cc) == Use::Fresh {
                                return super::cache_reply::send_entry(
                                    ctx,
                                    ds,
                                    ex,
                                    plan,
                                    cache,
                                    &e,
                                    Status::Hit,
                                )
                                .await;
                            }
                        }
                    }
                    Woke::TimedOut | Woke::Closing => store = false,
                }
            }
        }
    }
    let tee = store.then(|| Tee::new(zone.store.max_object()));
    let mut hook = Hook::new(cache, req_cc.clone(), tee, plan.location);
    if store {
        hook.hide_conditionals();
    }
    // §4.3.1: a stale entry with validators is asked about conditionally;
    // its 304 comes back here instead of going to the client.
    let mut req_lines = Vec::new();
    if let Some(e) = stale.as_ref().filter(|_| store) {
        if hook.ask_conditionally(e, &mut req_lines) {
            hook.catch_status(304);
        }
    }
    // An error status the entry may be served stale for is taken here too.
    let stale_ok = stale.as_ref().is_some_and(|e| {
        !e.must_revalidate
            && (cache.use_stale.statuses.iter().any(|s| *s)
                || e.stale_if_error.is_some()
                || req_cc.stale_if_error.is_some())
    });
    if stale_ok {
        for s in crate::cache::config::STALE_STATUSES {
            let e = stale.as_deref();
            if cache.use_stale.on_status(s) || e.is_some_and(|e| stale_if_error(e, &req_cc)) {
                hook.catch.push(s);
            }
        }
    }
    status_line(cache, status, &mut hook.lines);
    let joined;
    let req_lines = if req_lines.is_empty() {
        plan.req_lines
    } else {
        joined = [plan.req_lines, &req_lines[..]].concat();
        &joined[..]
    };
    let request_time = unix_now();
    let p = Plan {
        cache: Some(&hook),
        req_lines,
        ..*plan
    };
    let result = forward::proxy(ctx, ds, ex, &p).await;
    let caught = hook.caught.borrow_mut().take();
    match (result, stale) {
        (Ok(()), Some(e)) if caught.as_ref().is_some_and(|h| h.status == 304) => {
            // §4.3.4: the stored response, its fields updated by the 304's.
            let fresh = caught
                .as_ref()
                .and_then(|h| {
                    crate::cache::entry::refreshed(&ex.head, &e, h, &rules(cache), request_time, unix_now())
                })
                .map(Arc::new);
            let served = match fresh {
                Some(f) => {
                    zone.store.put(&key, f.clone());
                    f
                }
                None => e,
            };
            super::cache_reply::send_entry(ctx, ds, ex, plan, cache, &served, Status::Revalidated).await
        }
        (Ok(()), Some(e)) if caught.is_some() => {
            super::cache_reply::send_entry(ctx, ds, ex, plan, cache, &e, Status::Stale).await
        }
        (Ok(()), _) => {
            zone.count(ctx.id, status);
            if let Some(tee) = &hook.tee {
                keep(&zone, &key, &ex.head, &req_cc, cache, tee, request_time);
            }
            Ok(())
        }
        // The origin failed before any of its answer reached the client.
        (Err(err), Some(e)) if ex.status == 0 && err.kind.side() == Side::Upstream => {
            if e.must_revalidate {
                // §4.2.4: never served stale; "Gateway Timeout" instead.
                return Err(ErrorKind::Answer(504).into());
            }
            let listed = match err.kind {
                ErrorKind::ConnectTimeout | ErrorKind::ReadTimeout | ErrorKind::SendTimeout => {
                    cache.use_stale.timeout
                }
                ErrorKind::BadResponse(_) => cache.use_stale.invalid_header,
                _ => cache.use_stale.error,
            };
            if listed || stale_if_error(&e, &req_cc) {
                super::cache_reply::send_entry(ctx, ds, ex, plan, cache, &e, Status::Stale).await
            } else {
                zone.count(ctx.id, status);
                Err(err)
            }
        }
        (Err(err), _) => {
            zone.count(ctx.id, status);
            Err(err)
        }
    }
}

/// What a background refresh got: a 304 refreshes the stale entry, a
/// storable answer replaces it.
pub(super) fn settle(
    hook: &Hook,
    req: &RequestHead,
    zone: &Zone,
    key: &[u8],
    stale: &Entry,
    request_time: u64,
) {
    let caught = hook.caught.borrow_mut().take();
    let rules = rules(hook.cache);
    match caught {
        Some(h) if h.status == 304 => {
            if let Some(f) = crate::cache::entry::refreshed(req, stale, &h, &rules, request_time, unix_now())
            {
                zone.store.put(key, Arc::new(f));
            }
        }
        Some(_) => {}
        None => {
            if let Some(tee) = &hook.tee {
                keep(zone, key, req, &hook.req_cc, hook.cache, tee, request_time);
            }
        }
    }
}

/// RFC 5861 stale-if-error, the response's or the request's, for `e` now.
fn stale_if_error(e: &Entry, req_cc: &policy::Directives) -> bool {
    policy::stale_if_error_ok(&stored(e, Instant::now()), e.stale_if_error, req_cc)
}

/// The facts of an entry the freshness rules read, now.
fn stored(e: &Entry, now: Instant) -> Stored {
    Stored {
        age: e.age(now),
        lifetime: e.lifetime,
        no_cache: e.no_cache,
        must_revalidate: e.must_revalidate,
    }
}

/// Stores what the tee copied, when the response may be stored.
fn keep(
    zone: &Zone,
    key: &[u8],
    req: &RequestHead,
    req_cc: &policy::Directives,
    cache: &Cache,
    tee: &Tee,
    request_time: u64,
) {
    let Some(head) = tee.head() else { return };
    let rules = rules(cache);
    if let Err(why) = policy::storable(req, req_cc, &head, &rules) {
        tracing::trace!("not stored: {why:?}");
        return;
    }
    // Abandoned past max_object: the client got it whole, the cache nothing.
    let Some(body) = tee.take_body() else { return };
    let Some(entry) = crate::cache::entry::build(req, &head, body, &rules, request_time, unix_now()) else {
        return;
    };
    zone.store.put(key, Arc::new(entry));
}

/// `PURGE`: from a `purge_allow` client, removes every variant of the
/// request's key (200, or 404 when nothing was stored); from anyone else,
/// 403. Never sent to the origin.
async fn purge<S: ClientSession>(
    ctx: &Rc<WorkerCtx>,
    ds: &mut S,
    ex: &mut Exchange,
    cache: &Cache,
    zone: &Zone,
    key: &[u8],
) -> Result<()> {
    let client = ex.client;
    let status = if !cache.purge_allow.iter().any(|n| n.contains(&client)) {
        403
    } else if zone.store.remove(key) {
        200
    } else {
        404
    };
    let body = match status {
        200 => "purged\n".to_string(),
        _ => super::respond::error_body(status),
    };
    super::phases::respond_return(ctx, ds, ex, status, body.as_bytes(), None, b"").await
}

/// A request with an unsafe method: proxied, then (§4.4) what it names is
/// invalidated when it succeeded: its own key, and the keys of the
/// same-host `Location` and `Content-Location` when the key is the
/// default one (a custom key cannot be rebuilt for another URI).
async fn unsafe_method<S: ClientSession>(
    ctx: &Rc<WorkerCtx>,
    ds: &mut S,
    ex: &mut Exchange,
    plan: &Plan<'_>,
    cache: &Cache,
    zone: &Zone,
    ask: Ask,
) -> Result<()> {
    // A tee of no room keeps the head only.
    let hook = Hook::new(cache, Default::default(), Some(Tee::new(0)), plan.location);
    let p = Plan {
        cache: Some(&hook),
        ..*plan
    };
    let r = forward::proxy(ctx, ds, ex, &p).await;
    let head = hook.tee.as_ref().and_then(Tee::head);
    if let Some(head) = head.filter(|h| policy::invalidates(ex.head.method(), h.status)) {
        zone.store.remove(&ask.key);
        if let Some((origin, scheme_len)) = ask.origin {
            let (scheme, host) = origin.split_at(scheme_len);
            for path in policy::invalidated_paths(&head, scheme, host) {
                let mut k = origin.clone();
                k.extend_from_slice(&path);
                zone.store.remove(&k);
            }
        }
    }
    r
}

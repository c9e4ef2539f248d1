//! Phases route, rewrite, preaccess, access and content for one pass of a
//! request through its server block: the location for the current URI,
//! its limits and access rules, then what it does (`return`, static files,
//! `proxy_pass`). `phases::handle` runs a pass again for each internal
//! redirect (`try_files`, a named location, an error page).

use std::borrow::Cow;
use std::rc::Rc;

use super::files::{self, Next};
use super::forward::{self, Plan};
use super::locate::{self, Routed, Uri, VarBase};
use super::phases::{expanded, respond_return, Exchange, Target};
use super::respond;
use super::rewrite;
use super::session::ClientSession;
use super::tunnel;
use crate::config::Action;
use crate::ctx::WorkerCtx;
use crate::error::{ErrorKind, Result};
use crate::generation::Generation;
use crate::http::BodyKind;
use crate::route::KeyInput;
use crate::vars::Mode;

/// What a pass starts from.
pub(super) enum Hop {
    /// The request's own URI.
    First,
    /// An internal redirect to this URI: routed anew.
    Uri(Uri),
    /// A named location (by index in the block), the URI as received.
    Named(usize),
}

/// What every pass of one request shares.
pub(super) struct Req<'a> {
    pub(super) gen: &'a Rc<Generation>,
    pub(super) target: &'a Target<'a>,
    pub(super) host: Option<&'a [u8]>,
    /// The request head's bytes (a second handle, so that slices of it
    /// outlive changes to the exchange).
    pub(super) buf: &'a [u8],
}

/// One pass; with the index of the location it reached, whose
/// `error_pages` apply to an error it ends in.
pub(super) async fn run<S: ClientSession>(
    ctx: &Rc<WorkerCtx>,
    ds: &mut S,
    ex: &mut Exchange,
    req: &Req<'_>,
    hop: &Hop,
    error_status: Option<u16>,
    body_checked: &mut bool,
) -> (Option<usize>, Result<Next>) {
    let mut at = None;
    let r = pass(ctx, ds, ex, req, hop, error_status, body_checked, &mut at).await;
    (at, r)
}

#[allow(clippy::too_many_arguments)]
async fn pass<S: ClientSession>(
    ctx: &Rc<WorkerCtx>,
    ds: &mut S,
    ex: &mut Exchange,
    req: &Req<'_>,
    hop: &Hop,
    error_status: Option<u16>,
    body_checked: &mut bool,
    at: &mut Option<usize>,
) -> Result<Next> {
    let (gen, target, host) = (req.gen, req.target, req.host);
    let server = gen.server(ex.server);
    // Phases rewrite and route. Variables are read only by what uses them;
    // a block without rewrite rules is routed by one lookup.
    let base = VarBase {
        head: &ex.head,
        host,
        server,
        https: ds.tls().is_some(),
        client: ex.client,
        port: ds.conn().local_port,
        request_id: ex.request_id.as_bytes(),
        trace_id: ex.trace.as_ref().map_or(&b""[..], |t| t.trace_id()),
    };
    let mut groups = None;
    let mut rewritten: Option<Uri> = None;
    let mut changed_here = false;
    let loc_idx = match hop {
        Hop::First if !gen.router.has_rewrites(ex.server) => gen
            .router
            .location_for(ex.server, &target.path, &mut groups)
            .ok_or(ErrorKind::NotFound)?,
        Hop::Named(i) => *i,
        Hop::First | Hop::Uri(_) => {
            let (path, query): (&[u8], Cow<[u8]>) = match hop {
                Hop::Uri(u) if u.args.is_empty() => (&u.path, Cow::Borrowed(b"")),
                Hop::Uri(u) => (&u.path, Cow::Owned([&b"?"[..], &u.args].concat())),
                _ => (&target.path, Cow::Borrowed(target.query)),
            };
            match locate::route(gen, ex.server, path, &query, &base)? {
                Routed::Location {
                    loc,
                    rewritten: r,
                    changed_here: here,
                    groups: g,
                } => {
                    (rewritten, changed_here, groups) = (r, here, g);
                    if let (None, Hop::Uri(u)) = (&rewritten, hop) {
                        rewritten = Some(Uri {
                            path: u.path.clone(),
                            args: u.args.clone(),
                        });
                    }
                    loc
                }
                Routed::Redirect { status, location } => {
                    let body = respond::error_body(status);
                    return respond_return(ctx, ds, ex, status, body.as_bytes(), Some(&location), b"")
                        .await
                        .map(|()| Next::Done);
                }
            }
        }
    };
    *at = Some(loc_idx);
    // `$uri` and `$args`: the rewritten ones, else the request's.
    let (cur_path, cur_args): (&[u8], &[u8]) = match &rewritten {
        Some(u) => (&u.path, &u.args),
        None => (
            &target.path,
            target.query.strip_prefix(b"?").unwrap_or(target.query),
        ),
    };
    let location = &server.locations[loc_idx];
    let location_cfg = location;
    tunnel::check_location(ds, &ex.head, location)?;
    let max_body = location
        .client_max_body_size
        .unwrap_or(server.limits.client_max_body_size);
    if let (Some(max), BodyKind::Length(n)) = (max_body, ex.meta.body()) {
        if n > max {
            return Err(ErrorKind::BodyTooLarge.into());
        }
    }

    // Phases preaccess and access: limits, IP rules, auth (src/access/).
    let admitted = if location.access.is_empty() {
        Default::default()
    } else {
        let vars = base.request(cur_path, cur_args, None);
        match crate::access::check(
            ctx.id,
            &location.access,
            &gen.metrics.limits,
            &vars,
            &crate::access::Request {
                client: ex.client,
                head: &ex.head,
                host,
                https: ds.tls().is_some(),
            },
        )
        .await
        {
            Ok(a) => a,
            Err(r) => {
                let usual = respond::error_body(r.status);
                let body = r.body.as_deref().unwrap_or(usual.as_bytes());
                return respond_return(ctx, ds, ex, r.status, body, None, &r.lines)
                    .await
                    .map(|()| Next::Done);
            }
        }
    };

    if !*body_checked {
        ds.check_body_start(ex.meta.body())?;
        *body_checked = true;
    }

    match &location.action {
        Action::Return(ret) => {
            let captures = groups.as_deref().map(|g| (cur_path, g));
            let vars = base.request(cur_path, cur_args, captures);
            let body = expanded(&ret.body, &vars, Mode::Raw)?;
            let location = match &ret.location {
                Some(l) => Some(expanded(l, &vars, Mode::Uri)?),
                None => None,
            };
            let mut extra = Vec::new();
            if let Some(h) = location_cfg
                .response_headers
                .as_deref()
                .filter(|h| h.applies(ret.status))
            {
                locate::render_fields(&h.fields, &vars, &mut extra)?;
            }
            respond_return(ctx, ds, ex, ret.status, &body, location.as_deref(), &extra)
                .await
                .map(|()| Next::Done)
        }
        Action::Static(st) => {
            let captures = groups.as_deref().map(|g| (cur_path, g));
            let vars = base.request(cur_path, cur_args, captures);
            let tries = files::tries(st, &vars)?;
            let mut resp_lines = Vec::new();
            if let Some(h) = location.response_headers.as_deref() {
                locate::render_fields(&h.fields, &vars, &mut resp_lines)?;
                if h.always {
                    ex.always_lines.clone_from(&resp_lines);
                }
            }
            let ask = files::Ask {
                location,
                st,
                path: cur_path,
                args: cur_args,
                error_status,
                resp_lines: &resp_lines,
            };
            files::serve(ctx, ds, ex, &ask, tries).await
        }
        // An error page from a proxy location: only when no request body
        // has to be sent again (part of it may be gone already).
        Action::Proxy(_) if error_status.is_some() && ex.meta.body() != BodyKind::Empty => {
            Err(ErrorKind::Answer(error_status.unwrap_or(500)).into())
        }
        Action::Proxy(pass) => {
            // `split`: this request may go to another upstream than proxy_pass's.
            let captures = groups.as_deref().map(|g| (cur_path, g));
            let input: KeyInput = base.request(cur_path, cur_args, captures);
            let up = &*gen.upstreams[gen.router.upstream_for(ex.server, loc_idx, pass, &input)];
            let public_host = host.unwrap_or_default();
            // Header rules, expanded once for every server tried.
            let mut req_lines = Vec::new();
            if let Some(h) = location.request_headers.as_deref() {
                locate::render_fields(&h.set, &input, &mut req_lines)?;
            }
            // What auth learned (`X-Consumer`, ...).
            req_lines.extend_from_slice(&admitted.lines);
            let mut resp_lines = Vec::new();
            if let Some(h) = location.response_headers.as_deref() {
                locate::render_fields(&h.fields, &input, &mut resp_lines)?;
                if h.always {
                    ex.always_lines.clone_from(&resp_lines);
                }
            }
            let upstream_target = match (&pass.uri, &rewritten) {
                (Some(uri), _) => Cow::Owned(expanded(uri, &input, Mode::Uri)?.into_owned()),
                // As nginx: once this location's rules changed the URI
                // (`break`), it goes as it is; a URI routed here anew has
                // this location's prefix replaced like a received one.
                (None, Some(u)) => {
                    let mut t = Vec::with_capacity(u.path.len() + u.args.len() + 1);
                    if !changed_here {
                        if let Some(p) = &pass.path {
                            t.extend_from_slice(p.as_bytes());
                            t.extend_from_slice(&u.path[location.path.len().min(u.path.len())..]);
                        }
                    }
                    if t.is_empty() {
                        t.extend_from_slice(&u.path);
                    }
                    if !u.args.is_empty() {
                        t.push(b'?');
                        t.extend_from_slice(&u.args);
                    }
                    Cow::Owned(t)
                }
                (None, None) => rewrite::upstream_target(
                    ex.head.target.of(req.buf),
                    &target.path,
                    target.query,
                    target.normalized,
                    location,
                    pass,
                ),
            };
            // An API key sent as a query parameter does not go upstream.
            let upstream_target = match location.access.auth.as_deref().and_then(|a| a.query_param()) {
                Some(q) => crate::access::apikey::strip_query_param(&upstream_target, q.as_bytes())
                    .map_or(upstream_target, Cow::Owned),
                None => upstream_target,
            };
            let plan = Plan {
                up,
                location,
                pass,
                path: cur_path,
                args: cur_args,
                server,
                req_lines: &req_lines,
                resp_lines: &resp_lines,
                target: &upstream_target,
                host,
                public_host,
                max_body,
                dropped: &location.access.strip,
                cache: None,
            };
            match location.cache.as_deref() {
                // The cache phase runs here: after limits and access rules.
                Some(c) => {
                    let ask = super::cache::Ask::new(c, &input)?;
                    super::cache::serve(ctx, ds, ex, &plan, c, ask).await
                }
                None => forward::proxy(ctx, ds, ex, &plan).await,
            }
            .map(|()| Next::Done)
        }
    }
}

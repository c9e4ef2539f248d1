//! Phases route and rewrite: the server block's `rewrite` rules, then the
//! location for the (possibly new) path, then that location's rules, and
//! again while a rule sends the request to be routed anew (nginx's
//! server-rewrite, find-config and rewrite phases, and their loop).
//!
//! A block without rewrite rules costs one `is_empty` per phase: the path is
//! routed once and nothing is copied. Rules that change the URI build the
//! new path and query once per change; at most [`MAX_REROUTES`] changes
//! send the request back to routing, then it ends with a 500 as in nginx.

use crate::config::{Rewrite, RewriteFlag, Server};
use crate::error::{ErrorKind, Result};
use crate::generation::Generation;
use crate::http::RequestHead;
use crate::route;
use crate::vars::{self, Groups, Mode};

/// How many times rewrites may send a request back to routing.
pub const MAX_REROUTES: usize = 10;

/// The path and query after a rewrite.
pub(super) struct Uri {
    pub(super) path: Vec<u8>,
    /// Without `?`.
    pub(super) args: Vec<u8>,
}

/// Where routing ended.
pub(super) enum Routed {
    Location {
        loc: usize,
        /// The URI the rules made, when they changed it.
        rewritten: Option<Uri>,
        /// This location's own rules changed it (`break`): the new URI goes
        /// upstream as it is, the location prefix not replaced (nginx).
        changed_here: bool,
        /// The groups of a `regex` location's match.
        groups: Option<Box<Groups>>,
    },
    /// A rule answered with a redirect.
    Redirect { status: u16, location: Vec<u8> },
}

/// What variables read from the request, whatever the current URI.
pub(super) struct VarBase<'a> {
    pub(super) head: &'a RequestHead,
    /// The request's host, as received (`$host` is made of it when used).
    pub(super) host: Option<&'a [u8]>,
    pub(super) server: &'a Server,
    pub(super) https: bool,
    pub(super) client: std::net::IpAddr,
    pub(super) port: u16,
    pub(super) request_id: &'a [u8],
    pub(super) trace_id: &'a [u8],
}

impl<'a> VarBase<'a> {
    pub(super) fn request(
        &'a self,
        uri: &'a [u8],
        args: &'a [u8],
        captures: Option<(&'a [u8], &'a Groups)>,
    ) -> vars::Request<'a> {
        vars::Request {
            head: self.head,
            uri,
            args,
            host: var_host(self.host, self.server),
            https: self.https,
            client: self.client,
            port: self.port,
            request_id: self.request_id,
            trace_id: self.trace_id,
            captures,
        }
    }
}

/// `$host` before lower-casing (done where it is expanded): the request's
/// host without port; without one, the block's first exact name (as nginx's).
fn var_host<'b>(host: Option<&'b [u8]>, server: &'b Server) -> &'b [u8] {
    match host.map(route::host_without_port) {
        Some(h) if !h.is_empty() => h,
        _ => server
            .server_names
            .iter()
            .find(|n| !n.starts_with('*'))
            .map_or(&b""[..], |n| n.as_bytes()),
    }
}

/// What one list of rules did.
enum Step {
    /// No rule changed the URI (false), or `break` (true): stay in the location.
    Stay(bool),
    /// The URI changed (`last`, or rules without a flag): route again.
    Reroute,
    Redirect(u16, Vec<u8>),
}

/// Runs phases rewrite (server) → route → rewrite (location), looping.
/// `path` and `query` (with its `?`) are the request's, as received.
pub(super) fn route(
    gen: &Generation,
    server: usize,
    path: &[u8],
    query: &[u8],
    base: &VarBase,
) -> Result<Routed> {
    let srv = gen.server(server);
    let mut cur: Option<Uri> = None;
    let query = query.strip_prefix(b"?").unwrap_or(query);
    if !srv.rewrites.is_empty() {
        // At server level `last` and `break` both end the server's rules.
        if let Step::Redirect(status, location) = run(&srv.rewrites, path, query, &mut cur, base)? {
            return Ok(Routed::Redirect { status, location });
        }
    }
    let mut reroutes = 0;
    loop {
        let p = cur.as_ref().map_or(path, |u| &u.path[..]);
        let mut groups = None;
        let loc = gen
            .router
            .location_for(server, p, &mut groups)
            .ok_or(ErrorKind::NotFound)?;
        let rules = &srv.locations[loc].rewrites;
        if rules.is_empty() {
            return Ok(Routed::Location {
                loc,
                rewritten: cur,
                changed_here: false,
                groups,
            });
        }
        match run(rules, path, query, &mut cur, base)? {
            Step::Stay(changed_here) => {
                return Ok(Routed::Location {
                    loc,
                    rewritten: cur,
                    changed_here,
                    groups,
                })
            }
            Step::Redirect(status, location) => return Ok(Routed::Redirect { status, location }),
            Step::Reroute if reroutes == MAX_REROUTES => {
                tracing::warn!("rewrite cycle: the URI was rewritten {MAX_REROUTES} times");
                return Err(ErrorKind::Internal.into());
            }
            Step::Reroute => reroutes += 1,
        }
    }
}

/// Runs one list of rules over the current URI (`cur`, else the request's).
fn run(rules: &[Rewrite], path: &[u8], query: &[u8], cur: &mut Option<Uri>, base: &VarBase) -> Result<Step> {
    let mut changed = false;
    let mut groups = Groups::default();
    for rule in rules {
        let (p, a) = match cur {
            Some(u) => (&u.path[..], &u.args[..]),
            None => (path, query),
        };
        let mut locs = rule.from.capture_locations();
        if rule.from.captures_read(&mut locs, p).is_none() {
            continue;
        }
        groups.fill(&locs);
        let mut to = Vec::new();
        rule.to
            .expand(&base.request(p, a, Some((p, &groups))), Mode::Uri, &mut to)
            .map_err(|_| ErrorKind::Internal)?;
        // The query: `to`'s own, then the request's unless `to` ended with `?`.
        let (new_path, own_args) = match to.iter().position(|&b| b == b'?') {
            Some(i) => (&to[..i], Some(&to[i + 1..])),
            None => (&to[..], None),
        };
        let mut args = own_args.unwrap_or_default().to_vec();
        if !rule.drop_args && !a.is_empty() {
            if !args.is_empty() {
                args.push(b'&');
            }
            args.extend_from_slice(a);
        }
        if rule.absolute || matches!(rule.flag, RewriteFlag::Redirect | RewriteFlag::Permanent) {
            let status = if rule.flag == RewriteFlag::Permanent {
                301
            } else {
                302
            };
            let mut location = new_path.to_vec();
            if !args.is_empty() {
                location.push(b'?');
                location.extend_from_slice(&args);
            }
            return Ok(Step::Redirect(status, location));
        }
        // The new path is routed like a received one: no climbing above the root.
        let new_path = match route::normalize_path(new_path) {
            Some(p) if p.first() == Some(&b'/') => p.into_owned(),
            _ => return Err(ErrorKind::BadRequest("rewritten path is not a path").into()),
        };
        *cur = Some(Uri { path: new_path, args });
        changed = true;
        match rule.flag {
            RewriteFlag::Last => return Ok(Step::Reroute),
            RewriteFlag::Break => return Ok(Step::Stay(true)),
            _ => {}
        }
    }
    Ok(if changed { Step::Reroute } else { Step::Stay(false) })
}

/// Header rules' fields expanded as whole `Name: value` lines, appended to
/// `out`; a value that expands to nothing sends no field (nginx's rule).
pub(super) fn render_fields(
    fields: &[(String, crate::vars::Template)],
    vars: &vars::Request,
    out: &mut Vec<u8>,
) -> Result<()> {
    for (name, t) in fields {
        let start = out.len();
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        let value = out.len();
        t.expand(vars, Mode::Field, out)
            .map_err(|_| ErrorKind::Internal)?;
        if out.len() == value {
            out.truncate(start);
        } else {
            out.extend_from_slice(b"\r\n");
        }
    }
    Ok(())
}

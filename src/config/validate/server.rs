//! The checks of a `[[server]]` block: its listeners, names, client
//! limits and redirect, then each of its locations, with what they inherit
//! from the block (header rules, compression, limits, error pages).

use super::*;

pub(super) fn check_listen(c: &mut Checker, v: &Spanned<StrOrInt>, key: &str) -> Option<SocketAddr> {
    let parsed = match v.get_ref() {
        // A bare port listens on every IPv4 address, as `listen 8080;` does in nginx.
        StrOrInt::Int(p) => u16::try_from(*p)
            .ok()
            .map(|p| SocketAddr::from(([0, 0, 0, 0], p))),
        StrOrInt::Str(s) => s
            .parse::<SocketAddr>()
            .ok()
            .or_else(|| s.parse::<u16>().ok().map(|p| SocketAddr::from(([0, 0, 0, 0], p)))),
    };
    if parsed.is_none() {
        c.error(
            v.span(),
            key,
            "not a listen address: write \"127.0.0.1:8080\", \"[::]:8080\" or a port",
        );
    }
    parsed
}

pub(super) fn check_server(
    c: &mut Checker,
    s: &Spanned<RawServer>,
    i: usize,
    upstreams: &mut Vec<Upstream>,
    by_name: &mut HashMap<String, usize>,
) -> Server {
    let key = format!("server[{i}]");
    let r = s.get_ref();
    let mut listen = Vec::new();
    if r.listen.get_ref().is_empty() {
        c.error(
            r.listen.span(),
            format!("{key}.listen"),
            "needs at least one address",
        );
    }
    for (j, l) in r.listen.get_ref().iter().enumerate() {
        if let Some(a) = check_listen(c, l, &format!("{key}.listen[{j}]")) {
            listen.push(a);
        }
    }

    let mut server_names = Vec::new();
    for (j, n) in r.server_name.iter().flatten().enumerate() {
        let name = n.get_ref().trim().to_ascii_lowercase();
        let body = name.strip_prefix("*.").unwrap_or(&name);
        if body.is_empty() || body.contains(['*', '/', ' ', ':']) {
            c.error(
                n.span(),
                format!("{key}.server_name[{j}]"),
                format!("{:?} is not a host name or \"*.suffix\" wildcard", n.get_ref()),
            );
        } else {
            server_names.push(name);
        }
    }

    let access_log = access_log::check_access_log(c, r.access_log.as_ref(), &key);

    let limits = check_limits(c, r, &key);
    let server_compress = compress::server(c, r, &key);
    let server_access = access::server(c, r, &key);
    let mut locations: Vec<Location> = Vec::new();
    for (j, l) in r.location.iter().enumerate() {
        let lkey = format!("{key}.location[{j}]");
        if let Some(mut loc) = check_location(c, l, &lkey, upstreams, by_name) {
            loc.compress = compress::location(c, l.get_ref(), &lkey, &server_compress);
            loc.access = access::location(c, l.get_ref(), &lkey, &server_access);
            // A cache behind the location's auth keeps only what the
            // origin says may be shared (see `Cache::credentials`).
            if let (Some(_), Some(cache)) = (&loc.access.auth, loc.cache.as_mut()) {
                Arc::make_mut(cache).credentials = true;
            }
            let same_kind =
                |a: &LocationKind, b: &LocationKind| std::mem::discriminant(a) == std::mem::discriminant(b);
            if locations
                .iter()
                .any(|o| o.path == loc.path && same_kind(&o.kind, &loc.kind))
            {
                let lr = l.get_ref();
                let (which, span) = [
                    ("path", &lr.path),
                    ("exact", &lr.exact),
                    ("regex", &lr.regex),
                    ("name", &lr.name),
                ]
                .into_iter()
                .find_map(|(n, v)| v.as_ref().map(|v| (n, v.span())))
                .unwrap_or(("path", l.span()));
                c.error(
                    span,
                    format!("{lkey}.{which}"),
                    format!("location {:?} appears twice in this server", loc.path),
                );
                continue;
            }
            locations.push(loc);
        }
    }
    let tls = r
        .tls
        .as_ref()
        .and_then(|t| check_tls(c, t, &format!("{key}.tls"), i));
    let hsts = r
        .hsts
        .as_ref()
        .and_then(|h| check_hsts(c, h, &format!("{key}.hsts")));
    if let (Some(h), None) = (&r.hsts, &r.tls) {
        c.error(
            h.span(),
            format!("{key}.hsts"),
            "this block has no tls: Strict-Transport-Security is only sent over TLS",
        );
    }
    let redirect_https = check_redirect(c, r, &key);
    let forwarded = check_forwarded(c, r, &key);
    let rewrites = rewrite::check_rewrites(c, r.rewrite.as_ref(), &key).unwrap_or_default();
    // A location's header table replaces the block's, per direction.
    let (req_h, resp_h) = headers::check(c, r.request_headers.as_ref(), r.response_headers.as_ref(), &key);
    for loc in &mut locations {
        if loc.request_headers.is_none() {
            loc.request_headers = req_h.clone();
        }
        if loc.response_headers.is_none() {
            loc.response_headers = resp_h.clone();
        }
    }
    let mut error_pages = files::error_pages(c, r.error_pages.as_ref(), &key);
    files::resolve_names(c, &mut locations, &mut error_pages, &key);
    for loc in &mut locations {
        if loc.error_pages.is_none() {
            loc.error_pages = error_pages.clone();
        }
    }
    let http2 = http2::check(c, r, &key, &limits);
    Server {
        error_pages,
        listen,
        server_names,
        access_log,
        limits,
        locations,
        tls,
        hsts,
        redirect_https,
        forwarded,
        rewrites,
        http2,
    }
}

/// `forwarded = true` and its `forwarded_by` node.
fn check_forwarded(c: &mut Checker, r: &RawServer, key: &str) -> Option<crate::config::Forwarded> {
    let on = r.forwarded.as_ref().is_some_and(|f| *f.get_ref());
    let by = match &r.forwarded_by {
        None => None,
        Some(b) if !on => {
            c.error(
                b.span(),
                format!("{key}.forwarded_by"),
                "only applies with forwarded = true",
            );
            None
        }
        Some(b) if !crate::http::forwarded::valid_by(b.get_ref()) => {
            c.error(
                b.span(),
                format!("{key}.forwarded_by"),
                "write an IP address or an obfuscated name: `_` then letters, digits, `.`, `_`, `-` (RFC 7239 §6.3)",
            );
            None
        }
        Some(b) => Some(crate::http::forwarded::by_node(b.get_ref())),
    };
    on.then_some(crate::config::Forwarded { by })
}

/// `redirect_https = true` (port 443) or a port number.
fn check_redirect(c: &mut Checker, r: &RawServer, key: &str) -> Option<u16> {
    let v = r.redirect_https.as_ref()?;
    let k = format!("{key}.redirect_https");
    if matches!(v.get_ref(), BoolOrInt::Bool(false)) {
        return None;
    }
    if r.tls.is_some() {
        c.error(
            v.span(),
            k,
            "a block with tls cannot redirect to https: it is https",
        );
        return None;
    }
    match v.get_ref() {
        BoolOrInt::Bool(true) => Some(443),
        BoolOrInt::Bool(false) => None,
        BoolOrInt::Int(p) => match u16::try_from(*p) {
            Ok(p) if p > 0 => Some(p),
            _ => {
                c.error(v.span(), k, "write true (port 443) or the https port, 1 to 65535");
                None
            }
        },
    }
}

fn check_limits(c: &mut Checker, r: &RawServer, key: &str) -> ClientLimits {
    let k = |name: &str| format!("{key}.{name}");
    let size_or = |c: &mut Checker, v: &Option<Spanned<StrOrInt>>, name: &str, d: usize| {
        v.as_ref()
            .and_then(|v| c.size(v, &k(name)))
            .map_or(d, |n| n as usize)
    };
    let max_request_line = size_or(c, &r.max_request_line, "max_request_line", 8 << 10);
    let max_header_size = size_or(c, &r.max_header_size, "max_header_size", 32 << 10);
    if let (Some(v), true) = (&r.max_header_size, max_header_size < max_request_line) {
        c.error(
            v.span(),
            k("max_header_size"),
            "must not be smaller than max_request_line",
        );
    }
    ClientLimits {
        max_request_line,
        max_header_size,
        max_headers: c.positive(&r.max_headers, &k("max_headers"), 100) as usize,
        client_max_body_size: r
            .client_max_body_size
            .as_ref()
            .and_then(|v| c.size(v, &k("client_max_body_size"))),
        header_timeout: c.duration(
            &r.client_header_timeout,
            &k("client_header_timeout"),
            Duration::from_secs(60),
        ),
        body_timeout: c.duration(
            &r.client_body_timeout,
            &k("client_body_timeout"),
            Duration::from_secs(60),
        ),
        keepalive_timeout: c.duration(
            &r.keepalive_timeout,
            &k("keepalive_timeout"),
            Duration::from_secs(75),
        ),
        keepalive_requests: c.positive(&r.keepalive_requests, &k("keepalive_requests"), 1000),
        send_timeout: c.duration(&r.send_timeout, &k("send_timeout"), Duration::from_secs(60)),
    }
}

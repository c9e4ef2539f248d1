//! The checks of a `[[server.location]]`: its path, `proxy_pass` (an
//! upstream by name or an address, with or without a path), `return`,
//! `upgrade`, `split` and `split_by`, and the body size limit.

use super::*;
use crate::vars::Scope;

pub(super) fn check_location(
    c: &mut Checker,
    l: &Spanned<RawLocation>,
    key: &str,
    upstreams: &mut Vec<Upstream>,
    by_name: &mut HashMap<String, usize>,
) -> Option<Location> {
    let r = l.get_ref();
    let (path, kind) = check_kind(c, l, key)?;
    let mut ok = true;
    let rewrites = rewrite::check_rewrites(c, r.rewrite.as_ref(), key);
    ok &= rewrites.is_some();
    let before = c.errors.len();
    let (request_headers, response_headers) =
        headers::check(c, r.request_headers.as_ref(), r.response_headers.as_ref(), key);
    ok &= c.errors.len() == before;
    let scope = Scope {
        regex: match &kind {
            LocationKind::Regex(re) => Some(re),
            _ => None,
        },
    };
    let client_max_body_size = r
        .client_max_body_size
        .as_ref()
        .map(|v| c.size(v, &format!("{key}.client_max_body_size")));
    let upgrade = check_upgrade(c, r, key);
    let statics = r.root.is_some() || r.alias.is_some();
    let actions = [r.proxy_pass.is_some(), r.return_.is_some(), statics];
    if actions.iter().filter(|&&a| a).count() != 1 {
        c.error(
            l.span(),
            key,
            "give exactly one of proxy_pass, return, or root/alias",
        );
        return None;
    }
    if !statics {
        ok &= files::refuse_static_keys(c, r, key);
    }
    if let (Some(v), None) = (&r.intercept_errors, &r.proxy_pass) {
        c.error(
            v.span(),
            format!("{key}.intercept_errors"),
            "only applies with proxy_pass",
        );
        ok = false;
    }
    let cache = match (&r.cache, &r.proxy_pass) {
        (None, _) => None,
        (Some(v), None) => {
            c.error(v.span(), format!("{key}.cache"), "only applies with proxy_pass");
            ok = false;
            None
        }
        (Some(v), Some(_)) => {
            let plan = cache::location(c, v, key, scope);
            ok &= plan.is_some();
            plan
        }
    };
    let action = match (&r.proxy_pass, &r.return_) {
        (None, None) => {
            ok &= refuse_proxy_keys(c, l, key);
            Action::Static(Arc::new(files::check_static(c, l, key, &kind, scope)?))
        }
        (Some(_), Some(_)) => unreachable!("refused above"),
        (Some(p), None) => {
            let tls_keys = upstream_tls::TlsKeys::location(r);
            let pkey = format!("{key}.proxy_pass");
            let pass = check_proxy_pass(c, p, &pkey, &tls_keys, upstreams, by_name);
            let (split, split_by) = check_split(c, r, key, upstreams, by_name)?;
            let mut pass = pass?;
            // A path with variables is the whole URI (nginx's rule); a regex
            // location has no prefix to replace, so its path must be one.
            if let Some(path) = pass.path.as_deref().filter(|p| p.contains('$')) {
                let spanned = Spanned::new(p.span(), path.to_string());
                pass.uri = Some(rewrite::template(c, &spanned, &pkey, scope)?);
                pass.path = None;
            } else if pass.path.is_some() && matches!(kind, LocationKind::Regex(_)) {
                c.error(
                    p.span(),
                    pkey,
                    "a regex location has no prefix for the path of proxy_pass to replace: \
                     build the whole URI from variables (\"http://app/v2/$1$is_args$args\") or leave the path out",
                );
                return None;
            }
            Action::Proxy(ProxyPass {
                preserve_host: r.preserve_host.unwrap_or(true),
                split,
                split_by,
                ..pass
            })
        }
        (None, Some(ret)) => {
            ok &= refuse_proxy_keys(c, l, key);
            let rr = ret.get_ref();
            let status = *rr.status.get_ref();
            let redirect = matches!(status, 301 | 302 | 303 | 307 | 308);
            if !(200..=599).contains(&status) {
                c.error(
                    rr.status.span(),
                    format!("{key}.return.status"),
                    "must be from 200 to 599",
                );
                ok = false;
            } else if redirect && rr.location.is_none() {
                c.error(
                    ret.span(),
                    format!("{key}.return"),
                    format!("a {status} redirect needs location = \"...\""),
                );
                ok = false;
            }
            let body = match &rr.body {
                Some(b) => rewrite::template(c, b, &format!("{key}.return.body"), scope),
                None => Some(crate::vars::Template::parse("", scope).unwrap_or_else(|_| unreachable!())),
            };
            let location = rr
                .location
                .as_ref()
                .map(|v| rewrite::template(c, v, &format!("{key}.return.location"), scope));
            let (Some(body), Some(location)) = (body, location.map_or(Some(None), |l| l.map(Some))) else {
                return None;
            };
            Action::Return(Return {
                status: status.clamp(200, 599) as u16,
                body,
                location,
            })
        }
    };
    ok.then_some(Location {
        path,
        kind,
        rewrites: rewrites?,
        request_headers,
        response_headers,
        action,
        client_max_body_size,
        upgrade: upgrade?,
        // Set by the server block's check, which knows the inherited one.
        compress: None,
        access: Default::default(),
        error_pages: files::error_pages(c, r.error_pages.as_ref(), key),
        intercept_errors: r.intercept_errors.as_ref().is_some_and(|v| *v.get_ref()),
        cache,
    })
}

/// Refuses the keys that only a `proxy_pass` location takes.
fn refuse_proxy_keys(c: &mut Checker, l: &Spanned<RawLocation>, key: &str) -> bool {
    let r = l.get_ref();
    let mut ok = true;
    for (v, name) in [
        (r.split.as_ref().map(|v| v.span()), "split"),
        (r.split_by.as_ref().map(|v| v.span()), "split_by"),
        (r.upgrade.as_ref().map(|v| v.span()), "upgrade"),
    ] {
        if let Some(span) = v {
            c.error(span, format!("{key}.{name}"), "only applies with proxy_pass");
            ok = false;
        }
    }
    ok &= upstream_tls::refuse_unused(
        c,
        &upstream_tls::TlsKeys::location(r),
        key,
        "proxy_pass = \"https://...\"",
    );
    if r.preserve_host.is_some() {
        c.error(
            l.span(),
            format!("{key}.preserve_host"),
            "only applies with proxy_pass",
        );
        ok = false;
    }
    ok
}

/// Which one of `path`, `exact`, `regex` and `name` the location has, and
/// its text; `skip_regex` only with `path`.
fn check_kind(c: &mut Checker, l: &Spanned<RawLocation>, key: &str) -> Option<(String, LocationKind)> {
    let r = l.get_ref();
    let given: Vec<(&str, &Spanned<String>)> = [
        ("path", &r.path),
        ("exact", &r.exact),
        ("regex", &r.regex),
        ("name", &r.name),
    ]
    .into_iter()
    .filter_map(|(n, v)| v.as_ref().map(|v| (n, v)))
    .collect();
    let &[(which, v)] = given.as_slice() else {
        let span = given.get(1).map_or(l.span(), |(_, v)| v.span());
        let what = if given.is_empty() {
            "has none"
        } else {
            "has more than one"
        };
        c.error(
            span,
            key,
            format!("give exactly one of path, exact, regex or name ({what})"),
        );
        return None;
    };
    let k = format!("{key}.{which}");
    let text = v.get_ref().clone();
    if let Some(s) = &r.skip_regex {
        if which != "path" {
            c.error(
                s.span(),
                format!("{key}.skip_regex"),
                "only applies to a prefix location (path = \"...\")",
            );
            return None;
        }
    }
    let kind = match which {
        "path" | "exact" if !text.starts_with('/') => {
            c.error(v.span(), k, "must start with \"/\"");
            return None;
        }
        "path" => LocationKind::Prefix {
            skip_regex: r.skip_regex.as_ref().is_some_and(|s| *s.get_ref()),
        },
        "exact" => LocationKind::Exact,
        "regex" => LocationKind::Regex(rewrite::compile_regex(c, v, &k)?),
        _ => {
            let ok = !text.is_empty()
                && text
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !ok {
                c.error(
                    v.span(),
                    k,
                    "a name of letters, digits, `_` and `-` (written without nginx's `@`)",
                );
                return None;
            }
            LocationKind::Named
        }
    };
    Some((text, kind))
}

/// `upgrade`: protocol names as `Upgrade` writes them (a token, optionally
/// `/version`, RFC 9110 §7.8). `h2c` is refused: HTTP/2 from clients is the
/// server block's `http2`/`h2c`, whose limits a tunnel would bypass.
pub(super) fn check_upgrade(c: &mut Checker, r: &RawLocation, key: &str) -> Option<Vec<String>> {
    let Some(list) = &r.upgrade else {
        return Some(vec!["websocket".to_string()]);
    };
    let tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    let mut out: Vec<String> = Vec::new();
    let mut ok = true;
    for (i, p) in list.get_ref().iter().enumerate() {
        let name = p.get_ref().to_ascii_lowercase();
        let k = format!("{key}.upgrade[{i}]");
        let (proto, version) = match name.split_once('/') {
            Some((p, v)) => (p, Some(v)),
            None => (name.as_str(), None),
        };
        let token = |s: &str| !s.is_empty() && s.bytes().all(tchar);
        if !token(proto) || version.is_some_and(|v| !token(v)) {
            c.error(p.span(), k, "must be a protocol name such as \"websocket\"");
            ok = false;
        } else if proto == "h2c" {
            c.error(
                p.span(),
                k,
                "HTTP/2 upgrades are not passed on; HTTP/2 from clients is the server block's `http2` / `h2c`",
            );
            ok = false;
        } else if out.contains(&name) {
            c.error(p.span(), k, format!("{name:?} is listed twice"));
            ok = false;
        } else {
            out.push(name);
        }
    }
    ok.then_some(out)
}

/// `split` and `split_by` of a proxied location. `None` when they are wrong.
#[allow(clippy::type_complexity)]
pub(super) fn check_split(
    c: &mut Checker,
    r: &RawLocation,
    key: &str,
    upstreams: &[Upstream],
    by_name: &HashMap<String, usize>,
) -> Option<(Vec<Split>, Option<RequestKey>)> {
    let before = c.errors.len();
    let mut split = Vec::new();
    let mut total: u64 = 0;
    for (i, s) in r.split.iter().flat_map(|v| v.get_ref().iter()).enumerate() {
        let skey = format!("{key}.split[{i}]");
        let s = s.get_ref();
        let name = s.upstream.get_ref();
        let upstream = match by_name.get(name.as_str()) {
            Some(&u) if !upstreams[u].implicit => Some(u),
            // Defined, but with errors of its own, already reported.
            _ if c.failed_upstreams.contains(name.as_str()) => None,
            _ => {
                let mut defined: Vec<&str> = upstreams
                    .iter()
                    .filter(|u| !u.implicit)
                    .map(|u| u.name.as_str())
                    .collect();
                defined.sort();
                let closest = defined
                    .iter()
                    .map(|k| (strsim::levenshtein(name, k), *k))
                    .filter(|(d, _)| *d <= 2)
                    .min();
                let hint = match closest {
                    Some((_, k)) => format!("; did you mean {k:?}?"),
                    None if defined.is_empty() => " (none defined)".to_string(),
                    None => format!(
                        " (defined: {})",
                        defined
                            .iter()
                            .map(|d| format!("{d:?}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
                c.error(
                    s.upstream.span(),
                    format!("{skey}.upstream"),
                    format!("unknown upstream {name:?}{hint}"),
                );
                None
            }
        };
        // Hundredths of a percent: 0.01% is the finest share.
        let share = match s.weight.as_ref().map(|w| (w.span(), *w.get_ref())) {
            None => Some(0),
            Some((_, Number::Int(n))) if (0..=100).contains(&n) => Some(n as u32 * 100),
            // 0.07 * 100 is 7.000000000000001 in binary floating point.
            Some((_, Number::Float(f)))
                if (0.0..=100.0).contains(&f) && ((f * 100.0) - (f * 100.0).round()).abs() < 1e-6 =>
            {
                Some((f * 100.0).round() as u32)
            }
            Some((span, _)) => {
                c.error(
                    span,
                    format!("{skey}.weight"),
                    "a percentage of requests from 0 to 100, in steps of 0.01",
                );
                None
            }
        };
        let when = match &s.when {
            None => None,
            Some(w) => {
                let wr = w.get_ref();
                let what = match (&wr.header, &wr.cookie) {
                    (Some(h), None) if !h.is_empty() && h.bytes().all(is_token) => {
                        Some(WhenField::Header(h.to_ascii_lowercase()))
                    }
                    (None, Some(k)) if !k.is_empty() && k.bytes().all(is_token) => {
                        Some(WhenField::Cookie(k.clone()))
                    }
                    (Some(_), None) | (None, Some(_)) => {
                        c.error(w.span(), format!("{skey}.when"), "not a header or cookie name");
                        None
                    }
                    _ => {
                        c.error(
                            w.span(),
                            format!("{skey}.when"),
                            "give one of header = \"...\" or cookie = \"...\" (and value = \"...\")",
                        );
                        None
                    }
                };
                what.map(|what| When {
                    what,
                    value: wr.value.clone(),
                })
            }
        };
        if share == Some(0) && s.when.is_none() {
            c.error(
                s.weight.as_ref().map_or(s.upstream.span(), |w| w.span()),
                format!("{skey}.weight"),
                "needs a weight above 0 (or a `when` that sends requests here)",
            );
        }
        total += u64::from(share.unwrap_or(0));
        if let (Some(upstream), Some(share)) = (upstream, share) {
            split.push(Split {
                upstream,
                share,
                when,
            });
        }
    }
    if let Some(v) = &r.split {
        if total > u64::from(SPLIT_WHOLE) {
            c.error(
                v.span(),
                format!("{key}.split"),
                format!(
                    "weights add up to {}%, over 100% (the rest of the requests go to proxy_pass)",
                    total as f64 / 100.0
                ),
            );
        }
        if v.get_ref().is_empty() {
            c.error(
                v.span(),
                format!("{key}.split"),
                "is empty: remove it or add an upstream",
            );
        }
    }
    let split_by = match &r.split_by {
        None => None,
        Some(k) if r.split.is_none() => {
            c.error(k.span(), format!("{key}.split_by"), "only applies with split");
            None
        }
        Some(k) => match parse_key(k.get_ref()) {
            Ok(k) => Some(k),
            Err(why) => {
                c.error(k.span(), format!("{key}.split_by"), why);
                None
            }
        },
    };
    (c.errors.len() == before).then_some((split, split_by))
}

/// RFC 9110 §5.6.2: a token character (header and cookie names).
pub(super) fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

pub(super) fn check_proxy_pass(
    c: &mut Checker,
    p: &Spanned<String>,
    key: &str,
    tls_keys: &upstream_tls::TlsKeys,
    upstreams: &mut Vec<Upstream>,
    by_name: &mut HashMap<String, usize>,
) -> Option<ProxyPass> {
    let v = p.get_ref();
    let (https, rest) = match (v.strip_prefix("http://"), v.strip_prefix("https://")) {
        (Some(rest), _) => (false, rest),
        (_, Some(rest)) => (true, rest),
        _ => {
            c.error(p.span(), key, upstream_tls::bad_scheme(v));
            return None;
        }
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], Some(rest[i..].to_string())),
        None => (rest, None),
    };
    if c.failed_upstreams.contains(authority) {
        return None;
    }
    let named = by_name
        .get(authority)
        .copied()
        .filter(|&i| !upstreams[i].implicit);
    if let Some(idx) = named {
        // The scheme and the upstream's `tls` must agree, so that a location
        // never hides whether its traffic is encrypted.
        let up = &upstreams[idx];
        let why = match (https, up.tls.is_some()) {
            (true, false) => Some(format!(
                "upstream {authority:?} does not use TLS: add tls = true to it, or write http://{authority}"
            )),
            (false, true) => Some(format!(
                "upstream {authority:?} has tls = true: write https://{authority}"
            )),
            _ => None,
        };
        if let Some(why) = why {
            c.error(p.span(), key, why);
            return None;
        }
        if !upstream_tls::refuse_unused(
            c,
            tls_keys,
            key.trim_end_matches(".proxy_pass"),
            &format!("an address (proxy_pass = \"https://host:port\"); upstream {authority:?} takes tls_* keys itself"),
        ) {
            return None;
        }
        return Some(ProxyPass {
            upstream: idx,
            path,
            preserve_host: true,
            split: Vec::new(),
            split_by: None,
            uri: None,
        });
    }
    if https {
        return upstream_tls::implicit_https(c, p, key, authority, path, tls_keys, upstreams);
    }
    if !upstream_tls::refuse_unused(
        c,
        tls_keys,
        key.trim_end_matches(".proxy_pass"),
        "proxy_pass = \"https://...\"",
    ) {
        return None;
    }
    let upstream = if let Some(&idx) = by_name.get(authority) {
        idx
    } else if authority.contains(':') {
        // host:port with no upstream of that name: an upstream of one server,
        // shared by every location that names the same address.
        match resolve(authority) {
            Ok(addr) => {
                let idx = upstreams.len();
                let peer = Peer::new(authority.to_string(), addr);
                upstreams.push(upstream_defaults(authority.to_string(), vec![peer], true));
                by_name.insert(authority.to_string(), idx);
                idx
            }
            Err(e) => {
                c.error(p.span(), key, e);
                return None;
            }
        }
    } else {
        c.error(
            p.span(),
            key,
            format!(
                "unknown upstream {authority:?} ({}); to proxy to one address, write host:port",
                defined_upstreams(upstreams)
            ),
        );
        return None;
    };
    Some(ProxyPass {
        upstream,
        path,
        preserve_host: true,
        split: Vec::new(),
        split_by: None,
        uri: None,
    })
}

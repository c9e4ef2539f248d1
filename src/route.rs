//! The compiled router: listen address → server block (by Host) → location
//! (longest prefix). Built once per worker from the config; no I/O.
//!
//! Also here, as pure functions over a parsed request: the request keys of
//! `hash` and `split_by` (`"$http_x_tenant:$cookie_session"`) and cookie lookup.
//!
//! Server selection follows nginx: an exact `server_name` wins, then the
//! longest matching `*.suffix` wildcard, then the listen address's default
//! server (the first block on it without `server_name`, or else the first
//! block on it).

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;

use crate::config::{Action, Config, LocationKind, ProxyPass, RequestKey, When, WhenField, SPLIT_WHOLE};
use crate::http::RequestHead;
use crate::upstream::balance::{KeyHasher, RoundRobin};
use crate::vars::Groups;

/// The routes reachable through one listening address.
#[derive(Debug)]
struct ListenerRoutes {
    exact: HashMap<String, usize>,
    /// `(".example.com", server)`, longest suffix first.
    wildcards: Vec<(String, usize)>,
    default: usize,
}

/// The locations of one server block, by kind, for nginx's order of choice.
struct Locations {
    /// `exact` locations: `(path, location index)`.
    exact: Vec<(Box<[u8]>, usize)>,
    /// `(prefix, location index, skip_regex)`, longest prefix first.
    prefixes: Vec<(Box<[u8]>, usize, bool)>,
    /// `regex` locations in config order, with a per-worker place for a
    /// match's groups (borrowed only within `location_for`).
    regexes: Vec<(
        regex::bytes::Regex,
        usize,
        RefCell<regex::bytes::CaptureLocations>,
    )>,
}

pub struct Router {
    listeners: Vec<ListenerRoutes>,
    locations: Vec<Locations>,
    /// Per server block: it or a location of it has `rewrite` rules.
    rewrites: Vec<bool>,
    /// Per server block and location: the turns of a `split` without
    /// `split_by` (side 0 is proxy_pass, side k the k-th split entry).
    splits: Vec<Vec<Option<RoundRobin>>>,
}

/// The distinct listen addresses of a config, in first-seen order. Listener
/// `i` of every worker binds `listen_addrs(cfg)[i]`.
pub fn listen_addrs(cfg: &Config) -> Vec<SocketAddr> {
    let mut out: Vec<SocketAddr> = Vec::new();
    for s in &cfg.servers {
        for a in &s.listen {
            if !out.contains(a) {
                out.push(*a);
            }
        }
    }
    out
}

impl Router {
    pub fn new(cfg: &Config) -> Router {
        let listeners = listen_addrs(cfg)
            .into_iter()
            .map(|addr| {
                let on_addr: Vec<usize> = (0..cfg.servers.len())
                    .filter(|&i| cfg.servers[i].listen.contains(&addr))
                    .collect();
                let default = on_addr
                    .iter()
                    .copied()
                    .find(|&i| cfg.servers[i].server_names.is_empty())
                    .unwrap_or(on_addr[0]);
                let mut exact = HashMap::new();
                let mut wildcards = Vec::new();
                for &i in &on_addr {
                    for name in &cfg.servers[i].server_names {
                        match name.strip_prefix('*') {
                            Some(suffix) => wildcards.push((suffix.to_string(), i)),
                            None => {
                                exact.entry(name.clone()).or_insert(i);
                            }
                        }
                    }
                }
                wildcards.sort_by_key(|(s, _)| std::cmp::Reverse(s.len()));
                ListenerRoutes {
                    exact,
                    wildcards,
                    default,
                }
            })
            .collect();
        let locations = cfg
            .servers
            .iter()
            .map(|s| {
                let mut t = Locations {
                    exact: Vec::new(),
                    prefixes: Vec::new(),
                    regexes: Vec::new(),
                };
                for (i, l) in s.locations.iter().enumerate() {
                    let p: Box<[u8]> = l.path.as_bytes().into();
                    match &l.kind {
                        LocationKind::Prefix { skip_regex } => t.prefixes.push((p, i, *skip_regex)),
                        LocationKind::Exact => t.exact.push((p, i)),
                        LocationKind::Regex(re) => {
                            t.regexes
                                .push((re.clone(), i, RefCell::new(re.capture_locations())))
                        }
                        LocationKind::Named => {}
                    }
                }
                // Stable: of equal length, the first written stays first.
                t.prefixes.sort_by_key(|(p, _, _)| std::cmp::Reverse(p.len()));
                t
            })
            .collect();
        let splits = cfg
            .servers
            .iter()
            .map(|s| {
                s.locations
                    .iter()
                    .map(|l| match &l.action {
                        Action::Proxy(pass) if !pass.split.is_empty() => {
                            Some(RoundRobin::new(split_shares(pass)))
                        }
                        _ => None,
                    })
                    .collect()
            })
            .collect();
        let rewrites = cfg
            .servers
            .iter()
            .map(|s| !s.rewrites.is_empty() || s.locations.iter().any(|l| !l.rewrites.is_empty()))
            .collect();
        Router {
            listeners,
            locations,
            rewrites,
            splits,
        }
    }

    /// The upstream a request to location `loc` of `server` goes to: the
    /// `proxy_pass` one or, with `split`, one of the split's. A `when` that
    /// matches decides first; then `split_by`'s key, hashed onto the shares;
    /// without `split_by` (or when the request has none of its key) the
    /// shares are served in turns, so 5% is exactly 5 requests in every 100
    /// on each worker, spread out (smooth weighted round robin).
    pub fn upstream_for(&self, server: usize, loc: usize, pass: &ProxyPass, req: &KeyInput) -> usize {
        if pass.split.is_empty() {
            return pass.upstream;
        }
        if let Some(s) = pass
            .split
            .iter()
            .find(|s| s.when.as_ref().is_some_and(|w| matches(w, req.head)))
        {
            return s.upstream;
        }
        let side = pass
            .split_by
            .as_ref()
            .and_then(|k| {
                let mut h = KeyHasher::default();
                feed_key(k, req, |b| h.write(b)).then(|| h.finish())
            })
            .map(|hash| split_side(pass, hash))
            .or_else(|| self.splits[server][loc].as_ref().map(|rr| rr.next()))
            .unwrap_or(0);
        match side {
            0 => pass.upstream,
            k => pass.split[k - 1].upstream,
        }
    }

    /// The default server block of a listener, whose limits apply before the
    /// Host of a request is known.
    pub fn default_server(&self, listener: usize) -> usize {
        self.listeners[listener].default
    }

    /// Picks the server block for a request's host (`Host` field or the
    /// authority of an absolute-form target), port and case ignored.
    pub fn server_for(&self, listener: usize, host: Option<&[u8]>) -> usize {
        let routes = &self.listeners[listener];
        let Some(host) = host else { return routes.default };
        let mut lower = [0u8; 255];
        let host = host_without_port(host);
        if host.is_empty() || host.len() > lower.len() {
            return routes.default;
        }
        let lower = &mut lower[..host.len()];
        for (d, s) in lower.iter_mut().zip(host) {
            *d = s.to_ascii_lowercase();
        }
        let Ok(name) = std::str::from_utf8(lower) else {
            return routes.default;
        };
        let name = name.strip_suffix('.').unwrap_or(name);
        if let Some(&i) = routes.exact.get(name) {
            return i;
        }
        routes
            .wildcards
            .iter()
            .find(|(suffix, _)| name.len() > suffix.len() && name.ends_with(suffix.as_str()))
            .map_or(routes.default, |&(_, i)| i)
    }

    /// The location for `path`, chosen as nginx does
    /// (`ngx_http_core_find_location`): an `exact` match wins; else the
    /// longest prefix is remembered, and wins at once if it has
    /// `skip_regex`; else the first `regex` in config order that matches;
    /// else the remembered prefix. A regex's groups are left in `groups`.
    #[inline]
    pub fn location_for(
        &self,
        server: usize,
        path: &[u8],
        groups: &mut Option<Box<Groups>>,
    ) -> Option<usize> {
        let t = &self.locations[server];
        if let Some(&(_, i)) = t.exact.iter().find(|(p, _)| **p == *path) {
            return Some(i);
        }
        let prefix = t.prefixes.iter().find(|(p, _, _)| path.starts_with(p));
        if let Some(&(_, i, true)) = prefix {
            return Some(i);
        }
        for (re, i, locs) in &t.regexes {
            let mut locs = locs.borrow_mut();
            if re.captures_read(&mut locs, path).is_some() {
                // Boxed, made only for a regex match: the common prefix
                // case carries no groups through the phases.
                groups.get_or_insert_with(Box::default).fill(&locs);
                return Some(*i);
            }
        }
        prefix.map(|&(_, i, _)| i)
    }

    /// Whether the block or one of its locations has `rewrite` rules (else
    /// routing is one `location_for`).
    #[inline]
    pub fn has_rewrites(&self, server: usize) -> bool {
        self.rewrites[server]
    }

    /// The location of that name (`name = "..."`), for a hand-over by name.
    pub fn named(&self, cfg: &Config, server: usize, name: &str) -> Option<usize> {
        cfg.servers[server]
            .locations
            .iter()
            .position(|l| matches!(l.kind, LocationKind::Named) && l.path == name)
    }
}

/// The parts of a request a [`RequestKey`] reads: the variable engine's.
pub type KeyInput<'a> = crate::vars::Request<'a>;

/// Feeds the bytes of `key` for this request to `sink`, part by part, so a
/// hash can be taken without building the key in memory. Returns false when
/// every variable of the key was absent or empty: such a request has no key,
/// and the caller does not hash it (a missing cookie would otherwise send
/// every client without one to the same server).
#[inline]
pub fn feed_key(key: &RequestKey, req: &KeyInput, sink: impl FnMut(&[u8])) -> bool {
    key.feed(req, sink)
}

/// The shares of a split's sides, proxy_pass's (the rest) first.
fn split_shares(pass: &ProxyPass) -> Vec<u32> {
    let taken: u32 = pass.split.iter().map(|s| s.share).sum();
    std::iter::once(SPLIT_WHOLE.saturating_sub(taken))
        .chain(pass.split.iter().map(|s| s.share))
        .collect()
}

/// The side a key's hash falls on: the hash taken into 0..10000 and the
/// split entries' shares laid end to end from 0, proxy_pass's after them.
fn split_side(pass: &ProxyPass, hash: u32) -> usize {
    // Multiply-shift rather than `%`: every bucket gets the same count of hashes ± 1.
    let mut slot = ((u64::from(hash) * u64::from(SPLIT_WHOLE)) >> 32) as u32;
    for (k, s) in pass.split.iter().enumerate() {
        if slot < s.share {
            return k + 1;
        }
        slot -= s.share;
    }
    0
}

fn matches(w: &When, head: &RequestHead) -> bool {
    let got = match &w.what {
        WhenField::Header(name) => header_named(head, name.as_bytes()),
        WhenField::Cookie(name) => cookie(head, name.as_bytes()),
    };
    match (got, &w.value) {
        (Some(v), Some(want)) => v == want.as_bytes(),
        (Some(_), None) => true,
        (None, _) => false,
    }
}

/// The first field called `name` (case ignored), trimmed.
fn header_named<'a>(head: &'a RequestHead, name: &[u8]) -> Option<&'a [u8]> {
    head.headers()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim_ascii())
}

/// The value of cookie `name` in the request's `Cookie` fields (RFC 6265
/// §5.4: `a=1; b=2`, possibly over several fields); the first one wins. The
/// name is compared ignoring case, as nginx's `$cookie_` does.
pub fn cookie<'a>(head: &'a RequestHead, name: &[u8]) -> Option<&'a [u8]> {
    head.headers()
        .filter(|(n, _)| n.eq_ignore_ascii_case(b"cookie"))
        .flat_map(|(_, v)| v.split(|&b| b == b';'))
        .find_map(|pair| {
            let pair = pair.trim_ascii();
            let eq = pair.iter().position(|&b| b == b'=')?;
            let (n, v) = (pair[..eq].trim_ascii(), pair[eq + 1..].trim_ascii());
            n.eq_ignore_ascii_case(name).then(|| {
                // A quoted value stands for what is inside the quotes.
                v.strip_prefix(b"\"")
                    .and_then(|v| v.strip_suffix(b"\""))
                    .unwrap_or(v)
            })
        })
}

/// `example.com:8080` → `example.com`; `[::1]:8080` → `[::1]`.
pub fn host_without_port(host: &[u8]) -> &[u8] {
    if host.first() == Some(&b'[') {
        return match host.iter().position(|&b| b == b']') {
            Some(i) => &host[..=i],
            None => host,
        };
    }
    match host.iter().rposition(|&b| b == b':') {
        Some(i) => &host[..i],
        None => host,
    }
}

/// Removes `.` and `..` segments from a path (RFC 3986 §5.2.4) so that
/// `/api/../admin` is routed as `/admin`, the way the upstream will read it.
/// Returns `None` when `..` would climb above the root; the caller refuses it.
/// Paths without dot segments, the usual case, are returned unchanged and
/// without allocating.
pub fn normalize_path(path: &[u8]) -> Option<std::borrow::Cow<'_, [u8]>> {
    let has_dots = path.split(|&b| b == b'/').any(|seg| dots(seg) > 0);
    if !has_dots {
        return Some(std::borrow::Cow::Borrowed(path));
    }
    let mut out: Vec<&[u8]> = Vec::new();
    let segments: Vec<&[u8]> = path.split(|&b| b == b'/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    let mut trailing_slash = false;
    for (i, seg) in segments.iter().enumerate() {
        match dots(seg) {
            1 => trailing_slash = i == last,
            2 => {
                out.pop()?;
                trailing_slash = i == last;
            }
            _ => {
                out.push(seg);
                trailing_slash = false;
            }
        }
    }
    let mut norm = Vec::with_capacity(path.len());
    for seg in &out {
        norm.push(b'/');
        norm.extend_from_slice(seg);
    }
    if trailing_slash || norm.is_empty() {
        norm.push(b'/');
    }
    Some(std::borrow::Cow::Owned(norm))
}

/// 1 for a `.` segment, 2 for `..`, 0 otherwise. A dot may be written
/// percent-encoded (`%2e`): a backend that decodes it would climb just the
/// same, so it counts as a dot here (nginx decodes before matching too).
fn dots(seg: &[u8]) -> usize {
    let mut n = 0;
    let mut rest = seg;
    while !rest.is_empty() {
        if rest[0] == b'.' {
            rest = &rest[1..];
        } else if rest.len() >= 3 && rest[..3].eq_ignore_ascii_case(b"%2e") {
            rest = &rest[3..];
        } else {
            return 0;
        }
        n += 1;
        if n > 2 {
            return 0;
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vars::{Part, Var};
    use std::path::Path;

    fn cfg(text: &str) -> Config {
        Config::parse(text, Path::new("t.toml")).unwrap()
    }

    const TWO_HOSTS: &str = r#"
        [[server]]
        listen = ["127.0.0.1:1"]
        server_name = ["example.com", "*.example.com", "*.b.example.com"]
        [[server.location]]
        path = "/"
        return = { status = 200, body = "a" }
        [[server.location]]
        path = "/api/"
        return = { status = 200, body = "api" }
        [[server.location]]
        path = "/api/v2/"
        return = { status = 200, body = "v2" }

        [[server]]
        listen = ["127.0.0.1:1"]
        server_name = ["other.org"]
        [[server.location]]
        path = "/"
        return = { status = 200, body = "b" }

        [[server]]
        listen = ["127.0.0.1:1", "127.0.0.1:2"]
        [[server.location]]
        path = "/static/"
        return = { status = 200, body = "c" }
    "#;

    #[test]
    fn host_selection() {
        let c = cfg(TWO_HOSTS);
        let r = Router::new(&c);
        assert_eq!(r.server_for(0, Some(b"example.com")), 0);
        assert_eq!(r.server_for(0, Some(b"EXAMPLE.com:8080")), 0);
        assert_eq!(r.server_for(0, Some(b"www.example.com")), 0);
        assert_eq!(r.server_for(0, Some(b"x.b.example.com")), 0);
        assert_eq!(r.server_for(0, Some(b"other.org")), 1);
        assert_eq!(r.server_for(0, Some(b"other.org.")), 1);
        assert_eq!(r.server_for(0, Some(b"unknown.net")), 2);
        assert_eq!(r.server_for(0, None), 2);
        assert_eq!(r.server_for(0, Some(b"badexample.com")), 2);
        // The second address only has the third block.
        assert_eq!(r.server_for(1, Some(b"example.com")), 2);
    }

    #[test]
    fn longest_prefix_wins() {
        let c = cfg(TWO_HOSTS);
        let r = Router::new(&c);
        let at = |s: usize, p: &str| r.location_for(s, p.as_bytes(), &mut None);
        assert_eq!(at(0, "/api/v2/users"), Some(2));
        assert_eq!(at(0, "/api/users"), Some(1));
        assert_eq!(at(0, "/api"), Some(0));
        assert_eq!(at(2, "/other"), None);
    }

    #[test]
    fn locations_are_chosen_in_nginx_order() {
        let loc = |key: &str, v: &str, extra: &str| {
            format!("[[server.location]]\n{key} = {v:?}\n{extra}\nreturn = {{ status = 200 }}\n")
        };
        let text = [
            "[[server]]\nlisten = [\"127.0.0.1:1\"]\n".to_string(),
            loc("path", "/", ""),                               // 0
            loc("path", "/img/", "skip_regex = true"),          // 1
            loc("path", "/docs/", ""),                          // 2
            loc("regex", "\\.(png|jpe?g)$", ""),                // 3
            loc("regex", "(?i)^/docs/(?P<page>.+)\\.PDF$", ""), // 4
            loc("regex", "^/docs/", ""),                        // 5
            loc("exact", "/docs/", ""),                         // 6
            loc("name", "fallback", ""),                        // 7
            loc("path", "/docs/a.png/", ""),                    // 8
        ]
        .concat();
        let c = cfg(&text);
        let r = Router::new(&c);
        let mut g = None;
        let mut at = |p: &str| r.location_for(0, p.as_bytes(), &mut g);
        // An exact match wins over every other kind.
        assert_eq!(at("/docs/"), Some(6));
        // skip_regex: the longest prefix wins without trying regexes.
        assert_eq!(at("/img/a.png"), Some(1));
        // Otherwise the first regex in config order wins over the longest prefix.
        assert_eq!(at("/docs/a.png"), Some(3));
        assert_eq!(at("/docs/a.png/b.jpg"), Some(3));
        assert_eq!(at("/docs/x.pdf"), Some(4));
        assert_eq!(at("/docs/x.txt"), Some(5));
        // No regex matches: the remembered longest prefix.
        assert_eq!(at("/docs"), Some(0));
        assert_eq!(at("/docs/a.png/x"), Some(5));
        assert_eq!(at("/x.PNG"), Some(0));
        // A name is never a path.
        assert_eq!(at("fallback"), None);
        assert_eq!(at("/fallback"), Some(0));
        assert_eq!(r.named(&c, 0, "fallback"), Some(7));
        // The groups of the regex that matched.
        assert_eq!(r.location_for(0, b"/docs/guide.Pdf", &mut g), Some(4));
        assert_eq!(g.unwrap().get(1), Some(6..11));
    }

    fn head(raw: &str) -> RequestHead {
        use crate::http::parse::{parse_request, HeadLimits, Parsed};
        let limits = HeadLimits {
            max_request_line: 8192,
            max_header_size: 8192,
            max_headers: 100,
        };
        match parse_request(raw.as_bytes(), &limits).unwrap() {
            Parsed::Complete(parts, len) => {
                parts.into_head(bytes::Bytes::copy_from_slice(&raw.as_bytes()[..len]))
            }
            Parsed::Partial => panic!("partial"),
        }
    }

    fn key(parts: Vec<Part>) -> RequestKey {
        RequestKey {
            text: String::new(),
            parts,
        }
    }

    fn input<'a>(head: &'a RequestHead, path: &'a [u8], client: &str) -> KeyInput<'a> {
        KeyInput {
            head,
            uri: path,
            args: b"",
            host: b"t",
            https: false,
            client: client.parse().unwrap(),
            port: 80,
            request_id: b"",
            trace_id: b"",
            captures: None,
        }
    }

    fn rendered(k: &RequestKey, h: &RequestHead, client: &str) -> (String, bool) {
        let input = input(h, b"/p", client);
        let mut out = Vec::new();
        let any = feed_key(k, &input, |b| out.extend_from_slice(b));
        (String::from_utf8(out).unwrap(), any)
    }

    #[test]
    fn keys_are_built_from_request_parts() {
        let h = head(
            "GET /p?q=1 HTTP/1.1\r\nHost: t\r\nX-Tenant:  acme \r\nCookie: a=1; session=\"s9\"\r\n\
             Cookie: session=later; b=2\r\n\r\n",
        );
        let k = key(vec![
            Part::Var(Var::Http("x-tenant".into())),
            Part::Lit(":".into()),
            Part::Var(Var::Cookie("session".into())),
            Part::Lit("|".into()),
            Part::Var(Var::Cookie("B".into())),
            Part::Lit("|".into()),
            Part::Var(Var::RemoteAddr),
            Part::Var(Var::Uri),
            Part::Var(Var::RequestUri),
        ]);
        assert_eq!(
            rendered(&k, &h, "2001:db8::1"),
            ("acme:s9|2|2001:db8::1/p/p?q=1".into(), true)
        );
        // Nothing of the key in the request: no key, though literals remain.
        let k = key(vec![
            Part::Var(Var::Http("x-missing".into())),
            Part::Lit(":".into()),
            Part::Var(Var::Cookie("none".into())),
        ]);
        assert_eq!(rendered(&k, &h, "10.0.0.1"), (":".into(), false));
        let longest = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255";
        let k = key(vec![Part::Var(Var::RemoteAddr)]);
        assert_eq!(
            rendered(&k, &h, longest).0,
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
        );
    }

    #[test]
    fn split_shares_are_laid_end_to_end() {
        let c = cfg(r#"
            [[upstream]]
            name = "a"
            servers = ["127.0.0.1:1"]
            [[upstream]]
            name = "b"
            servers = ["127.0.0.1:2"]
            [[server]]
            listen = ["127.0.0.1:1"]
            [[server.location]]
            path = "/"
            proxy_pass = "http://a"
            split = [{ upstream = "b", weight = 25 }, { upstream = "a", weight = 0.5 }]
        "#);
        let Action::Proxy(pass) = &c.servers[0].locations[0].action else {
            panic!()
        };
        assert_eq!(split_shares(pass), [7450, 2500, 50]);
        // The hash maps onto 0..10000: the first quarter is the first entry.
        let at = |slot: u64| split_side(pass, ((slot << 32) / 10_000 + 1) as u32);
        assert_eq!(
            (at(0), at(2499), at(2500), at(2549), at(2550), at(9999)),
            (1, 1, 2, 2, 0, 0)
        );
        assert_eq!(split_side(pass, u32::MAX), 0);
        // In turns, without split_by: exactly the shares over 10000 requests.
        let r = Router::new(&c);
        let h = head("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
        let input = input(&h, b"/", "10.0.0.1");
        let mut sides = [0usize; 2];
        for _ in 0..10_000 {
            sides[r.upstream_for(0, 0, pass, &input)] += 1;
        }
        assert_eq!(sides, [7500, 2500]);
    }

    #[test]
    fn cookies_are_found_by_name() {
        let h = head("GET / HTTP/1.1\r\nHost: t\r\nCookie: x=1;y=; rw=ab=c\r\n\r\n");
        assert_eq!(cookie(&h, b"x"), Some(&b"1"[..]));
        assert_eq!(cookie(&h, b"y"), Some(&b""[..]));
        assert_eq!(cookie(&h, b"rw"), Some(&b"ab=c"[..]));
        assert_eq!(cookie(&h, b"z"), None);
        let h = head("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(cookie(&h, b"x"), None);
    }

    #[test]
    fn host_port_split() {
        assert_eq!(host_without_port(b"a.com:80"), b"a.com");
        assert_eq!(host_without_port(b"a.com"), b"a.com");
        assert_eq!(host_without_port(b"[::1]:80"), b"[::1]");
        assert_eq!(host_without_port(b"[::1]"), b"[::1]");
    }

    #[test]
    fn dot_segments() {
        let n = |p: &str| normalize_path(p.as_bytes()).map(|c| String::from_utf8(c.into_owned()).unwrap());
        assert_eq!(n("/a/b").as_deref(), Some("/a/b"));
        assert_eq!(n("/api/../admin").as_deref(), Some("/admin"));
        assert_eq!(n("/a/./b/").as_deref(), Some("/a/b/"));
        assert_eq!(n("/a/b/..").as_deref(), Some("/a/"));
        assert_eq!(n("/a/.").as_deref(), Some("/a/"));
        assert_eq!(n("/..").as_deref(), None);
        assert_eq!(n("/a/../../b").as_deref(), None);
        assert_eq!(n("/a..b/c.").as_deref(), Some("/a..b/c."));
        assert_eq!(n("/api/%2e%2e/admin").as_deref(), Some("/admin"));
        assert_eq!(n("/api/.%2E/admin").as_deref(), Some("/admin"));
        assert_eq!(n("/a/%2e/b").as_deref(), Some("/a/b"));
        assert_eq!(n("/%2e%2e").as_deref(), None);
        assert_eq!(n("/a/%2e%2e%2e/b").as_deref(), Some("/a/%2e%2e%2e/b"));
        assert_eq!(n("/a/%2f/b").as_deref(), Some("/a/%2f/b"));
    }
}

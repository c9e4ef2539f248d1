//! The variable engine: strings of the config such as
//! `"https://$host$request_uri"` or `"/new/$1"`, parsed once when the config
//! loads into literal and variable parts, and expanded per request into a
//! buffer the caller owns (or fed part by part to a hash, with no buffer).
//!
//! Names follow nginx's. A name that is not a variable is a load error with
//! "did you mean"; `$1`..`$9` and named groups exist only where a regex is in
//! scope (a `regex` location, a rewrite's `from`) and only as many as it has.
//!
//! Values are slices of the request where they can be (`$http_*`, `$args`,
//! captures); `$remote_addr` and `$server_port` are formatted on the stack,
//! and `$uri` is percent-decoded straight into the output. Where an expansion
//! ends up in a request target or a header ([`Mode::Uri`], [`Mode::Field`]),
//! bytes that would end the line or the target are percent-encoded, so a
//! decoded `%0d%0a` can never split a head (the nginx `$uri` CRLF pitfall).

use std::net::IpAddr;

use crate::http::RequestHead;

/// The longest expansion of one template. Longer ones fail the request
/// (500) rather than grow a buffer without bound.
pub const MAX_EXPANDED: usize = 16 * 1024;

/// Capture groups a template may name: `$0`..`$31` (nginx's `$1`..`$9` plus
/// named groups, numbered by the regex).
pub const MAX_GROUPS: usize = 32;

/// One variable, resolved at load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Var {
    /// `$host`: the request's host, lower-case, without port; else the
    /// block's first server name.
    Host,
    /// `$scheme`: `http` or `https`.
    Scheme,
    /// `$request_uri`: the target as the client sent it, query included.
    RequestUri,
    /// `$uri`: the current path (normalised, percent-decoded; after a
    /// rewrite, the new one).
    Uri,
    /// `$args`: the current query, without `?`.
    Args,
    /// `$is_args`: `?` when there is a query, else empty.
    IsArgs,
    /// `$arg_<name>`: a query parameter (name compared ignoring case).
    Arg(String),
    /// `$http_<name>`: the first field of that name, lower-case, `_` as `-`.
    Http(String),
    /// `$cookie_<name>`: a cookie of the `Cookie` fields.
    Cookie(String),
    /// `$remote_addr`: the client address (after `trusted_proxies`).
    RemoteAddr,
    /// `$server_port`: the port the client connected to.
    ServerPort,
    /// `$request_method`.
    RequestMethod,
    /// `$request_id`: the request's id (its `X-Request-ID`).
    RequestId,
    /// `$trace_id`: the W3C trace id sent upstream, or empty.
    TraceId,
    /// `$1`, or a named group: the capture group of that number.
    Capture(u8),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Lit(String),
    Var(Var),
}

/// A parsed string of the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// As written.
    pub text: String,
    pub parts: Vec<Part>,
}

/// The variables a template may use, for messages.
pub const NAMES: [&str; 16] = [
    "host",
    "scheme",
    "request_uri",
    "uri",
    "args",
    "is_args",
    "arg_<name>",
    "http_<name>",
    "cookie_<name>",
    "remote_addr",
    "server_port",
    "request_method",
    "request_id",
    "trace_id",
    "1..$9",
    "<named group>",
];

/// The capture groups in scope where a template is written: those of the
/// regex of the location or rewrite rule, if any.
#[derive(Default, Clone, Copy)]
pub struct Scope<'a> {
    pub regex: Option<&'a regex::bytes::Regex>,
}

impl Scope<'_> {
    fn group_count(&self) -> usize {
        self.regex.map_or(0, |r| r.captures_len())
    }

    fn named(&self, name: &str) -> Option<usize> {
        self.regex?.capture_names().position(|n| n == Some(name))
    }

    fn names(&self) -> impl Iterator<Item = &str> {
        self.regex.into_iter().flat_map(|r| r.capture_names().flatten())
    }
}

impl Template {
    /// Parses `text`. `$` followed by a name or `{name}`; `$$` is a `$`.
    pub fn parse(text: &str, scope: Scope) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(dollar) = rest.find('$') {
            literal.push_str(&rest[..dollar]);
            let after = &rest[dollar + 1..];
            if let Some(next) = after.strip_prefix('$') {
                literal.push('$');
                rest = next;
                continue;
            }
            let (name, next) = if let Some(braced) = after.strip_prefix('{') {
                let end = braced
                    .find('}')
                    .ok_or_else(|| format!("unclosed `${{` in {text:?}"))?;
                (&braced[..end], &braced[end + 1..])
            } else if after.starts_with(|c: char| c.is_ascii_digit()) {
                // `$1` is one digit, as in nginx: `$10` is `$1` then "0".
                (&after[..1], &after[1..])
            } else {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], &after[end..])
            };
            if name.is_empty() {
                return Err(format!(
                    "a `$` in {text:?} starts no variable (write `$$` for a dollar sign)"
                ));
            }
            if !literal.is_empty() {
                parts.push(Part::Lit(std::mem::take(&mut literal)));
            }
            parts.push(Part::Var(variable(name, scope)?));
            rest = next;
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(Part::Lit(literal));
        }
        Ok(Template {
            text: text.to_string(),
            parts,
        })
    }

    /// True when some part is a variable.
    pub fn has_vars(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Var(_)))
    }

    /// The text of a template without variables.
    pub fn as_literal(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [] => Some(""),
            [Part::Lit(s)] => Some(s),
            _ => None,
        }
    }

    /// True when a part reads a capture group.
    pub fn uses_captures(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Var(Var::Capture(_))))
    }

    /// The literal text of the parts (what a template without variables is).
    pub fn literals(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Lit(s) => Some(s.as_str()),
            Part::Var(_) => None,
        })
    }

    /// Appends the expansion to `out`, escaping per `mode`. Fails when it
    /// would pass [`MAX_EXPANDED`] bytes.
    pub fn expand(&self, r: &Request, mode: Mode, out: &mut Vec<u8>) -> Result<(), TooLong> {
        let start = out.len();
        for part in &self.parts {
            match part {
                Part::Lit(s) => out.extend_from_slice(s.as_bytes()),
                Part::Var(Var::Uri) => decode_into(r.uri, mode, out),
                Part::Var(v) => value(v, r, |b| put(b, mode, out)),
            }
            if out.len() - start > MAX_EXPANDED {
                out.truncate(start);
                return Err(TooLong);
            }
        }
        Ok(())
    }

    /// Feeds the expansion to `sink` part by part, unescaped, without
    /// building it (hash keys). Returns false when every variable was absent
    /// or empty: such a request has no key.
    pub fn feed(&self, r: &Request, mut sink: impl FnMut(&[u8])) -> bool {
        let mut any = false;
        for part in &self.parts {
            match part {
                Part::Lit(s) => sink(s.as_bytes()),
                Part::Var(Var::Uri) => {
                    any |= !r.uri.is_empty();
                    // Decoded through a small stack buffer.
                    let mut buf = [0u8; 256];
                    let mut n = 0;
                    for b in Decode::new(r.uri) {
                        if n == buf.len() {
                            sink(&buf);
                            n = 0;
                        }
                        buf[n] = b;
                        n += 1;
                    }
                    sink(&buf[..n]);
                }
                Part::Var(v) => value(v, r, |b| {
                    any |= !b.is_empty();
                    sink(b)
                }),
            }
        }
        any
    }
}

/// An expansion went over [`MAX_EXPANDED`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLong;

/// How expanded values are escaped for where they go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Into a request target or a `Location`: bytes that cannot be in a URI
    /// (controls, space, non-ASCII) are percent-encoded; `$uri`'s decoded
    /// `?`, `#` and `%` too, so they keep meaning what they meant.
    Uri,
    /// Into a header value: CR, LF and NUL are percent-encoded.
    Field,
    /// Into a body: as is.
    Raw,
}

fn put(b: &[u8], mode: Mode, out: &mut Vec<u8>) {
    let bad = |c: u8| match mode {
        Mode::Uri => c <= b' ' || c >= 0x7f,
        Mode::Field => matches!(c, b'\r' | b'\n' | 0),
        Mode::Raw => false,
    };
    if !b.iter().any(|&c| bad(c)) {
        out.extend_from_slice(b);
        return;
    }
    for &c in b {
        if bad(c) {
            pct(c, out);
        } else {
            out.push(c);
        }
    }
}

fn pct(c: u8, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.extend_from_slice(&[b'%', HEX[usize::from(c >> 4)], HEX[usize::from(c & 15)]]);
}

fn decode_into(uri: &[u8], mode: Mode, out: &mut Vec<u8>) {
    if !uri.contains(&b'%') {
        return put(uri, mode, out);
    }
    for c in Decode::new(uri) {
        let escape = match mode {
            Mode::Uri => c <= b' ' || c >= 0x7f || matches!(c, b'?' | b'#' | b'%'),
            Mode::Field => matches!(c, b'\r' | b'\n' | 0),
            Mode::Raw => false,
        };
        if escape {
            pct(c, out);
        } else {
            out.push(c);
        }
    }
}

/// Percent-decoding (RFC 3986 §2.1); a `%` not followed by two hex digits
/// stands for itself.
struct Decode<'a> {
    rest: &'a [u8],
}

impl<'a> Decode<'a> {
    fn new(s: &'a [u8]) -> Decode<'a> {
        Decode { rest: s }
    }
}

impl Iterator for Decode<'_> {
    type Item = u8;
    fn next(&mut self) -> Option<u8> {
        let (&c, tail) = self.rest.split_first()?;
        let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
        if c == b'%' && tail.len() >= 2 {
            if let (Some(h), Some(l)) = (hex(tail[0]), hex(tail[1])) {
                self.rest = &tail[2..];
                return Some(h << 4 | l);
            }
        }
        self.rest = tail;
        Some(c)
    }
}

fn variable(name: &str, scope: Scope) -> Result<Var, String> {
    if name.bytes().all(|b| b.is_ascii_digit()) {
        let n: usize = name.parse().unwrap_or(usize::MAX);
        let have = scope.group_count();
        if have == 0 {
            return Err(format!(
                "${name}: no regex here to capture it (captures come from a `regex` location or a rewrite's `from`)"
            ));
        }
        if n >= have {
            return Err(format!(
                "${name}: the regex has {} capture group{}",
                have - 1,
                if have == 2 { "" } else { "s" }
            ));
        }
        return Ok(Var::Capture(n as u8));
    }
    if let Some(i) = scope.named(name) {
        if i >= MAX_GROUPS {
            return Err(format!("${name}: only the first {MAX_GROUPS} groups can be used"));
        }
        return Ok(Var::Capture(i as u8));
    }
    let field = |rest: &str| rest.to_ascii_lowercase().replace('_', "-");
    let var = match name {
        "host" => Var::Host,
        "scheme" => Var::Scheme,
        "request_uri" => Var::RequestUri,
        "uri" | "document_uri" => Var::Uri,
        "args" | "query_string" => Var::Args,
        "is_args" => Var::IsArgs,
        "remote_addr" => Var::RemoteAddr,
        "server_port" => Var::ServerPort,
        "request_method" => Var::RequestMethod,
        "request_id" => Var::RequestId,
        "trace_id" => Var::TraceId,
        _ => {
            if let Some(h) = name.strip_prefix("http_").filter(|h| !h.is_empty()) {
                Var::Http(field(h))
            } else if let Some(c) = name.strip_prefix("cookie_").filter(|c| !c.is_empty()) {
                Var::Cookie(c.to_string())
            } else if let Some(a) = name.strip_prefix("arg_").filter(|a| !a.is_empty()) {
                Var::Arg(a.to_string())
            } else {
                return Err(unknown(name, scope));
            }
        }
    };
    Ok(var)
}

/// The variables, as a list for messages.
pub fn known() -> String {
    NAMES.map(|v| format!("${v}")).join(", ")
}

/// The request variables with fixed names, as written after `$` (beside
/// the `http_`, `cookie_` and `arg_` families and captures).
pub const FIXED: [&str; 11] = [
    "host",
    "scheme",
    "request_uri",
    "uri",
    "args",
    "is_args",
    "remote_addr",
    "server_port",
    "request_method",
    "request_id",
    "trace_id",
];

fn unknown(name: &str, scope: Scope) -> String {
    // The nearest known name: a fixed one, a capture group's, or a prefix
    // with the rest kept (`$htp_host` → `$http_host`).
    let mut candidates: Vec<String> = FIXED.map(String::from).to_vec();
    candidates.extend(scope.names().map(String::from));
    if let Some((_, rest)) = name.split_once('_') {
        for prefix in ["http", "cookie", "arg"] {
            candidates.push(format!("{prefix}_{rest}"));
        }
    }
    let closest = candidates
        .iter()
        .map(|k| (strsim::levenshtein(name, k), k))
        .filter(|(d, _)| *d <= 2)
        .min();
    match closest {
        Some((_, k)) => format!("unknown variable `${name}`; did you mean `${k}`?"),
        None => format!("unknown variable `${name}` (known: {})", known()),
    }
}

/// What variables read from a request.
pub struct Request<'a> {
    pub head: &'a RequestHead,
    /// The current path (as routed, or rewritten), still percent-encoded.
    pub uri: &'a [u8],
    /// The current query, without `?`.
    pub args: &'a [u8],
    /// `$host`, as received (lower-cased when expanded).
    pub host: &'a [u8],
    pub https: bool,
    pub client: IpAddr,
    pub port: u16,
    /// `$request_id`.
    pub request_id: &'a [u8],
    /// `$trace_id`.
    pub trace_id: &'a [u8],
    /// The subject a regex matched and its groups' ranges in it.
    pub captures: Option<(&'a [u8], &'a Groups)>,
}

/// The groups of one regex match, as ranges of its subject.
#[derive(Clone)]
pub struct Groups {
    slots: [(u32, u32); MAX_GROUPS],
}

impl Default for Groups {
    fn default() -> Self {
        Groups {
            slots: [(u32::MAX, 0); MAX_GROUPS],
        }
    }
}

impl Groups {
    /// Takes the groups of a match from `locs` (the subject is bounded by
    /// the request head, far below 4 GiB).
    pub fn fill(&mut self, locs: &regex::bytes::CaptureLocations) {
        for (i, slot) in self.slots.iter_mut().enumerate() {
            *slot = match locs.get(i) {
                Some((s, e)) => (s as u32, e as u32),
                None => (u32::MAX, 0),
            };
        }
    }

    pub fn get(&self, i: usize) -> Option<std::ops::Range<usize>> {
        let (s, e) = *self.slots.get(i)?;
        (s != u32::MAX).then_some(s as usize..e as usize)
    }
}

fn value(v: &Var, r: &Request, mut f: impl FnMut(&[u8])) {
    match v {
        Var::Host => {
            // Lower-cased here, on the stack, only when `$host` is used.
            let mut buf = [0u8; 255];
            let n = r.host.len().min(buf.len());
            for (d, s) in buf.iter_mut().zip(&r.host[..n]) {
                *d = s.to_ascii_lowercase();
            }
            f(&buf[..n])
        }
        Var::Scheme => f(if r.https { b"https" } else { b"http" }),
        Var::RequestUri => f(r.head.target()),
        Var::Uri => f(r.uri),
        Var::Args => f(r.args),
        Var::IsArgs => f(if r.args.is_empty() { b"" } else { b"?" }),
        Var::Arg(name) => f(arg(r.args, name.as_bytes()).unwrap_or_default()),
        Var::Http(name) => f(r
            .head
            .headers()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v.trim_ascii())
            .unwrap_or_default()),
        Var::Cookie(name) => f(crate::route::cookie(r.head, name.as_bytes()).unwrap_or_default()),
        Var::RemoteAddr => {
            // The longest IPv6 text is 45 bytes: formatted on the stack.
            let mut buf = [0u8; 64];
            let mut w: &mut [u8] = &mut buf;
            let _ = std::io::Write::write_fmt(&mut w, format_args!("{}", r.client));
            let n = 64 - w.len();
            f(&buf[..n])
        }
        Var::ServerPort => f(itoa::Buffer::new().format(r.port).as_bytes()),
        Var::RequestMethod => f(r.head.method()),
        Var::RequestId => f(r.request_id),
        Var::TraceId => f(r.trace_id),
        Var::Capture(i) => f(r
            .captures
            .and_then(|(s, g)| g.get(usize::from(*i)).map(|range| &s[range]))
            .unwrap_or_default()),
    }
}

/// The value of query parameter `name` in `args` (`a=1&b=2`); the first wins.
pub fn arg<'a>(args: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    args.split(|&b| b == b'&').find_map(|pair| {
        let (n, v) = match pair.iter().position(|&b| b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &b""[..]),
        };
        n.eq_ignore_ascii_case(name).then_some(v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::parse::{parse_request, HeadLimits, Parsed};

    fn head(raw: &str) -> RequestHead {
        let l = HeadLimits {
            max_request_line: 8192,
            max_header_size: 8192,
            max_headers: 64,
        };
        match parse_request(raw.as_bytes(), &l).unwrap() {
            Parsed::Complete(p, n) => p.into_head(bytes::Bytes::copy_from_slice(&raw.as_bytes()[..n])),
            Parsed::Partial => panic!(),
        }
    }

    fn expand(t: &str, re: Option<&str>, uri: &str, mode: Mode) -> String {
        let re = re.map(|r| regex::bytes::Regex::new(r).unwrap());
        let t = Template::parse(t, Scope { regex: re.as_ref() }).unwrap();
        let h =
            head("GET /a%20b/c?x=1&Y=2 HTTP/1.1\r\nHost: Ex.com\r\nX-Tenant: acme\r\nCookie: s=9\r\n\r\n");
        let mut groups = Groups::default();
        if let Some(re) = &re {
            let mut locs = re.capture_locations();
            re.captures_read(&mut locs, uri.as_bytes()).unwrap();
            groups.fill(&locs);
        }
        let r = Request {
            head: &h,
            uri: uri.as_bytes(),
            args: b"x=1&Y=2",
            host: b"ex.com",
            https: true,
            client: "10.1.2.3".parse().unwrap(),
            port: 8443,
            request_id: b"",
            trace_id: b"",
            captures: re.as_ref().map(|_| (uri.as_bytes(), &groups)),
        };
        let mut out = b"keep:".to_vec();
        t.expand(&r, mode, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn variables_expand_from_the_request() {
        let all = "$scheme://$host:$server_port$request_uri $uri|$args|$is_args|$arg_y|$arg_z|\
                   $http_x_tenant|$cookie_s|$remote_addr|$request_method|${host}x|$$";
        assert_eq!(
            expand(all, None, "/a%20b/c", Mode::Raw),
            "keep:https://ex.com:8443/a%20b/c?x=1&Y=2 /a b/c|x=1&Y=2|?|2||acme|9|10.1.2.3|GET|ex.comx|$"
        );
        // Decoded `$uri` is encoded again where it goes into a target.
        assert_eq!(
            expand("$uri", None, "/a%20b%3f%0d%0a%25", Mode::Uri),
            "keep:/a%20b%3F%0D%0A%25"
        );
        assert_eq!(expand("$uri", None, "/a%0d%0ab", Mode::Field), "keep:/a%0D%0Ab");
        assert_eq!(
            expand(
                "/n/$1/$2/$id",
                Some("^/(?P<id>[a-z]+)/(.*)$"),
                "/abc/d/e",
                Mode::Uri
            ),
            "keep:/n/abc/d/e/abc"
        );
        // A group that did not take part is empty.
        assert_eq!(expand("[$2]", Some("^/(a)|(b)$"), "/a", Mode::Raw), "keep:[]");
    }

    #[test]
    fn bad_templates_are_refused() {
        let err = |t: &str, re: Option<&str>| {
            let re = re.map(|r| regex::bytes::Regex::new(r).unwrap());
            Template::parse(t, Scope { regex: re.as_ref() }).unwrap_err()
        };
        assert!(
            err("$hots", None).contains("did you mean `$host`?"),
            "{}",
            err("$hots", None)
        );
        assert!(err("$reqest_uri", None).contains("did you mean `$request_uri`?"));
        assert!(err("$htp_x_tenant", None).contains("did you mean `$http_x_tenant`?"));
        assert!(err("$1", None).contains("no regex here"));
        assert!(err("$2", Some("^/(x)$")).contains("has 1 capture group"));
        assert!(err("$idd", Some("^/(?P<id>x)$")).contains("did you mean `$id`?"));
        assert!(err("${host", None).contains("unclosed"));
        assert!(err("a$", None).contains("starts no variable"));
        assert!(err("$reqest_id", None).contains("did you mean `$request_id`?"));
    }

    #[test]
    fn expansion_is_bounded() {
        let t = Template::parse(&"$request_uri".repeat(2000), Scope::default()).unwrap();
        let h = head("GET /aaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\nHost: a\r\n\r\n");
        let r = Request {
            head: &h,
            uri: b"/",
            args: b"",
            host: b"a",
            https: false,
            client: "::1".parse().unwrap(),
            port: 80,
            request_id: b"",
            trace_id: b"",
            captures: None,
        };
        let mut out = b"x".to_vec();
        assert_eq!(t.expand(&r, Mode::Raw, &mut out), Err(TooLong));
        assert_eq!(out, b"x");
    }

    #[test]
    fn query_parameters() {
        assert_eq!(arg(b"a=1&b=2&a=3", b"a"), Some(&b"1"[..]));
        assert_eq!(arg(b"a=1&B=2", b"b"), Some(&b"2"[..]));
        assert_eq!(arg(b"flag&x=", b"flag"), Some(&b""[..]));
        assert_eq!(arg(b"", b"a"), None);
    }
}

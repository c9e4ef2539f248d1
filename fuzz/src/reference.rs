//! A small, strict HTTP/1.1 request-head parser written from RFC 9112 and
//! RFC 3986, independent of httparse and of ringway's own parser. The fuzz
//! targets use it as the judge of what ringway sends upstream: whatever the
//! proxy writes must be read by this parser exactly as ringway understood it.
//!
//! It accepts only what the grammar allows and refuses the rest; it has no
//! limits and no recovery. The whole input must be one head, ending in the
//! empty line, with nothing after it.

use std::sync::atomic::{AtomicBool, Ordering};

/// How the message body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    Empty,
    Length(u64),
    Chunked,
}

#[derive(Debug)]
pub struct Request<'a> {
    pub method: &'a [u8],
    pub target: &'a [u8],
    /// The minor version: 0 or 1.
    pub minor: u8,
    /// Field lines in order, values without leading and trailing OWS.
    pub fields: Vec<(&'a [u8], &'a [u8])>,
    pub body: Body,
}

impl Request<'_> {
    /// Values of every field with this name (case-insensitive), in order.
    pub fn all<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s [u8]> + 's {
        self.fields
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| *v)
    }
}

/// tchar (RFC 9110 §5.6.2).
pub fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~'
        )
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn is_sub_delim(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
    )
}

/// Checks that `s` is made of single characters allowed by `ok` and of
/// pct-encoded triplets (RFC 3986 §2.1).
fn pct_chars(s: &[u8], ok: impl Fn(u8) -> bool) -> bool {
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' {
            if i + 2 >= s.len() {
                return false;
            }
            if !(s[i + 1].is_ascii_hexdigit() && s[i + 2].is_ascii_hexdigit()) {
                return false;
            }
            i += 3;
        } else if ok(s[i]) {
            i += 1;
        } else {
            return false;
        }
    }
    true
}

/// pchar without the pct-encoded alternative.
fn is_pchar(b: u8) -> bool {
    is_unreserved(b) || is_sub_delim(b) || b == b':' || b == b'@'
}

/// `path-abempty [ "?" query ]`, the part of a target after any authority.
fn path_and_query(s: &[u8]) -> bool {
    let (path, query) = match s.iter().position(|&b| b == b'?') {
        Some(q) => (&s[..q], Some(&s[q + 1..])),
        None => (s, None),
    };
    // path characters: pchar and "/" (segments joined by slashes).
    if !pct_chars(path, |b| is_pchar(b) || b == b'/') {
        return false;
    }
    match query {
        None => true,
        Some(q) => pct_chars(q, |b| is_pchar(b) || b == b'/' || b == b'?'),
    }
}

/// origin-form = absolute-path [ "?" query ] (RFC 9112 §3.2.1).
fn origin_form(t: &[u8]) -> bool {
    t.first() == Some(&b'/') && path_and_query(t)
}

/// authority = [ userinfo "@" ] host [ ":" port ] (RFC 3986 §3.2).
fn authority(a: &[u8]) -> bool {
    let hostport = match a.iter().rposition(|&b| b == b'@') {
        Some(at) => {
            if !pct_chars(&a[..at], |b| is_unreserved(b) || is_sub_delim(b) || b == b':') {
                return false;
            }
            &a[at + 1..]
        }
        None => a,
    };
    let (host, port) = if hostport.first() == Some(&b'[') {
        let Some(close) = hostport.iter().position(|&b| b == b']') else {
            return false;
        };
        let literal = &hostport[1..close];
        if !ip_literal(literal) {
            return false;
        }
        let rest = &hostport[close + 1..];
        match rest.first() {
            None => (&hostport[..0], None),
            Some(b':') => (&hostport[..0], Some(&rest[1..])),
            Some(_) => return false,
        }
    } else {
        match hostport.iter().rposition(|&b| b == b':') {
            Some(c) => (&hostport[..c], Some(&hostport[c + 1..])),
            None => (hostport, None),
        }
    };
    // reg-name (IPv4 addresses are reg-names by their characters).
    if !pct_chars(host, |b| is_unreserved(b) || is_sub_delim(b)) {
        return false;
    }
    port.is_none_or(|p| p.iter().all(u8::is_ascii_digit))
}

/// IPv6address or IPvFuture, the inside of "[ ]".
fn ip_literal(s: &[u8]) -> bool {
    if let Some(rest) = s.strip_prefix(b"v").or_else(|| s.strip_prefix(b"V")) {
        let Some(dot) = rest.iter().position(|&b| b == b'.') else {
            return false;
        };
        return dot > 0
            && rest[..dot].iter().all(u8::is_ascii_hexdigit)
            && rest.len() > dot + 1
            && rest[dot + 1..]
                .iter()
                .all(|&b| is_unreserved(b) || is_sub_delim(b) || b == b':');
    }
    std::str::from_utf8(s)
        .ok()
        .is_some_and(|t| t.parse::<std::net::Ipv6Addr>().is_ok())
}

/// absolute-form = absolute-URI (RFC 9112 §3.2.2, RFC 3986 §4.3), limited to
/// the hierarchical "scheme://authority path" shape that HTTP uses.
fn absolute_form(t: &[u8]) -> bool {
    let Some(colon) = t.iter().position(|&b| b == b':') else {
        return false;
    };
    let scheme = &t[..colon];
    if scheme.is_empty()
        || !scheme[0].is_ascii_alphabetic()
        || !scheme
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
    {
        return false;
    }
    let Some(rest) = t[colon + 1..].strip_prefix(b"//") else {
        return false;
    };
    let end = rest
        .iter()
        .position(|&b| b == b'/' || b == b'?')
        .unwrap_or(rest.len());
    authority(&rest[..end]) && path_and_query(&rest[end..])
}

/// When set, a request-target is only required to be one run of visible
/// characters (no SP, no controls), as httparse reads it, instead of matching
/// the RFC 3986 grammar. Lets a run look past a known target finding.
pub static LENIENT_TARGET: AtomicBool = AtomicBool::new(false);

/// The request-target for this method (RFC 9112 §3.2).
fn request_target(method: &[u8], t: &[u8]) -> bool {
    if LENIENT_TARGET.load(Ordering::Relaxed) {
        return !t.is_empty() && t.iter().all(|&b| b > 0x20 && b != 0x7f);
    }
    match method {
        b"CONNECT" => {
            // authority-form = uri-host ":" port
            !t.contains(&b'@') && t.contains(&b':') && authority(t)
        }
        b"OPTIONS" if t == b"*" => true,
        _ => origin_form(t) || absolute_form(t),
    }
}

/// field-value = *field-content; the line must not start or end with OWS
/// once trimmed, and holds only VCHAR, obs-text, SP and HTAB (RFC 9110 §5.5).
fn field_value_ok(v: &[u8]) -> bool {
    v.iter()
        .all(|&b| b == b'\t' || b == b' ' || (0x21..=0x7e).contains(&b) || b >= 0x80)
}

fn trim_ows(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

/// Parses one complete request head; any deviation from the grammar is an
/// error naming the rule.
pub fn parse_request(input: &[u8]) -> Result<Request<'_>, &'static str> {
    let mut lines = Vec::new();
    let mut rest = input;
    loop {
        let Some(lf) = rest.iter().position(|&b| b == b'\n') else {
            return Err("head does not end in an empty line");
        };
        if lf == 0 || rest[lf - 1] != b'\r' {
            return Err("line not ended by CRLF");
        }
        let line = &rest[..lf - 1];
        if line.contains(&b'\r') {
            return Err("bare CR inside a line");
        }
        rest = &rest[lf + 1..];
        if line.is_empty() {
            break;
        }
        lines.push(line);
    }
    if !rest.is_empty() {
        return Err("bytes after the end of the head");
    }
    let Some((request_line, field_lines)) = lines.split_first() else {
        return Err("no request line");
    };

    // request-line = method SP request-target SP HTTP-version
    let mut parts = request_line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("request line is not three parts separated by single spaces");
    };
    if method.is_empty() || !method.iter().all(|&b| is_tchar(b)) {
        return Err("method is not a token");
    }
    if !request_target(method, target) {
        return Err("request-target does not match its grammar");
    }
    let minor = match version {
        b"HTTP/1.1" => 1,
        b"HTTP/1.0" => 0,
        _ => return Err("HTTP-version is not HTTP/1.0 or HTTP/1.1"),
    };

    let mut fields = Vec::new();
    for line in field_lines {
        if matches!(line.first(), Some(b' ' | b'\t')) {
            return Err("obs-fold");
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return Err("field line without a colon");
        };
        let name = &line[..colon];
        if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
            return Err("field-name is not a token");
        }
        let value = &line[colon + 1..];
        if !field_value_ok(value) {
            return Err("field-value has a control character");
        }
        fields.push((name, trim_ows(value)));
    }

    // Framing: exactly one way, written plainly.
    let lengths: Vec<&[u8]> = fields
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(b"content-length"))
        .map(|(_, v)| *v)
        .collect();
    let codings: Vec<&[u8]> = fields
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(b"transfer-encoding"))
        .map(|(_, v)| *v)
        .collect();
    let body = match (lengths.as_slice(), codings.as_slice()) {
        ([], []) => Body::Empty,
        ([], [te]) if te.eq_ignore_ascii_case(b"chunked") => Body::Chunked,
        ([], _) => return Err("Transfer-Encoding other than one plain chunked"),
        ([cl], []) => {
            if cl.is_empty() || !cl.iter().all(u8::is_ascii_digit) {
                return Err("Content-Length is not 1*DIGIT");
            }
            let mut n: u64 = 0;
            for d in *cl {
                n = n
                    .checked_mul(10)
                    .and_then(|n| n.checked_add(u64::from(d - b'0')))
                    .ok_or("Content-Length overflows")?;
            }
            if n == 0 {
                Body::Empty
            } else {
                Body::Length(n)
            }
        }
        (_, []) => return Err("more than one Content-Length"),
        (_, _) => return Err("both Content-Length and Transfer-Encoding"),
    };

    let hosts = fields
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(b"host"))
        .count();
    if hosts > 1 || (minor == 1 && hosts == 0) {
        return Err("not exactly one Host");
    }

    Ok(Request {
        method,
        target,
        minor,
        fields,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_requests() {
        let r = parse_request(b"GET /a/b?c=d%20e HTTP/1.1\r\nHost: x\r\nA:  b c \r\n\r\n").unwrap();
        assert_eq!(r.method, b"GET");
        assert_eq!(r.target, b"/a/b?c=d%20e");
        assert_eq!(r.fields, vec![(&b"Host"[..], &b"x"[..]), (&b"A"[..], &b"b c"[..])]);
        assert_eq!(r.body, Body::Empty);
        let r = parse_request(b"POST http://u@h:80/p HTTP/1.1\r\nHost: h\r\nContent-Length: 12\r\n\r\n").unwrap();
        assert_eq!(r.body, Body::Length(12));
        let r = parse_request(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
        assert_eq!(r.body, Body::Chunked);
        assert!(parse_request(b"GET http://[::1]:8/ HTTP/1.1\r\nHost: h\r\n\r\n").is_ok());
        assert!(parse_request(b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n").is_ok());
    }

    #[test]
    fn refuses_what_the_grammar_does_not_allow() {
        for bad in [
            &b"GET / HTTP/1.1\r\nHost: x\r\n"[..],
            b"GET / HTTP/1.1\nHost: x\r\n\r\n",
            b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /a\"b HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /a\x80 HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /a#f HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /%zz HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /%a HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET http://a[b/ HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET * HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost : x\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nX: a\x01b\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: +1\r\n\r\n",
            b"GET / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\nextra",
        ] {
            assert!(parse_request(bad).is_err(), "accepted {:?}", String::from_utf8_lossy(bad));
        }
    }
}

//! What changes between the two sides of the proxy: the upstream request head
//! (target, Host, X-Forwarded-*, hop-by-hop removal, framing) and the client
//! response head (hop-by-hop removal, redirects that would leak the backend,
//! Date, framing, Connection).
//!
//! Header fields are copied as slices of the received head; nothing is
//! allocated per field.

use std::borrow::Cow;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::config::{Location, ProxyPass, Upstream};
use crate::http::encode::{self, is_hop_by_hop, named_in};
use crate::http::{
    eq_ignore_case, list_items, BodyKind, RequestHead, RequestMeta, ResponseHead, ResponseMeta, Version,
};
use crate::log::Dates;

/// The client's address: the peer, or when the peer is a trusted proxy, the
/// right-most X-Forwarded-For entry that is not itself trusted (nginx's
/// `real_ip_recursive on`). With `forwarded` (the block's `forwarded =
/// true`), a request that has `Forwarded` fields is judged by their `for=`
/// nodes the same way instead, and X-Forwarded-For is not read.
pub fn client_addr(peer: IpAddr, head: &RequestHead, trusted: &[IpNet], forwarded: bool) -> IpAddr {
    let peer = peer.to_canonical();
    if trusted.is_empty() || !trusted.iter().any(|n| n.contains(&peer)) {
        return peer;
    }
    let mut client = peer;
    if forwarded && head.header("forwarded").is_some() {
        let nodes = crate::http::forwarded::for_nodes(
            head.headers()
                .filter(|(n, _)| eq_ignore_case(n, b"forwarded"))
                .map(|(_, v)| v),
        );
        for node in nodes.iter().rev() {
            // An element without an address ends what can be believed.
            let Some(addr) = node else { break };
            client = *addr;
            if !trusted.iter().any(|n| n.contains(&client)) {
                break;
            }
        }
        return client;
    }
    let xff: Vec<&[u8]> = head
        .headers()
        .filter(|(n, _)| eq_ignore_case(n, b"x-forwarded-for"))
        .flat_map(|(_, v)| list_items(v))
        .collect();
    for item in xff.iter().rev() {
        let Some(addr) = std::str::from_utf8(item)
            .ok()
            .and_then(|s| s.parse::<IpAddr>().ok())
        else {
            break;
        };
        client = addr.to_canonical();
        if !trusted.iter().any(|n| n.contains(&client)) {
            break;
        }
    }
    client
}

/// Where the request goes upstream: the matched location prefix replaced by
/// the path of `proxy_pass` when it has one (nginx's rule), otherwise the
/// target as received (or normalized, when it had dot segments).
pub fn upstream_target<'a>(
    target: &'a [u8],
    path: &[u8],
    query: &[u8],
    normalized: bool,
    loc: &Location,
    pass: &ProxyPass,
) -> Cow<'a, [u8]> {
    match &pass.path {
        None if !normalized => Cow::Borrowed(target),
        None => Cow::Owned([path, query].concat()),
        Some(replacement) => {
            let rest = &path[loc.path.len().min(path.len())..];
            Cow::Owned([replacement.as_bytes(), rest, query].concat())
        }
    }
}

/// An address as text, formatted once per connection rather than per request.
#[derive(Clone, Copy)]
pub struct AddrText {
    buf: [u8; 45],
    len: u8,
}

impl AddrText {
    pub fn ip(ip: IpAddr) -> AddrText {
        let mut t = AddrText { buf: [0; 45], len: 0 };
        match ip.to_canonical() {
            // The common case without the formatting machinery.
            IpAddr::V4(v4) => {
                for (i, octet) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        t.push(b'.');
                    }
                    t.push_decimal(u32::from(octet));
                }
            }
            IpAddr::V6(v6) => {
                use std::io::Write;
                let mut cursor = std::io::Cursor::new(&mut t.buf[..]);
                let _ = write!(cursor, "{v6}");
                t.len = cursor.position() as u8;
            }
        }
        t
    }

    pub fn port(port: u16) -> AddrText {
        let mut t = AddrText { buf: [0; 45], len: 0 };
        t.push_decimal(u32::from(port));
        t
    }

    fn push(&mut self, b: u8) {
        self.buf[self.len as usize] = b;
        self.len += 1;
    }

    fn push_decimal(&mut self, n: u32) {
        for &d in itoa::Buffer::new().format(n).as_bytes() {
            self.push(d);
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len as usize]
    }
}

/// Inputs for the upstream request head.
pub struct RequestRewrite<'a> {
    pub head: &'a RequestHead,
    pub meta: &'a RequestMeta,
    pub target: &'a [u8],
    /// The host the client asked for (Host, or the absolute-form authority).
    pub host: Option<&'a [u8]>,
    pub preserve_host: bool,
    pub upstream_authority: &'a str,
    /// The peer address, appended to X-Forwarded-For.
    pub peer: &'a AddrText,
    /// The client address for X-Real-IP (the peer's, unless a trusted proxy
    /// forwarded the request).
    pub client: &'a AddrText,
    /// The port the client connected to.
    pub local_port: &'a AddrText,
    /// The client connection is TLS: `X-Forwarded-Proto: https`.
    pub https: bool,
    /// The verified client certificate's subject, sent as
    /// `X-Client-Cert-Subject` (never what the client wrote under that name).
    pub client_cert_subject: Option<&'a [u8]>,
    /// The `Upgrade` protocols passed on (those the location allows of what
    /// the client offered), sent with `Connection: upgrade`; see tunnel.rs.
    pub upgrade: Option<&'a [u8]>,
    /// `request_headers`: names not passed on (lower-case), and the fields
    /// set instead, whole `Name: value` lines.
    pub hidden: &'a [String],
    /// Fields auth owns (`crate::access::Plan::strip`), lower-case: the
    /// client's copies are dropped so they cannot be spoofed.
    pub dropped: &'a [String],
    pub extra: &'a [u8],
    /// Sent as `X-Request-ID` (what the client sent under that name was
    /// either this or replaced by it).
    pub request_id: &'a [u8],
    /// `traceparent` to send (the client's is never passed on as is).
    pub traceparent: Option<&'a [u8]>,
    /// Pass the client's `tracestate` on: its `traceparent` was valid.
    pub tracestate: bool,
    /// The block's `forwarded`: this hop's RFC 7239 element is sent.
    pub forwarded: Option<ForwardedHop<'a>>,
}

/// This hop's `Forwarded` element and what becomes of the received ones.
pub struct ForwardedHop<'a> {
    /// The `by=` value (see `crate::config::Forwarded`); the `for=` node
    /// is the connection's peer, `RequestRewrite::peer`.
    pub by: Option<&'a str>,
    /// The peer is a trusted proxy: the elements it sent are kept before
    /// ours; from anyone else they are replaced.
    pub keep: bool,
}

/// `name` is in `hidden` (lower-case names; `name` in any case).
#[inline]
pub fn hidden_by(hidden: &[String], name: &[u8]) -> bool {
    !hidden.is_empty() && hidden.iter().any(|h| eq_ignore_case(h.as_bytes(), name))
}

/// Fields the proxy sets itself; whatever the client sent under these names
/// is dropped, so the backend cannot be told a false client address.
#[inline]
fn is_proxy_owned(name: &[u8]) -> bool {
    const OWNED: [&[u8]; 9] = [
        b"host",
        b"expect",
        b"x-real-ip",
        b"x-forwarded-proto",
        b"x-forwarded-host",
        b"x-forwarded-port",
        b"x-client-cert-subject",
        b"x-request-id",
        b"traceparent",
    ];
    OWNED
        .iter()
        .any(|h| h.len() == name.len() && eq_ignore_case(h, name))
}

#[inline]
pub fn request_head(r: &RequestRewrite, out: &mut Vec<u8>) {
    encode::request_line(r.head.method(), r.target, out);
    request_fields(r, out);
    if let Some(protocols) = r.upgrade {
        // Upgrade is hop-by-hop: it goes on only as ringway's own offer
        // (RFC 9110 §7.8), with the connection option a sender must add.
        // HTTP/1.1 only: HTTP/2 has no Upgrade (RFC 9113 §8.6).
        encode::header(b"Upgrade", protocols, out);
        encode::header(b"Connection", b"upgrade", out);
    }
    match r.meta.body() {
        BodyKind::Length(n) => encode::content_length(n, out),
        BodyKind::Chunked => encode::header(b"Transfer-Encoding", b"chunked", out),
        BodyKind::Empty | BodyKind::UntilClose => {
            // A body-less POST still says so, as some servers require a length.
            if matches!(r.head.method(), b"POST" | b"PUT" | b"PATCH") {
                encode::content_length(0, out);
            }
        }
    }
    encode::end_head(out);
}

/// The fields of the upstream request head, whichever protocol carries it:
/// Host first (an HTTP/2 upstream takes it as `:authority`), the client's
/// fields less the hop-by-hop and proxy-owned ones, then the forwarding
/// fields. Framing is the protocol's (`request_head` for HTTP/1.1).
pub fn request_fields<S: FieldSink>(r: &RequestRewrite, out: &mut S) {
    let buf = &r.head.buf[..];
    let host: &[u8] = match (r.preserve_host, r.host) {
        (true, Some(h)) => h,
        _ => r.upstream_authority.as_bytes(),
    };
    out.field(b"Host", host);

    let mut xff_seen = false;
    let mut fwd_seen = false;
    for (name, value) in r.head.headers() {
        if is_hop_by_hop(name)
            || is_proxy_owned(name)
            || named_in(name, &r.meta.connection_names, buf)
            || hidden_by(r.hidden, name)
            || hidden_by(r.dropped, name)
            || (!r.tracestate && eq_ignore_case(name, b"tracestate"))
        {
            continue;
        }
        if eq_ignore_case(name, b"x-forwarded-for") {
            // Several fields are one list (RFC 9110 §5.3); they are merged
            // below into a single field with the peer appended.
            xff_seen = true;
            continue;
        }
        if r.forwarded.is_some() && eq_ignore_case(name, b"forwarded") {
            // Merged below with ours, or replaced by it.
            fwd_seen = true;
            continue;
        }
        out.field(name, value);
    }
    // ringway's forwarding fields, unless `request_headers` names them.
    let ours = |name: &[u8]| !hidden_by(r.hidden, name);
    if ours(b"x-forwarded-for") {
        out.list(
            b"X-Forwarded-For",
            xff_seen.then(|| {
                r.head
                    .headers()
                    // An empty field adds nothing to the list (RFC 9110 §5.6.1).
                    .filter(|(n, v)| eq_ignore_case(n, b"x-forwarded-for") && !v.trim_ascii().is_empty())
                    .map(|(_, v)| v)
            }),
            r.peer.as_bytes(),
        );
    }
    if let Some(f) = r.forwarded.as_ref().filter(|_| ours(b"forwarded")) {
        let mut element = Vec::with_capacity(64);
        crate::http::forwarded::element(&mut element, r.peer.as_bytes(), r.https, r.host, f.by);
        out.list(
            b"Forwarded",
            (fwd_seen && f.keep).then(|| {
                r.head
                    .headers()
                    .filter(|(n, v)| eq_ignore_case(n, b"forwarded") && !v.trim_ascii().is_empty())
                    .map(|(_, v)| v)
            }),
            &element,
        );
    }
    if ours(b"x-real-ip") {
        out.field(b"X-Real-IP", r.client.as_bytes());
    }
    if ours(b"x-forwarded-proto") {
        out.field(b"X-Forwarded-Proto", if r.https { b"https" } else { b"http" });
    }
    if let Some(subject) = r.client_cert_subject {
        out.field(b"X-Client-Cert-Subject", subject);
    }
    if let Some(h) = r.host.filter(|_| ours(b"x-forwarded-host")) {
        out.field(b"X-Forwarded-Host", h);
    }
    if ours(b"x-forwarded-port") {
        out.field(b"X-Forwarded-Port", r.local_port.as_bytes());
    }
    if ours(b"x-request-id") && !r.request_id.is_empty() {
        out.field(b"X-Request-ID", r.request_id);
    }
    if let Some(tp) = r.traceparent {
        out.field(b"traceparent", tp);
    }
    lines_into(r.extra, out);
}

/// How the response body is framed toward the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientFraming {
    None,
    Length(u64),
    Chunked,
    /// HTTP/1.0 client and a body of unknown length: ends when we close.
    Close,
}

pub fn client_framing(body: BodyKind, client: Version) -> ClientFraming {
    match body {
        BodyKind::Empty => ClientFraming::None,
        BodyKind::Length(n) => ClientFraming::Length(n),
        BodyKind::Chunked | BodyKind::UntilClose if client == Version::Http11 => ClientFraming::Chunked,
        BodyKind::Chunked | BodyKind::UntilClose => ClientFraming::Close,
    }
}

/// Inputs for the client response head.
pub struct ResponseRewrite<'a> {
    pub head: &'a ResponseHead,
    pub meta: &'a ResponseMeta,
    pub framing: ClientFraming,
    /// The original Content-Length is kept for a HEAD answer or a 304.
    pub head_request: bool,
    pub close: bool,
    pub client_version: Version,
    /// Fields ringway adds, each a whole line with its CRLF (`sticky`'s Set-Cookie).
    pub extra: &'a [u8],
    /// `response_headers`: upstream fields not passed on (lower-case: the
    /// removed ones, and where the rules apply, the replaced ones), and the
    /// fields added, whole lines.
    pub hidden: &'a [String],
    pub replaced: &'a [String],
    pub rules: &'a [u8],
    /// How an upstream's redirects are mapped; `None` for a local response.
    pub redirect: Option<&'a Redirect<'a>>,
    /// Our `Strict-Transport-Security` value (TLS, `hsts` set): it replaces
    /// any the upstream sent, so the client sees one policy.
    pub hsts: Option<&'a [u8]>,
    /// `compress`: the head edit of the response body stage (Vary, and
    /// with a coding Content-Encoding, no Content-Length, a weak ETag).
    pub compress: Option<crate::compress::Edit>,
    /// The request's id, returned as `X-Request-ID` in place of any the
    /// upstream sent.
    pub request_id: &'a [u8],
}

/// What a backend redirect is mapped from and to.
pub struct Redirect<'a> {
    pub upstream: &'a Upstream,
    pub location: &'a Location,
    pub pass: &'a ProxyPass,
    /// The client-facing host (Host as sent, port included).
    pub public_host: &'a [u8],
    /// The client connection is TLS: the URL given to it is `https://`.
    pub https: bool,
    /// The port the client connected to, named in the URL when `public_host`
    /// has none and it is not the default port of the client's scheme.
    pub local_port: &'a AddrText,
}

/// Where a response's fields go: an HTTP/1.1 head being written (`Vec<u8>`,
/// `name: value` lines) or an HTTP/2 header map. The policy of which fields
/// a client gets is written once, over this, for both protocols.
pub trait FieldSink {
    fn field(&mut self, name: &[u8], value: &[u8]);

    /// One field whose value is the items of `before` (if any) and `last`,
    /// joined with ", ".
    fn list<'v>(&mut self, name: &[u8], before: Option<impl Iterator<Item = &'v [u8]>>, last: &[u8]) {
        let mut joined = Vec::new();
        for v in before.into_iter().flatten() {
            joined.extend_from_slice(v);
            joined.extend_from_slice(b", ");
        }
        joined.extend_from_slice(last);
        self.field(name, &joined);
    }
}

impl FieldSink for Vec<u8> {
    #[inline]
    fn field(&mut self, name: &[u8], value: &[u8]) {
        encode::header(name, value, self);
    }

    #[inline]
    fn list<'v>(&mut self, name: &[u8], before: Option<impl Iterator<Item = &'v [u8]>>, last: &[u8]) {
        // Written in place: no joined value is built for HTTP/1.1.
        self.extend_from_slice(name);
        self.extend_from_slice(b": ");
        if let Some(items) = before {
            for v in items {
                self.extend_from_slice(v);
                self.extend_from_slice(b", ");
            }
        }
        self.extend_from_slice(last);
        self.extend_from_slice(b"\r\n");
    }
}

/// Fields given as whole `Name: value\r\n` lines (`sticky`'s Set-Cookie),
/// passed to a sink one by one.
pub fn lines_into<S: FieldSink>(lines: &[u8], out: &mut S) {
    if lines.is_empty() {
        return;
    }
    for line in lines.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Some(colon) = line.iter().position(|&b| b == b':') {
            out.field(&line[..colon], line[colon + 1..].trim_ascii());
        }
    }
}

/// An interim (1xx) response's fields as the client gets them: the
/// upstream's without the hop-by-hop ones and those its Connection names
/// (RFC 9110 §7.6.1), and with `Location` and `Content-Location` mapped as
/// the final response's would be (`redirect`; `None` for a 101, whose
/// fields are the tunnel's). A 1xx has no content, so no framing and no Date.
pub fn interim_fields<S: FieldSink>(head: &ResponseHead, redirect: Option<&Redirect>, out: &mut S) {
    let connection_names = || {
        head.headers()
            .filter(|(n, _)| eq_ignore_case(n, b"connection"))
            .flat_map(|(_, v)| crate::http::list_items(v))
    };
    for (name, value) in head.headers() {
        if is_hop_by_hop(name) || connection_names().any(|c| eq_ignore_case(c, name)) {
            continue;
        }
        if let Some(r) = redirect {
            if redirect_field(name, value, r, out) {
                continue;
            }
        }
        out.field(name, value);
    }
}

/// A `Location` or `Content-Location` naming the upstream, given to the
/// client mapped (`rewrite_redirect`); false when `name` is another field
/// or the value is left as it is.
fn redirect_field<S: FieldSink>(name: &[u8], value: &[u8], r: &Redirect, out: &mut S) -> bool {
    if !(eq_ignore_case(name, b"location") || eq_ignore_case(name, b"content-location")) {
        return false;
    }
    match rewrite_redirect(value, r) {
        Some(v) => {
            out.field(name, &v);
            true
        }
        None => false,
    }
}

/// An interim (1xx) response as an HTTP/1.1 client gets it.
pub fn interim_head(head: &ResponseHead, redirect: &Redirect, out: &mut Vec<u8>) {
    encode::status_line(head.status, head.reason(), out);
    interim_fields(head, Some(redirect), out);
    out.extend_from_slice(b"\r\n");
}

/// The fields of a client response head that do not depend on the client's
/// protocol: the upstream's own (hop-by-hop ones dropped, redirects mapped),
/// HSTS, Date, and what ringway adds. Framing and connection fields are the
/// protocol's: see `response_head` for HTTP/1.1.
pub fn response_fields<S: FieldSink>(r: &ResponseRewrite, dates: &Dates, out: &mut S) {
    let buf = &r.head.buf[..];
    let mut has_date = false;
    for (name, value) in r.head.headers() {
        let keep_length = eq_ignore_case(name, b"content-length") && (r.head_request || r.head.status == 304);
        if (is_hop_by_hop(name) && !keep_length)
            || named_in(name, &r.meta.connection_names, buf)
            || hidden_by(r.hidden, name)
            || hidden_by(r.replaced, name)
        {
            continue;
        }
        if r.hsts.is_some() && eq_ignore_case(name, b"strict-transport-security") {
            continue;
        }
        if !r.request_id.is_empty() && eq_ignore_case(name, b"x-request-id") {
            continue;
        }
        if r.redirect.is_some_and(|rd| redirect_field(name, value, rd, out)) {
            continue;
        }
        if let Some(e) = &r.compress {
            if e.field(r.head, name, value, out) {
                continue;
            }
        }
        has_date |= eq_ignore_case(name, b"date");
        out.field(name, value);
    }
    if let Some(e) = &r.compress {
        e.finish(r.head, out);
    }
    if let Some(v) = r.hsts {
        out.field(b"Strict-Transport-Security", v);
    }
    if !r.request_id.is_empty() {
        out.field(b"X-Request-ID", r.request_id);
    }
    // RFC 9110 §6.6.1: a recipient with a clock adds Date if the origin did not.
    if !has_date {
        out.field(b"Date", dates.http_date().as_bytes());
    }
    lines_into(r.extra, out);
    lines_into(r.rules, out);
}

pub fn response_head(r: &ResponseRewrite, dates: &Dates, out: &mut Vec<u8>) {
    encode::status_line(r.head.status, r.head.reason(), out);
    response_fields(r, dates, out);
    match r.framing {
        ClientFraming::Length(n) => encode::content_length(n, out),
        ClientFraming::Chunked => encode::header(b"Transfer-Encoding", b"chunked", out),
        ClientFraming::None | ClientFraming::Close => {}
    }
    if r.close {
        encode::header(b"Connection", b"close", out);
    } else if r.client_version == Version::Http10 {
        encode::header(b"Connection", b"keep-alive", out);
    }
    encode::end_head(out);
}

/// `http://<any server of the upstream>/v2/x` → `http://<public host>/api/x`
/// for a location `/api/` proxied to `http://app/v2/`. An upstream with TLS
/// redirects to itself as `https://`, and may know itself by its
/// `tls_server_name`. Other values: `None`.
///
/// The URL written is the one the client used, as nginx's
/// `proxy_redirect default` makes it (`$scheme://$host:$server_port`, the
/// port left out when it is the scheme's default): `https://` on a TLS
/// connection; the Host as the client sent it; and when that Host has no
/// port, the port the client connected to unless it is 80 for `http` or 443
/// for `https`. A request without a host gets the path alone, a relative
/// reference (RFC 9110 §10.2.2).
pub fn rewrite_redirect(value: &[u8], r: &Redirect) -> Option<Vec<u8>> {
    let tls = r.upstream.tls.as_ref();
    let (scheme, default_port): (&[u8], &[u8]) = match tls {
        Some(_) => (b"https://", b"443"),
        None => (b"http://", b"80"),
    };
    let rest = value.strip_prefix(scheme)?;
    let end = rest
        .iter()
        .position(|&b| b == b'/' || b == b'?')
        .unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    // `host` and `host:<default port>` are the same server.
    let same = |known: &[u8]| {
        eq_ignore_case(
            without_port(authority, default_port),
            without_port(known, default_port),
        )
    };
    let ours = same(r.upstream.name.as_bytes())
        || r.upstream
            .servers
            .iter()
            .any(|s| same(s.authority.as_bytes()) || same(s.addr_text.as_bytes()))
        || tls
            .and_then(|t| t.spec.server_name.as_deref())
            .is_some_and(|n| same(n.as_bytes()));
    if !ours {
        return None;
    }
    let mut out = Vec::with_capacity(value.len() + r.public_host.len() + 16);
    if !r.public_host.is_empty() {
        let (scheme, default_port): (&[u8], &[u8]) = if r.https {
            (b"https://", b"443")
        } else {
            (b"http://", b"80")
        };
        out.extend_from_slice(scheme);
        out.extend_from_slice(r.public_host);
        let port = r.local_port.as_bytes();
        if !has_port(r.public_host) && port != default_port {
            out.push(b':');
            out.extend_from_slice(port);
        }
    }
    match &r.pass.path {
        Some(p) if path.starts_with(p.as_bytes()) => {
            out.extend_from_slice(r.location.path.as_bytes());
            out.extend_from_slice(&path[p.len()..]);
        }
        _ if path.is_empty() => out.push(b'/'),
        _ => out.extend_from_slice(path),
    }
    Some(out)
}

/// True when a Host value ends in `:<port>` (`[::1]` has none, `[::1]:80` has).
fn has_port(host: &[u8]) -> bool {
    host.iter()
        .rposition(|&b| b == b':' || b == b']')
        .is_some_and(|i| host[i] == b':')
}

/// `authority` without a trailing `:<port>` when that port is `port`.
fn without_port<'a>(authority: &'a [u8], port: &[u8]) -> &'a [u8] {
    match authority.strip_suffix(port).and_then(|a| a.strip_suffix(b":")) {
        Some(host) if !host.is_empty() => host,
        _ => authority,
    }
}

#[cfg(test)]
#[path = "rewrite_tests.rs"]
mod tests;

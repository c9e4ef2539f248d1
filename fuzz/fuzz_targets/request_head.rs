//! The request head parser and framing, plus a differential check of the head
//! the proxy writes upstream.
//!
//! For every input:
//! - `parse_request` runs with small and with default limits. A complete head
//!   must lie inside the input and inside the limits, the small limits may
//!   only refuse what the default ones accept (never accept something else),
//!   and every prefix of a complete head must parse as "need more": whether a
//!   request is accepted must not depend on how it was split into reads.
//! - `request_meta` runs on every complete head.
//! - When both accept it and the proxy would forward it, the upstream head
//!   from `rewrite::request_head` must be read by the strict reference parser
//!   (`ringway_fuzz::reference`) with the same method, target and framing,
//!   and with every field forwarded unchanged except the documented rewrites.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use ringway::http::framing::{request_meta, RequestMeta};
use ringway::http::parse::{parse_request, HeadLimits, Parsed};
use ringway::http::{BodyKind, RequestHead};
use ringway::proxy::rewrite::{self, AddrText, RequestRewrite};
use ringway_fuzz::reference::{self, Body};
use ringway_fuzz::{escaped, XorShift};

const SMALL: HeadLimits = HeadLimits {
    max_request_line: 64,
    max_header_size: 256,
    max_headers: 8,
};

/// The config defaults (`max_request_line = 8k`, `max_header_size = 32k`,
/// `max_headers = 100`).
const DEFAULT: HeadLimits = HeadLimits {
    max_request_line: 8 * 1024,
    max_header_size: 32 * 1024,
    max_headers: 100,
};

const UPSTREAM_AUTHORITY: &str = "backend.internal:3000";

fuzz_target!(init: {
    // ringway forwards a request-target with visible characters outside
    // RFC 3986 (`|`, `{`, `"`, ...) as it came, as nginx does: the reference
    // parser judges targets by that policy, the rest of the head strictly.
    reference::LENIENT_TARGET.store(true, std::sync::atomic::Ordering::Relaxed);
}, |data: &[u8]| {
    let small = check_parse(data, &SMALL);
    let default = check_parse(data, &DEFAULT);
    if let Some(len) = small {
        assert_eq!(
            default,
            Some(len),
            "accepted with small limits but not the same with default ones: {}",
            escaped(data)
        );
    }
    let Some(len) = default else { return };
    let Ok(Parsed::Complete(parts, _)) = parse_request(data, &DEFAULT) else {
        unreachable!()
    };
    let head = parts.into_head(Bytes::copy_from_slice(&data[..len]));
    let _ = head.request_line();
    let _ = head.header("host");
    if let Ok(meta) = request_meta(&head) {
        assert!(
            !matches!(meta.body(), BodyKind::UntilClose),
            "a request framed until close: {}",
            escaped(data)
        );
        differential(&head, &meta);
    }
});

/// Parses with `limits` and checks what can be checked without a reference:
/// returns the head length when complete.
fn check_parse(data: &[u8], limits: &HeadLimits) -> Option<usize> {
    let (parts, len) = match parse_request(data, limits) {
        Err(_) => return None,
        Ok(Parsed::Partial) => {
            assert!(
                data.len() <= limits.max_header_size,
                "partial past max_header_size: {}",
                escaped(data)
            );
            return None;
        }
        Ok(Parsed::Complete(parts, len)) => (parts, len),
    };
    assert!(len <= data.len() && len <= limits.max_header_size, "head length {len}");
    assert!(parts.headers.len() <= limits.max_headers);
    for span in [parts.method, parts.target]
        .into_iter()
        .chain(parts.headers.iter().flat_map(|h| [h.name, h.value]))
    {
        assert!(span.start <= span.end && span.end as usize <= len, "span {span:?} outside the head");
    }
    // The same head arriving in two reads: the first must ask for more.
    let mut rng = XorShift::from_bytes(data);
    for cut in [len - 1, rng.step(len) - 1] {
        match parse_request(&data[..cut], limits) {
            Ok(Parsed::Partial) => {}
            other => panic!(
                "prefix {cut} of a complete {len}-byte head gave {:?}: {}",
                other.map(|p| matches!(p, Parsed::Partial)),
                escaped(data)
            ),
        }
    }
    Some(len)
}

/// What `proxy::phases::handle` does with a head before it is rewritten:
/// refuses CONNECT and TRACE and targets that are neither a path nor an
/// absolute http(s) URI, and takes the routing host from an absolute-form
/// authority. Returns the target and host that reach `rewrite::request_head`.
fn as_forwarded<'a>(head: &'a RequestHead, meta: &RequestMeta) -> Option<(Vec<u8>, Option<&'a [u8]>)> {
    if matches!(head.method(), b"CONNECT" | b"TRACE") {
        return None;
    }
    let target = head.target();
    let host_field = meta.host.map(|s| s.of(&head.buf));
    let strip = |p: &[u8]| {
        (target.len() >= p.len() && target[..p.len()].eq_ignore_ascii_case(p)).then(|| &target[p.len()..])
    };
    let (forwarded, host) = if target.first() == Some(&b'/') {
        // Origin-form goes upstream as received.
        (target.to_vec(), host_field)
    } else if let Some(rest) = strip(b"http://").or_else(|| strip(b"https://")) {
        // Absolute-form: the authority is the host; the path and query go
        // upstream in origin-form, dot segments removed.
        let end = rest
            .iter()
            .position(|&b| b == b'/' || b == b'?')
            .unwrap_or(rest.len());
        if end == 0 {
            return None;
        }
        let origin = &rest[end..];
        let q = origin.iter().position(|&b| b == b'?').unwrap_or(origin.len());
        let (path, query) = origin.split_at(q);
        let path: &[u8] = if path.is_empty() { b"/" } else { path };
        let path = ringway::route::normalize_path(path)?;
        ([&path[..], query].concat(), Some(&rest[..end]))
    } else {
        return None;
    };
    if let Some(h) = host {
        // phases::check_host
        let ok = h
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':' | b'[' | b']'));
        if !ok || h.starts_with(b".") {
            return None;
        }
    }
    Some((forwarded, host))
}

/// Fields the proxy always removes (RFC 9110 §7.6.1 hop-by-hop fields, the
/// framing fields it writes again, Expect which it answers itself) or sets
/// itself; compared by the checks below, not as forwarded fields.
const DROPPED: [&str; 13] = [
    "connection",
    "proxy-connection",
    "keep-alive",
    "te",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "expect",
    "host",
    "x-real-ip",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-port",
];

/// Fields the proxy documents as dropped though they are not hop-by-hop in
/// every reading: whether they are forwarded is not checked.
const MAY_DROP: [&str; 2] = ["trailer", "proxy-authenticate"];

fn is_one_of(name: &[u8], list: &[&str]) -> bool {
    list.iter().any(|n| name.eq_ignore_ascii_case(n.as_bytes()))
}

fn differential(head: &RequestHead, meta: &RequestMeta) {
    let Some((target, host)) = as_forwarded(head, meta) else {
        return;
    };
    let original = escaped(&head.buf);

    // Connection options name fields of this hop only (RFC 9110 §7.6.1),
    // read here independently of ringway's own list.
    let options: Vec<Vec<u8>> = head
        .headers()
        .filter(|(n, _)| n.eq_ignore_ascii_case(b"connection"))
        .flat_map(|(_, v)| v.split(|&b| b == b','))
        .map(|o| o.trim_ascii().to_ascii_lowercase())
        .filter(|o| !o.is_empty())
        .collect();
    let by_connection = |name: &[u8]| options.iter().any(|o| o.eq_ignore_ascii_case(name));
    // close and keep-alive are connection options that the proxy answers
    // itself; a field with one of those names is left alone.
    let removed_as_option = |name: &[u8]| {
        by_connection(name) && !name.eq_ignore_ascii_case(b"close") && !name.eq_ignore_ascii_case(b"keep-alive")
    };

    let kept = |name: &[u8]| {
        !is_one_of(name, &DROPPED)
            && !is_one_of(name, &MAY_DROP)
            && !name.eq_ignore_ascii_case(b"x-forwarded-for")
            && !removed_as_option(name)
    };
    let want_fields: Vec<(&[u8], &[u8])> = head.headers().filter(|(n, _)| kept(n)).collect();

    let mut want_xff = Vec::new();
    if !removed_as_option(b"x-forwarded-for") {
        for (_, v) in head
            .headers()
            .filter(|(n, _)| n.eq_ignore_ascii_case(b"x-forwarded-for"))
        {
            if !v.trim_ascii().is_empty() {
                want_xff.extend_from_slice(v);
                want_xff.extend_from_slice(b", ");
            }
        }
    }
    want_xff.extend_from_slice(b"192.0.2.7");

    let want_body = match meta.body() {
        BodyKind::Empty => Body::Empty,
        BodyKind::Length(n) => Body::Length(n),
        BodyKind::Chunked => Body::Chunked,
        BodyKind::UntilClose => unreachable!(),
    };

    let peer = AddrText::ip("192.0.2.7".parse().unwrap());
    let port = AddrText::port(8080);
    for preserve_host in [true, false] {
        let mut out = Vec::new();
        rewrite::request_head(
            &RequestRewrite {
                head,
                meta,
                target: &target,
                host,
                preserve_host,
                upstream_authority: UPSTREAM_AUTHORITY,
                peer: &peer,
                client: &peer,
                local_port: &port,
                https: false,
                client_cert_subject: None,
            },
            &mut out,
        );
        let sent = escaped(&out);
        let r = match reference::parse_request(&out) {
            Ok(r) => r,
            Err(why) => panic!("reference parser refused the upstream head ({why})\n original: {original}\n upstream: {sent}"),
        };
        let ctx = || format!("\n original: {original}\n upstream: {sent}");
        assert_eq!(r.method, head.method(), "method{}", ctx());
        assert_eq!(r.target, &target[..], "target{}", ctx());
        assert_eq!(r.minor, 1, "version{}", ctx());
        assert_eq!(r.body, want_body, "framing{}", ctx());

        let got_fields: Vec<(&[u8], &[u8])> = r.fields.iter().copied().filter(|(n, _)| kept(n)).collect();
        assert_eq!(
            got_fields.iter().map(|(n, v)| (escaped(n), escaped(v))).collect::<Vec<_>>(),
            want_fields.iter().map(|(n, v)| (escaped(n), escaped(v))).collect::<Vec<_>>(),
            "forwarded fields{}",
            ctx()
        );
        for (n, _) in &r.fields {
            assert!(
                !is_one_of(n, &["connection", "proxy-connection", "keep-alive", "te", "upgrade", "expect"])
                    && !removed_as_option(n),
                "hop-by-hop field {} forwarded{}",
                escaped(n),
                ctx()
            );
        }

        let one = |name: &str| -> Option<Vec<u8>> {
            let all: Vec<&[u8]> = r.all(name).collect();
            assert!(all.len() <= 1, "{name} sent {} times{}", all.len(), ctx());
            all.first().map(|v| v.to_vec())
        };
        let want_host: &[u8] = match (preserve_host, host) {
            (true, Some(h)) => h,
            _ => UPSTREAM_AUTHORITY.as_bytes(),
        };
        assert_eq!(one("host").as_deref(), Some(want_host.trim_ascii()), "Host{}", ctx());
        assert_eq!(one("x-forwarded-for").as_deref(), Some(&want_xff[..]), "X-Forwarded-For{}", ctx());
        assert_eq!(one("x-real-ip").as_deref(), Some(&b"192.0.2.7"[..]), "X-Real-IP{}", ctx());
        assert_eq!(one("x-forwarded-proto").as_deref(), Some(&b"http"[..]), "X-Forwarded-Proto{}", ctx());
        assert_eq!(one("x-forwarded-port").as_deref(), Some(&b"8080"[..]), "X-Forwarded-Port{}", ctx());
        assert_eq!(
            one("x-forwarded-host").as_deref(),
            host.map(<[u8]>::trim_ascii),
            "X-Forwarded-Host{}",
            ctx()
        );
    }
}

//! The HTTP/2 keys of a server block: `http2` (a switch, or a table of
//! limits that implies on) and `h2c` (cleartext HTTP/2 with prior
//! knowledge), and their agreement between blocks sharing an address.
//!
//! The defaults are nginx's where nginx has one. h2's own defaults are not
//! safe for a proxy (unlimited concurrent streams, 16 MiB header lists), so
//! every setting the codec gets comes from here.

use std::ops::Range;

use super::*;
use crate::config::raw::{BoolOrHttp2, RawHttp2, RawUpstream};
use crate::config::{Http2, Upstream, UpstreamProtocol};

/// RFC 9113 §6.5.2: SETTINGS_MAX_FRAME_SIZE lies between 2^14 and 2^24-1.
const FRAME_MIN: u64 = 1 << 14;
const FRAME_MAX: u64 = (1 << 24) - 1;
/// RFC 9113 §6.9.1: a window cannot exceed 2^31-1.
const WINDOW_MAX: u64 = (1 << 31) - 1;

pub(super) fn check(c: &mut Checker, r: &RawServer, key: &str, limits: &ClientLimits) -> Http2 {
    let tls = r.tls.is_some();
    let h2c = r.h2c.as_ref().is_some_and(|v| *v.get_ref());
    let mut h = Http2 {
        tls_alpn: tls,
        h2c,
        max_concurrent_streams: 128,
        initial_window: 64 << 10,
        max_frame_size: 16 << 10,
        max_header_list: u32::try_from(limits.max_header_size).unwrap_or(u32::MAX),
        idle_timeout: Duration::from_secs(180),
    };
    if let (Some(v), true) = (&r.h2c, tls) {
        if *v.get_ref() {
            c.error(
                v.span(),
                format!("{key}.h2c"),
                "h2c is cleartext HTTP/2, for blocks without tls; over TLS, HTTP/2 is on by default (http2 = true)",
            );
        }
    }
    let Some(v) = &r.http2 else { return h };
    let k = format!("{key}.http2");
    match v.get_ref() {
        BoolOrHttp2::Bool(false) if h2c => {
            c.error(v.span(), k, "http2 = false contradicts h2c = true: remove one");
            h.h2c = false;
        }
        BoolOrHttp2::Bool(false) => h.tls_alpn = false,
        BoolOrHttp2::Bool(true) | BoolOrHttp2::Limits(_) if !tls && !h2c => {
            c.error(
                v.span(),
                k,
                "this block has no tls: cleartext HTTP/2 is h2c = true (with prior knowledge; the Upgrade: h2c handshake is not supported, as RFC 9113 deprecates it)",
            );
        }
        BoolOrHttp2::Bool(true) => {}
        BoolOrHttp2::Limits(l) => limits_into(c, l, v.span(), &k, &mut h),
    }
    h
}

fn limits_into(c: &mut Checker, l: &RawHttp2, span: Range<usize>, key: &str, h: &mut Http2) {
    let k = |name: &str| format!("{key}.{name}");
    // The values have no spans of their own: they are re-wrapped with the
    // table's, so the shared checks can point at it.
    let at = |v: &StrOrInt| Spanned::new(span.clone(), v.clone());
    if let Some(v) = l.max_concurrent_streams {
        match u32::try_from(v) {
            Ok(n) if n > 0 => h.max_concurrent_streams = n,
            _ => c.error(
                span.clone(),
                k("max_concurrent_streams"),
                "must be a whole number above 0",
            ),
        }
    }
    let sized = |c: &mut Checker, v: &Option<StrOrInt>, name: &str, lo: u64, hi: u64, out: &mut u32| {
        let Some(v) = v else { return };
        if let Some(n) = c.size(&at(v), &k(name)) {
            if (lo..=hi).contains(&n) {
                *out = n as u32;
            } else {
                c.error(
                    span.clone(),
                    k(name),
                    format!("must lie between {lo} and {hi} bytes"),
                );
            }
        }
    };
    sized(
        c,
        &l.initial_window,
        "initial_window",
        1,
        WINDOW_MAX,
        &mut h.initial_window,
    );
    sized(
        c,
        &l.max_frame_size,
        "max_frame_size",
        FRAME_MIN,
        FRAME_MAX,
        &mut h.max_frame_size,
    );
    sized(
        c,
        &l.max_header_list,
        "max_header_list",
        1024,
        u32::MAX as u64,
        &mut h.max_header_list,
    );
    let idle = l
        .idle_timeout
        .as_ref()
        .map(|t| Spanned::new(span.clone(), t.clone()));
    h.idle_timeout = c.duration(&idle, &k("idle_timeout"), h.idle_timeout);
    if h.idle_timeout.is_zero() {
        c.error(span.clone(), k("idle_timeout"), "must be above 0");
    }
}

/// Blocks that share an address share its connections, and a connection's
/// protocol is chosen before any Host is known: they must agree.
pub(super) fn check_addresses(c: &mut Checker, raw: &RawConfig, servers: &[Server]) {
    let mut first: HashMap<SocketAddr, usize> = HashMap::new();
    for (i, s) in servers.iter().enumerate() {
        for addr in &s.listen {
            let Some(&j) = first.get(addr) else {
                first.insert(*addr, i);
                continue;
            };
            let o = &servers[j];
            if o.tls.is_some() != s.tls.is_some() {
                // Mixing TLS and plain on an address is its own error.
                continue;
            }
            let what = if o.http2.tls_alpn != s.http2.tls_alpn {
                Some(("http2", o.http2.tls_alpn))
            } else if o.http2.h2c != s.http2.h2c {
                Some(("h2c", o.http2.h2c))
            } else {
                None
            };
            if let Some((name, theirs)) = what {
                let span = match name {
                    "h2c" => raw.server[i].get_ref().h2c.as_ref().map(|v| v.span()),
                    _ => raw.server[i].get_ref().http2.as_ref().map(|v| v.span()),
                };
                c.error(
                    span.unwrap_or_else(|| raw.server[i].span()),
                    format!("server[{i}].{name}"),
                    format!(
                        "{addr} is shared with server[{j}], where {name} is {}: blocks on one address must agree",
                        if theirs { "on" } else { "off" }
                    ),
                );
            }
        }
    }
}

/// `protocol` and `h2_connections` of an `[[upstream]]`. With TLS, ALPN
/// offers only h2: a server that cannot speak it fails the handshake, which
/// is clearer than a garbled exchange.
pub(super) fn check_upstream(c: &mut Checker, u: &RawUpstream, key: &str, up: &mut Upstream) -> bool {
    let mut ok = true;
    if let Some(p) = &u.protocol {
        match p.get_ref().as_str() {
            "http1" | "http/1.1" => up.protocol = UpstreamProtocol::Http1,
            "h2" | "http2" => up.protocol = UpstreamProtocol::H2,
            other => {
                c.error(
                    p.span(),
                    format!("{key}.protocol"),
                    format!("unknown protocol {other:?} (one of: \"http1\", \"h2\")"),
                );
                ok = false;
            }
        }
    }
    if let Some(n) = &u.h2_connections {
        match usize::try_from(*n.get_ref()) {
            Ok(v) if (1..=64).contains(&v) && up.protocol == UpstreamProtocol::H2 => up.h2_connections = v,
            Ok(_) | Err(_) if up.protocol == UpstreamProtocol::H2 => {
                c.error(n.span(), format!("{key}.h2_connections"), "must be from 1 to 64");
                ok = false;
            }
            _ => {
                c.error(
                    n.span(),
                    format!("{key}.h2_connections"),
                    "only applies with protocol = \"h2\"",
                );
                ok = false;
            }
        }
    }
    if let (Some(tls), UpstreamProtocol::H2) = (&mut up.tls, up.protocol) {
        let mut client = (*tls.client).clone();
        client.alpn_protocols = vec![b"h2".to_vec()];
        tls.client = std::sync::Arc::new(client);
    }
    ok
}

//! RFC 7239 `Forwarded`: the element a proxy adds for its hop, and the
//! `for=` nodes of the elements a request arrived with.

use std::net::IpAddr;

/// Writes this hop's element, `for=NODE;proto=P[;host=H][;by=B]`, with
/// the peer as the connection already wrote it (`AddrText`): IPv6 nodes
/// quoted in brackets (§6), a host that is not a token quoted; `by` as
/// [`by_node`] rendered it at load.
pub fn element(out: &mut Vec<u8>, peer: &[u8], https: bool, host: Option<&[u8]>, by: Option<&str>) {
    out.extend_from_slice(b"for=");
    node(out, peer);
    out.extend_from_slice(if https { b";proto=https" } else { b";proto=http" });
    if let Some(h) = host {
        out.extend_from_slice(b";host=");
        value(out, h);
    }
    if let Some(b) = by {
        out.extend_from_slice(b";by=");
        out.extend_from_slice(b.as_bytes());
    }
}

/// `forwarded_by` as its `by=` value: an address as a node, a name as it is.
pub fn by_node(by: &str) -> String {
    let mut out = Vec::new();
    match by.parse::<IpAddr>() {
        Ok(ip) => node(&mut out, ip.to_canonical().to_string().as_bytes()),
        Err(_) => value(&mut out, by.as_bytes()),
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An address as text: IPv6 (it has colons) quoted in brackets.
fn node(out: &mut Vec<u8>, addr: &[u8]) {
    if addr.contains(&b':') {
        out.extend_from_slice(b"\"[");
        out.extend_from_slice(addr);
        out.extend_from_slice(b"]\"");
    } else {
        out.extend_from_slice(addr);
    }
}

/// A token as it is, anything else as a quoted-string.
fn value(out: &mut Vec<u8>, v: &[u8]) {
    if !v.is_empty() && v.iter().all(|&b| is_tchar(b)) {
        out.extend_from_slice(v);
        return;
    }
    out.push(b'"');
    for &b in v {
        if b == b'"' || b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'"');
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Whether `by` is a node this proxy may name itself by: an IP address or
/// an obfuscated identifier (`_` and letters, digits, `.`, `_`, `-`; §6.3).
pub fn valid_by(by: &str) -> bool {
    by.parse::<IpAddr>().is_ok()
        || (by.len() > 1
            && by.starts_with('_')
            && by
                .bytes()
                .skip(1)
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)))
}

/// The `for=` node of each element in `fields` (every `Forwarded` field
/// of a request, in order), as an address; `None` for an element without
/// one (`unknown`, an obfuscated name, no `for`, or one that does not parse).
pub fn for_nodes<'a>(fields: impl Iterator<Item = &'a [u8]>) -> Vec<Option<IpAddr>> {
    let mut out = Vec::new();
    for field in fields {
        for element in split_outside_quotes(field, b',') {
            if element.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let mut found = None;
            for pair in split_outside_quotes(element, b';') {
                let pair = pair.trim_ascii();
                let Some(eq) = pair.iter().position(|&b| b == b'=') else {
                    continue;
                };
                if pair[..eq].trim_ascii().eq_ignore_ascii_case(b"for") {
                    found = node_addr(&unquote(pair[eq + 1..].trim_ascii()));
                }
            }
            out.push(found);
        }
    }
    out
}

/// Pieces of `v` between `sep`s that are not inside a quoted-string.
fn split_outside_quotes(v: &[u8], sep: u8) -> Vec<&[u8]> {
    let (mut parts, mut start, mut quoted, mut escaped) = (Vec::new(), 0, false, false);
    for (i, &b) in v.iter().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            _ if b == sep && !quoted => {
                parts.push(&v[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&v[start..]);
    parts
}

fn unquote(v: &[u8]) -> Vec<u8> {
    match v.strip_prefix(b"\"").and_then(|v| v.strip_suffix(b"\"")) {
        None => v.to_vec(),
        Some(inner) => {
            let mut out = Vec::with_capacity(inner.len());
            let mut escaped = false;
            for &b in inner {
                if !escaped && b == b'\\' {
                    escaped = true;
                    continue;
                }
                escaped = false;
                out.push(b);
            }
            out
        }
    }
}

/// `192.0.2.1`, `192.0.2.1:80`, `[2001:db8::1]`, `[2001:db8::1]:80`.
fn node_addr(v: &[u8]) -> Option<IpAddr> {
    let s = std::str::from_utf8(v).ok()?;
    let host = match s.strip_prefix('[') {
        Some(rest) => rest.split(']').next()?,
        None => s.split(':').next()?,
    };
    host.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn el(client: &str, https: bool, host: Option<&str>, by: Option<&str>) -> String {
        let mut out = Vec::new();
        let peer = crate::proxy::rewrite::AddrText::ip(client.parse().unwrap());
        let by = by.map(by_node);
        element(
            &mut out,
            peer.as_bytes(),
            https,
            host.map(str::as_bytes),
            by.as_deref(),
        );
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn elements_quote_what_is_not_a_token() {
        assert_eq!(
            el("192.0.2.60", false, Some("a.example"), None),
            "for=192.0.2.60;proto=http;host=a.example"
        );
        assert_eq!(
            el("2001:db8::1", true, Some("a.example:8443"), Some("_edge-1")),
            "for=\"[2001:db8::1]\";proto=https;host=\"a.example:8443\";by=_edge-1"
        );
        assert_eq!(
            el("::ffff:10.0.0.1", false, None, Some("::1")),
            "for=10.0.0.1;proto=http;by=\"[::1]\""
        );
    }

    #[test]
    fn for_nodes_of_every_element_in_order() {
        let f = [
            &b"for=192.0.2.43, for=\"[2001:db8:cafe::17]:4711\";proto=https"[..],
            b"For=unknown;by=_x, proto=http;for=_hidden, host=\"a,b\";for=198.51.100.17:80",
            b"for=\"not an address\", ,",
        ];
        let got = for_nodes(f.into_iter());
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        assert_eq!(
            got,
            vec![
                ip("192.0.2.43"),
                ip("2001:db8:cafe::17"),
                None,
                None,
                ip("198.51.100.17"),
                None
            ]
        );
    }

    #[test]
    fn by_is_an_address_or_an_obfuscated_name() {
        for ok in ["10.0.0.1", "2001:db8::1", "_edge", "_a.b-c_d"] {
            assert!(valid_by(ok), "{ok}");
        }
        for bad in ["edge", "_", "_a b", "_a:1", "unknown", ""] {
            assert!(!valid_by(bad), "{bad}");
        }
    }
}

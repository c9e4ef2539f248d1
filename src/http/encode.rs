//! Writing heads: request and status lines and header fields, appended to a
//! reusable output buffer. Which fields to write is decided in
//! `proxy::rewrite`; this module only knows the syntax.

use super::{eq_ignore_case, Span};

#[inline]
pub fn request_line(method: &[u8], target: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(method);
    out.push(b' ');
    out.extend_from_slice(target);
    out.extend_from_slice(b" HTTP/1.1\r\n");
}

#[inline]
pub fn status_line(status: u16, reason: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(b"HTTP/1.1 ");
    let mut digits = [b'0'; 3];
    digits[0] += (status / 100 % 10) as u8;
    digits[1] += (status / 10 % 10) as u8;
    digits[2] += (status % 10) as u8;
    out.extend_from_slice(&digits);
    out.push(b' ');
    out.extend_from_slice(if reason.is_empty() {
        reason_phrase(status).as_bytes()
    } else {
        reason
    });
    out.extend_from_slice(b"\r\n");
}

#[inline]
pub fn header(name: &[u8], value: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// `Content-Length: n`.
pub fn content_length(n: u64, out: &mut Vec<u8>) {
    header(b"Content-Length", itoa::Buffer::new().format(n).as_bytes(), out);
}

#[inline]
pub fn end_head(out: &mut Vec<u8>) {
    out.extend_from_slice(b"\r\n");
}

/// Fields that describe one connection, never forwarded (RFC 9110 §7.6.1),
/// plus the framing fields that the proxy writes again for each side.
pub fn is_hop_by_hop(name: &[u8]) -> bool {
    const HOP: [&[u8]; 9] = [
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"content-length",
        b"proxy-authenticate",
    ];
    // Cheap length filter before the case-insensitive compare.
    HOP.iter()
        .any(|h| h.len() == name.len() && eq_ignore_case(h, name))
}

/// True for a token character of a field name (RFC 9110 §5.6.2).
pub fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// True if a trailer may carry the field `name` on to the other side: not
/// a hop-by-hop or framing field, nor `Host` (RFC 9110 §6.5.1 forbids
/// framing and routing fields in trailers).
pub fn allowed_in_trailers(name: &[u8]) -> bool {
    !is_hop_by_hop(name) && !eq_ignore_case(name, b"host")
}

/// True if `name` is one of the fields a Connection header listed.
pub fn named_in(name: &[u8], listed: &[Span], buf: &[u8]) -> bool {
    listed.iter().any(|s| eq_ignore_case(s.of(buf), name))
}

/// The standard reason phrase for a status (RFC 9110 §15).
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_lines() {
        let mut out = Vec::new();
        status_line(502, b"", &mut out);
        content_length(0, &mut out);
        content_length(1234567, &mut out);
        end_head(&mut out);
        assert_eq!(
            out,
            b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nContent-Length: 1234567\r\n\r\n"
        );
    }

    #[test]
    fn hop_by_hop_names() {
        assert!(is_hop_by_hop(b"Connection"));
        assert!(is_hop_by_hop(b"TE"));
        assert!(is_hop_by_hop(b"transfer-encoding"));
        assert!(!is_hop_by_hop(b"Content-Type"));
        assert!(!is_hop_by_hop(b"T"));
    }
}

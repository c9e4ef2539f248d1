//! Message framing: how long a body is, and what the connection headers say.
//!
//! This is where request smuggling is stopped. A request whose length could be
//! read two ways (RFC 9112 §6.1, §6.3, §11.2) is refused here, before routing,
//! so an ambiguous message never reaches an upstream.

use super::{eq_ignore_case, list_items, HttpError, RequestHead, ResponseHead, Span, Version};

/// How a message body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    Empty,
    Length(u64),
    Chunked,
    /// Responses only: the body runs until the upstream closes (RFC 9112 §6.3 item 8).
    UntilClose,
}

/// What the proxy needs to know about a request beyond its line.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    pub body: Option<BodyKind>,
    /// The single Host field, if any.
    pub host: Option<Span>,
    /// `Connection: close`, or HTTP/1.0 without `keep-alive`.
    pub close: bool,
    /// `Expect: 100-continue` from an HTTP/1.1 client.
    pub expect_continue: bool,
    /// Header names listed in Connection (hop-by-hop for this message only).
    pub connection_names: Vec<Span>,
}

impl RequestMeta {
    pub fn body(&self) -> BodyKind {
        self.body.unwrap_or(BodyKind::Empty)
    }
}

/// What the proxy needs to know about a response head.
#[derive(Debug, Clone)]
pub struct ResponseMeta {
    pub body: BodyKind,
    /// The upstream will close, or did not offer keep-alive.
    pub close: bool,
    pub connection_names: Vec<Span>,
}

/// A Content-Length value: `1*DIGIT`, with repeats allowed only when identical
/// (RFC 9110 §8.6: a list of equal values may be collapsed; anything else is invalid).
fn content_length(current: Option<u64>, value: &[u8]) -> Result<u64, &'static str> {
    let mut len = current;
    let mut any = false;
    for item in value.split(|&b| b == b',') {
        let item = item.trim_ascii();
        if item.is_empty() || item.len() > 19 || !item.iter().all(u8::is_ascii_digit) {
            return Err("invalid Content-Length");
        }
        // At most 19 digits: parsing cannot overflow u64.
        let n = item.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
        if len.is_some_and(|l| l != n) {
            return Err("conflicting Content-Length values");
        }
        len = Some(n);
        any = true;
    }
    if !any {
        return Err("invalid Content-Length");
    }
    Ok(len.unwrap_or(0))
}

/// Reads connection-level facts from a request head and decides its framing.
pub fn request_meta(head: &RequestHead) -> Result<RequestMeta, HttpError> {
    let buf = &head.buf[..];
    let mut meta = RequestMeta::default();
    let mut length: Option<u64> = None;
    let mut te_seen = false;
    let mut te_chunked_last = false;
    let mut te_other = false;
    let mut keep_alive = false;
    let mut hosts = 0;
    for h in &head.headers {
        let (name, value) = (h.name.of(buf), h.value.of(buf));
        if eq_ignore_case(name, b"content-length") {
            length = Some(content_length(length, value).map_err(HttpError::Malformed)?);
        } else if eq_ignore_case(name, b"transfer-encoding") {
            te_seen = true;
            for coding in list_items(value) {
                if te_chunked_last {
                    // chunked must be the final coding and appear once (RFC 9112 §7).
                    te_other = true;
                }
                if eq_ignore_case(coding, b"chunked") {
                    te_chunked_last = true;
                } else {
                    te_other = true;
                }
            }
        } else if eq_ignore_case(name, b"host") {
            hosts += 1;
            meta.host = Some(h.value);
        } else if eq_ignore_case(name, b"connection") {
            for token in list_items(value) {
                if eq_ignore_case(token, b"close") {
                    meta.close = true;
                } else if eq_ignore_case(token, b"keep-alive") {
                    keep_alive = true;
                } else {
                    meta.connection_names.push(Span::within(buf, token));
                }
            }
        } else if eq_ignore_case(name, b"expect") {
            if eq_ignore_case(value.trim_ascii(), b"100-continue") {
                // RFC 9110 §10.1.1: an HTTP/1.0 client's Expect is ignored.
                meta.expect_continue = head.version == Version::Http11;
            } else {
                return Err(HttpError::Expectation);
            }
        }
    }

    // RFC 9112 §3.2: exactly one Host in HTTP/1.1; more than one is always an error.
    if hosts > 1 {
        return Err(HttpError::Malformed("more than one Host header"));
    }
    if hosts == 0 && head.version == Version::Http11 {
        return Err(HttpError::Malformed("HTTP/1.1 request without Host"));
    }
    if head.version == Version::Http10 && !keep_alive {
        meta.close = true;
    }

    meta.body = Some(if te_seen {
        // Content-Length next to Transfer-Encoding is the classic smuggling
        // vector (RFC 9112 §6.1, §11.2): refuse rather than pick one.
        if length.is_some() {
            return Err(HttpError::Malformed("both Content-Length and Transfer-Encoding"));
        }
        // HTTP/1.0 has no chunked coding; a 1.0 request claiming it is suspect.
        if head.version == Version::Http10 {
            return Err(HttpError::Malformed("Transfer-Encoding in an HTTP/1.0 request"));
        }
        // Only chunked is understood; a request whose length we cannot
        // determine must be refused (RFC 9112 §6.3 item 4).
        if te_other || !te_chunked_last {
            return Err(HttpError::Malformed("Transfer-Encoding other than chunked"));
        }
        BodyKind::Chunked
    } else {
        match length {
            Some(0) | None => BodyKind::Empty,
            Some(n) => BodyKind::Length(n),
        }
    });
    Ok(meta)
}

/// Decides how a response body is framed (RFC 9112 §6.3), given the request
/// method it answers. An upstream that frames ambiguously is an upstream error.
pub fn response_meta(head: &ResponseHead, head_request: bool) -> Result<ResponseMeta, HttpError> {
    let buf = &head.buf[..];
    let mut length: Option<u64> = None;
    let mut te_seen = false;
    let mut te_chunked_last = false;
    let mut close = false;
    let mut keep_alive = false;
    let mut connection_names = Vec::new();
    for h in &head.headers {
        let (name, value) = (h.name.of(buf), h.value.of(buf));
        if eq_ignore_case(name, b"content-length") {
            length = Some(content_length(length, value).map_err(HttpError::Malformed)?);
        } else if eq_ignore_case(name, b"transfer-encoding") {
            te_seen = true;
            for coding in list_items(value) {
                te_chunked_last = eq_ignore_case(coding, b"chunked");
            }
        } else if eq_ignore_case(name, b"connection") {
            for token in list_items(value) {
                if eq_ignore_case(token, b"close") {
                    close = true;
                } else if eq_ignore_case(token, b"keep-alive") {
                    keep_alive = true;
                } else {
                    connection_names.push(Span::within(buf, token));
                }
            }
        }
    }
    if head.version == Version::Http10 && !keep_alive {
        close = true;
    }
    // §6.3 items 1-2: HEAD answers and 1xx/204/304 never have a body.
    let bodiless = head_request || head.status < 200 || head.status == 204 || head.status == 304;
    let body = if bodiless {
        BodyKind::Empty
    } else if te_seen {
        if length.is_some() {
            return Err(HttpError::Malformed("both Content-Length and Transfer-Encoding"));
        }
        if te_chunked_last {
            BodyKind::Chunked
        } else {
            // §6.3 item 4: not chunked last, so the body ends at close.
            close = true;
            BodyKind::UntilClose
        }
    } else {
        match length {
            // Length(0), not Empty: the client must be told the length too.
            Some(n) => BodyKind::Length(n),
            None => {
                close = true;
                BodyKind::UntilClose
            }
        }
    };
    Ok(ResponseMeta {
        body,
        close,
        connection_names,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::parse::{parse_request, parse_response, HeadLimits, Parsed};
    use bytes::Bytes;

    fn head(raw: &str) -> RequestHead {
        let limits = HeadLimits {
            max_request_line: 8192,
            max_header_size: 8192,
            max_headers: 64,
        };
        match parse_request(raw.as_bytes(), &limits).unwrap() {
            Parsed::Complete(p, n) => p.into_head(Bytes::copy_from_slice(&raw.as_bytes()[..n])),
            Parsed::Partial => panic!("partial"),
        }
    }

    fn meta(raw: &str) -> Result<RequestMeta, HttpError> {
        request_meta(&head(raw))
    }

    #[test]
    fn request_framing() {
        let m = meta("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n").unwrap();
        assert_eq!(m.body(), BodyKind::Length(5));
        let m = meta("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
        assert_eq!(m.body(), BodyKind::Chunked);
        let m = meta("GET / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
        assert_eq!(m.body(), BodyKind::Empty);
        // Identical repeats collapse (RFC 9110 §8.6).
        let m = meta("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\nContent-Length: 3\r\n\r\n");
        assert_eq!(m.unwrap().body(), BodyKind::Length(3));
    }

    #[test]
    fn smuggling_shapes_are_refused() {
        for bad in [
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n",
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET / HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        ] {
            assert!(
                matches!(meta(bad), Err(HttpError::Malformed(_))),
                "accepted {bad:?}"
            );
        }
        assert_eq!(
            meta("PUT / HTTP/1.1\r\nHost: a\r\nExpect: magic\r\n\r\n").unwrap_err(),
            HttpError::Expectation
        );
    }

    #[test]
    fn connection_semantics() {
        let m = meta("GET / HTTP/1.0\r\n\r\n").unwrap();
        assert!(m.close);
        let m = meta("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").unwrap();
        assert!(!m.close);
        let m = meta("GET / HTTP/1.1\r\nHost: a\r\nConnection: close, X-Foo\r\n\r\n").unwrap();
        assert!(m.close);
        let h = head("GET / HTTP/1.1\r\nHost: a\r\nConnection: X-Foo\r\n\r\n");
        let m = request_meta(&h).unwrap();
        assert_eq!(m.connection_names.len(), 1);
        assert_eq!(m.connection_names[0].of(&h.buf), b"X-Foo");
        let m = meta("PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n");
        assert!(m.unwrap().expect_continue);
        let m = meta("PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n");
        assert!(!m.unwrap().expect_continue);
    }

    fn rmeta(raw: &str, head_req: bool) -> Result<ResponseMeta, HttpError> {
        match parse_response(raw.as_bytes(), 64).unwrap() {
            Parsed::Complete(mut h, n) => {
                h.buf = Bytes::copy_from_slice(&raw.as_bytes()[..n]);
                response_meta(&h, head_req)
            }
            Parsed::Partial => panic!("partial"),
        }
    }

    #[test]
    fn response_framing() {
        let r = |s, h| rmeta(s, h).unwrap().body;
        assert_eq!(
            r("HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n", false),
            BodyKind::Length(7)
        );
        assert_eq!(
            r("HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n", true),
            BodyKind::Empty
        );
        assert_eq!(r("HTTP/1.1 204 No Content\r\n\r\n", false), BodyKind::Empty);
        assert_eq!(
            r("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false),
            BodyKind::Length(0)
        );
        assert_eq!(
            r("HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n", false),
            BodyKind::Empty
        );
        assert_eq!(
            r("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false),
            BodyKind::Chunked
        );
        assert_eq!(r("HTTP/1.1 200 OK\r\n\r\n", false), BodyKind::UntilClose);
        assert!(rmeta("HTTP/1.1 200 OK\r\n\r\n", false).unwrap().close);
        assert!(
            rmeta("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", false)
                .unwrap()
                .close
        );
        assert!(rmeta(
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            false
        )
        .is_err());
        assert!(rmeta(
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            false
        )
        .is_err());
    }
}

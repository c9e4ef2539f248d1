//! Head parsing: request and response heads from a read buffer.
//!
//! `parse_request` and `parse_response` look at the bytes received so far and
//! say either "need more" or "here is a head of N bytes". Limits are checked on
//! partial input too, so an endless request line is refused once it passes the
//! limit instead of being buffered forever.

use std::mem::MaybeUninit;

use bytes::Bytes;

use super::{HeaderSpan, HttpError, Span, Version};

/// Limits applied while a request head is still arriving.
#[derive(Debug, Clone, Copy)]
pub struct HeadLimits {
    pub max_request_line: usize,
    pub max_header_size: usize,
    pub max_headers: usize,
}

/// httparse needs a slice of header slots; this many live on the stack, and a
/// larger `max_headers` falls back to the heap.
const STACK_HEADERS: usize = 128;

/// A parsed request head. `buf` owns exactly the head's bytes.
#[derive(Debug, Clone)]
pub struct RequestHead {
    pub buf: Bytes,
    pub method: Span,
    pub target: Span,
    pub version: Version,
    pub headers: Vec<HeaderSpan>,
}

/// A parsed response head. `buf` owns exactly the head's bytes.
#[derive(Debug, Clone)]
pub struct ResponseHead {
    pub buf: Bytes,
    pub status: u16,
    pub reason: Span,
    pub version: Version,
    pub headers: Vec<HeaderSpan>,
}

macro_rules! head_accessors {
    ($t:ty) => {
        impl $t {
            /// Header fields as (name, value) byte slices, in received order.
            pub fn headers(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
                self.headers
                    .iter()
                    .map(move |h| (h.name.of(&self.buf), h.value.of(&self.buf)))
            }

            /// The first value of a header, by case-insensitive name.
            pub fn header(&self, name: &str) -> Option<&[u8]> {
                self.headers()
                    .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
                    .map(|(_, v)| v)
            }
        }
    };
}
head_accessors!(RequestHead);
head_accessors!(ResponseHead);

impl RequestHead {
    pub fn method(&self) -> &[u8] {
        self.method.of(&self.buf)
    }
    pub fn target(&self) -> &[u8] {
        self.target.of(&self.buf)
    }
    /// The request line without its line ending, for the access log.
    pub fn request_line(&self) -> &[u8] {
        // Starts at the method: RFC 9112 §2.2 lets a client send empty lines first.
        let line = &self.buf[self.method.start as usize..];
        let end = line.iter().position(|&b| b == b'\r' || b == b'\n');
        &line[..end.unwrap_or(line.len())]
    }
}

impl ResponseHead {
    pub fn reason(&self) -> &[u8] {
        self.reason.of(&self.buf)
    }
}

/// What a parse of the bytes so far found.
#[derive(Debug)]
pub enum Parsed<T> {
    /// A complete head of this many bytes; the rest of the buffer is body or
    /// the next message.
    Complete(T, usize),
    Partial,
}

/// Fields of a request head, before they are tied to an owned buffer.
#[derive(Debug)]
pub struct RequestParts {
    pub method: Span,
    pub target: Span,
    pub version: Version,
    pub headers: Vec<HeaderSpan>,
}

impl RequestParts {
    /// Ties the spans to the head's bytes (`buf` must start where parsing did).
    pub fn into_head(self, buf: Bytes) -> RequestHead {
        RequestHead {
            buf,
            method: self.method,
            target: self.target,
            version: self.version,
            headers: self.headers,
        }
    }
}

fn version(v: Option<u8>) -> Version {
    if v == Some(0) {
        Version::Http10
    } else {
        Version::Http11
    }
}

fn map_err(e: httparse::Error) -> HttpError {
    use httparse::Error as E;
    match e {
        E::TooManyHeaders => HttpError::HeadersTooLarge,
        E::Version => HttpError::Version,
        E::HeaderName => HttpError::Malformed("invalid header name"),
        E::HeaderValue => HttpError::Malformed("invalid header value"),
        E::NewLine | E::Status | E::Token => HttpError::Malformed("invalid request line"),
    }
}

/// Parses a request head from the start of `buf`.
///
/// Refuses with 414 once the request line passes `max_request_line`, with 431
/// once the head passes `max_header_size` or `max_headers`, and with 400 on
/// any syntax error, obs-fold included (httparse's strict default, RFC 9112 §5.2),
/// and a line ended by a bare LF.
pub fn parse_request(buf: &[u8], limits: &HeadLimits) -> Result<Parsed<RequestParts>, HttpError> {
    // The request line is judged on its own first, so a long URI gets 414 and not 431.
    let skip = buf.iter().take_while(|&&b| b == b'\r' || b == b'\n').count();
    let line = &buf[skip..];
    let line_len = line.iter().position(|&b| b == b'\n').unwrap_or(line.len());
    if line_len > limits.max_request_line {
        return Err(HttpError::UriTooLong);
    }

    // Header slots left uninitialised: httparse writes each one before it is
    // read, and zeroing 128 of them would cost more than parsing a small head.
    let mut stack = [const { MaybeUninit::<httparse::Header>::uninit() }; STACK_HEADERS];
    let mut heap;
    let slots: &mut [MaybeUninit<httparse::Header>] = if limits.max_headers <= STACK_HEADERS {
        &mut stack[..limits.max_headers]
    } else {
        heap = vec![MaybeUninit::uninit(); limits.max_headers];
        &mut heap
    };
    let mut req = httparse::Request::new(&mut []);
    match req.parse_with_uninit_headers(buf, slots) {
        Ok(httparse::Status::Complete(len)) => {
            if len > limits.max_header_size {
                return Err(HttpError::HeadersTooLarge);
            }
            let method = Span::within(buf, req.method.unwrap_or_default().as_bytes());
            let target = Span::within(buf, req.path.unwrap_or_default().as_bytes());
            let headers: Vec<HeaderSpan> = req
                .headers
                .iter()
                .map(|h| HeaderSpan {
                    name: Span::within(buf, h.name.as_bytes()),
                    value: Span::within(buf, h.value),
                })
                .collect();
            if has_bare_lf(&buf[..len], skip, skip + line_len, &headers) {
                return Err(HttpError::Malformed("line ended by a bare LF"));
            }
            Ok(Parsed::Complete(
                RequestParts {
                    method,
                    target,
                    version: version(req.version),
                    headers,
                },
                len,
            ))
        }
        Ok(httparse::Status::Partial) if buf.len() > limits.max_header_size => {
            Err(HttpError::HeadersTooLarge)
        }
        Ok(httparse::Status::Partial) => Ok(Parsed::Partial),
        Err(e) => Err(map_err(e)),
    }
}

/// True when a line of `head` ends in a bare LF. RFC 9112 §2.2 lets a
/// recipient accept a bare LF as a line end, and httparse does; a request
/// so framed is refused instead, as chunk lines are (`chunked.rs`), so that
/// no two parsers on the way read one request differently.
///
/// Looked for once the head is complete, at the few places a line can end,
/// which parsing found already: the empty lines before the request line
/// (`skip` bytes), the request line (its LF at `line_end`), each field (its
/// value, then optional whitespace, then the line end: httparse takes a CR
/// only as part of a CRLF), and the empty line that ends the head. A few
/// instructions per line, against a scan of every byte.
fn has_bare_lf(head: &[u8], skip: usize, line_end: usize, fields: &[HeaderSpan]) -> bool {
    if !skip.is_multiple_of(2) || head[..skip].chunks_exact(2).any(|c| c != b"\r\n") {
        return true;
    }
    if line_end <= skip || line_end >= head.len() || head[line_end - 1] != b'\r' {
        return true;
    }
    for f in fields {
        let mut e = f.value.end as usize;
        while matches!(head.get(e), Some(b' ' | b'\t')) {
            e += 1;
        }
        if head.get(e) != Some(&b'\r') {
            return true;
        }
    }
    head.len() < 2 || head[head.len() - 2] != b'\r'
}

/// Parses a response head from the start of `buf` (at most `max_headers`
/// fields; the caller bounds the buffer size). Unlike a request, a response
/// may end its lines with a bare LF (RFC 9112 §2.2), as nginx allows its
/// upstreams: the head is written again with CRLF for the client.
pub fn parse_response(buf: &[u8], max_headers: usize) -> Result<Parsed<ResponseHead>, HttpError> {
    let mut stack = [const { MaybeUninit::<httparse::Header>::uninit() }; STACK_HEADERS];
    let mut heap;
    let slots: &mut [MaybeUninit<httparse::Header>] = if max_headers <= STACK_HEADERS {
        &mut stack[..max_headers]
    } else {
        heap = vec![MaybeUninit::uninit(); max_headers];
        &mut heap
    };
    let mut res = httparse::Response::new(&mut []);
    match httparse::ParserConfig::default().parse_response_with_uninit_headers(&mut res, buf, slots) {
        Ok(httparse::Status::Complete(len)) => {
            let headers = res
                .headers
                .iter()
                .map(|h| HeaderSpan {
                    name: Span::within(buf, h.name.as_bytes()),
                    value: Span::within(buf, h.value),
                })
                .collect();
            // httparse hands back a constant empty string, not a slice of
            // `buf`, when the reason phrase is missing or has bytes above
            // 0x7f; such a reason is dropped and the standard phrase written.
            let reason = res
                .reason
                .map(str::as_bytes)
                .filter(|r| inside(buf, r))
                .map_or(Span::default(), |r| Span::within(buf, r));
            // Three digits is all httparse checks; classes 1 to 5 are all
            // HTTP defines (RFC 9110 §15). A status like 020 is neither
            // interim nor final: the response is invalid.
            if !(100..=599).contains(&res.code.unwrap_or(0)) {
                return Err(HttpError::Malformed("status code outside 100-599"));
            }
            Ok(Parsed::Complete(
                ResponseHead {
                    buf: Bytes::new(),
                    status: res.code.unwrap_or(0),
                    reason,
                    version: version(res.version),
                    headers,
                },
                len,
            ))
        }
        Ok(httparse::Status::Partial) => Ok(Parsed::Partial),
        Err(e) => Err(map_err(e)),
    }
}

/// True when `part` lies within `whole` (same allocation, in bounds).
fn inside(whole: &[u8], part: &[u8]) -> bool {
    let (w, p) = (whole.as_ptr() as usize, part.as_ptr() as usize);
    p >= w && p + part.len() <= w + whole.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: HeadLimits = HeadLimits {
        max_request_line: 64,
        max_header_size: 256,
        max_headers: 8,
    };

    fn parse(s: &str) -> Result<Parsed<RequestParts>, HttpError> {
        parse_request(s.as_bytes(), &LIMITS)
    }

    #[test]
    fn complete_request_keeps_offsets() {
        let raw = "GET /a?b=1 HTTP/1.1\r\nHost: x\r\nX-A:  v \r\n\r\nBODY";
        let Parsed::Complete(p, len) = parse(raw).unwrap() else {
            panic!("partial")
        };
        assert_eq!(len, raw.len() - 4);
        let head = p.into_head(Bytes::copy_from_slice(&raw.as_bytes()[..len]));
        assert_eq!(head.method(), b"GET");
        assert_eq!(head.target(), b"/a?b=1");
        assert_eq!(head.version, Version::Http11);
        assert_eq!(head.header("host"), Some(&b"x"[..]));
        assert_eq!(head.header("x-a"), Some(&b"v"[..]));
        assert_eq!(head.request_line(), b"GET /a?b=1 HTTP/1.1");
    }

    #[test]
    fn partial_until_blank_line() {
        assert!(matches!(
            parse("GET / HTTP/1.1\r\nHost: x\r\n"),
            Ok(Parsed::Partial)
        ));
        assert!(matches!(parse("GET / HT"), Ok(Parsed::Partial)));
    }

    #[test]
    fn limits_give_414_and_431() {
        let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(80));
        assert_eq!(parse(&long).unwrap_err(), HttpError::UriTooLong);
        // Even before the line ends.
        let partial = format!("GET /{}", "a".repeat(80));
        assert_eq!(parse(&partial).unwrap_err(), HttpError::UriTooLong);
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "v".repeat(300));
        assert_eq!(parse(&big).unwrap_err(), HttpError::HeadersTooLarge);
        let big_partial = format!("GET / HTTP/1.1\r\nX: {}", "v".repeat(300));
        assert_eq!(parse(&big_partial).unwrap_err(), HttpError::HeadersTooLarge);
        let many: String = (0..9).map(|i| format!("H{i}: v\r\n")).collect();
        let many = format!("GET / HTTP/1.1\r\n{many}\r\n");
        assert_eq!(parse(&many).unwrap_err(), HttpError::HeadersTooLarge);
    }

    #[test]
    fn malformed_heads_are_refused() {
        for bad in [
            "GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
            "GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
            "GET / HTTP/1.1\r\nHost : x\r\n\r\n",
            "GET / HTTP/1.1\r\nX: a\0b\r\n\r\n",
            "GET / HTTP/1.1\r\nX: a\rb\r\n\r\n",
            "G(T / HTTP/1.1\r\n\r\n",
            "GET  / HTTP/1.1\r\n\r\n",
        ] {
            assert!(
                matches!(parse(bad), Err(HttpError::Malformed(_))),
                "accepted {bad:?}"
            );
        }
        assert_eq!(parse("GET / HTTP/2.0\r\n\r\n").unwrap_err(), HttpError::Version);
    }

    #[test]
    fn bare_lf_in_a_request_head_is_refused() {
        for bad in [
            "GET / HTTP/1.1\nHost: x\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\n\n",
            "GET / HTTP/1.1\nHost: x\nX-LF: 1\n\n",
            // An empty line before the request line, too.
            "\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
            "\r\n\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
            "\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x  \nA: b\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\nEmpty:\nA: b\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\nEmpty: \t\n\r\n",
        ] {
            assert_eq!(
                parse(bad).unwrap_err(),
                HttpError::Malformed("line ended by a bare LF"),
                "{bad:?}"
            );
        }
        // CRLF everywhere, leading empty lines included, is fine; and so is
        // a bare LF in the body that follows the head.
        for good in [
            "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
            "\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n\n\n",
            "GET / HTTP/1.1\r\nHost: x \t \r\nEmpty:\r\nBlank: \r\n\r\n",
            "GET / HTTP/1.1\r\n\r\n",
        ] {
            assert!(matches!(parse(good), Ok(Parsed::Complete(..))), "{good:?}");
        }
        // Still partial until the head is complete: no verdict yet.
        assert!(matches!(parse("GET / HTTP/1.1\nHost: x\n"), Ok(Parsed::Partial)));
        // What the check relies on: a CR outside CRLF never parses.
        for cr in [
            "GET / HTTP/1.1\r\nHost: x\ry\r\n\r\n",
            "GET /\r HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\rHost: x\r\n\r\n",
            "GET / HTTP/1.1\r\nX\r: 1\r\n\r\n",
        ] {
            assert!(parse(cr).is_err(), "{cr:?}");
        }
    }

    #[test]
    fn bare_lf_in_a_response_head_is_accepted() {
        let raw = b"HTTP/1.1 200 OK\nContent-Length: 0\n\n";
        let Parsed::Complete(h, len) = parse_response(raw, 8).unwrap() else {
            panic!("partial")
        };
        assert_eq!((h.status, len), (200, raw.len()));
    }

    #[test]
    fn response_head() {
        let raw = b"HTTP/1.1 301 Moved\r\nLocation: /x\r\n\r\n";
        let Parsed::Complete(h, len) = parse_response(raw, 8).unwrap() else {
            panic!("partial")
        };
        assert_eq!(len, raw.len());
        assert_eq!(h.status, 301);
        assert!(matches!(
            parse_response(b"HTTP/1.1 abc OK\r\n\r\n", 8),
            Err(HttpError::Malformed(_))
        ));
    }

    /// Found by fuzzing: a missing or non-ASCII reason phrase came back as a
    /// span outside the head, and slicing it panicked.
    #[test]
    fn reason_phrase_missing_or_not_ascii() {
        for raw in [
            &b"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n"[..],
            b"HTTP/1.1 304 Not Modifi\xed\xed\xed\r\nContent-Length: 120\r\n\r\n",
        ] {
            let Parsed::Complete(mut h, len) = parse_response(raw, 8).unwrap() else {
                panic!("partial")
            };
            h.buf = Bytes::copy_from_slice(&raw[..len]);
            assert_eq!(h.reason(), b"");
        }
    }

    /// Found by fuzzing: a status below 100 was taken as a final response.
    #[test]
    fn status_outside_the_defined_classes_is_refused() {
        for raw in [
            &b"HTTP/1.1 020 OK\r\n\r\n"[..],
            b"HTTP/1.1 000 X\r\n\r\n",
            b"HTTP/1.1 600 X\r\n\r\n",
        ] {
            assert!(
                matches!(parse_response(raw, 8), Err(HttpError::Malformed(_))),
                "{raw:?}"
            );
        }
        assert!(matches!(
            parse_response(b"HTTP/1.1 599 X\r\n\r\n", 8),
            Ok(Parsed::Complete(..))
        ));
    }
}

//! HTTP/1.x wire format: the only module that touches httparse.
//!
//! Everything here is pure: functions over byte slices, no I/O, no routing.
//! A parsed head keeps its fields as offsets into the bytes it was read into
//! (`Span`), so nothing is copied or allocated per header.

pub mod chunked;
pub mod encode;
pub mod forwarded;
pub mod framing;
pub mod parse;

pub use framing::{BodyKind, RequestMeta, ResponseMeta};
pub use parse::{RequestHead, ResponseHead};

/// A byte range inside a head buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    #[inline]
    pub fn of<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        &buf[self.start as usize..self.end as usize]
    }

    /// The span of `part`, which must be a sub-slice of `whole`.
    #[inline]
    fn within(whole: &[u8], part: &[u8]) -> Span {
        let start = part.as_ptr() as usize - whole.as_ptr() as usize;
        debug_assert!(start + part.len() <= whole.len());
        Span {
            start: start as u32,
            end: (start + part.len()) as u32,
        }
    }
}

/// A header field as two spans: name and value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderSpan {
    pub name: Span,
    pub value: Span,
}

/// The HTTP minor version: `HTTP/1.0` or `HTTP/1.1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

/// Why a message was refused. Each maps to one status in `error.rs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpError {
    /// Malformed syntax or ambiguous framing; the text says which rule.
    Malformed(&'static str),
    /// The request line is over `max_request_line` (414).
    UriTooLong,
    /// The head is over `max_header_size` or has too many fields (431).
    HeadersTooLarge,
    /// Not HTTP/1.0 or HTTP/1.1 (505).
    Version,
    /// An `Expect` other than `100-continue` (417).
    Expectation,
}

/// Case-insensitive ASCII comparison, for header names and tokens.
#[inline]
pub fn eq_ignore_case(a: &[u8], b: &[u8]) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// Splits a comma-separated header value into trimmed, non-empty elements
/// (RFC 9110 §5.6.1).
pub fn list_items(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(trim).filter(|s| !s.is_empty())
}

#[inline]
pub fn trim(s: &[u8]) -> &[u8] {
    s.trim_ascii()
}

//! Responses ringway writes itself: error pages, `return` directives and
//! `100 Continue`.

use super::rewrite::FieldSink;
use crate::http::encode;
use crate::log::Dates;

/// A complete response with a fixed body, appended to `out`.
pub struct Canned<'a> {
    pub status: u16,
    pub body: &'a [u8],
    pub location: Option<&'a [u8]>,
    pub close: bool,
    /// An HTTP/1.0 client whose connection stays open must be told so.
    pub keep_alive_10: bool,
    /// Answering HEAD: the head says how long the body would be; no body.
    pub head_only: bool,
    /// `Strict-Transport-Security` value, on TLS connections of a block with `hsts`.
    pub hsts: Option<&'a [u8]>,
    /// A gRPC request's error: answered as gRPC clients expect, HTTP 200
    /// with this `grpc-status` and no body ("trailers-only").
    pub grpc: Option<u8>,
    /// Fields of `response_headers`, whole `Name: value` lines.
    pub extra: &'a [u8],
}

impl Canned<'_> {
    /// The fields every protocol sends; framing and connection fields aside.
    pub fn fields<S: FieldSink>(&self, dates: &Dates, out: &mut S) {
        out.field(b"Server", b"ringway");
        out.field(b"Date", dates.http_date().as_bytes());
        if let Some(code) = self.grpc {
            out.field(b"Content-Type", b"application/grpc");
            out.field(b"grpc-status", itoa::Buffer::new().format(code).as_bytes());
            out.field(b"grpc-message", grpc_message(self.status).as_bytes());
            return;
        }
        out.field(b"Content-Type", b"text/plain; charset=utf-8");
        out.field(
            b"Content-Length",
            itoa::Buffer::new().format(self.body.len()).as_bytes(),
        );
        if let Some(loc) = self.location {
            out.field(b"Location", loc);
        }
        if let Some(v) = self.hsts {
            out.field(b"Strict-Transport-Security", v);
        }
        super::rewrite::lines_into(self.extra, out);
    }

    /// The whole response as HTTP/1.1 bytes.
    pub fn write(&self, dates: &Dates, out: &mut Vec<u8>) {
        encode::status_line(self.http_status(), b"", out);
        self.fields(dates, out);
        if self.close {
            encode::header(b"Connection", b"close", out);
        } else if self.keep_alive_10 {
            encode::header(b"Connection", b"keep-alive", out);
        }
        if self.grpc.is_some() {
            encode::content_length(0, out);
        }
        encode::end_head(out);
        if !self.head_only && self.grpc.is_none() {
            out.extend_from_slice(self.body);
        }
    }

    /// The status on the wire: 200 for a gRPC answer (its status is in
    /// `grpc-status`).
    pub fn http_status(&self) -> u16 {
        if self.grpc.is_some() {
            200
        } else {
            self.status
        }
    }
}

/// What a gRPC client is told with its status, by the HTTP status ringway
/// would have sent.
fn grpc_message(status: u16) -> &'static str {
    match status {
        504 => "upstream timed out",
        502 | 503 => "upstream unavailable",
        _ => encode::reason_phrase(status),
    }
}

/// The gRPC status for ringway's own error `status` (gRPC's HTTP mapping,
/// doc/http-grpc-status-mapping.md): a timeout is DEADLINE_EXCEEDED (4),
/// an upstream that cannot be reached UNAVAILABLE (14), and so on.
pub fn grpc_status(status: u16) -> u8 {
    match status {
        504 | 408 => 4,
        502 | 503 => 14,
        400 | 413 | 414 | 431 => 13,
        401 => 16,
        403 => 7,
        404 | 405 => 12,
        429 => 14,
        _ => 2,
    }
}

/// The body of an error response: `502 Bad Gateway`.
pub fn error_body(status: u16) -> String {
    format!("{status} {}\n", encode::reason_phrase(status))
}

pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canned_head_and_body() {
        let mut out = Vec::new();
        let body = error_body(502);
        Canned {
            status: 502,
            body: body.as_bytes(),
            location: None,
            close: true,
            keep_alive_10: false,
            head_only: false,
            hsts: None,
            extra: b"",
            grpc: None,
        }
        .write(&Dates::default(), &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 502 Bad Gateway\r\n"), "{text}");
        assert!(text.contains("\r\nContent-Length: 16\r\n"), "{text}");
        assert!(text.contains("\r\nConnection: close\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\n502 Bad Gateway\n"), "{text}");
    }
}

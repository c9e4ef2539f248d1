//! Responses made here rather than by an upstream: a static file, a cached
//! response, an error page. Each is a [`ResponseHead`] (as if an upstream
//! had sent it) and a [`LocalBody`], and goes to the client through the same
//! response phases a proxied response takes (`forward::send_response`):
//! `response_headers` rules, compression, HSTS, `X-Request-ID`, HEAD and
//! the client's framing, over HTTP/1.1 and HTTP/2 alike.

use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use monoio::buf::{IoBufMut, IoVecBufMut};
use monoio::io::AsyncReadRent;
use monoio::BufResult;

use super::forward::{self, Reply};
use super::phases::Exchange;
use super::session::{ClientSession, UpBody};
use crate::config::Location;
use crate::ctx::WorkerCtx;
use crate::error::Result;
use crate::http::encode;
use crate::http::framing::response_meta;
use crate::http::parse::{parse_response, Parsed};
use crate::http::{ResponseHead, ResponseMeta};

/// The most fields a local head may have (a stored head included).
const MAX_FIELDS: usize = 200;

/// A local response's head from its status and fields; with `length`, a
/// `Content-Length` is written too. The reason phrase is the standard one.
///
/// Panics only if the fields themselves are malformed (a name with a
/// colon or a value with CR or LF): callers build them from checked parts.
pub fn head(status: u16, fields: &[(&[u8], &[u8])], length: Option<u64>) -> (ResponseHead, ResponseMeta) {
    let mut out = Vec::with_capacity(64 + fields.iter().map(|(n, v)| n.len() + v.len() + 4).sum::<usize>());
    encode::status_line(status, b"", &mut out);
    for (name, value) in fields {
        encode::header(name, value, &mut out);
    }
    if let Some(n) = length {
        encode::content_length(n, &mut out);
    }
    encode::end_head(&mut out);
    parse_head(Bytes::from(out)).expect("a local response head is well formed")
}

/// A local response's head from the whole bytes of an HTTP/1.1 head (a
/// stored one, say); `None` when they are not one complete, valid head.
pub fn parse_head(bytes: Bytes) -> Option<(ResponseHead, ResponseMeta)> {
    let mut head = match parse_response(&bytes, MAX_FIELDS).ok()? {
        Parsed::Complete(head, len) if len == bytes.len() => head,
        _ => return None,
    };
    head.buf = bytes;
    // Framing as for a GET: a HEAD's body is dropped by the response phases.
    let meta = response_meta(&head, false).ok()?;
    Some((head, meta))
}

/// Where a local response's body comes from.
pub enum LocalBody {
    Empty,
    Bytes(Bytes),
    /// `len` bytes of an open file from `offset`, read through the
    /// runtime's file operations (io_uring; the epoll driver's blocking
    /// pool), never a blocking read on the worker.
    File {
        file: Rc<monoio::fs::File>,
        offset: u64,
        len: u64,
    },
}

/// Sends a local response through the response phases (see the module
/// doc); `resp_lines` are the location's expanded `response_headers`
/// fields, as the proxy path renders them. Sets `ex.status` and
/// `ex.body_bytes`.
#[allow(clippy::too_many_arguments)]
pub async fn respond<S: ClientSession>(
    ctx: &WorkerCtx,
    ds: &mut S,
    ex: &mut Exchange,
    location: &Location,
    resp_lines: &[u8],
    head: &ResponseHead,
    meta: &ResponseMeta,
    body: LocalBody,
) -> Result<()> {
    let mut source = Source::new(body);
    let send_timeout = ex.gen.server(ex.server).limits.send_timeout;
    let reply = Reply {
        location,
        resp_lines,
        extra: b"",
        redirect: None,
        early: false,
        // A file read that stalls this long is as good as failed.
        read_timeout: send_timeout,
    };
    forward::send_response(ctx, ds, ex, &reply, head, meta, UpBody::Local(&mut source)).await
}

/// A [`LocalBody`] as a byte stream for the body copy. In-memory bytes sit
/// in `early` from the start, where a session may send the first of them
/// with the head; a file is read as the copy asks.
pub struct Source {
    pub(super) early: BytesMut,
    file: Option<(Rc<monoio::fs::File>, u64, u64)>,
}

impl Source {
    fn new(body: LocalBody) -> Source {
        match body {
            LocalBody::Empty => Source {
                early: BytesMut::new(),
                file: None,
            },
            LocalBody::Bytes(b) => Source {
                early: BytesMut::from(b),
                file: None,
            },
            LocalBody::File { file, offset, len } => Source {
                early: BytesMut::new(),
                file: Some((file, offset, len)),
            },
        }
    }
}

impl AsyncReadRent for Source {
    async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        let Some((file, offset, left)) = &mut self.file else {
            // In-memory bytes were all in `early`: nothing more comes.
            return (Ok(0), buf);
        };
        if *left == 0 {
            return (Ok(0), buf);
        }
        let (res, buf) = file.read_at(buf, *offset).await;
        if let Ok(n) = res {
            // A file that grew meanwhile: the copy takes only what the head
            // announced; one that shrank ends in a short body (an error).
            let n = (n as u64).min(*left);
            *offset += n;
            *left -= n;
        }
        (res, buf)
    }

    /// Not used: `Copy` reads into one buffer.
    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        (Err(std::io::ErrorKind::Unsupported.into()), buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::BodyKind;

    #[test]
    fn a_head_from_fields_carries_them_and_its_length() {
        let (h, m) = head(
            200,
            &[(b"Content-Type", b"text/html"), (b"ETag", b"\"x\"")],
            Some(5),
        );
        assert_eq!(h.status, 200);
        assert_eq!(h.header("content-type"), Some(&b"text/html"[..]));
        assert_eq!(h.header("etag"), Some(&b"\"x\""[..]));
        assert_eq!(m.body, BodyKind::Length(5));
        let (_, m) = head(304, &[], None);
        assert_eq!(m.body, BodyKind::Empty);
    }

    #[test]
    fn only_one_whole_head_parses() {
        let ok = Bytes::from_static(b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\n");
        let (h, m) = parse_head(ok).unwrap();
        assert_eq!((h.status, m.body), (404, BodyKind::Length(3)));
        assert!(parse_head(Bytes::from_static(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n")).is_none());
        assert!(parse_head(Bytes::from_static(b"HTTP/1.1 200 OK\r\n\r\nbody")).is_none());
        assert!(parse_head(Bytes::from_static(b"garbage\r\n\r\n")).is_none());
        let conflicting =
            Bytes::from_static(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n");
        assert!(parse_head(conflicting).is_none());
    }
}

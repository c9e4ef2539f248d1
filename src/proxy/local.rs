//! Responses made here rather than by an upstream: a static file, a cached
//! response, an error page. Each is a [`ResponseHead`] (as if an upstream
//! had sent it) and a [`LocalBody`], and goes to the client through the same
//! response phases a proxied response takes (`reply::send_response`):
//! `response_headers` rules, compression, HSTS, `X-Request-ID`, HEAD and
//! the client's framing, over HTTP/1.1 and HTTP/2 alike.

use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use monoio::buf::{IoBufMut, IoVecBufMut};
use monoio::io::AsyncReadRent;
use monoio::BufResult;

use super::phases::Exchange;
use super::reply::{self, Reply};
use super::session::{ClientSession, UpBody};
use crate::config::Location;
use crate::ctx::WorkerCtx;
use crate::error::Result;
use crate::http::encode;
use crate::http::framing::response_meta;
use crate::http::parse::{parse_response, Parsed};
use crate::http::{HeaderSpan, ResponseHead, ResponseMeta, Span, Version};

/// The most fields a local head may have (a stored head included).
const MAX_FIELDS: usize = 200;
/// In-memory body bytes copied next to the head, at most: what a session
/// may send in the head's write (HTTP/1.1 coalesces 16 KiB).
const EARLY: usize = 16 * 1024;

/// A local response's head from its status and fields; with `length`, a
/// `Content-Length` is written too. The reason phrase is the standard one.
///
/// Panics only if the fields themselves are malformed (a name with a
/// colon or a value with CR or LF): callers build them from checked parts.
pub fn head(status: u16, fields: &[(&[u8], &[u8])], length: Option<u64>) -> (ResponseHead, ResponseMeta) {
    let mut out = Vec::with_capacity(64 + fields.iter().map(|(n, v)| n.len() + v.len() + 4).sum::<usize>());
    encode::status_line(status, b"", &mut out);
    // The spans are those of the bytes written: no parse of our own head.
    let reason = Span {
        start: 13,
        end: (out.len() - 2) as u32,
    };
    let mut headers = Vec::with_capacity(fields.len() + 1);
    let mut field = |name: &[u8], value: &[u8], out: &mut Vec<u8>| {
        debug_assert!(
            !name.is_empty() && !name.contains(&b':') && !value.iter().any(|&b| b == b'\r' || b == b'\n'),
            "a malformed local field"
        );
        let start = out.len() as u32;
        encode::header(name, value, out);
        let name_end = start + name.len() as u32;
        headers.push(HeaderSpan {
            name: Span { start, end: name_end },
            value: Span {
                start: name_end + 2,
                end: name_end + 2 + value.len() as u32,
            },
        });
    };
    for (name, value) in fields {
        field(name, value, &mut out);
    }
    if let Some(n) = length {
        field(
            b"Content-Length",
            itoa::Buffer::new().format(n).as_bytes(),
            &mut out,
        );
    }
    encode::end_head(&mut out);
    let head = ResponseHead {
        buf: Bytes::from(out),
        status,
        reason,
        version: Version::Http11,
        headers,
    };
    #[cfg(debug_assertions)]
    {
        let (parsed, _) = parse_head(head.buf.clone()).expect("a local response head is well formed");
        debug_assert_eq!(
            parsed.headers().collect::<Vec<_>>(),
            head.headers().collect::<Vec<_>>()
        );
        debug_assert_eq!(parsed.reason.of(&parsed.buf), head.reason.of(&head.buf));
    }
    let meta = response_meta(&head, false).expect("a local response head is well formed");
    (head, meta)
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
    /// Pieces sent one after the other (a file range, the parts of a
    /// `multipart/byteranges` body).
    Parts(Vec<Part>),
}

/// A piece of a [`LocalBody`].
pub enum Part {
    Bytes(Bytes),
    /// `len` bytes of an open file from `offset`.
    File {
        file: FileRead,
        offset: u64,
        len: u64,
    },
}

/// How a file is read without blocking the worker: io_uring reads where
/// the runtime has them; on the epoll driver (whose file reads would run
/// on the worker) the file helper threads' reads.
pub enum FileRead {
    Uring(Rc<monoio::fs::File>),
    Helper(std::sync::Arc<std::fs::File>),
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
        tee: None,
    };
    reply::send_response(ctx, ds, ex, &reply, head, meta, UpBody::Local(&mut source)).await
}

/// A [`LocalBody`] as a byte stream for the body copy. In-memory bytes at
/// the start sit in `early`, where a session may send the first of them
/// with the head; the rest is read as the copy asks.
pub struct Source {
    pub(super) early: BytesMut,
    parts: std::collections::VecDeque<Part>,
}

impl Source {
    pub(super) fn new(body: LocalBody) -> Source {
        let mut parts: std::collections::VecDeque<Part> = match body {
            LocalBody::Empty => Default::default(),
            LocalBody::Bytes(b) => [Part::Bytes(b)].into(),
            LocalBody::Parts(p) => p.into(),
        };
        // Only what may go with the head is copied into `early`; the rest
        // of leading in-memory bytes stays shared (`take_front_bytes`).
        let early = match parts.front_mut() {
            Some(Part::Bytes(b)) if b.len() > EARLY => BytesMut::from(&b.split_to(EARLY)[..]),
            Some(Part::Bytes(_)) => match parts.pop_front() {
                Some(Part::Bytes(b)) => BytesMut::from(b),
                _ => unreachable!(),
            },
            _ => BytesMut::new(),
        };
        Source { early, parts }
    }

    /// The in-memory bytes at the front of what is left, to be written as
    /// they are; `None` when a file part (or nothing) comes next.
    pub(super) fn take_front_bytes(&mut self) -> Option<Bytes> {
        match self.parts.front() {
            Some(Part::Bytes(_)) => match self.parts.pop_front() {
                Some(Part::Bytes(b)) => Some(b),
                _ => None,
            },
            _ => None,
        }
    }
}

impl AsyncReadRent for Source {
    async fn read<T: IoBufMut>(&mut self, mut buf: T) -> BufResult<usize, T> {
        loop {
            match self.parts.front_mut() {
                None => return (Ok(0), buf),
                Some(Part::Bytes(b)) if b.is_empty() => {}
                Some(Part::Bytes(b)) => {
                    let n = b.len().min(buf.bytes_total());
                    // SAFETY: `n` bytes fit in the buffer's capacity, and
                    // are initialised by the copy before `set_init`.
                    unsafe {
                        std::ptr::copy_nonoverlapping(b.as_ptr(), buf.write_ptr(), n);
                        buf.set_init(n);
                    }
                    let _ = b.split_to(n);
                    return (Ok(n), buf);
                }
                Some(Part::File { len: 0, .. }) => {}
                Some(Part::File { file, offset, len }) => {
                    let want = (*len).min(buf.bytes_total() as u64) as usize;
                    let n = match file {
                        FileRead::Uring(f) => {
                            // SAFETY: 0 is initialised; `want` is within capacity.
                            let slice = unsafe { monoio::buf::SliceMut::new_unchecked(buf, 0, want) };
                            let (res, slice) = f.read_at(slice, *offset).await;
                            buf = slice.into_inner();
                            match res {
                                Ok(n) => n,
                                Err(e) => return (Err(e), buf),
                            }
                        }
                        FileRead::Helper(f) => match crate::files::open::read(f, *offset, want).await {
                            Ok(Ok(b)) => {
                                let n = b.len().min(want);
                                // SAFETY: as above.
                                unsafe {
                                    std::ptr::copy_nonoverlapping(b.as_ptr(), buf.write_ptr(), n);
                                    buf.set_init(n);
                                }
                                n
                            }
                            Ok(Err(e)) => return (Err(e), buf),
                            Err(_) => return (Err(std::io::ErrorKind::WouldBlock.into()), buf),
                        },
                    };
                    // A file that shrank meanwhile ends in a short body (an
                    // error); one that grew gives only what the head announced.
                    if n == 0 {
                        return (Err(std::io::ErrorKind::UnexpectedEof.into()), buf);
                    }
                    *offset += n as u64;
                    *len -= n as u64;
                    return (Ok(n), buf);
                }
            }
            self.parts.pop_front();
        }
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

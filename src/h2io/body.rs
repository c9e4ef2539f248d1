//! h2's body streams as rent-style byte sources and sinks, so the one body
//! copy (`proxy::body::Copy`) moves bytes between any two sides: an
//! HTTP/1.1 socket, an HTTP/2 stream of a client, a stream to an upstream.
//! Flow control keeps memory bounded: what a peer sends is released to its
//! window only as it is passed on, and what is sent waits for the peer's
//! window, under a deadline.

use std::cell::RefCell;
use std::future::poll_fn;
use std::io;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use h2::server::SendResponse;
use h2::{RecvStream, SendStream};
use http::HeaderMap;
use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent};
use monoio::BufResult;

use crate::deadline::{Deadlines, Woke};

/// A stream's sending half: a server stream before its response head
/// (`Head`), a body being sent (`Body`, either side), or done.
pub enum Send {
    Head(SendResponse<Bytes>),
    Body(SendStream<Bytes>),
    Done,
}

impl Send {
    /// Ready when the peer resets the stream (or the connection fails).
    pub fn poll_reset(&mut self, cx: &mut Context<'_>) -> Poll<h2::Reason> {
        let r = match self {
            Send::Head(s) => s.poll_reset(cx),
            Send::Body(s) => s.poll_reset(cx),
            Send::Done => return Poll::Pending,
        };
        match r {
            Poll::Ready(Ok(reason)) => Poll::Ready(reason),
            // The connection failed: the driver ends; so does this stream.
            Poll::Ready(Err(_)) => Poll::Ready(h2::Reason::CANCEL),
            Poll::Pending => Poll::Pending,
        }
    }

    pub fn body(&mut self) -> io::Result<&mut SendStream<Bytes>> {
        match self {
            Send::Body(s) => Ok(s),
            _ => Err(io::Error::other("no response body is open")),
        }
    }
}

/// A received body (a client's request, an upstream's response) as a byte
/// source for `Copy`. Received bytes go back to the peer's window only when
/// the next read asks for more, so after the bytes before were written on.
pub struct RecvBody {
    pub stream: RecvStream,
    /// The rest of a DATA chunk larger than the last read's buffer.
    pending: Bytes,
    /// Always empty: a place for `UpBody::head_buf` (HTTP/2 has no bytes
    /// read past a head).
    pub early: BytesMut,
    /// Bytes handed out and not yet given back to the client's window.
    pub unreleased: usize,
}

impl RecvBody {
    pub fn new(stream: RecvStream) -> RecvBody {
        RecvBody {
            stream,
            pending: Bytes::new(),
            early: BytesMut::new(),
            unreleased: 0,
        }
    }

    /// Gives what was read back to the peer's window.
    pub fn release(&mut self) {
        if self.unreleased > 0 {
            let _ = self.stream.flow_control().release_capacity(self.unreleased);
            self.unreleased = 0;
        }
    }
}

impl AsyncReadRent for RecvBody {
    async fn read<T: IoBufMut>(&mut self, mut buf: T) -> BufResult<usize, T> {
        if self.pending.is_empty() {
            // The phases ask for more only after writing what they had: the
            // window opens again as the upstream takes the body, no sooner.
            self.release();
            self.pending = match poll_fn(|cx| self.stream.poll_data(cx)).await {
                Some(Ok(c)) => c,
                Some(Err(e)) => return (Err(io::Error::other(e)), buf),
                None => return (Ok(0), buf),
            };
            self.unreleased += self.pending.len();
        }
        let n = self.pending.len().min(buf.bytes_total());
        // SAFETY: `bytes_total` bytes from `write_ptr` are writable
        // (IoBufMut's contract), `n` fits, and the two do not overlap.
        unsafe {
            std::ptr::copy_nonoverlapping(self.pending.as_ptr(), buf.write_ptr(), n);
            buf.set_init(n);
        }
        bytes::Buf::advance(&mut self.pending, n);
        (Ok(n), buf)
    }

    /// Not used: `Copy` reads into one buffer.
    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        (Err(io::ErrorKind::Unsupported.into()), buf)
    }
}

impl RecvBody {
    /// The trailers after the body, if the peer sent any (under `t`).
    pub async fn trailers(&mut self, d: &Deadlines, t: Duration) -> io::Result<Option<HeaderMap>> {
        match d
            .within(poll_fn(|cx| self.stream.poll_trailers(cx)), Instant::now() + t)
            .await
        {
            Woke::Ready(r) => r.map_err(io::Error::other),
            Woke::TimedOut | Woke::Closing => Err(io::ErrorKind::TimedOut.into()),
        }
    }
}

/// A body being sent (a response to a client, a request to an upstream) as
/// a byte sink for `Copy`: each write waits for the peer's window to grant
/// capacity, under `t`; past it the stream is reset (CANCEL), so a peer that
/// never opens its window holds nothing forever.
pub struct SendBody<'a> {
    pub send: &'a RefCell<Send>,
    pub deadlines: &'a Deadlines,
    pub t: Duration,
}

impl SendBody<'_> {
    /// Ends the body (an empty DATA frame with END_STREAM).
    pub fn finish(&mut self) -> io::Result<()> {
        let mut send = self.send.borrow_mut();
        if let Send::Body(s) = &mut *send {
            s.send_data(Bytes::new(), true).map_err(io::Error::other)?;
        }
        *send = Send::Done;
        Ok(())
    }

    async fn send(&mut self, data: &[u8]) -> io::Result<usize> {
        if data.is_empty() {
            return Ok(0);
        }
        let want = data.len();
        let capacity = poll_fn(|cx| {
            let mut send = self.send.borrow_mut();
            let s = match send.body() {
                Ok(s) => s,
                Err(e) => return Poll::Ready(Err(e)),
            };
            s.reserve_capacity(want);
            loop {
                match s.poll_capacity(cx) {
                    Poll::Ready(Some(Ok(0))) => continue,
                    Poll::Ready(Some(Ok(n))) => return Poll::Ready(Ok(n)),
                    Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(io::Error::other(e))),
                    Poll::Ready(None) => return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
                    Poll::Pending => return Poll::Pending,
                }
            }
        });
        // A client that never opens its window holds nothing forever.
        let n = match self.deadlines.within(capacity, Instant::now() + self.t).await {
            Woke::Ready(r) => r?.min(want),
            Woke::TimedOut | Woke::Closing => {
                if let Ok(s) = self.send.borrow_mut().body() {
                    s.send_reset(h2::Reason::CANCEL);
                }
                return Err(io::ErrorKind::TimedOut.into());
            }
        };
        let mut send = self.send.borrow_mut();
        send.body()?
            .send_data(Bytes::copy_from_slice(&data[..n]), false)
            .map_err(io::Error::other)?;
        Ok(n)
    }
}

impl AsyncWriteRent for SendBody<'_> {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        // SAFETY: `bytes_init` bytes from `read_ptr` are initialised
        // (IoBuf's contract) and `buf` is not touched while the slice lives.
        let data = unsafe { std::slice::from_raw_parts(buf.read_ptr(), buf.bytes_init()) };
        let r = self.send(data).await;
        (r, buf)
    }

    /// Not used: `Copy` writes one buffer at a time.
    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        (Err(io::ErrorKind::Unsupported.into()), buf)
    }

    async fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    /// The sending side is done: END_STREAM (a tunnel's half-close).
    async fn shutdown(&mut self) -> io::Result<()> {
        self.finish()
    }
}

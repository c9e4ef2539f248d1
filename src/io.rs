//! Socket reads and writes under a deadline, in monoio's rent style: the
//! buffer is handed to the kernel and handed back with the result.
//!
//! Every await on a socket in ringway goes through here (or through
//! `upstream::connect`), so none can wait forever. Deadlines come from the
//! worker's [`Deadlines`] table rather than a timer per operation. A timed-out
//! operation's buffer is given up (io_uring may still own it until the
//! cancellation completes); the connection is closed anyway.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use monoio::buf::{IoBuf, IoBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};

use crate::deadline::{Deadlines, Woke};

#[derive(Debug)]
pub enum IoFail {
    Timeout,
    Io(io::Error),
}

/// Reads once into the spare capacity of `buf` (reserving `reserve` bytes if
/// much less is free). `Ok(0)` is end of stream.
pub async fn read_buf<S: AsyncReadRent>(
    s: &mut S,
    buf: &mut BytesMut,
    reserve: usize,
    d: &Deadlines,
    t: Duration,
) -> Result<usize, IoFail> {
    // Reserving reclaims the buffer's own memory once the slices split off
    // it earlier have been written and dropped, so steady state allocates nothing.
    let spare = buf.capacity() - buf.len();
    if spare == 0 || spare < reserve / 4 {
        buf.reserve(reserve);
    }
    // The read goes after the bytes already held: monoio reads a whole
    // `BytesMut` from its start, so it is handed only the spare part.
    let owned = std::mem::take(buf);
    let (len, cap) = (owned.len(), owned.capacity());
    match d
        .within(s.read(owned.slice_mut(len..cap)), Instant::now() + t)
        .await
    {
        Woke::Ready((res, b)) => {
            *buf = b.into_inner();
            res.map_err(IoFail::Io)
        }
        Woke::TimedOut | Woke::Closing => Err(IoFail::Timeout),
    }
}

/// Writes all of `data`; gives it back on success, and on an I/O error too
/// (not on a timeout, where the kernel may still hold it).
pub async fn write_all_keep<S: AsyncWriteRent, B: IoBuf>(
    s: &mut S,
    data: B,
    d: &Deadlines,
    t: Duration,
) -> Result<B, (IoFail, Option<B>)> {
    match d.within(s.write_all(data), Instant::now() + t).await {
        Woke::Ready((Ok(_), b)) => Ok(b),
        Woke::Ready((Err(e), b)) => Err((IoFail::Io(e), Some(b))),
        Woke::TimedOut | Woke::Closing => Err((IoFail::Timeout, None)),
    }
}

/// Writes all of `data` and gives it back.
pub async fn write_all<S: AsyncWriteRent, B: IoBuf>(
    s: &mut S,
    data: B,
    d: &Deadlines,
    t: Duration,
) -> Result<B, IoFail> {
    write_all_keep(s, data, d, t).await.map_err(|(e, _)| e)
}

/// Writes a reusable output buffer, then empties it for the next use.
pub async fn flush_vec<S: AsyncWriteRent>(
    s: &mut S,
    out: &mut Vec<u8>,
    d: &Deadlines,
    t: Duration,
) -> Result<(), IoFail> {
    let data = std::mem::take(out);
    let mut data = write_all(s, data, d, t).await?;
    data.clear();
    *out = data;
    Ok(())
}

/// Lets every other ready task run once before continuing.
pub fn yield_now() -> impl Future<Output = ()> {
    struct YieldNow(bool);
    impl Future for YieldNow {
        type Output = ();
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            if self.0 {
                return Poll::Ready(());
            }
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
    YieldNow(false)
}

pin_project_lite::pin_project! {
    /// The future of one operation on a stream that is plain TCP or TLS.
    /// The stream types return it as it is, rather than from an `async fn`
    /// that would wrap and move the socket's own future once more per
    /// operation; the TLS arm is boxed, so the plain one stays small.
    #[project = EitherProj]
    pub enum Either<A, B> {
        Plain { #[pin] fut: A },
        Tls { #[pin] fut: B },
    }
}

impl<A: Future, B: Future<Output = A::Output>> Future for Either<A, B> {
    type Output = A::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<A::Output> {
        match self.project() {
            EitherProj::Plain { fut } => fut.poll(cx),
            EitherProj::Tls { fut } => fut.poll(cx),
        }
    }
}

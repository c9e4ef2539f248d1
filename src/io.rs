//! Socket reads and writes under a deadline, in monoio's rent style: the
//! buffer is handed to the kernel and handed back with the result.
//!
//! Every await on a socket in ringway goes through here, so none can wait
//! forever. A timed-out operation's buffer is given up (io_uring may still own
//! it until the cancellation completes); the connection is closed anyway.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use monoio::buf::IoBuf;
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};

#[derive(Debug)]
pub enum IoFail {
    Timeout,
    Io(io::Error),
}

/// Reads once into the spare capacity of `buf` (reserving `reserve` bytes if
/// less is free). `Ok(0)` is end of stream.
pub async fn read_buf<S: AsyncReadRent>(
    s: &mut S,
    buf: &mut BytesMut,
    reserve: usize,
    t: Duration,
) -> Result<usize, IoFail> {
    // Reserving reclaims the buffer's own memory once the slices split off
    // it earlier have been written and dropped, so steady state allocates nothing.
    let spare = buf.capacity() - buf.len();
    if spare == 0 || spare < reserve / 4 {
        buf.reserve(reserve);
    }
    let owned = std::mem::take(buf);
    match monoio::time::timeout(t, s.read(owned)).await {
        Ok((res, b)) => {
            *buf = b;
            res.map_err(IoFail::Io)
        }
        Err(_) => Err(IoFail::Timeout),
    }
}

/// Writes all of `data` and gives it back.
pub async fn write_all<S: AsyncWriteRent, B: IoBuf>(s: &mut S, data: B, t: Duration) -> Result<B, IoFail> {
    match monoio::time::timeout(t, s.write_all(data)).await {
        Ok((Ok(_), b)) => Ok(b),
        Ok((Err(e), _)) => Err(IoFail::Io(e)),
        Err(_) => Err(IoFail::Timeout),
    }
}

/// Writes a reusable output buffer, then empties it for the next use.
pub async fn flush_vec<S: AsyncWriteRent>(s: &mut S, out: &mut Vec<u8>, t: Duration) -> Result<(), IoFail> {
    let data = std::mem::take(out);
    let mut data = write_all(s, data, t).await?;
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

//! The byte stream under the h2 codec, on both sides of the proxy. h2 is
//! written against poll-style `AsyncRead`/`AsyncWrite`; ringway's sockets
//! are completion-style. The socket is turned into monoio's poll-io form (a
//! readiness poll on io_uring, epoll on the fallback driver) and, for TLS,
//! rustls is driven directly over it, so decrypted bytes go to h2 without
//! another copy. On a client connection every byte the client sends passes
//! the frame meter (`meter.rs`) first; `body.rs` adapts h2's streams to the
//! rent-style body copy.

pub mod body;
pub mod meter;

use std::io::{self, Read, Write};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use monoio::io::IntoPollIo;
use monoio::net::tcp::stream_poll::TcpStreamPoll;
use monoio::net::TcpStream;
use rustls::{ClientConnection, Connection};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use self::meter::Meter;
use crate::tls::server::{TlsInfo, TlsStream};

/// A connection speaking HTTP/2: a client's, or one to an upstream server.
pub struct Io {
    sock: Sock,
    tls: Option<Box<Connection>>,
    /// Bytes read before HTTP/2 took over: the h2c preface check's, or
    /// records rustls had not taken yet.
    early: Vec<u8>,
    early_pos: usize,
    pub meter: Option<Rc<Meter>>,
    pub info: Option<TlsInfo>,
}

/// The socket: completion-style until the driver turns it into poll form.
enum Sock {
    Comp(Option<TcpStream>),
    Poll(TcpStreamPoll),
}

impl Io {
    /// Cleartext HTTP/2 (h2c); `seen`: bytes already read (the preface).
    pub fn plain(s: TcpStream, seen: bytes::BytesMut) -> Io {
        Io {
            sock: Sock::Comp(Some(s)),
            tls: None,
            early: seen.to_vec(),
            early_pos: 0,
            meter: None,
            info: None,
        }
    }

    /// HTTP/2 chosen by ALPN after a TLS handshake.
    pub fn tls(t: TlsStream) -> Io {
        let (s, conn, early, info) = t.into_parts();
        Io {
            sock: Sock::Comp(Some(s)),
            tls: Some(Box::new(Connection::Server(conn))),
            early,
            early_pos: 0,
            meter: None,
            info: Some(info),
        }
    }

    /// A connection to an upstream server, TLS (a client session not yet
    /// shaken hands: the first reads and writes do it) or not.
    pub fn upstream(s: TcpStream, tls: Option<ClientConnection>) -> Io {
        Io {
            sock: Sock::Comp(Some(s)),
            tls: tls.map(|c| Box::new(Connection::Client(c))),
            early: Vec::new(),
            early_pos: 0,
            meter: None,
            info: None,
        }
    }

    /// The ALPN protocol the TLS peer chose (after the handshake).
    pub fn alpn(&self) -> Option<&[u8]> {
        self.tls.as_ref()?.alpn_protocol()
    }

    /// Switches the socket to poll mode. Fails only if the runtime cannot.
    pub fn into_poll(mut self) -> io::Result<Io> {
        if let Sock::Comp(s) = &mut self.sock {
            let s = s.take().expect("socket");
            self.sock = Sock::Poll(s.into_poll_io()?);
        }
        Ok(self)
    }

    fn sock(&mut self) -> Pin<&mut TcpStreamPoll> {
        match &mut self.sock {
            Sock::Poll(s) => Pin::new(s),
            Sock::Comp(_) => unreachable!("Io is used after into_poll"),
        }
    }

    fn poll_read_raw(&mut self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if self.early_pos < self.early.len() {
            let n = (self.early.len() - self.early_pos).min(buf.remaining());
            buf.put_slice(&self.early[self.early_pos..self.early_pos + n]);
            self.early_pos += n;
            if self.early_pos == self.early.len() {
                self.early = Vec::new();
                self.early_pos = 0;
            }
            return Poll::Ready(Ok(()));
        }
        self.sock().poll_read(cx, buf)
    }

    fn poll_read_tls(&mut self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        loop {
            let conn = self.tls.as_mut().expect("tls");
            match conn.reader().read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
            // Records rustls wants to send (alerts, key updates) go first.
            if let Poll::Ready(Err(e)) = self.poll_flush_tls(cx) {
                return Poll::Ready(Err(e));
            }
            let mut early = std::mem::take(&mut self.early);
            let pos = self.early_pos;
            let (tls, sock) = (self.tls.as_mut().expect("tls"), &mut self.sock);
            let got = if pos < early.len() {
                let n = tls.read_tls(&mut &early[pos..]);
                if let Ok(n) = n {
                    self.early_pos += n;
                }
                n
            } else {
                let Sock::Poll(s) = sock else { unreachable!() };
                tls.read_tls(&mut SyncIo { sock: s, cx })
            };
            if self.early_pos >= early.len() {
                early.clear();
                self.early_pos = 0;
            }
            self.early = early;
            match got {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Poll::Pending,
                Err(e) => return Poll::Ready(Err(e)),
            }
            if let Err(e) = self.tls.as_mut().expect("tls").process_new_packets() {
                // The alert goes out if it can; the connection fails anyway.
                let _ = self.poll_flush_tls(cx);
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, e)));
            }
        }
    }

    /// Writes what rustls has queued; Pending while the socket is full.
    fn poll_flush_tls(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Sock::Poll(s) = &mut self.sock else {
            unreachable!()
        };
        let tls = self.tls.as_mut().expect("tls");
        while tls.wants_write() {
            match tls.write_tls(&mut SyncIo { sock: s, cx }) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Poll::Pending,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for Io {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let res = if this.tls.is_some() {
            this.poll_read_tls(cx, buf)
        } else {
            this.poll_read_raw(cx, buf)
        };
        if let (Poll::Ready(Ok(())), Some(meter)) = (&res, &this.meter) {
            if meter.read(&buf.filled()[before..]).is_err() {
                // Bytes past a breach never reach the codec; the driver,
                // woken by the meter, sends GOAWAY and closes.
                buf.set_filled(before);
                return Poll::Pending;
            }
        }
        res
    }
}

impl AsyncWrite for Io {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let res = if this.tls.is_none() {
            this.sock().poll_write(cx, data)
        } else {
            let n = match this.tls.as_mut().expect("tls").writer().write(data) {
                Ok(n) => n,
                Err(e) => return Poll::Ready(Err(e)),
            };
            match this.poll_flush_tls(cx) {
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                // rustls's buffer is full and the socket too: wait.
                Poll::Pending if n == 0 => return Poll::Pending,
                _ => Poll::Ready(Ok(n)),
            }
        };
        if let (Poll::Ready(Ok(n)), Some(meter)) = (&res, &this.meter) {
            meter.sent(*n);
        }
        res
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.tls.is_some() {
            std::task::ready!(this.poll_flush_tls(cx))?;
        }
        this.sock().poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(tls) = this.tls.as_mut() {
            tls.send_close_notify();
            std::task::ready!(this.poll_flush_tls(cx))?;
        }
        this.sock().poll_shutdown(cx)
    }
}

/// rustls reads and writes through `std::io`; this maps a socket that is
/// not ready to `WouldBlock`, with the task's waker registered.
struct SyncIo<'a, 'b> {
    sock: &'a mut TcpStreamPoll,
    cx: &'a mut Context<'b>,
}

impl Read for SyncIo<'_, '_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let mut buf = ReadBuf::new(out);
        match Pin::new(&mut *self.sock).poll_read(self.cx, &mut buf) {
            Poll::Ready(Ok(())) => Ok(buf.filled().len()),
            Poll::Ready(Err(e)) => Err(e),
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

impl Write for SyncIo<'_, '_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match Pin::new(&mut *self.sock).poll_write(self.cx, data) {
            Poll::Ready(r) => r,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

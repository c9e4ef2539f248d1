//! Opening a connection to an upstream server under `connect_timeout`: the
//! TCP connect and, for a TLS upstream, the handshake, both within the one
//! deadline (nginx gives the handshake a second `proxy_connect_timeout`; one
//! bound for "the connection is ready" is simpler to reason about).

use std::cell::Cell;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::Duration;

use monoio::net::TcpStream;
use rustls::pki_types::ServerName;

use super::UpStream;
use crate::error::{Error, ErrorKind};
use crate::tls::client::Connector;

/// How to shake hands with a TLS upstream's server: its connector, the
/// server's index, and the name for this request if not the server's own.
pub type TlsTarget<'a> = (&'a Connector, usize, Option<ServerName<'static>>);

/// The TCP connect (the caller bounds it), with Nagle off: heads and small
/// bodies go out in one write each, and Nagle would only delay them.
pub async fn tcp(addr: SocketAddr) -> Result<TcpStream, Error> {
    let stream = TcpStream::connect_addr(addr).await.map_err(|e| {
        let kind = if e.kind() == io::ErrorKind::TimedOut {
            ErrorKind::ConnectTimeout
        } else {
            ErrorKind::ConnectRefused
        };
        Error::io(kind, e)
    })?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// Connects to `addr`, then for a TLS upstream shakes hands with the server.
/// A failed handshake is `UpstreamTls`, which health and retries treat like a
/// failed connect; its source says why (unknown issuer, name mismatch,
/// expired, an alert from the server).
pub async fn connect(
    addr: SocketAddr,
    timeout: Duration,
    tls: Option<TlsTarget<'_>>,
) -> Result<UpStream, Error> {
    // Which part the deadline interrupted, for the log.
    let handshaking = Cell::new(false);
    let establish = async {
        let stream = tcp(addr).await?;
        let Some((connector, peer, name)) = tls else {
            return Ok(UpStream::Plain(stream));
        };
        let fd = stream.as_raw_fd();
        handshaking.set(true);
        // Boxed: the handshake's state is large, and inline it would size
        // every exchange future, plain ones included.
        match Box::pin(connector.handshake(peer, name, stream)).await {
            Ok(tls) => Ok(UpStream::tls(tls, fd)),
            Err(e) => Err(Error::io(
                ErrorKind::UpstreamTls,
                io::Error::new(e.kind(), format!("{addr}, {e}")),
            )),
        }
    };
    // Boxed: monoio's timer entry is aligned to 128 bytes, and inline it
    // would give every exchange future that alignment, so each request's
    // boxed exchange would need an aligned allocation (posix_memalign,
    // about 500 instructions) instead of a plain one. Connects are rare
    // next to pooled requests; the box costs one of them a malloc.
    match Box::pin(monoio::time::timeout(timeout, establish)).await {
        Ok(result) => result,
        Err(_) if handshaking.get() => Err(Error::io(
            ErrorKind::ConnectTimeout,
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{addr}, during the TLS handshake"),
            ),
        )),
        Err(_) => Err(Error::new(ErrorKind::ConnectTimeout)),
    }
}

//! Opening a connection to an upstream server under `connect_timeout`.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use monoio::net::TcpStream;

use crate::error::{Error, ErrorKind};

pub async fn connect(addr: SocketAddr, timeout: Duration) -> Result<TcpStream, Error> {
    match monoio::time::timeout(timeout, TcpStream::connect_addr(addr)).await {
        Ok(Ok(stream)) => {
            // Heads and small bodies go out in one write each; Nagle would
            // only delay them.
            let _ = stream.set_nodelay(true);
            Ok(stream)
        }
        Ok(Err(e)) if e.kind() == io::ErrorKind::TimedOut => Err(Error::io(ErrorKind::ConnectTimeout, e)),
        Ok(Err(e)) => Err(Error::io(ErrorKind::ConnectRefused, e)),
        Err(_) => Err(Error::new(ErrorKind::ConnectTimeout)),
    }
}

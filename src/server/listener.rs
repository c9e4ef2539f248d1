//! Listening sockets: one per worker per address, all bound with
//! SO_REUSEPORT so the kernel spreads new connections across workers, and an
//! accept loop per socket that hands each connection to `proxy`.

use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use socket2::{Domain, Socket, Type};

use crate::ctx::WorkerCtx;
use crate::proxy;

/// The kernel's accept queue per socket (nginx uses 511 on Linux; more
/// absorbs connection bursts under load).
const BACKLOG: i32 = 4096;

/// Binds a listening socket with SO_REUSEPORT.
pub fn bind(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket
        .bind(&addr.into())
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// Accepts until the worker shuts down; each connection becomes its own task.
pub async fn accept_loop(ctx: Rc<WorkerCtx>, index: usize, listener: monoio::net::TcpListener) {
    loop {
        let accepted = monoio::select! {
            r = listener.accept() => r,
            _ = ctx.shutdown.wait() => break,
        };
        match accepted {
            Ok((stream, peer)) => {
                monoio::spawn(proxy::serve_connection(ctx.clone(), index, stream, peer));
            }
            Err(e) => {
                // Out of descriptors or memory: back off briefly rather than spin.
                tracing::warn!(worker = ctx.id, "accept failed: {e}");
                monoio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

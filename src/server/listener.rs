//! Listening sockets: one per worker per address, all bound with
//! SO_REUSEPORT so the kernel spreads new connections across workers, and an
//! accept loop per socket that hands each connection to `proxy`.

use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use socket2::{Domain, Socket, Type};

use crate::ctx::WorkerCtx;
use crate::isolate::Isolated;
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
///
/// The accept in flight when the shutdown comes is cancelled and then
/// awaited, never dropped: on io_uring the kernel may already have accepted
/// a connection for it, and a dropped operation's result is thrown away,
/// leaving that client connected to a descriptor nobody reads or closes.
/// Awaited, it ends either cancelled or with that connection, which is
/// served like any other (and drained with them).
pub async fn accept_loop(ctx: Rc<WorkerCtx>, index: usize, listener: monoio::net::TcpListener) {
    let mut canceller = monoio::io::Canceller::new();
    loop {
        let accept = listener.cancelable_accept(canceller.handle());
        let mut accept = std::pin::pin!(accept);
        let (accepted, last) = monoio::select! {
            r = &mut accept => (r, false),
            _ = ctx.shutdown.wait() => {
                canceller = canceller.cancel();
                (accept.await, true)
            }
        };
        if accepted.is_ok() {
            ctx.metrics.accepted(index);
        }
        match accepted {
            // The cancelled accept had nothing.
            Err(_) if last => break,
            Ok((stream, peer))
                if ctx.active.get() >= ctx.config.global.max_connections && ctx.tls.is_tls(index) =>
            {
                // A 503 would need a handshake first: closing costs less.
                tracing::warn!(peer = %peer, "max_connections ({}) reached: closed", ctx.config.global.max_connections);
                drop(stream);
            }
            Ok((stream, peer)) if ctx.active.get() >= ctx.config.global.max_connections => {
                // Full: say so and close, rather than leave the client
                // waiting in the accept queue with no answer.
                monoio::spawn(proxy::refuse_busy(ctx.clone(), stream, peer));
            }
            Ok((stream, peer)) => {
                let conn = proxy::serve_connection(ctx.clone(), index, stream, peer);
                monoio::spawn(Isolated::new(conn, peer));
            }
            Err(e) => {
                // Out of descriptors or memory: back off briefly rather than spin.
                tracing::warn!(worker = ctx.id, "accept failed: {e}");
                monoio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        if last {
            break;
        }
    }
}

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

/// How long a removed listener waits for one more queued connection
/// before it closes: its queue is drained, not reset.
const DRAIN_ACCEPT: Duration = Duration::from_millis(20);

/// Accepts until the worker shuts down, or until `stop` is raised (a reload
/// removed the address): then what is already queued on the socket is
/// accepted and served, and the socket is closed.
///
/// The accept in flight when the shutdown comes is cancelled and then
/// awaited, never dropped: on io_uring the kernel may already have accepted
/// a connection for it, and a dropped operation's result is thrown away,
/// leaving that client connected to a descriptor nobody reads or closes.
/// Awaited, it ends either cancelled or with that connection, which is
/// served like any other (and drained with them).
pub async fn accept_loop(
    ctx: Rc<WorkerCtx>,
    listen: SocketAddr,
    listener: monoio::net::TcpListener,
    stop: Rc<crate::shutdown::Shutdown>,
) {
    let mut canceller = monoio::io::Canceller::new();
    // The newest generation that listens on this address.
    let mut last = ctx.gen();
    let mut removed = false;
    loop {
        let accept = listener.cancelable_accept(canceller.handle());
        let mut accept = std::pin::pin!(accept);
        let (accepted, end) = monoio::select! {
            r = &mut accept => (r, false),
            _ = ctx.shutdown.wait() => {
                canceller = canceller.cancel();
                (accept.await, true)
            }
            _ = stop.wait() => {
                canceller = canceller.cancel();
                removed = true;
                (accept.await, true)
            }
        };
        let g = ctx.gen();
        if g.listener(listen).is_some() {
            last = g;
        }
        let max = last.config.global.max_connections;
        match accepted {
            // The cancelled accept had nothing.
            Err(_) if end => break,
            Ok((stream, peer)) => admit(&ctx, listen, &last, stream, peer, max),
            Err(e) => {
                // Out of descriptors or memory: back off briefly rather than spin.
                tracing::warn!(worker = ctx.id, "accept failed: {e}");
                monoio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        if end {
            break;
        }
    }
    if removed {
        // Connections the kernel queued before the address was removed are
        // served; the socket closes once none is waiting.
        let mut drained = 0;
        while let Ok(Ok((stream, peer))) = monoio::time::timeout(DRAIN_ACCEPT, listener.accept()).await {
            admit(
                &ctx,
                listen,
                &last,
                stream,
                peer,
                last.config.global.max_connections,
            );
            drained += 1;
        }
        tracing::info!(
            worker = ctx.id,
            "stopped listening on {listen} ({drained} queued connections taken)"
        );
    }
}

/// Serves an accepted connection, or refuses it when the worker is full.
fn admit(
    ctx: &Rc<WorkerCtx>,
    listen: SocketAddr,
    last: &Rc<crate::generation::Generation>,
    stream: monoio::net::TcpStream,
    peer: SocketAddr,
    max: usize,
) {
    last.metrics.accepted(ctx.id, listen);
    let tls = last.listener(listen).is_some_and(|i| last.tls.is_tls(i));
    if ctx.active.get() >= max && tls {
        // A 503 would need a handshake first: closing costs less.
        tracing::warn!(peer = %peer, "max_connections ({max}) reached: closed");
        drop(stream);
    } else if ctx.active.get() >= max {
        // Full: say so and close, rather than leave the client
        // waiting in the accept queue with no answer.
        monoio::spawn(proxy::refuse_busy(ctx.clone(), stream, peer));
    } else {
        let conn = proxy::serve_connection(ctx.clone(), listen, last.clone(), stream, peer);
        monoio::spawn(Isolated::new(conn, peer));
    }
}

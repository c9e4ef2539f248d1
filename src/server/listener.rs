//! Listening sockets: one per worker per address, all bound with
//! SO_REUSEPORT so the kernel spreads new connections across workers, and an
//! accept loop per socket that hands each connection to `proxy`.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
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
                monoio::spawn(Isolated { fut: conn, peer });
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

pin_project_lite::pin_project! {
    /// Runs one connection's task so that a panic in it ends that connection
    /// only: it is logged, the connection is dropped (and so closed), and the
    /// worker and its other connections carry on. Without this a panic would
    /// unwind out of the runtime and take the whole worker down.
    ///
    /// Unwind safety: what a connection task shares is the worker's
    /// `WorkerCtx`, whose `RefCell` borrows are released while unwinding and
    /// whose tables stay consistent between statements; the task's own state
    /// is dropped.
    pub struct Isolated<F> {
        #[pin]
        fut: F,
        peer: SocketAddr,
    }
}

impl<F> Isolated<F> {
    pub fn new(fut: F, peer: SocketAddr) -> Isolated<F> {
        Isolated { fut, peer }
    }
}

impl<F: Future<Output = ()>> Future for Isolated<F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        let fut = this.fut;
        match catch_unwind(AssertUnwindSafe(|| fut.poll(cx))) {
            Ok(poll) => poll,
            Err(panic) => {
                let what = super::worker::panic_message(&*panic);
                tracing::error!(peer = %this.peer, "connection task panicked: {what}; connection closed");
                Poll::Ready(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_connection_task_does_not_stop_the_runtime() {
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .unwrap();
        let done = rt.block_on(async {
            let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
            let crashed = monoio::spawn(Isolated {
                fut: async {
                    monoio::time::sleep(Duration::from_millis(1)).await;
                    panic!("boom");
                },
                peer,
            });
            let healthy = monoio::spawn(async {
                monoio::time::sleep(Duration::from_millis(5)).await;
                42
            });
            crashed.await;
            healthy.await
        });
        assert_eq!(done, 42);
    }
}

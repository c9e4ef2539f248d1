//! Panics kept to the task they happen in: a connection's task (or an
//! HTTP/2 stream's) runs `Isolated`, so a panic ends that connection or
//! stream only; the worker and everything else it serves go on.

use std::any::Any;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};

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
                let what = panic_message(&*panic);
                tracing::error!(peer = %this.peer, "connection task panicked: {what}; connection closed");
                Poll::Ready(())
            }
        }
    }
}

/// The text of a panic payload (`panic!` gives a `&str` or a `String`).
pub fn panic_message(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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

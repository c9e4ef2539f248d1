//! A worker-local "shutting down" flag that tasks can also wait on: the accept
//! loops and the housekeeping tick wake when it is raised. (Idle client
//! connections are woken through `deadline::Deadlines::close_all`.)
//!
//! Waiters live in a slab and leave it when their future is dropped, so the
//! table holds only tasks that are waiting now, however many came before.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use slab::Slab;

#[derive(Default)]
pub struct Shutdown {
    raised: Cell<bool>,
    waiters: RefCell<Slab<Waker>>,
}

impl Shutdown {
    pub fn is_raised(&self) -> bool {
        self.raised.get()
    }

    pub fn raise(&self) {
        self.raised.set(true);
        for w in self.waiters.borrow_mut().drain() {
            w.wake();
        }
    }

    /// Resolves once the flag is raised.
    pub fn wait(&self) -> Wait<'_> {
        Wait {
            shutdown: self,
            key: None,
        }
    }
}

pub struct Wait<'a> {
    shutdown: &'a Shutdown,
    key: Option<usize>,
}

impl Future for Wait<'_> {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.shutdown.raised.get() {
            return Poll::Ready(());
        }
        let mut waiters = self.shutdown.waiters.borrow_mut();
        match self.key {
            Some(k) if waiters.contains(k) => waiters[k] = cx.waker().clone(),
            _ => {
                let k = waiters.insert(cx.waker().clone());
                drop(waiters);
                self.key = Some(k);
            }
        }
        Poll::Pending
    }
}

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        if let Some(k) = self.key {
            let mut waiters = self.shutdown.waiters.borrow_mut();
            if waiters.contains(k) {
                waiters.remove(k);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropped_waiters_leave_the_table() {
        let s = Shutdown::default();
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        for _ in 0..100 {
            let mut w = Box::pin(s.wait());
            assert!(w.as_mut().poll(&mut cx).is_pending());
        }
        assert_eq!(s.waiters.borrow().len(), 0);
        let mut w = Box::pin(s.wait());
        assert!(w.as_mut().poll(&mut cx).is_pending());
        s.raise();
        assert!(w.as_mut().poll(&mut cx).is_ready());
    }
}

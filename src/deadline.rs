//! Deadlines for socket waits, without a timer each.
//!
//! Every await on a socket has a deadline. A monoio `Sleep` per wait would
//! cost 640 bytes in each future that holds one (more than the rest of an
//! idle connection's state) and a timer-wheel insert and removal per I/O.
//! Instead a wait that has to block registers its deadline in this per-worker
//! table, and one periodic tick of the worker wakes those whose deadline has
//! passed (nginx keeps one timer tree per worker for the same reason). A
//! deadline is therefore honoured to within one tick, late but never early.
//!
//! Idle waits (a keep-alive client between requests) also end when the worker
//! starts shutting down; I/O of a request in flight does not.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use slab::Slab;

/// How often expired idle waits are woken.
pub const TICK: Duration = Duration::from_millis(100);

struct Entry {
    deadline: Instant,
    waker: Waker,
    expired: bool,
}

#[derive(Default)]
pub struct Deadlines {
    entries: RefCell<Slab<Entry>>,
    closing: Cell<bool>,
    expired: Cell<bool>,
}

/// Why a wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Woke<T> {
    Ready(T),
    TimedOut,
    Closing,
}

impl Deadlines {
    /// Waits for `fut` until `deadline` (to within one tick).
    pub fn within<F: Future>(&self, fut: F, deadline: Instant) -> Within<'_, F> {
        Within {
            timers: self,
            fut,
            deadline,
            key: None,
            idle: false,
        }
    }

    /// Like `within`, and also ends when the worker starts shutting down.
    pub fn idle<F: Future>(&self, fut: F, deadline: Instant) -> Within<'_, F> {
        Within {
            timers: self,
            fut,
            deadline,
            key: None,
            idle: true,
        }
    }

    /// Wakes the waits whose deadline has passed. Called every [`TICK`].
    pub fn tick(&self, now: Instant) {
        for (_, e) in self.entries.borrow_mut().iter_mut() {
            if !e.expired && e.deadline <= now {
                e.expired = true;
                e.waker.wake_by_ref();
            }
        }
    }

    /// Ends every idle wait, now and from now on.
    pub fn close_all(&self) {
        self.closing.set(true);
        // Waking the rest too is harmless: they find their deadline unmet
        // and wait on.
        for (_, e) in self.entries.borrow_mut().iter_mut() {
            e.waker.wake_by_ref();
        }
    }

    /// Ends every wait, idle or not, now and from now on: what is still in
    /// flight when a shutdown's drain_timeout runs out fails as timed out.
    pub fn expire_all(&self) {
        self.expired.set(true);
        for (_, e) in self.entries.borrow_mut().iter_mut() {
            e.expired = true;
            e.waker.wake_by_ref();
        }
    }

    /// `close_all` was called: idle waits end at once from now on.
    pub fn closing(&self) -> bool {
        self.closing.get()
    }

    /// `expire_all` was called: every wait ends at once from now on, so a
    /// loop that waits again must stop instead.
    pub fn all_expired(&self) -> bool {
        self.expired.get()
    }

    pub fn len(&self) -> usize {
        self.entries.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

pin_project_lite::pin_project! {
    pub struct Within<'a, F> {
        timers: &'a Deadlines,
        #[pin]
        fut: F,
        deadline: Instant,
        key: Option<usize>,
        idle: bool,
    }

    impl<F> PinnedDrop for Within<'_, F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(k) = this.key.take() {
                this.timers.entries.borrow_mut().try_remove(k);
            }
        }
    }
}

impl<F: Future> Future for Within<'_, F> {
    type Output = Woke<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if *this.idle && this.timers.closing.get() {
            return Poll::Ready(Woke::Closing);
        }
        if this.timers.expired.get() {
            return Poll::Ready(Woke::TimedOut);
        }
        if let Poll::Ready(v) = this.fut.poll(cx) {
            return Poll::Ready(Woke::Ready(v));
        }
        let mut entries = this.timers.entries.borrow_mut();
        match this.key.and_then(|k| entries.get_mut(k)) {
            Some(e) if e.expired => return Poll::Ready(Woke::TimedOut),
            Some(e) => {
                if !e.waker.will_wake(cx.waker()) {
                    e.waker = cx.waker().clone();
                }
            }
            None => {
                *this.key = Some(entries.insert(Entry {
                    deadline: *this.deadline,
                    waker: cx.waker().clone(),
                    expired: false,
                }));
            }
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::pending;

    fn poll_once<F: Future>(f: Pin<&mut F>) -> Poll<F::Output> {
        f.poll(&mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn expires_on_tick_and_leaves_the_table() {
        let t = Deadlines::default();
        let now = Instant::now();
        let mut w = Box::pin(t.within(pending::<()>(), now + Duration::from_secs(5)));
        assert!(poll_once(w.as_mut()).is_pending());
        assert_eq!(t.len(), 1);
        t.tick(now + Duration::from_secs(4));
        assert!(poll_once(w.as_mut()).is_pending());
        t.tick(now + Duration::from_secs(5));
        assert_eq!(poll_once(w.as_mut()), Poll::Ready(Woke::TimedOut));
        drop(w);
        assert!(t.is_empty());
    }

    #[test]
    fn ready_future_wins_and_close_ends_all() {
        let t = Deadlines::default();
        let far = Instant::now() + Duration::from_secs(60);
        let mut ready = Box::pin(t.idle(async { 7 }, far));
        assert_eq!(poll_once(ready.as_mut()), Poll::Ready(Woke::Ready(7)));
        let mut waiting = Box::pin(t.idle(pending::<()>(), far));
        let mut in_flight = Box::pin(t.within(pending::<()>(), far));
        assert!(poll_once(waiting.as_mut()).is_pending());
        assert!(poll_once(in_flight.as_mut()).is_pending());
        t.close_all();
        assert_eq!(poll_once(waiting.as_mut()), Poll::Ready(Woke::Closing));
        // A request in flight is not cut short by shutdown.
        assert!(poll_once(in_flight.as_mut()).is_pending());
        let mut late = Box::pin(t.idle(pending::<()>(), far));
        assert_eq!(poll_once(late.as_mut()), Poll::Ready(Woke::Closing));
        // At the end of a drain, everything gives up.
        t.expire_all();
        assert_eq!(poll_once(in_flight.as_mut()), Poll::Ready(Woke::TimedOut));
        let mut after = Box::pin(t.within(pending::<()>(), far));
        assert_eq!(poll_once(after.as_mut()), Poll::Ready(Woke::TimedOut));
    }
}

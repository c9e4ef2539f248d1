//! Waiting on idle client connections without a timer each.
//!
//! A keep-alive connection between requests waits for the client to send
//! again. A monoio `Sleep` is 640 bytes, more than the rest of an idle
//! connection's state, so idle waits do not get one: each registers its
//! deadline in this per-worker table, and one periodic tick of the worker
//! wakes those whose deadline has passed (nginx keeps one timer tree per
//! worker for the same reason). Deadlines are therefore honoured to within
//! one tick. Raising the worker's shutdown wakes every idle wait at once.

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
pub struct IdleTimers {
    entries: RefCell<Slab<Entry>>,
    closing: Cell<bool>,
}

/// Why an idle wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Woke<T> {
    Ready(T),
    TimedOut,
    Closing,
}

impl IdleTimers {
    /// Waits for `fut` until `deadline` (to within one tick) or shutdown.
    pub fn wait<F: Future>(&self, fut: F, deadline: Instant) -> IdleWait<'_, F> {
        IdleWait {
            timers: self,
            fut,
            deadline,
            key: None,
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
        for (_, e) in self.entries.borrow_mut().iter_mut() {
            e.waker.wake_by_ref();
        }
    }

    pub fn len(&self) -> usize {
        self.entries.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

pin_project_lite::pin_project! {
    pub struct IdleWait<'a, F> {
        timers: &'a IdleTimers,
        #[pin]
        fut: F,
        deadline: Instant,
        key: Option<usize>,
    }

    impl<F> PinnedDrop for IdleWait<'_, F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(k) = this.key.take() {
                this.timers.entries.borrow_mut().try_remove(k);
            }
        }
    }
}

impl<F: Future> Future for IdleWait<'_, F> {
    type Output = Woke<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if this.timers.closing.get() {
            return Poll::Ready(Woke::Closing);
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
        let t = IdleTimers::default();
        let now = Instant::now();
        let mut w = Box::pin(t.wait(pending::<()>(), now + Duration::from_secs(5)));
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
        let t = IdleTimers::default();
        let far = Instant::now() + Duration::from_secs(60);
        let mut ready = Box::pin(t.wait(async { 7 }, far));
        assert_eq!(poll_once(ready.as_mut()), Poll::Ready(Woke::Ready(7)));
        let mut waiting = Box::pin(t.wait(pending::<()>(), far));
        assert!(poll_once(waiting.as_mut()).is_pending());
        t.close_all();
        assert_eq!(poll_once(waiting.as_mut()), Poll::Ready(Woke::Closing));
        let mut late = Box::pin(t.wait(pending::<()>(), far));
        assert_eq!(poll_once(late.as_mut()), Poll::Ready(Woke::Closing));
    }
}

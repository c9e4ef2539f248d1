//! `lock = true`: one origin fetch for concurrent misses of one key, across
//! every worker (nginx's proxy_cache_lock). The first request for a key
//! becomes its leader and goes upstream; the others register a waker and
//! wait, bounded by `lock_timeout`, for the leader to finish (it stores the
//! response, then lets go); they then read the cache.
//!
//! Waiting is a wake-up, not polling: each waiter holds the receiving end
//! of a one-slot channel whose sender sits in the table; the leader's guard
//! sends to every waiter when it is dropped, however the leader's request
//! ends (stored, not storable, failed, or its client gone and the future
//! dropped). The channel wakes the waiter's worker from whichever thread
//! the leader ran on.

use std::collections::HashMap;
use std::sync::Arc;

/// Waiters for one key being fetched.
type Waiters = Vec<flume::Sender<()>>;

#[derive(Default)]
pub struct Locks {
    // A std Mutex held only to look up, add or remove one key's waiter
    // list, never across an await or I/O. Not on the request path of a
    // location without `cache`, nor on a hit: only a miss (or a stale
    // entry's refresh) of a location with `lock` or `updating` takes it.
    // It is not per worker because SO_REUSEPORT puts the misses of one key
    // on any core, and a per-worker table would let each core fetch it:
    // coalescing across workers is what `lock` promises.
    #[allow(clippy::disallowed_types)]
    map: std::sync::Mutex<HashMap<Box<[u8]>, Waiters>>,
}

/// What a request got from the table.
pub enum Lock {
    /// It fetches the key; the others wait until this is dropped.
    Leader(Guard),
    /// Another request fetches it: this end is woken when it is done.
    Waiter(flume::Receiver<()>),
}

pub struct Guard {
    locks: Arc<Locks>,
    key: Box<[u8]>,
}

impl Locks {
    #[allow(clippy::disallowed_types)]
    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<Box<[u8]>, Waiters>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn acquire(self: &Arc<Self>, key: &[u8]) -> Lock {
        let mut t = self.table();
        match t.get_mut(key) {
            Some(waiters) => {
                let (tx, rx) = flume::bounded(1);
                waiters.push(tx);
                Lock::Waiter(rx)
            }
            None => {
                t.insert(key.into(), Vec::new());
                Lock::Leader(Guard {
                    locks: self.clone(),
                    key: key.into(),
                })
            }
        }
    }

    /// Keys being fetched (for tests).
    pub fn held(&self) -> usize {
        self.table().len()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let waiters = self.locks.table().remove(&self.key).unwrap_or_default();
        // Sent after the table's lock is let go; a waiter that gave up
        // (timed out) has dropped its receiver, which the send ignores.
        for w in waiters {
            let _ = w.try_send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_leader_per_key_and_every_waiter_woken_when_it_ends() {
        let l = Arc::new(Locks::default());
        let Lock::Leader(g) = l.acquire(b"k") else {
            panic!("first is the leader")
        };
        let waiters: Vec<_> = (0..3)
            .map(|_| match l.acquire(b"k") {
                Lock::Waiter(rx) => rx,
                Lock::Leader(_) => panic!("one leader"),
            })
            .collect();
        assert!(matches!(l.acquire(b"other"), Lock::Leader(_)));
        assert!(waiters.iter().all(|w| w.try_recv().is_err()));
        drop(g);
        assert!(waiters.iter().all(|w| w.try_recv().is_ok()));
        assert_eq!(l.held(), 0);
        assert!(matches!(l.acquire(b"k"), Lock::Leader(_)));
    }
}

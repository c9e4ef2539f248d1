//! The process-wide key table of one `[[limit]]`: a fixed array of slots,
//! each a 64-bit key hash and a 64-bit state, shared by every worker thread
//! and updated by compare-and-swap only (no lock, no allocation after it is
//! made).
//!
//! A key's slot is found within a window of [`WINDOW`] slots from its hash
//! (linear probing). Slots are never emptied, so a key, if present, sits
//! before the first empty slot of its window; a new key claims that empty
//! slot with a CAS, and two threads claiming it for the same key end on the
//! same slot. When the window has no empty slot, the idlest *idle* slot is
//! taken over (idle: a rate state whose theoretical arrival time has
//! passed, or a connection count of zero), which loses nothing, since an
//! idle state means exactly what a fresh one does. A key in use is never
//! taken over; when a whole window is in use, the request is refused as
//! nginx refuses when its zone is full.
//!
//! Rates are GCRA (the generic cell rate algorithm), which is nginx's
//! `limit_req` leaky bucket written as one timestamp per key; see
//! [`Table::rate`] for the formula.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering::AcqRel, Ordering::Acquire, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// Slots a key may sit in, from its hash's position on.
pub const WINDOW: usize = 32;

/// Added to every time, so that a state of 0 (an empty slot) is always
/// at least one interval in the past (an interval is at most a minute),
/// with 2^62 ns (146 years) of room before times overflow.
const OFFSET: u64 = 1 << 62;

/// The hash of "no key": an empty slot.
const EMPTY: u64 = 0;

/// One key. Aligned so that a slot never straddles two cache lines.
#[repr(align(16))]
#[derive(Default)]
struct Slot {
    key: AtomicU64,
    /// Rate: the theoretical arrival time, ns after the table's epoch.
    /// Connections: requests in flight.
    state: AtomicU64,
}

/// What a rate check says about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Served now.
    Pass,
    /// Served after this wait (within the burst, beyond `delay`).
    Delay(Duration),
    /// Over the burst: would be served after this long.
    Refuse(Duration),
    /// The key's window holds only keys in use.
    Full,
}

pub struct Table {
    slots: Box<[Slot]>,
    mask: usize,
    /// Keyed with random keys per table (SipHash), so a client cannot
    /// choose keys that crowd one window.
    hasher: std::collections::hash_map::RandomState,
    epoch: Instant,
}

impl Table {
    /// A table for `max_keys` keys: twice as many slots, rounded up to a
    /// power of two, so windows seldom fill before the table does.
    pub fn new(max_keys: usize) -> Table {
        let n = max_keys.max(1).saturating_mul(2).next_power_of_two().max(WINDOW);
        Table {
            slots: (0..n).map(|_| Slot::default()).collect(),
            mask: n - 1,
            hasher: Default::default(),
            epoch: Instant::now(),
        }
    }

    /// The number of slots.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// A key's 64-bit hash, never [`EMPTY`]. Two keys sharing a hash share
    /// a state: with 64 bits, about one pair in 10^9 among 100,000 keys.
    pub fn hasher(&self) -> impl Hasher {
        self.hasher.build_hasher()
    }

    pub fn finish(h: impl Hasher) -> u64 {
        h.finish().max(1)
    }

    /// Nanoseconds since the table was made, plus [`OFFSET`].
    pub fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos())
            .unwrap_or(u64::MAX)
            .saturating_add(OFFSET)
    }

    /// The slot of key `h`, claimed when new; `idle` tells a state that may
    /// be taken over. None: every slot of the window is in use.
    fn slot(&self, h: u64, idle: impl Fn(u64) -> bool) -> Option<usize> {
        let start = h as usize & self.mask;
        for i in 0..WINDOW {
            let at = (start + i) & self.mask;
            let s = &self.slots[at];
            match s.key.load(Acquire) {
                k if k == h => return Some(at),
                EMPTY => match s.key.compare_exchange(EMPTY, h, AcqRel, Acquire) {
                    Ok(_) => return Some(at),
                    Err(k) if k == h => return Some(at),
                    Err(_) => {}
                },
                _ => {}
            }
        }
        // No empty slot and the key is not here: take over the idlest idle
        // one. A lost race for it is tried again on the next idlest.
        for _ in 0..4 {
            let (mut best, mut best_state) = (None, u64::MAX);
            for i in 0..WINDOW {
                let at = (start + i) & self.mask;
                let st = self.slots[at].state.load(Relaxed);
                if idle(st) && st < best_state {
                    (best, best_state) = (Some(at), st);
                }
            }
            let at = best?;
            let s = &self.slots[at];
            let k = s.key.load(Acquire);
            if k == h {
                return Some(at);
            }
            if idle(s.state.load(Relaxed)) && s.key.compare_exchange(k, h, AcqRel, Acquire).is_ok() {
                return Some(at);
            }
        }
        None
    }

    /// One request of key `h` against a rate of one per `interval` ns with
    /// `burst` requests beyond it, of which those past `delay` wait (`None`:
    /// none wait, nginx's `nodelay`).
    ///
    /// With `tat` the key's theoretical arrival time (`now` for a new key)
    /// and `T = interval`, a request at `now` makes `new = max(tat + T,
    /// now)`. It is refused when `new - now > burst·T`, leaving the state
    /// as it was; otherwise `tat = new`, and it waits `new - now - delay·T`
    /// when that is above zero. `(tat - now) / T` is nginx's `excess`, and
    /// these are its rules: `excess = max(excess - rate·elapsed + 1, 0)`,
    /// refused when `excess > burst`, delayed by `(excess - delay) / rate`.
    pub fn rate(&self, h: u64, interval: u64, burst: u64, delay: Option<u64>) -> Verdict {
        let now = self.now();
        // Idle: `max(tat + T, now)` is `now`, what a new key would get.
        let Some(at) = self.slot(h, |tat| tat.saturating_add(interval) <= now) else {
            return Verdict::Full;
        };
        let state = &self.slots[at].state;
        let burst_ns = burst.saturating_mul(interval);
        let mut tat = state.load(Acquire);
        loop {
            let new = tat.saturating_add(interval).max(now);
            let ahead = new - now;
            if ahead > burst_ns {
                return Verdict::Refuse(Duration::from_nanos(ahead - burst_ns));
            }
            match state.compare_exchange_weak(tat, new, AcqRel, Acquire) {
                Ok(_) => {
                    let wait = delay.map_or(0, |d| ahead.saturating_sub(d.saturating_mul(interval)));
                    return if wait == 0 {
                        Verdict::Pass
                    } else {
                        Verdict::Delay(Duration::from_nanos(wait))
                    };
                }
                Err(t) => tat = t,
            }
        }
    }

    /// Takes one of `max` places of key `h`: the slot to give it back to,
    /// `Err(true)` when the key has `max` in flight, `Err(false)` when its
    /// window is full.
    pub fn acquire(&self, h: u64, max: u64) -> Result<usize, bool> {
        let at = self.slot(h, |n| n == 0).ok_or(false)?;
        self.slots[at]
            .state
            .fetch_update(AcqRel, Acquire, |n| (n < max).then_some(n + 1))
            .map(|_| at)
            .map_err(|_| true)
    }

    /// Gives back a place taken by [`Table::acquire`].
    pub fn release(&self, at: usize) {
        self.slots[at].state.fetch_sub(1, AcqRel);
    }

    /// Requests in flight in slot `at` (tests).
    #[cfg(test)]
    fn in_flight(&self, at: usize) -> u64 {
        self.slots[at].state.load(Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(t: &Table, s: &str) -> u64 {
        let mut h = t.hasher();
        h.write(s.as_bytes());
        Table::finish(h)
    }

    #[test]
    fn burst_then_refused_with_retry() {
        let t = Table::new(16);
        let k = key(&t, "a");
        // One a second, burst 3, nodelay: 4 at once, then refused for about a second.
        let sec = 1_000_000_000;
        for _ in 0..4 {
            assert_eq!(t.rate(k, sec, 3, None), Verdict::Pass);
        }
        match t.rate(k, sec, 3, None) {
            Verdict::Refuse(d) => assert!(
                d > Duration::from_millis(900) && d <= Duration::from_secs(1),
                "{d:?}"
            ),
            v => panic!("{v:?}"),
        }
        // Another key has its own budget.
        assert_eq!(t.rate(key(&t, "b"), sec, 3, None), Verdict::Pass);
    }

    #[test]
    fn delay_beyond_delay_count() {
        let t = Table::new(16);
        let k = key(&t, "a");
        let sec = 1_000_000_000;
        // burst 3, delay 1: the first two pass, the next two wait about 1 s and 2 s.
        assert_eq!(t.rate(k, sec, 3, Some(1)), Verdict::Pass);
        assert_eq!(t.rate(k, sec, 3, Some(1)), Verdict::Pass);
        let Verdict::Delay(d1) = t.rate(k, sec, 3, Some(1)) else {
            panic!()
        };
        let Verdict::Delay(d2) = t.rate(k, sec, 3, Some(1)) else {
            panic!()
        };
        assert!(
            d1 <= Duration::from_secs(1) && d1 > Duration::from_millis(900),
            "{d1:?}"
        );
        assert!(
            d2 <= Duration::from_secs(2) && d2 > Duration::from_millis(1900),
            "{d2:?}"
        );
        assert!(matches!(t.rate(k, sec, 3, Some(1)), Verdict::Refuse(_)));
    }

    #[test]
    fn busy_keys_are_kept_and_idle_ones_taken_over() {
        // 32 slots: one window. 32 keys in use fill it.
        let t = Table::new(1);
        assert_eq!(t.capacity(), WINDOW);
        let hour = 3_600_000_000_000;
        let busy: Vec<u64> = (0..WINDOW).map(|i| key(&t, &format!("k{i}"))).collect();
        for &k in &busy {
            assert_eq!(t.rate(k, hour, 0, None), Verdict::Pass);
        }
        // A flood of new keys is refused, and no busy key lost its state.
        for i in 0..100 {
            assert_eq!(t.rate(key(&t, &format!("new{i}")), hour, 0, None), Verdict::Full);
        }
        for &k in &busy {
            assert!(matches!(t.rate(k, hour, 0, None), Verdict::Refuse(_)));
        }
        // Connection counts: a slot with nothing in flight is idle.
        let c = Table::new(1);
        let held: Vec<usize> = busy.iter().map(|&k| c.acquire(k, 1).unwrap()).collect();
        assert_eq!(c.acquire(key(&c, "other"), 1), Err(false));
        assert_eq!(c.acquire(busy[0], 1), Err(true));
        c.release(held[5]);
        let at = c.acquire(key(&c, "other"), 1).unwrap();
        assert_eq!(at, held[5]);
        assert_eq!(c.in_flight(at), 1);
    }

    #[test]
    fn exact_across_threads() {
        // 4 threads, one key, 1 per hour with burst 99: exactly 100 pass.
        let t = std::sync::Arc::new(Table::new(16));
        let k = key(&t, "shared");
        let passes: usize = (0..4)
            .map(|_| {
                let t = t.clone();
                std::thread::spawn(move || {
                    (0..1000)
                        .filter(|_| t.rate(k, 3_600_000_000_000, 99, None) == Verdict::Pass)
                        .count()
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .sum();
        assert_eq!(passes, 100);
        let c = std::sync::Arc::new(Table::new(16));
        let taken: usize = (0..4)
            .map(|_| {
                let c = c.clone();
                std::thread::spawn(move || (0..1000).filter(|_| c.acquire(k, 7).is_ok()).count())
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .sum();
        assert_eq!(taken, 7);
    }
}

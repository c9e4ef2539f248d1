//! The memory tier of one `[[cache]]` zone: one store for the whole
//! process, shared by every worker thread, bounded in bytes.
//!
//! Entries are immutable (`Arc<Entry>`): a hit clones a reference under a
//! shard's lock and serves the bytes after letting go of it; a refresh
//! replaces the entry whole. Keys are split over shards by a keyed hash so
//! that workers seldom meet on one lock, and each shard keeps its own part
//! of the byte budget and evicts by CLOCK (second chance): a hit sets the
//! key's bit, the hand clears set bits and evicts the first key it finds
//! clear, so a key read since the hand last passed survives one more turn.
//!
//! Invariants: the bytes held by a shard never exceed its budget after an
//! insert returns; an object larger than `max_object` (or than a shard's
//! budget) is never held; a key holds at most [`MAX_VARIANTS`] variants.

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

/// Variants (`Vary` secondary keys) kept per key; a new one past this
/// replaces the oldest.
pub const MAX_VARIANTS: usize = 8;
/// At most this many shards; fewer when the budget is small, so that one
/// shard can always hold an object of `max_object`.
const MAX_SHARDS: usize = 16;
/// Room for a head and a key beside the largest body, when shards are sized.
const HEAD_ROOM: usize = 4096;
/// What an entry costs beyond its bytes (its key, the map's slot, the Arc).
const OVERHEAD: usize = 160;

/// A request field's value, as a Vary secondary key compares it (`None`:
/// the request had no such field).
pub type VaryValue = Option<Box<[u8]>>;

/// A stored response: the head as sent to a client (less hop-by-hop
/// fields, with its Content-Length), its whole body, and the facts the
/// freshness rules need.
#[derive(Debug)]
pub struct Entry {
    pub head: Bytes,
    pub body: Bytes,
    pub status: u16,
    /// When it was stored (monotonic): the start of its resident time.
    pub stored: Instant,
    /// Corrected initial age, seconds (RFC 9111 §4.2.3).
    pub initial_age: u64,
    /// Freshness lifetime, seconds.
    pub lifetime: u64,
    /// The request fields this response varies on and the values the
    /// request it answered had (`None`: the field was absent).
    pub vary: Vec<(Box<str>, VaryValue)>,
    pub etag: Option<Bytes>,
    pub last_modified: Option<Bytes>,
    pub no_cache: bool,
    pub must_revalidate: bool,
    pub stale_if_error: Option<u64>,
    pub stale_while_revalidate: Option<u64>,
}

impl Entry {
    /// Current age in seconds (RFC 9111 §4.2.3: initial age + resident time).
    pub fn age(&self, now: Instant) -> u64 {
        self.initial_age + now.saturating_duration_since(self.stored).as_secs()
    }

    /// The bytes it is charged for.
    pub fn size(&self, key: &[u8]) -> usize {
        key.len() + self.head.len() + self.body.len() + OVERHEAD
    }

    /// Whether it answers a request with these values of its Vary fields.
    pub fn matches(&self, values: &[VaryValue]) -> bool {
        self.vary.len() == values.len() && self.vary.iter().zip(values).all(|((_, a), b)| a == b)
    }

    pub fn vary_names(&self) -> Vec<Box<str>> {
        self.vary.iter().map(|(n, _)| n.clone()).collect()
    }
}

/// One key's variants and its CLOCK state.
struct Node {
    variants: Vec<Arc<Entry>>,
    bytes: usize,
    /// Read since the hand last passed.
    referenced: bool,
    /// Which insertion of the key this is: a ring slot left by an earlier
    /// one (the key was removed and stored again) is skipped.
    stamp: u64,
}

#[derive(Default)]
struct Shard {
    map: HashMap<Box<[u8]>, Node>,
    /// The CLOCK ring: keys in insertion order, each with its node's stamp.
    ring: VecDeque<(Box<[u8]>, u64)>,
    bytes: usize,
    stamps: u64,
}

/// What an insert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    Stored,
    /// Larger than `max_object` or than a shard's budget.
    TooLarge,
}

pub struct Store {
    // A std Mutex per shard, held only for one map operation (a lookup, an
    // insert with its evictions, a removal), never across an await or any
    // I/O. Only a location with `cache` takes it (one lookup per request,
    // one insert per stored miss); the rest of the request path stays
    // shared-nothing. Not per worker, by decision (issue 16, perf/README
    // "cache hits"): per-worker stores would multiply origin traffic and
    // memory by the core count, and handing hits to an owner worker costs
    // a thread hop as long as a proxied request; the critical sections are
    // a hash lookup and a few pointer moves, and a hit measured the same
    // CPU on 1 and 2 workers.
    #[allow(clippy::disallowed_types)]
    shards: Box<[std::sync::Mutex<Shard>]>,
    shard_budget: usize,
    max_object: usize,
    hasher: std::collections::hash_map::RandomState,
}

impl Store {
    /// A store of `memory` bytes in all that holds objects up to
    /// `max_object` bytes.
    #[allow(clippy::disallowed_types)]
    pub fn new(memory: u64, max_object: u64) -> Store {
        let memory = usize::try_from(memory).unwrap_or(usize::MAX);
        let max_object = usize::try_from(max_object).unwrap_or(usize::MAX);
        // Room in each shard for the largest object with a head and key.
        let fit = (memory / max_object.saturating_add(HEAD_ROOM)).clamp(1, MAX_SHARDS);
        // A power of two, rounded down, so a shard's budget holds an object.
        let n = 1usize << (usize::BITS - 1 - fit.leading_zeros());
        Store {
            shards: (0..n).map(|_| std::sync::Mutex::new(Shard::default())).collect(),
            shard_budget: memory / n,
            max_object,
            hasher: Default::default(),
        }
    }

    #[allow(clippy::disallowed_types)]
    fn shard(&self, key: &[u8]) -> std::sync::MutexGuard<'_, Shard> {
        let i = self.hasher.hash_one(key) as usize & (self.shards.len() - 1);
        // A panic while a shard was held cannot leave it inconsistent in a
        // way that matters more than losing the cache: carry on with it.
        self.shards[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn max_object(&self) -> usize {
        self.max_object
    }

    /// The variant of `key` that `pick` chooses (given the key's variants,
    /// newest last); marks the key as used.
    pub fn get(&self, key: &[u8], pick: impl Fn(&Entry) -> bool) -> Option<Arc<Entry>> {
        let mut s = self.shard(key);
        let node = s.map.get_mut(key)?;
        let e = node.variants.iter().rev().find(|e| pick(e))?.clone();
        node.referenced = true;
        Some(e)
    }

    /// Any variant of `key`, to learn the fields it varies on.
    pub fn any(&self, key: &[u8]) -> Option<Arc<Entry>> {
        self.shard(key).map.get(key)?.variants.last().cloned()
    }

    /// Stores `entry` under `key`, replacing the variant with the same
    /// Vary values (or, with different Vary names, every variant: the
    /// origin changed what it varies on). Evicts to stay in budget.
    pub fn put(&self, key: &[u8], entry: Arc<Entry>) -> Put {
        let size = entry.size(key);
        if entry.body.len() > self.max_object || size > self.shard_budget {
            return Put::TooLarge;
        }
        let mut guard = self.shard(key);
        let s = &mut *guard;
        let mut freed = 0;
        let stamp = match s.map.get_mut(key) {
            Some(node) => {
                let names_differ = node.variants.first().is_some_and(|v| {
                    v.vary
                        .iter()
                        .map(|(n, _)| n)
                        .ne(entry.vary.iter().map(|(n, _)| n))
                });
                let mut kept = Vec::with_capacity(node.variants.len() + 1);
                for v in node.variants.drain(..) {
                    let same = v
                        .vary
                        .iter()
                        .map(|(_, x)| x)
                        .eq(entry.vary.iter().map(|(_, x)| x));
                    if names_differ || same {
                        freed += v.size(key);
                    } else {
                        kept.push(v);
                    }
                }
                if kept.len() >= MAX_VARIANTS {
                    freed += kept.remove(0).size(key);
                }
                kept.push(entry);
                node.variants = kept;
                node.bytes = node.bytes - freed + size;
                None
            }
            None => {
                s.stamps += 1;
                let stamp = s.stamps;
                s.map.insert(
                    key.into(),
                    Node {
                        variants: vec![entry],
                        bytes: size,
                        referenced: false,
                        stamp,
                    },
                );
                Some(stamp)
            }
        };
        if let Some(stamp) = stamp {
            s.ring.push_back((key.into(), stamp));
        }
        s.bytes = s.bytes - freed + size;
        self.evict(s, key);
        Put::Stored
    }

    /// CLOCK: until the shard is within budget, the hand passes over the
    /// ring; a referenced key loses its bit and goes round again, others
    /// are evicted. `keep` (the key just stored) is passed over once.
    fn evict(&self, s: &mut Shard, keep: &[u8]) {
        // Each key is seen at most twice (once to clear its bit), so the
        // loop ends even if every key was referenced.
        let mut turns = 2 * s.ring.len() + 1;
        while s.bytes > self.shard_budget && turns > 0 {
            turns -= 1;
            let Some((k, stamp)) = s.ring.pop_front() else {
                break;
            };
            let Some(node) = s.map.get_mut(&k) else { continue };
            if node.stamp != stamp {
                continue;
            }
            if node.referenced || (&*k == keep && turns > 0 && s.ring.len() > 1) {
                node.referenced = false;
                s.ring.push_back((k, stamp));
                continue;
            }
            let bytes = node.bytes;
            s.map.remove(&k);
            s.bytes -= bytes;
        }
        // Slots of removed keys are dropped as the hand meets them; keep
        // the ring from growing past a few times the live keys.
        if s.ring.len() > 4 * s.map.len() + 64 {
            let map = &s.map;
            s.ring
                .retain(|(k, st)| map.get(k).is_some_and(|n| n.stamp == *st));
        }
    }

    /// Removes every variant of `key`; whether there was one.
    pub fn remove(&self, key: &[u8]) -> bool {
        let mut s = self.shard(key);
        match s.map.remove(key) {
            Some(node) => {
                s.bytes -= node.bytes;
                true
            }
            None => false,
        }
    }

    /// Bytes held in all (for tests and metrics).
    pub fn bytes(&self) -> usize {
        (0..self.shards.len())
            .map(|i| self.shards[i].lock().map_or(0, |s| s.bytes))
            .sum()
    }

    /// The budget of all shards together.
    pub fn budget(&self) -> usize {
        self.shard_budget * self.shards.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(body: usize, vary: Vec<(Box<str>, VaryValue)>) -> Arc<Entry> {
        Arc::new(Entry {
            head: Bytes::from_static(b"HTTP/1.1 200 OK\r\n\r\n"),
            body: Bytes::from(vec![b'x'; body]),
            status: 200,
            stored: Instant::now(),
            initial_age: 0,
            lifetime: 60,
            vary,
            etag: None,
            last_modified: None,
            no_cache: false,
            must_revalidate: false,
            stale_if_error: None,
            stale_while_revalidate: None,
        })
    }

    #[test]
    fn stays_within_its_budget_under_any_inserts() {
        let s = Store::new(64 * 1024, 4 * 1024);
        for i in 0..2000u32 {
            let key = format!("k{i}");
            assert_eq!(
                s.put(key.as_bytes(), entry((i as usize * 37) % 4000, vec![])),
                Put::Stored
            );
            assert!(s.bytes() <= s.budget(), "{} > {}", s.bytes(), s.budget());
        }
        assert!(s.bytes() > s.budget() / 2, "the budget is used: {}", s.bytes());
    }

    #[test]
    fn refuses_what_is_over_max_object() {
        let s = Store::new(1 << 20, 1000);
        assert_eq!(s.put(b"big", entry(1001, vec![])), Put::TooLarge);
        assert!(s.get(b"big", |_| true).is_none());
        assert_eq!(s.put(b"ok", entry(1000, vec![])), Put::Stored);
        assert!(s.get(b"ok", |_| true).is_some());
    }

    #[test]
    fn a_key_read_since_the_hand_passed_survives_a_new_one() {
        // Room for about three entries per shard; one shard.
        let s = Store::new(3 * 1200, 2000);
        assert_eq!(s.shards.len(), 1);
        s.put(b"a", entry(1000, vec![]));
        s.put(b"b", entry(1000, vec![]));
        s.put(b"c", entry(1000, vec![]));
        assert!(s.get(b"a", |_| true).is_some());
        s.put(b"d", entry(1000, vec![]));
        assert!(s.get(b"a", |_| true).is_some(), "a was referenced");
        assert!(s.get(b"b", |_| true).is_none(), "b was the first unreferenced");
        assert!(s.get(b"d", |_| true).is_some());
    }

    #[test]
    fn variants_replace_their_own_and_keep_the_others() {
        let s = Store::new(1 << 20, 1 << 16);
        let v = |x: &str| vec![("accept-encoding".into(), Some(x.as_bytes().into()))];
        s.put(b"k", entry(10, v("gzip")));
        s.put(b"k", entry(20, v("br")));
        s.put(b"k", entry(30, v("gzip")));
        let want = v("gzip");
        let vals: Vec<_> = want.iter().map(|(_, x)| x.clone()).collect();
        assert_eq!(s.get(b"k", |e| e.matches(&vals)).unwrap().body.len(), 30);
        let vals: Vec<_> = v("br").iter().map(|(_, x)| x.clone()).collect();
        assert_eq!(s.get(b"k", |e| e.matches(&vals)).unwrap().body.len(), 20);
        let before = s.bytes();
        assert!(s.remove(b"k"));
        assert!(!s.remove(b"k"));
        assert!(s.bytes() < before);
        assert_eq!(s.bytes(), 0);
    }

    #[test]
    fn removed_keys_stored_again_keep_the_accounting_right() {
        let s = Store::new(10 * 1200, 2000);
        for round in 0..50 {
            for k in [b"x", b"y", b"z"] {
                s.put(k, entry(500 + round, vec![]));
                if round % 3 == 0 {
                    s.remove(k);
                }
            }
        }
        let held: usize = [b"x", b"y", b"z"]
            .iter()
            .filter_map(|k| s.get(*k, |_| true).map(|e| e.size(*k)))
            .sum();
        assert_eq!(s.bytes(), held);
    }
}

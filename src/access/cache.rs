//! A bounded cache of credentials already verified (Basic passwords, JWT
//! signatures), shared by every worker thread without a lock, so a client
//! that repeats its credentials costs a keyed hash and a lookup rather
//! than a bcrypt or an RSA verification.
//!
//! What is stored is never the credential: each entry is a 128-bit tag,
//! HMAC-SHA256 of the credential under a key drawn at random when the
//! cache is made (each config load makes its own, so a reload forgets
//! everything), and the time (Unix seconds) the entry is good until.
//! Guessing a tag is as hard as forging the HMAC.
//!
//! Direct-mapped: a tag has one slot, a newer entry replaces an older one,
//! so the memory is fixed (32 bytes a slot). Each slot is a sequence lock
//! over atomics: a reader that sees a write under way, or a slot changed
//! while it read, takes it as a miss, so an entry is never read half
//! written. A miss only costs a verification.

use std::sync::atomic::{fence, AtomicU64, Ordering};

use ring::hmac;

struct Slot {
    /// Even: stable; odd: a writer holds the slot.
    seq: AtomicU64,
    tag0: AtomicU64,
    tag1: AtomicU64,
    /// Unix seconds the entry is good until; 0: empty.
    until: AtomicU64,
}

pub struct Verified {
    key: hmac::Key,
    slots: Box<[Slot]>,
}

impl std::fmt::Debug for Verified {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Verified({} slots)", self.slots.len())
    }
}

/// A credential's tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tag([u64; 2]);

impl Tag {
    /// The tag as two words, for a table of one's own.
    pub fn words(self) -> [u64; 2] {
        self.0
    }
}

impl Verified {
    /// A cache of `slots` entries (rounded up to a power of two).
    pub fn new(slots: usize) -> Verified {
        let rng = ring::rand::SystemRandom::new();
        // A key the system cannot draw is a key no one knows either way;
        // drawing fails only without a random source, where TLS fails too.
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &rng)
            .unwrap_or_else(|_| hmac::Key::new(hmac::HMAC_SHA256, &std::process::id().to_le_bytes()));
        let n = slots.next_power_of_two().max(1);
        Verified {
            key,
            slots: (0..n)
                .map(|_| Slot {
                    seq: AtomicU64::new(0),
                    tag0: AtomicU64::new(0),
                    tag1: AtomicU64::new(0),
                    until: AtomicU64::new(0),
                })
                .collect(),
        }
    }

    /// The tag of a credential given in parts (each length-prefixed, so
    /// that no two different part lists hash alike).
    pub fn tag(&self, parts: &[&[u8]]) -> Tag {
        let mut ctx = hmac::Context::with_key(&self.key);
        for p in parts {
            ctx.update(&(p.len() as u64).to_le_bytes());
            ctx.update(p);
        }
        let d = ctx.sign();
        let d = d.as_ref();
        let word = |i: usize| u64::from_le_bytes(d[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
        Tag([word(0), word(1)])
    }

    fn slot(&self, t: Tag) -> &Slot {
        &self.slots[(t.0[0] as usize) & (self.slots.len() - 1)]
    }

    /// Whether `t` was verified and is still good at `now` (Unix seconds).
    pub fn hit(&self, t: Tag, now: u64) -> bool {
        let s = self.slot(t);
        let before = s.seq.load(Ordering::Acquire);
        if before & 1 == 1 {
            return false;
        }
        let (a, b, until) = (
            s.tag0.load(Ordering::Relaxed),
            s.tag1.load(Ordering::Relaxed),
            s.until.load(Ordering::Relaxed),
        );
        // The loads above happen before the second look at `seq`.
        fence(Ordering::Acquire);
        if s.seq.load(Ordering::Relaxed) != before {
            return false;
        }
        a == t.0[0] && b == t.0[1] && now < until
    }

    /// Records `t` as verified until `until`. A slot another thread is
    /// writing is left to it.
    pub fn insert(&self, t: Tag, until: u64) {
        let s = self.slot(t);
        let seq = s.seq.load(Ordering::Relaxed);
        if seq & 1 == 1
            || s.seq
                .compare_exchange(seq, seq + 1, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        // Readers that start now see an odd `seq`; the stores below
        // happen after the odd value is visible.
        fence(Ordering::Release);
        s.tag0.store(t.0[0], Ordering::Relaxed);
        s.tag1.store(t.0[1], Ordering::Relaxed);
        s.until.store(until, Ordering::Relaxed);
        s.seq.store(seq + 2, Ordering::Release);
    }
}

/// Unix seconds now.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_misses_expiry_and_replacement() {
        let c = Verified::new(4);
        let a = c.tag(&[b"alice", b"pw"]);
        assert_ne!(a, c.tag(&[b"alicep", b"w"]), "parts are delimited");
        assert!(!c.hit(a, 10));
        c.insert(a, 100);
        assert!(c.hit(a, 10));
        assert!(!c.hit(a, 100), "good until, not through");
        // Another cache draws another key.
        assert_ne!(Verified::new(4).tag(&[b"alice", b"pw"]), a);
        // Filling every slot pushes `a` out or keeps it; never a false hit.
        for i in 0..64u32 {
            let t = c.tag(&[&i.to_le_bytes()]);
            c.insert(t, 100);
            assert!(c.hit(t, 10));
        }
        assert!(!c.hit(c.tag(&[b"mallory"]), 10));
    }
}

//! Request ids (`X-Request-ID`, `$request_id`): kept when a trusted proxy
//! sent a valid one, otherwise generated here.
//!
//! A generated id is 32 lowercase hex digits (128 bits): 16 of a random
//! prefix drawn when the worker starts, 4 of the worker id, 12 of a
//! per-worker counter. The prefix makes ids of two runs (and of a restarted
//! worker) differ, the worker id those of two workers, the counter those of
//! one worker. The counter is kept as hex text and
//! incremented in place, digit by digit with carry, so making an id costs a
//! few instructions and a 32-byte copy: no formatting, no allocation.

use std::cell::Cell;

/// The longest id taken from a trusted proxy.
pub const MAX_LEN: usize = 64;
const GEN_LEN: usize = 32;

/// One request's id, held inline.
#[derive(Clone, Copy)]
pub struct RequestId {
    buf: [u8; MAX_LEN],
    len: u8,
}

impl RequestId {
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }

    /// A received id, if it is one we pass on: 1 to [`MAX_LEN`] visible
    /// ASCII characters (no space, no control byte), after trimming the
    /// surrounding whitespace a field value may carry.
    pub fn parse(v: &[u8]) -> Option<RequestId> {
        let v = v.trim_ascii();
        if v.is_empty() || v.len() > MAX_LEN || !v.iter().all(|b| (0x21..=0x7e).contains(b)) {
            return None;
        }
        let mut buf = [0u8; MAX_LEN];
        buf[..v.len()].copy_from_slice(v);
        Some(RequestId {
            buf,
            len: v.len() as u8,
        })
    }
}

impl Default for RequestId {
    fn default() -> Self {
        RequestId {
            buf: [0; MAX_LEN],
            len: 0,
        }
    }
}

/// A worker's id generator.
pub struct IdGen {
    next: Cell<[u8; GEN_LEN]>,
}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl IdGen {
    /// `prefix`: random per process; `worker`: this worker's id.
    pub fn new(prefix: u64, worker: usize) -> IdGen {
        let mut next = [b'0'; GEN_LEN];
        for (i, d) in next[..16].iter_mut().enumerate() {
            *d = HEX[((prefix >> (60 - 4 * i)) & 15) as usize];
        }
        let w = worker as u64 & 0xffff;
        for (i, d) in next[16..20].iter_mut().enumerate() {
            *d = HEX[((w >> (12 - 4 * i)) & 15) as usize];
        }
        IdGen {
            next: Cell::new(next),
        }
    }

    /// The next id of this worker.
    #[inline]
    pub fn next(&self) -> RequestId {
        let cur = self.next.get();
        let mut n = cur;
        // Increment the 12 counter digits as hex text; the carry rarely
        // goes past the last digit. After 2^48 ids it wraps to zero.
        for d in n[20..].iter_mut().rev() {
            let (next, carry) = match *d {
                b'9' => (b'a', false),
                b'f' => (b'0', true),
                c => (c + 1, false),
            };
            *d = next;
            if !carry {
                break;
            }
        }
        self.next.set(n);
        let mut buf = [0u8; MAX_LEN];
        buf[..GEN_LEN].copy_from_slice(&cur);
        RequestId {
            buf,
            len: GEN_LEN as u8,
        }
    }
}

/// A random 64-bit prefix, drawn anew each time a worker starts (a worker
/// restarted after a panic starts its counter again, so it needs a new
/// prefix too): std's hasher keys are random per process and change with
/// each `RandomState`; the time and pid are mixed in as well.
pub fn fresh_prefix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    h.write_u128(now);
    h.write_u32(std::process::id());
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_count_in_hex() {
        let g = IdGen::new(0x0123_4567_89ab_cdef, 3);
        assert_eq!(g.next().as_bytes(), b"0123456789abcdef0003000000000000");
        assert_eq!(g.next().as_bytes(), b"0123456789abcdef0003000000000001");
        for _ in 0..14 {
            g.next();
        }
        assert_eq!(g.next().as_bytes(), b"0123456789abcdef0003000000000010");
        let mut seen = std::collections::HashSet::new();
        for _ in 0..5000 {
            assert!(seen.insert(g.next().as_bytes().to_vec()));
        }
    }

    #[test]
    fn received_ids() {
        assert_eq!(RequestId::parse(b" abc-1 ").unwrap().as_bytes(), b"abc-1");
        assert!(RequestId::parse(b"").is_none());
        assert!(RequestId::parse(b"a b").is_none());
        assert!(RequestId::parse(b"a\x01").is_none());
        assert!(RequestId::parse("é".as_bytes()).is_none());
        assert!(RequestId::parse(&[b'a'; 65]).is_none());
        assert!(RequestId::parse(&[b'a'; 64]).is_some());
    }
}

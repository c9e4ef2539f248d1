//! Per-worker free lists of I/O buffers.
//!
//! An idle client connection holds no buffer (see `proxy::serve_connection`),
//! so a busy one would otherwise allocate and free its buffers on every
//! request. Buffers go back to this list between requests instead, and come
//! out of it when the next request starts. The list is bounded in count and
//! only keeps buffers of ordinary size, so one large body cannot pin memory.

use std::cell::RefCell;

use bytes::BytesMut;

/// Buffers kept per worker, per kind (at most 2 x 128 x 16 KiB = 4 MiB).
const MAX_POOLED: usize = 128;
/// Larger buffers are freed rather than kept.
const MAX_KEPT: usize = 16 * 1024;

pub struct BufPool {
    bytes: RefCell<Vec<BytesMut>>,
    vecs: RefCell<Vec<Vec<u8>>>,
    /// Capacity of a new read buffer.
    read_size: usize,
}

impl BufPool {
    pub fn new(read_size: usize) -> BufPool {
        BufPool {
            bytes: RefCell::new(Vec::new()),
            vecs: RefCell::new(Vec::new()),
            read_size,
        }
    }

    /// An empty read buffer.
    pub fn take_bytes(&self) -> BytesMut {
        self.bytes
            .borrow_mut()
            .pop()
            .unwrap_or_else(|| BytesMut::with_capacity(self.read_size))
    }

    /// Returns a read buffer that holds no data. One still shared with a
    /// slice split off it, or grown beyond ordinary size, is just dropped.
    pub fn put_bytes(&self, mut b: BytesMut) {
        if !b.is_empty() {
            return;
        }
        // Reclaiming succeeds only when no split-off slice is alive, and it
        // restores the buffer's full capacity.
        if b.try_reclaim(self.read_size) && b.capacity() <= MAX_KEPT {
            let mut pool = self.bytes.borrow_mut();
            if pool.len() < MAX_POOLED {
                pool.push(b);
            }
        }
    }

    /// An empty output buffer.
    pub fn take_vec(&self) -> Vec<u8> {
        self.vecs.borrow_mut().pop().unwrap_or_default()
    }

    pub fn put_vec(&self, mut v: Vec<u8>) {
        if v.capacity() == 0 || v.capacity() > MAX_KEPT {
            return;
        }
        v.clear();
        let mut pool = self.vecs.borrow_mut();
        if pool.len() < MAX_POOLED {
            pool.push(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_and_bounds() {
        let p = BufPool::new(4096);
        let mut b = p.take_bytes();
        b.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        let head = b.split_to(b.len()).freeze();
        // A slice is still alive: not pooled.
        p.put_bytes(b);
        assert!(p.bytes.borrow().is_empty());
        drop(head);

        let mut b = p.take_bytes();
        b.extend_from_slice(b"abc");
        let _ = b.split_to(3);
        p.put_bytes(b);
        assert_eq!(p.bytes.borrow().len(), 1);
        assert!(p.take_bytes().capacity() >= 4096);

        let mut big = Vec::with_capacity(MAX_KEPT + 1);
        big.push(1);
        p.put_vec(big);
        assert!(p.vecs.borrow().is_empty());
        p.put_vec(Vec::with_capacity(100));
        assert_eq!(p.take_vec().capacity(), 100);
        for _ in 0..MAX_POOLED + 10 {
            p.put_vec(Vec::with_capacity(10));
        }
        assert_eq!(p.vecs.borrow().len(), MAX_POOLED);
    }
}

//! The cache tee of the response body stage: while a miss is proxied as
//! usual, the decoded body bytes are copied into a bounded buffer, and
//! the upstream's head is kept beside them. Past the zone's `max_object`
//! the copy is abandoned and its memory freed at once; the response goes
//! on to the client whole either way. What the tee holds is stored only
//! when the body copy ended cleanly (the caller decides, see
//! `proxy/cache.rs`).
//!
//! One request owns its tee on its worker: interior mutability with
//! borrows that end within each call, never across an await.

use std::cell::RefCell;

use bytes::Bytes;

use crate::http::ResponseHead;

pub struct Tee {
    state: RefCell<State>,
}

struct State {
    /// `None` once abandoned.
    body: Option<Vec<u8>>,
    /// Body bytes a session may send with the head, kept until it says
    /// how many it took (`commit`): the rest reach `push` with the body.
    pending: Vec<u8>,
    max: usize,
    head: Option<ResponseHead>,
}

impl Tee {
    pub fn new(max: usize) -> Tee {
        Tee {
            state: RefCell::new(State {
                body: Some(Vec::new()),
                pending: Vec::new(),
                max,
                head: None,
            }),
        }
    }

    /// Body bytes, in order.
    pub fn push(&self, data: &[u8]) {
        let mut s = self.state.borrow_mut();
        let max = s.max;
        if let Some(b) = s.body.as_mut() {
            if b.len() + data.len() > max {
                s.body = None;
            } else {
                b.extend_from_slice(data);
            }
        }
    }

    /// The first body bytes, which may go out with the head.
    pub fn pending(&self, data: &[u8]) {
        let mut s = self.state.borrow_mut();
        s.pending.clear();
        if s.body.is_some() {
            s.pending.extend_from_slice(data);
        }
    }

    /// `n` of the pending bytes went with the head; the rest are dropped
    /// (the body copy reads them again).
    pub fn commit(&self, n: usize) {
        let pending = std::mem::take(&mut self.state.borrow_mut().pending);
        self.push(&pending[..n.min(pending.len())]);
    }

    pub fn set_head(&self, head: &ResponseHead) {
        self.state.borrow_mut().head = Some(head.clone());
    }

    pub fn head(&self) -> Option<ResponseHead> {
        self.state.borrow().head.clone()
    }

    /// The body copied, unless it was abandoned.
    pub fn take_body(&self) -> Option<Bytes> {
        self.state.borrow_mut().body.take().map(Bytes::from)
    }

    /// Stops copying and frees what was copied.
    pub fn abandon(&self) {
        self.state.borrow_mut().body = None;
    }

    pub fn max(&self) -> usize {
        self.state.borrow().max
    }

    pub fn abandoned(&self) -> bool {
        self.state.borrow().body.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_what_fits_and_drops_what_does_not() {
        let t = Tee::new(10);
        t.pending(b"abcdef");
        t.commit(4);
        t.push(b"efgh");
        assert!(!t.abandoned());
        assert_eq!(&t.take_body().unwrap()[..], b"abcdefgh");
        let t = Tee::new(4);
        t.push(b"abc");
        t.push(b"de");
        assert!(t.abandoned());
        t.push(b"f");
        assert!(t.take_body().is_none());
    }
}

//! `WorkerCtx`: what one worker owns for as long as its thread lives,
//! shared by its connection tasks through an `Rc`: deadlines, buffers, the
//! date cache, the shutdown flag, counters, and the newest config
//! [`Generation`]. Nothing in it is shared with another thread, so it uses
//! `Cell` and `RefCell`, never a lock. A borrow is never held across an await.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;

use crate::bufpool::BufPool;
use crate::deadline::Deadlines;
use crate::generation::{Generation, Snapshot};
use crate::log::Dates;
use crate::shutdown::Shutdown;

pub struct WorkerCtx {
    pub id: usize,
    pub dates: Dates,
    pub shutdown: Shutdown,
    /// Deadlines of every socket wait, woken by the worker's tick.
    pub deadlines: Deadlines,
    /// Buffers lent to connections while they serve a request.
    pub buffers: BufPool,
    /// Open downstream connections.
    pub active: Cell<usize>,
    /// The balancers' random seed, different per worker and per start.
    pub seed: u64,
    /// This worker's counters outside any config series, written by it
    /// alone, read by the admin listener (`metrics`).
    pub metrics: Arc<crate::metrics::WorkerMetrics>,
    /// This worker's request ids.
    pub ids: crate::reqid::IdGen,
    /// This worker's trace and span ids.
    pub spans: crate::trace::Spans,
    /// Files opened by static locations (nginx's `open_file_cache`).
    pub files: crate::files::cache::OpenCache,
    /// The runtime is on io_uring (file reads go through it; on the epoll
    /// driver they go to the file helper threads).
    pub uring: bool,
    /// The newest config generation; swapped by a reload, never borrowed
    /// across an await (`gen` clones the `Rc`).
    gen: RefCell<Rc<Generation>>,
}

impl WorkerCtx {
    pub fn new(
        id: usize,
        snap: &Snapshot,
        metrics: Arc<crate::metrics::WorkerMetrics>,
        uring: bool,
    ) -> Rc<WorkerCtx> {
        // random_two's generator: different per worker and per start.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let seed = now ^ (id as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        Rc::new(WorkerCtx {
            id,
            dates: Dates::default(),
            shutdown: Shutdown::default(),
            deadlines: Deadlines::default(),
            buffers: BufPool::new(crate::proxy::HEAD_BUF),
            active: Cell::new(0),
            seed,
            metrics,
            ids: crate::reqid::IdGen::new(crate::reqid::fresh_prefix(), id),
            spans: crate::trace::Spans::new(crate::reqid::fresh_prefix()),
            files: Default::default(),
            uring,
            gen: RefCell::new(Rc::new(Generation::build(snap, seed, None))),
        })
    }

    /// The newest generation: what a request starting now runs under.
    pub fn gen(&self) -> Rc<Generation> {
        self.gen.borrow().clone()
    }

    /// Builds the next generation from `snap` and makes it the newest.
    pub fn install(&self, snap: &Snapshot) -> Rc<Generation> {
        let next = Rc::new(Generation::build(snap, self.seed, Some(&self.gen())));
        *self.gen.borrow_mut() = next.clone();
        next
    }

    /// The generation a connection on listen address `addr` serves its next
    /// request under, and the listener's index in it: the newest when it
    /// still listens there; otherwise `current` (the address was removed by
    /// a reload), with `false`: that connection should close after this.
    pub fn gen_for(&self, addr: SocketAddr, current: &Rc<Generation>) -> (Rc<Generation>, usize, bool) {
        let newest = self.gen();
        if let Some(i) = newest.listener(addr) {
            return (newest, i, true);
        }
        let i = current.listener(addr).unwrap_or(0);
        (current.clone(), i, false)
    }

    /// Stops accepting and ends every idle wait; requests in flight go on.
    pub fn begin_shutdown(&self) {
        self.shutdown.raise();
        self.deadlines.close_all();
    }

    /// Counts a downstream connection for as long as the guard lives.
    pub fn track_connection(self: &Rc<Self>) -> ConnGuard {
        self.active.set(self.active.get() + 1);
        ConnGuard(self.clone())
    }
}

pub struct ConnGuard(Rc<WorkerCtx>);

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.0.active.set(self.0.active.get() - 1);
    }
}

//! `WorkerCtx`: everything one worker owns, shared by its connection tasks
//! through an `Rc`. Nothing in it is shared with another thread, so it uses
//! `Cell` and `RefCell`, never a lock. A borrow is never held across an await.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;

use crate::bufpool::BufPool;
use crate::config::{Config, Server};
use crate::deadline::Deadlines;
use crate::log::{AccessLogs, Dates};
use crate::route::Router;
use crate::shutdown::Shutdown;
use crate::upstream::health::Probed;
use crate::upstream::UpstreamState;

pub struct WorkerCtx {
    pub id: usize,
    pub config: Arc<Config>,
    pub router: Router,
    pub upstreams: Vec<UpstreamState>,
    pub logs: AccessLogs,
    pub dates: Dates,
    pub shutdown: Shutdown,
    /// Deadlines of every socket wait, woken by the worker's tick.
    pub deadlines: Deadlines,
    /// Buffers lent to connections while they serve a request.
    pub buffers: BufPool,
    /// Open downstream connections.
    pub active: Cell<usize>,
    /// TLS termination: which listeners, and each server block's config.
    pub tls: crate::tls::server::WorkerTls,
    /// This worker's counters, written by it alone, read by the admin
    /// listener (`metrics`).
    pub metrics: Arc<crate::metrics::WorkerMetrics>,
}

impl WorkerCtx {
    /// `probed`: active health verdicts, shared with the prober, when some
    /// upstream has a `health_check`.
    pub fn new(
        id: usize,
        config: Arc<Config>,
        probed: Option<Arc<Probed>>,
        metrics: Arc<crate::metrics::WorkerMetrics>,
    ) -> std::io::Result<Rc<WorkerCtx>> {
        // random_two's generator: different per worker and per start.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let seed = now ^ (id as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        Ok(Rc::new(WorkerCtx {
            id,
            router: Router::new(&config),
            upstreams: (0..config.upstreams.len())
                .map(|i| {
                    let mut up = UpstreamState::new(&config, i, seed);
                    up.probed = probed.clone();
                    up
                })
                .collect(),
            logs: AccessLogs::open(&config)?,
            dates: Dates::default(),
            shutdown: Shutdown::default(),
            deadlines: Deadlines::default(),
            buffers: BufPool::new(crate::proxy::HEAD_BUF),
            active: Cell::new(0),
            tls: crate::tls::server::WorkerTls::new(&config),
            metrics,
            config,
        }))
    }

    pub fn server(&self, i: usize) -> &Server {
        &self.config.servers[i]
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

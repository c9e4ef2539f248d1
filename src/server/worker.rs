//! One worker: a thread pinned to a core, running its own monoio runtime on
//! io_uring (or epoll), with its own listeners and its own `WorkerCtx`; and
//! the supervisor that restarts a worker that dies.
//!
//! A panic in a connection task ends that connection only (`isolate::Isolated`).
//! A panic in one of the worker's own tasks (an accept loop, the tick) is
//! caught too (`Guarded`), but the worker cannot be trusted to go on: it
//! closes its connections, as at the end of a drain, and its thread ends
//! with the panic. A panic anywhere else on the thread unwinds straight out
//! of the runtime, which then leaks the tasks parked in it and their
//! sockets; it ends the thread all the same.
//!
//! The supervisor, a thread of its own, notices the end, logs the worker id
//! and the panic message, and starts the worker again on the same core with
//! a fresh `WorkerCtx` and the same listening sockets: the process owns
//! every worker's sockets (`Shared::current`, updated by reloads) and hands
//! each start of a worker duplicates of its own (`try_clone`). So a worker's death
//! never closes its sockets; connections the kernel queues on them while
//! it is down wait there and are served by the restarted worker. The dead
//! worker's open connections are lost; the other workers' are untouched.
//! On a shutdown the supervisor lets go of the sockets, so they close as
//! soon as the workers' accept loops end. Restarts back off, and a worker
//! that dies more than `MAX_RESTARTS` times within `RESTART_WINDOW` makes
//! the supervisor give up, so a fault that recurs stops the process with
//! an error instead of looping. A restarted worker gets the newest config
//! (the last reload's) and the process's current listening sockets.

use std::collections::VecDeque;
use std::future::Future;
use std::net::TcpListener;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;

use crate::ctx::WorkerCtx;
use crate::generation::Snapshot;
use crate::metrics::Registry;
use crate::shutdown::Shutdown;

use super::{listener, Control, Driver};

/// How often idle upstream connections are checked for a close by the upstream.
const POOL_SWEEP: Duration = Duration::from_secs(1);
const POOL_SWEEP_TICKS: u32 = (POOL_SWEEP.as_millis() / crate::deadline::TICK.as_millis()) as u32;

pub struct WorkerSpec {
    pub id: usize,
    pub core: Option<core_affinity::CoreId>,
    /// The newest config (a restarted worker starts from the last reload's).
    pub snapshot: Arc<Snapshot>,
    /// The worker's duplicates of the process's listening sockets, by
    /// configured address.
    pub listeners: Vec<(SocketAddr, TcpListener)>,
    pub control: flume::Receiver<Control>,
    pub driver: Driver,
    /// Every worker's counters; this worker writes block `id`.
    pub metrics: Arc<Registry>,
    /// The admin listener (worker 0 only, when `[admin]` is configured).
    pub admin: Option<TcpListener>,
}

/// The body of a worker thread.
pub fn run(spec: WorkerSpec) -> std::io::Result<()> {
    if let Some(core) = spec.core {
        if !core_affinity::set_for_current(core) {
            tracing::warn!(worker = spec.id, "could not pin to core {}", core.id);
        }
    }
    let id = spec.id;
    let result = match spec.driver {
        // The ring's task-work flags are chosen once per process (ring.rs).
        Driver::Uring => match super::ring::runtime(1024) {
            Ok(mut rt) => rt.block_on(main(spec, true)),
            Err(e) => {
                tracing::warn!(worker = id, "io_uring runtime failed ({e}); using epoll");
                legacy(spec)
            }
        },
        Driver::Legacy => legacy(spec),
    };
    match result {
        Ok(None) => Ok(()),
        // The runtime is gone and with it every task and socket: end the
        // thread with the panic, for the supervisor.
        Ok(Some(panicked)) => std::panic::resume_unwind(Box::new(panicked)),
        Err(e) => {
            tracing::error!(worker = id, "worker stopped: {e}");
            Err(e)
        }
    }
}

fn legacy(spec: WorkerSpec) -> std::io::Result<Option<String>> {
    let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build()?;
    rt.block_on(main(spec, false))
}

/// The worker's own tasks (accept loops, tick) run guarded: a panic in one
/// is caught and reported to `main`, which closes the worker's connections
/// and then ends the thread with that panic for the supervisor to see.
/// Letting it unwind through the runtime instead would leak every task
/// still parked in it, and the sockets they hold.
type Faults = flume::Sender<String>;

/// Serves until a shutdown; `Some` with the message when one of the worker's
/// own tasks panicked.
async fn main(spec: WorkerSpec, uring: bool) -> std::io::Result<Option<String>> {
    let registry = spec.metrics;
    let ctx = WorkerCtx::new(spec.id, &spec.snapshot, registry.workers[spec.id].clone(), uring);
    registry.worker_started(ctx.id);
    let _running = Running(&registry, ctx.id);
    let (faults, fault) = flume::bounded::<String>(1);
    // The admin listener, on worker 0 (see admin.rs), with a stop of its
    // own: it stays open through the drain of the client listeners, and
    // across reloads (its address cannot change by one).
    let admin_stop = Rc::new(Shutdown::default());
    let admin = match spec.admin {
        Some(l) => Some(spawn_guarded(
            &faults,
            "admin accept loop",
            crate::admin::accept_loop(
                registry.clone(),
                monoio::net::TcpListener::from_std(l)?,
                admin_stop.clone(),
            ),
        )),
        None => None,
    };
    let mut accepting = Accepting::default();
    for (addr, l) in spec.listeners {
        accepting.add(&ctx, &faults, addr, l)?;
    }
    // The worker's housekeeping tick: idle client deadlines every tick,
    // idle upstream connections every POOL_SWEEP.
    let ticker = ctx.clone();
    spawn_guarded(&faults, "tick", async move {
        let mut n = 0u32;
        while !ticker.shutdown.is_raised() {
            monoio::select! {
                _ = monoio::time::sleep(crate::deadline::TICK) => {},
                _ = ticker.shutdown.wait() => break,
            }
            ticker.deadlines.tick(Instant::now());
            crate::metrics::publish(&ticker);
            n += 1;
            if n.is_multiple_of(POOL_SWEEP_TICKS) {
                for up in &ticker.gen().upstreams {
                    up.pool.sweep();
                }
            }
        }
    });

    // Control messages from the main thread and the resolver, until a
    // shutdown or a fault. A closed channel means the process is going
    // away: a shutdown too. Each change is applied here, between the polls
    // of request tasks, so no request sees it half way.
    let mut retiring = false;
    let panicked = loop {
        monoio::select! {
            m = spec.control.recv_async() => match m {
                Ok(Control::Shutdown) | Err(_) => break None,
                Ok(Control::Retire) => {
                    retiring = true;
                    break None;
                }
                Ok(Control::Reload { snapshot, added, removed }) => {
                    // A restarted worker may find a reload it started from.
                    if snapshot.number > ctx.gen().number {
                        ctx.install(&snapshot);
                        for addr in removed {
                            accepting.remove(addr);
                        }
                        for (addr, l) in added {
                            if let Err(e) = accepting.add(&ctx, &faults, addr, l) {
                                tracing::error!(worker = ctx.id, "cannot accept on {addr}: {e}");
                            }
                        }
                        tracing::info!(worker = ctx.id, "config generation {} installed", snapshot.number);
                    }
                }
                Ok(Control::ReopenLogs(files)) => {
                    let n = ctx.gen().logs.reopen(&files);
                    tracing::debug!(worker = ctx.id, "access logs reopened ({n})");
                }
                Ok(Control::Addr(number, u)) => {
                    // Positions are those of generation `number`'s config.
                    let gen = ctx.gen();
                    if gen.number == number {
                        if let Some(up) = gen.upstreams.get(u.upstream) {
                            up.set_addr(u.server, u.addr);
                        }
                    }
                }
                Ok(Control::Crash) => {
                    // A task of the worker's own (not a connection's)
                    // panics, as a bug in the accept loop or the tick would.
                    let id = ctx.id;
                    spawn_guarded(&faults, "test hook", async move {
                        panic!("worker {id}: crash requested through Handle::crash_worker")
                    });
                }
            },
            f = fault.recv_async() => break f.ok(),
        }
    };

    if retiring {
        // Idle keep-alive connections stay open: a client may be sending
        // on one right now. Each is told to close with its next response,
        // and the drain below ends whatever is left.
        ctx.shutdown.raise();
        tracing::info!(worker = ctx.id, "handed over: stopped accepting, draining");
    } else {
        ctx.begin_shutdown();
    }
    // The accept loops end on the shutdown and close their duplicates of
    // the listening sockets. Wait for that: an accept still in flight in a
    // runtime that is going away could take a connection no one serves. On
    // a stop the supervisor lets go of its own descriptors too, so the
    // sockets close; after a fault it keeps them, and what the kernel queues
    // on them meanwhile waits for the restarted worker.
    let _ = monoio::time::timeout(Duration::from_secs(1), async {
        for (_, (_, h)) in accepting.loops.drain() {
            h.await;
        }
    })
    .await;
    if panicked.is_none() {
        // Drain: stop accepting, close idle connections, let requests in
        // flight finish until drain_timeout.
        let drain_until = Instant::now() + ctx.gen().config.global.drain_timeout;
        while ctx.active.get() > 0 && Instant::now() < drain_until {
            monoio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    if ctx.active.get() > 0 {
        // Whatever still waits on a socket fails now as timed out; the
        // tasks unwind, answer what they can and close their connections.
        tracing::warn!(
            worker = ctx.id,
            "{}: closing {} connections",
            if panicked.is_some() {
                "worker failed"
            } else {
                "drain timeout"
            },
            ctx.active.get()
        );
        ctx.deadlines.expire_all();
        let give_up = Instant::now() + Duration::from_secs(1);
        while ctx.active.get() > 0 && Instant::now() < give_up {
            monoio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let gen = ctx.gen();
    for up in &gen.upstreams {
        up.pool.clear();
    }
    gen.logs.flush_all();
    if let Some(admin) = admin {
        // `/healthz` answers 503 until the other workers have drained too
        // (each within drain_timeout, and a second to close what is left).
        let until = Instant::now() + gen.config.global.drain_timeout + Duration::from_secs(2);
        while panicked.is_none() && registry.running() > 1 && Instant::now() < until {
            monoio::time::sleep(Duration::from_millis(20)).await;
        }
        admin_stop.raise();
        let _ = monoio::time::timeout(Duration::from_secs(1), admin).await;
    }
    Ok(panicked)
}

/// Marks the worker stopped in the registry however `main` ends.
struct Running<'a>(&'a Registry, usize);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.worker_stopped(self.1);
    }
}

/// The worker's accept loops, one per listen address, each with the flag
/// that stops it when a reload removes the address.
#[derive(Default)]
struct Accepting {
    loops: HashMap<SocketAddr, (Rc<Shutdown>, monoio::task::JoinHandle<()>)>,
}

impl Accepting {
    fn add(
        &mut self,
        ctx: &Rc<WorkerCtx>,
        faults: &Faults,
        addr: SocketAddr,
        l: TcpListener,
    ) -> std::io::Result<()> {
        if self.loops.contains_key(&addr) {
            return Ok(());
        }
        let l = monoio::net::TcpListener::from_std(l)?;
        let stop = Rc::new(Shutdown::default());
        let h = spawn_guarded(
            faults,
            "accept loop",
            listener::accept_loop(ctx.clone(), addr, l, stop.clone()),
        );
        self.loops.insert(addr, (stop, h));
        Ok(())
    }

    /// Stops accepting on `addr`; the loop takes what is queued and ends.
    fn remove(&mut self, addr: SocketAddr) {
        if let Some((stop, _)) = self.loops.remove(&addr) {
            stop.raise();
        }
    }
}

/// Spawns one of the worker's own tasks; a panic in it is sent on `faults`.
fn spawn_guarded(
    faults: &Faults,
    what: &'static str,
    fut: impl Future<Output = ()> + 'static,
) -> monoio::task::JoinHandle<()> {
    monoio::spawn(Guarded {
        fut,
        what,
        faults: faults.clone(),
    })
}

pin_project_lite::pin_project! {
    struct Guarded<F> {
        #[pin]
        fut: F,
        what: &'static str,
        faults: Faults,
    }
}

impl<F: Future<Output = ()>> Future for Guarded<F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        let fut = this.fut;
        match catch_unwind(AssertUnwindSafe(|| fut.poll(cx))) {
            Ok(poll) => poll,
            Err(panic) => {
                let msg = format!(
                    "{} panicked: {}",
                    this.what,
                    crate::isolate::panic_message(&*panic)
                );
                // Capacity 1: the first fault is the one that counts.
                let _ = this.faults.try_send(msg);
                Poll::Ready(())
            }
        }
    }
}

/// The first wait before a restart; it doubles with each restart of the same
/// worker within `RESTART_WINDOW`, up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// A worker may be restarted this many times within `RESTART_WINDOW`; one
/// more death in the window and the supervisor gives up.
const MAX_RESTARTS: usize = 5;
const RESTART_WINDOW: Duration = Duration::from_secs(60);

/// How a worker thread ended.
#[derive(Debug)]
pub(super) enum Outcome {
    /// After a shutdown: the normal end.
    Stopped,
    /// `run` returned an error (its runtime or listeners could not be set up).
    Failed(String),
    Panicked(String),
}

/// What the supervisor waits for.
pub(super) enum Event {
    Exited {
        id: usize,
        outcome: Outcome,
    },
    /// The handle asked everyone to stop: pending restarts are dropped.
    Stop,
}

/// State shared by the supervisor and the `Handle`.
#[derive(Default)]
pub(super) struct Shared {
    pub stopping: AtomicBool,
    pub restarts: AtomicUsize,
    pub gave_up: AtomicBool,
    /// What a worker (re)started now gets: the newest config and the
    /// process's listening sockets. Not on the request path: written by
    /// the reload thread and read by the supervisor when it starts a
    /// worker, so a lock is fine here.
    #[allow(clippy::disallowed_types)]
    pub current: std::sync::Mutex<Option<Current>>,
}

/// The newest config and the listening sockets, as a starting worker needs them.
pub(super) struct Current {
    pub snapshot: Arc<Snapshot>,
    /// Per configured address, one socket per worker (the SO_REUSEPORT
    /// group, bound together by the main thread); kept for the life of the
    /// process, or until a reload removes the address.
    pub listeners: Vec<(SocketAddr, Vec<TcpListener>)>,
    /// The admin listener, served by worker 0: one socket, not a
    /// SO_REUSEPORT group, kept for the life of the process.
    pub admin: Option<TcpListener>,
}

impl Shared {
    #[allow(clippy::disallowed_types)]
    pub fn current(&self) -> std::sync::MutexGuard<'_, Option<Current>> {
        self.current.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What it takes to start worker `id` again.
pub(super) struct Template {
    pub core: Option<core_affinity::CoreId>,
    pub control: flume::Receiver<Control>,
}

/// Restarts workers that die; ends once every worker has stopped.
pub(super) struct Supervisor {
    pub driver: Driver,
    pub templates: Vec<Template>,
    pub shared: Arc<Shared>,
    pub events_tx: flume::Sender<Event>,
    pub events: flume::Receiver<Event>,
    /// Called once if the supervisor gives up, so the main thread wakes.
    pub on_give_up: Option<Box<dyn FnOnce() + Send>>,
    pub metrics: Arc<Registry>,
}

impl Supervisor {
    /// Starts worker `id` on its own thread, on duplicates of its listening
    /// sockets.
    pub fn spawn(&self, id: usize) -> std::io::Result<JoinHandle<()>> {
        let t = &self.templates[id];
        let (snapshot, listeners, admin) = {
            let current = self.shared.current();
            let c = current
                .as_ref()
                .ok_or_else(|| std::io::Error::other("the server is stopping"))?;
            let listeners = c
                .listeners
                .iter()
                .map(|(addr, socks)| Ok((*addr, socks[id].try_clone()?)))
                .collect::<std::io::Result<Vec<_>>>()?;
            let admin = match (&c.admin, id) {
                (Some(a), 0) => Some(a.try_clone()?),
                _ => None,
            };
            (c.snapshot.clone(), listeners, admin)
        };
        let spec = WorkerSpec {
            id,
            core: t.core,
            snapshot,
            listeners,
            control: t.control.clone(),
            driver: self.driver,
            metrics: self.metrics.clone(),
            admin,
        };
        let events = self.events_tx.clone();
        std::thread::Builder::new()
            .name(format!("ringway-w{id}"))
            .spawn(move || {
                let outcome = match catch_unwind(AssertUnwindSafe(|| run(spec))) {
                    Ok(Ok(())) => Outcome::Stopped,
                    Ok(Err(e)) => Outcome::Failed(e.to_string()),
                    Err(panic) => Outcome::Panicked(crate::isolate::panic_message(&*panic)),
                };
                let _ = events.send(Event::Exited { id, outcome });
            })
    }

    fn stopping(&self, id: usize) -> bool {
        // A closed control channel means the handle is gone: stopping too.
        self.shared.stopping.load(Ordering::SeqCst) || self.templates[id].control.is_disconnected()
    }

    /// The supervisor thread's body: `threads` are the running workers.
    /// Returns an error when it gave up on a worker.
    pub fn run(mut self, threads: Vec<JoinHandle<()>>) -> Result<(), String> {
        let n = threads.len();
        let mut threads: Vec<Option<JoinHandle<()>>> = threads.into_iter().map(Some).collect();
        let mut deaths: Vec<VecDeque<Instant>> = vec![VecDeque::new(); n];
        let mut due: Vec<Option<Instant>> = vec![None; n];
        let mut failure: Option<String> = None;
        loop {
            // Stopping: the workers' duplicates are the last descriptors of
            // the listening sockets, so they close as the accept loops end
            // and new clients are refused rather than queued for no one.
            if (0..n).all(|id| self.stopping(id)) {
                self.shared.current().take();
            }
            if threads.iter().all(Option::is_none) && due.iter().all(Option::is_none) {
                break;
            }
            let event = match due.iter().flatten().min() {
                Some(&at) => self.events.recv_deadline(at).ok(),
                None => match self.events.recv() {
                    Ok(e) => Some(e),
                    // Cannot happen: the supervisor holds a sender itself.
                    Err(_) => break,
                },
            };
            let now = Instant::now();
            match event {
                Some(Event::Exited { id, outcome }) => {
                    if let Some(t) = threads[id].take() {
                        let _ = t.join();
                    }
                    let cause = match outcome {
                        Outcome::Stopped => continue,
                        Outcome::Failed(e) => format!("failed: {e}"),
                        Outcome::Panicked(m) => format!("panicked: {m}"),
                    };
                    if self.stopping(id) {
                        tracing::error!(worker = id, "worker {cause} while stopping");
                        continue;
                    }
                    match self.schedule(id, &mut deaths[id], now, &cause) {
                        Ok(at) => due[id] = Some(at),
                        Err(e) => failure = Some(self.give_up(e)),
                    }
                }
                Some(Event::Stop) | None => {}
            }
            for id in 0..n {
                let Some(at) = due[id] else { continue };
                if self.stopping(id) {
                    due[id] = None;
                } else if at <= now {
                    due[id] = None;
                    match self.spawn(id) {
                        Ok(t) => {
                            threads[id] = Some(t);
                            self.shared.restarts.fetch_add(1, Ordering::SeqCst);
                            tracing::warn!(worker = id, "worker restarted");
                        }
                        Err(e) => {
                            match self.schedule(id, &mut deaths[id], now, &format!("restart failed: {e}")) {
                                Ok(at) => due[id] = Some(at),
                                Err(e) => failure = Some(self.give_up(e)),
                            }
                        }
                    }
                }
            }
        }
        failure.map_or(Ok(()), Err)
    }

    /// Records a death of worker `id` and says when to start it again, or
    /// why not to.
    fn schedule(
        &self,
        id: usize,
        deaths: &mut VecDeque<Instant>,
        now: Instant,
        cause: &str,
    ) -> Result<Instant, String> {
        while deaths
            .front()
            .is_some_and(|&t| now.duration_since(t) > RESTART_WINDOW)
        {
            deaths.pop_front();
        }
        if deaths.len() >= MAX_RESTARTS {
            return Err(format!(
                "worker {id} {cause}; it died {} times within {}s, giving up",
                deaths.len() + 1,
                RESTART_WINDOW.as_secs()
            ));
        }
        let backoff = FIRST_BACKOFF
            .saturating_mul(1 << deaths.len().min(16))
            .min(MAX_BACKOFF);
        deaths.push_back(now);
        tracing::error!(
            worker = id,
            "worker {cause}; restarting it in {}ms ({} of {MAX_RESTARTS} restarts allowed per {}s)",
            backoff.as_millis(),
            deaths.len(),
            RESTART_WINDOW.as_secs()
        );
        Ok(now + backoff)
    }

    /// Stops restarting anything and tells the main thread; returns `why`.
    fn give_up(&mut self, why: String) -> String {
        tracing::error!("{why}");
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.shared.gave_up.store(true, Ordering::SeqCst);
        if let Some(wake) = self.on_give_up.take() {
            wake();
        }
        why
    }
}

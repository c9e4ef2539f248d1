//! Process level: binding, worker threads (one per core, pinned), signals.
//!
//! Everything that can fail at start-up (binding, opening log files) fails
//! before a worker serves its first request. The main thread then only waits
//! for a signal and forwards it to the workers over their control channels;
//! it is never on the request path.

pub mod listener;
pub mod notify;
pub mod privilege;
pub mod reload;
pub mod ring;
pub mod upgrade;
pub mod worker;

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
#[allow(clippy::disallowed_types)] // reloads only, never the request path
// The supervisor's state (`Handle::live`): reloads and upgrades only, never a worker.
use std::sync::Mutex;
use std::thread::JoinHandle;

use crate::config::Config;
use crate::generation::Snapshot;
use crate::log::LogFiles;
use crate::route::listen_addrs;
use crate::upstream::health::Probed;
use crate::upstream::probe::{ProbeMsg, Prober};
use crate::upstream::resolve::{Resolve, Resolver, SystemResolver, Update};

/// Which monoio driver the workers run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    Uring,
    Legacy,
}

impl Driver {
    /// io_uring when the kernel offers it, epoll otherwise; the environment
    /// variable `RINGWAY_DRIVER=legacy` forces epoll.
    pub fn detect() -> Driver {
        match std::env::var("RINGWAY_DRIVER").as_deref() {
            Ok("legacy") | Ok("epoll") => return Driver::Legacy,
            Ok("uring") | Ok("io_uring") | Ok("") | Err(_) => {}
            Ok(other) => tracing::warn!("RINGWAY_DRIVER={other:?} is not \"legacy\" or \"uring\"; detecting"),
        }
        // The probe builds an io_uring and drops it. Tearing a ring down
        // ends with the kernel queueing work on every thread that used it
        // with TWA_SIGNAL, which interrupts that thread's next blocking
        // syscall: a socket read with a timeout then fails with EINTR. So
        // the probe runs on a thread of its own that ends right after.
        let probe = std::thread::Builder::new()
            .name("ringway-probe".into())
            .spawn(monoio::utils::detect_uring)
            .and_then(|t| t.join().map_err(|_| io::Error::other("io_uring probe panicked")));
        if probe.unwrap_or(false) {
            Driver::Uring
        } else {
            tracing::warn!("io_uring is not available here (old kernel, io_uring_disabled or a seccomp filter); using epoll");
            Driver::Legacy
        }
    }
}

/// Messages from the main thread to a worker.
#[derive(Debug)]
pub enum Control {
    /// Stop accepting, drain, exit.
    Shutdown,
    /// Stop accepting (a new process took the sockets over), answer the
    /// next request of each keep-alive connection with `Connection: close`
    /// instead of closing it while idle, drain, exit.
    Retire,
    /// A new config: build its generation and make it the newest; accept
    /// on `added` (this worker's sockets of the addresses it adds), stop
    /// accepting on `removed`.
    Reload {
        snapshot: Arc<Snapshot>,
        added: Vec<(SocketAddr, std::net::TcpListener)>,
        removed: Vec<SocketAddr>,
    },
    /// Access log files reopened (SIGUSR1), for the newest generation.
    ReopenLogs(Arc<LogFiles>),
    /// A server of an upstream has a new address (`resolve_interval`); the
    /// positions are those of the generation numbered first.
    Addr(u64, Update),
    /// Panic outside any connection task (`Handle::crash_worker`).
    #[doc(hidden)]
    Crash,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Snapshot({})", self.number)
    }
}

impl std::fmt::Debug for LogFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LogFiles({})", self.len())
    }
}

/// Control messages a worker may have waiting; the resolver thread waits
/// (bounded) when a worker's queue is full.
const CONTROL_QUEUE: usize = 64;

/// Binds one SO_REUSEPORT group for `addr`: one socket per worker, created
/// together. A port 0 is chosen by the kernel for the first and shared.
fn bind_group(addr: SocketAddr, workers: usize) -> io::Result<(SocketAddr, Vec<std::net::TcpListener>)> {
    let mut real = addr;
    let mut group = Vec::with_capacity(workers);
    for _ in 0..workers {
        let l = listener::bind(real)?;
        if real.port() == 0 {
            real = l.local_addr()?;
        }
        group.push(l);
    }
    Ok((real, group))
}

/// Listening sockets bound for every worker, not yet serving.
pub struct Server {
    config: Arc<Config>,
    workers: usize,
    /// Per configured listen address, one socket per worker.
    sockets: Vec<(SocketAddr, Vec<std::net::TcpListener>)>,
    addrs: Vec<SocketAddr>,
    resolver: Arc<dyn Resolve>,
    logs: Arc<LogFiles>,
    /// `[admin] listen`, bound once, served by worker 0.
    admin: Option<(std::net::TcpListener, SocketAddr)>,
}

impl Server {
    /// Binds every listen address once per worker (SO_REUSEPORT), and opens
    /// the access log files. The sockets belong to the process: kept across
    /// reloads and worker restarts.
    pub fn bind(config: Arc<Config>, workers: usize) -> io::Result<Server> {
        Server::bind_inherited(config, workers, HashMap::new())
    }

    /// `bind`, taking the sockets of an address from `inherited` (handed
    /// over by the process being upgraded) when it is there; the inherited
    /// sockets of addresses the config does not list are closed.
    pub fn bind_inherited(
        config: Arc<Config>,
        workers: usize,
        mut inherited: HashMap<SocketAddr, Vec<std::net::TcpListener>>,
    ) -> io::Result<Server> {
        // The admin socket, when the process being upgraded handed one over.
        let inherited_admin = config
            .admin
            .as_ref()
            .and_then(|a| inherited.remove(&a.listen))
            .and_then(|mut g| g.pop());
        let mut addrs = Vec::new();
        let mut sockets = Vec::new();
        for addr in listen_addrs(&config) {
            let (real, group) = match inherited.remove(&addr) {
                Some(group) if group.len() == workers => (group[0].local_addr()?, group),
                Some(group) => {
                    return Err(io::Error::other(format!(
                        "{addr}: {} sockets handed over for {workers} workers",
                        group.len()
                    )))
                }
                None => bind_group(addr, workers)?,
            };
            addrs.push(real);
            sockets.push((addr, group));
        }
        for (addr, group) in inherited {
            tracing::info!(
                "upgrade: {addr} is not in the config: its {} sockets closed",
                group.len()
            );
        }
        let logs = Arc::new(LogFiles::open(&config)?);
        // One socket, not a SO_REUSEPORT group: one worker serves it.
        let admin = match &config.admin {
            Some(a) => {
                let l = match inherited_admin {
                    Some(l) => l,
                    None => listener::bind(a.listen)?,
                };
                let addr = l.local_addr()?;
                Some((l, addr))
            }
            None => None,
        };
        Ok(Server {
            config,
            workers,
            sockets,
            addrs,
            resolver: Arc::new(SystemResolver),
            logs,
            admin,
        })
    }

    /// Looks names up with `resolver` for `resolve_interval` instead of the
    /// system's (tests use a fake).
    pub fn with_resolver(mut self, resolver: Arc<dyn Resolve>) -> Server {
        self.resolver = resolver;
        self
    }

    /// The bound addresses, in config order, with real ports.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The admin listener's address, with its real port.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(|(_, a)| *a)
    }

    /// Starts the worker threads, and the supervisor that restarts a
    /// worker that dies (see `worker`).
    pub fn start(self) -> io::Result<Handle> {
        self.launch(None)
    }

    /// `start`, calling `on_give_up` if the supervisor stops restarting.
    #[allow(clippy::disallowed_types)] // the reload state's lock, off the request path
    fn launch(self, on_give_up: Option<Box<dyn FnOnce() + Send>>) -> io::Result<Handle> {
        let driver = Driver::detect();
        let cores = core_affinity::get_core_ids().unwrap_or_default();
        let mut controls = Vec::new();
        let mut templates = Vec::new();
        // Active health: one prober for the process, its verdicts read by
        // every worker (see upstream::probe).
        let probed = Arc::new(Probed::new(&self.config));
        let prober = Prober::start(&self.config, probed.clone())?;
        for id in 0..self.workers {
            let (tx, rx) = flume::bounded(CONTROL_QUEUE);
            controls.push(tx);
            templates.push(worker::Template {
                core: (!cores.is_empty()).then(|| cores[id % cores.len()]),
                control: rx,
            });
        }
        let bound: Vec<(SocketAddr, SocketAddr)> = self
            .sockets
            .iter()
            .map(|(a, _)| *a)
            .zip(self.addrs.iter().copied())
            .collect();
        let layout = Arc::new(crate::metrics::Layout::build(
            self.config.clone(),
            self.workers,
            &bound,
            prober.is_some().then(|| probed.clone()),
            None,
        ));
        let metrics = Arc::new(crate::metrics::Registry::new(self.workers, layout.clone()));
        let snapshot = Arc::new(Snapshot {
            number: 1,
            config: self.config.clone(),
            probed: prober.is_some().then(|| probed.clone()),
            logs: self.logs.clone(),
            metrics: layout,
        });
        let shared = Arc::new(worker::Shared::default());
        *shared.current() = Some(worker::Current {
            snapshot,
            listeners: self.sockets,
            admin: self.admin.map(|(l, _)| l),
        });
        let (events_tx, events) = flume::unbounded();
        let supervisor = worker::Supervisor {
            driver,
            templates,
            shared: shared.clone(),
            events_tx: events_tx.clone(),
            events,
            on_give_up,
            metrics: metrics.clone(),
        };
        let mut threads = Vec::new();
        for id in 0..self.workers {
            threads.push(supervisor.spawn(id)?);
        }
        let supervisor = std::thread::Builder::new()
            .name("ringway-supervisor".into())
            .spawn(move || supervisor.run(threads))?;
        tracing::info!(
            workers = self.workers,
            driver = ?driver,
            "listening on {}",
            self.addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", ")
        );
        let resolver = start_resolver(&self.config, &self.resolver, &controls, prober.as_ref(), 1)?;
        Ok(Handle {
            controls,
            events: events_tx,
            shared,
            supervisor,
            workers: self.workers,
            metrics,
            live: Mutex::new(Live {
                number: 1,
                config: self.config,
                probed,
                prober,
                resolver,
                resolve: self.resolver,
                logs: self.logs,
            }),
        })
    }
}

fn start_resolver(
    config: &Config,
    resolve: &Arc<dyn Resolve>,
    workers: &[flume::Sender<Control>],
    prober: Option<&Prober>,
    number: u64,
) -> io::Result<Option<Resolver>> {
    let workers = workers.to_vec();
    let prober = prober.map(Prober::sender);
    Resolver::start(config, resolve.clone(), move |u| {
        publish(&workers, prober.as_ref(), number, u)
    })
}

/// Hands a new address to every worker and to the prober; false when one
/// of them did not take it within a second (its queue full: the resolver
/// sends it again after the next lookup; or it is gone, shutting down).
fn publish(
    workers: &[flume::Sender<Control>],
    prober: Option<&flume::Sender<ProbeMsg>>,
    number: u64,
    u: Update,
) -> bool {
    let wait = std::time::Duration::from_secs(1);
    let mut all = true;
    for (id, w) in workers.iter().enumerate() {
        if w.send_timeout(Control::Addr(number, u), wait).is_err() {
            tracing::warn!(worker = id, "worker did not take a new upstream address");
            all = false;
        }
    }
    if let Some(p) = prober {
        all &= p.send_timeout(ProbeMsg::Addr(u), wait).is_ok();
    }
    all
}

/// What a reload replaces: the config in force and the threads built from it.
pub(crate) struct Live {
    pub number: u64,
    pub config: Arc<Config>,
    pub probed: Arc<Probed>,
    pub prober: Option<Prober>,
    pub resolver: Option<Resolver>,
    pub resolve: Arc<dyn Resolve>,
    /// The access log files in use, drained at shutdown.
    pub logs: Arc<LogFiles>,
}

/// Running workers.
pub struct Handle {
    controls: Vec<flume::Sender<Control>>,
    events: flume::Sender<worker::Event>,
    shared: Arc<worker::Shared>,
    supervisor: JoinHandle<Result<(), String>>,
    workers: usize,
    metrics: Arc<crate::metrics::Registry>,
    /// Touched by reloads only (one at a time), never by a worker.
    #[allow(clippy::disallowed_types)]
    live: Mutex<Live>,
}

impl Handle {
    /// Asks every worker to drain and stop (none is restarted after this),
    /// and the prober and resolver threads to end.
    pub fn shutdown(&self) {
        self.stop_with(|| Control::Shutdown);
    }

    /// `shutdown` after a binary upgrade: the workers stop accepting and
    /// drain without closing idle keep-alive connections under a client
    /// (see `Control::Retire`).
    pub fn retire(&self) {
        self.stop_with(|| Control::Retire);
    }

    /// Duplicates of every listening socket, by configured address, in
    /// worker order: what a binary upgrade hands over.
    pub fn listening_sockets(&self) -> io::Result<Vec<(SocketAddr, Vec<std::net::TcpListener>)>> {
        let current = self.shared.current();
        let cur = current
            .as_ref()
            .ok_or_else(|| io::Error::other("the server is stopping"))?;
        let mut all = cur
            .listeners
            .iter()
            .map(|(a, g)| {
                Ok((
                    *a,
                    g.iter().map(|s| s.try_clone()).collect::<io::Result<Vec<_>>>()?,
                ))
            })
            .collect::<io::Result<Vec<_>>>()?;
        // The admin listener goes with them, a group of one under its
        // configured address (which no server block may share).
        if let (Some(l), Some(a)) = (&cur.admin, &cur.snapshot.config.admin) {
            all.push((a.listen, vec![l.try_clone()?]));
        }
        Ok(all)
    }

    fn stop_with(&self, msg: impl Fn() -> Control) {
        // First, so `/healthz` says 503 before anything stops accepting.
        self.metrics.set_draining();
        self.shared.stopping.store(true, Ordering::SeqCst);
        let _ = self.events.send(worker::Event::Stop);
        {
            let live = self.live();
            if let Some(r) = &live.resolver {
                r.stop();
            }
            if let Some(p) = &live.prober {
                p.stop();
            }
        }
        for c in &self.controls {
            let _ = c.send(msg());
        }
    }

    #[allow(clippy::disallowed_types)]
    fn live(&self) -> std::sync::MutexGuard<'_, Live> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Puts `config` in force (see `reload`): binds the addresses it adds,
    /// opens its log files, hands every worker the new snapshot and
    /// restarts the prober and resolver. Nothing changes when it fails.
    /// Counted in the metrics (`ringway_config_reloads_total`).
    pub fn reload(&self, config: Config) -> io::Result<reload::Changes> {
        let r = reload::apply(self, config);
        self.metrics
            .record_reload(r.is_ok(), r.as_ref().map_or(0, |c| c.generation));
        r
    }

    /// Reopens every access log file and hands them to the workers.
    pub fn reopen_logs(&self) -> io::Result<usize> {
        let config = self.live().config.clone();
        let files = Arc::new(LogFiles::open(&config)?);
        for c in &self.controls {
            if c.send_timeout(
                Control::ReopenLogs(files.clone()),
                std::time::Duration::from_secs(1),
            )
            .is_err()
            {
                tracing::warn!("a worker did not take the reopened log files");
            }
        }
        let n = files.len();
        self.live().logs = files;
        Ok(n)
    }

    /// Waits for every worker (and the prober) to finish. The resolver
    /// thread is not waited for: it may be inside a blocking lookup.
    pub fn join(self) {
        let _ = self.wait();
    }

    /// Waits for every worker to finish; an error if a worker kept dying and
    /// the supervisor gave up on it.
    pub fn wait(self) -> io::Result<()> {
        let workers = match self.supervisor.join() {
            Ok(Ok(())) => Ok(()),
            Ok(Err(why)) => Err(io::Error::other(why)),
            Err(_) => Err(io::Error::other("the worker supervisor panicked")),
        };
        let live = self.live.into_inner().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = live.prober {
            p.join();
        }
        // The workers handed over their last lines; give the writers a
        // moment to write them, not forever (a disk may be stuck).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        if !live.logs.drain(deadline) {
            tracing::warn!("access log writers still behind at shutdown; their last lines are lost");
        }
        let dropped = crate::log::dropped_log_lines();
        if dropped > 0 {
            tracing::warn!("access log: {dropped} lines dropped (a writer could not keep up)");
        }
        workers
    }

    /// Whether active health checks have server `server` of upstream
    /// `upstream` (indexes in the config in force) out of rotation.
    pub fn probed_down(&self, upstream: usize, server: usize) -> bool {
        self.live().probed.is_down(upstream, server)
    }

    /// The process's metrics: where a config reload is counted
    /// (`record_reload`).
    pub fn metrics(&self) -> &Arc<crate::metrics::Registry> {
        &self.metrics
    }

    /// How many times a worker was restarted after dying.
    pub fn restarts(&self) -> usize {
        self.shared.restarts.load(Ordering::SeqCst)
    }

    /// True once a worker kept dying and the supervisor stopped restarting
    /// it; `wait` then returns the reason.
    pub fn gave_up(&self) -> bool {
        self.shared.gave_up.load(Ordering::SeqCst)
    }

    /// Makes worker `id` panic outside any connection task, to exercise the
    /// restart path. Reachable only through this API, never from the network.
    #[doc(hidden)]
    pub fn crash_worker(&self, id: usize) {
        let _ = self.controls[id].send(Control::Crash);
    }
}

/// Runs until SIGTERM or SIGINT, then drains and returns; returns an error
/// when a worker kept dying (see `worker`). SIGHUP reloads the config from
/// `path`, SIGUSR1 reopens the access logs, SIGUSR2 hands the sockets to a
/// new binary and, once it is ready, drains and returns (see `upgrade`);
/// `reload_watch` reloads when a config file changes. Started by an upgrade
/// (`RINGWAY_UPGRADE_FD` set), it takes the old process's sockets first.
pub fn run(config: Arc<Config>, workers: usize, path: PathBuf) -> io::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1, SIGUSR2};
    upgrade::remember_exe();
    // Registered before the workers start, so an early signal is not lost.
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2])?;
    let pid_file = config.global.pid_file.clone();
    let channel = upgrade::Channel::inherited()?;
    let server = match &channel {
        None => Server::bind(config, workers)?,
        Some(ch) => {
            let inherited = ch.receive()?;
            // A group's size is the worker count it was made for: closing
            // one of its sockets would reset the connections queued on it.
            // (The admin socket, a group of one, says nothing of it.)
            let admin = config.admin.as_ref().map(|a| a.listen);
            let workers = match inherited.iter().find(|(a, _)| Some(**a) != admin).map(|(_, g)| g) {
                Some(g) if g.len() != workers => {
                    tracing::warn!(
                        "upgrade: keeping {} workers, the size of the socket groups handed over (a restart changes it)",
                        g.len()
                    );
                    g.len()
                }
                _ => workers,
            };
            Server::bind_inherited(config, workers, inherited)?
        }
    };
    if let Some(p) = &pid_file {
        reload::write_pid_file(p)?;
    }
    // Listeners bound, log files open, pid file written: root is no longer
    // needed. Before any thread is spawned, so every one runs as the user.
    if let Some(who) = &server.config.global.run_as {
        privilege::drop_to(who)?;
    }
    // A worker that keeps dying ends the wait below as a signal would.
    let wake = signals.handle();
    let handle = Arc::new(server.launch(Some(Box::new(move || wake.close())))?);
    match &channel {
        Some(ch) => {
            notify::main_pid();
            if let Err(e) = ch.ready() {
                tracing::warn!("upgrade: cannot tell the old process that this one is ready: {e}");
            }
            tracing::info!("upgrade: serving as process {}", std::process::id());
        }
        None => notify::ready(),
    }
    drop(channel);
    notify::start_watchdog()?;
    // Reloads and upgrades run on a thread of their own: reading files,
    // resolving names, binding and starting a process never happen on a
    // worker or hold up a signal.
    let (tx, rx) = flume::bounded(4);
    let handed_over = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reloader = {
        let handle = handle.clone();
        let handed_over = handed_over.clone();
        let wake = signals.handle();
        std::thread::Builder::new()
            .name("ringway-reload".into())
            .spawn(move || reload::thread(&handle, &path, rx, &handed_over, &wake))?
    };
    for sig in signals.forever() {
        let job = match sig {
            SIGHUP => reload::Job::Reload("SIGHUP"),
            SIGUSR1 => reload::Job::ReopenLogs,
            SIGUSR2 => reload::Job::Upgrade,
            _ => {
                tracing::info!("signal {sig}: draining");
                break;
            }
        };
        if tx.try_send(job).is_err() {
            tracing::warn!("signal {sig}: a reload is already queued");
        }
    }
    drop(tx);
    let _ = reloader.join();
    if handed_over.load(Ordering::SeqCst) {
        tracing::info!("upgrade: the new process serves; draining");
        handle.retire();
    } else {
        notify::stopping();
        handle.shutdown();
    }
    let handle =
        Arc::try_unwrap(handle).map_err(|_| io::Error::other("the reload thread still holds the server"))?;
    let result = handle.wait();
    if let Some(p) = &pid_file {
        reload::remove_pid_file(p);
    }
    result?;
    tracing::info!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{ErrorKind, Read, Write};
    use std::time::Duration;

    /// The io_uring probe must not interrupt the calling thread's next
    /// blocking read (it did, with EINTR, when it ran on that thread). Only
    /// the first `detect` in a process probes; no other unit test calls it.
    #[test]
    #[allow(clippy::disallowed_methods)] // a test thread, not a worker
    fn detecting_the_driver_does_not_interrupt_the_caller() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (mut s, _) = l.accept().unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        Driver::detect();
        let writer = std::thread::spawn(move || {
            // Long enough for the ring's teardown to have reached this thread.
            std::thread::sleep(Duration::from_millis(300));
            s.write_all(b"x").unwrap();
            s
        });
        let mut b = [0u8; 1];
        let read = c.read(&mut b);
        let _ = writer.join();
        match read {
            Ok(1) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => panic!("the probe interrupted the caller: {e}"),
            other => panic!("unexpected read result {other:?}"),
        }
    }
}

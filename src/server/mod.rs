//! Process level: binding, worker threads (one per core, pinned), signals.
//!
//! Everything that can fail at start-up (binding, opening log files) fails
//! before a worker serves its first request. The main thread then only waits
//! for a signal and forwards it to the workers over their control channels;
//! it is never on the request path.

pub mod listener;
pub mod ring;
pub mod worker;

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::config::Config;
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
    /// Certificates read again on SIGHUP, per server block (`None`: keep).
    ReloadTls(worker::TlsReload),
    /// A server of an upstream has a new address (`resolve_interval`).
    Addr(Update),
    /// Panic outside any connection task (`Handle::crash_worker`).
    #[doc(hidden)]
    Crash,
}

/// Control messages a worker may have waiting; the resolver thread waits
/// (bounded) when a worker's queue is full.
const CONTROL_QUEUE: usize = 64;

/// Listening sockets bound for every worker, not yet serving.
pub struct Server {
    config: Arc<Config>,
    workers: usize,
    /// `sockets[w][i]`: worker `w`'s socket for listen address `i`.
    sockets: Vec<Vec<std::net::TcpListener>>,
    addrs: Vec<SocketAddr>,
    resolver: Arc<dyn Resolve>,
    /// `[admin] listen`, bound once, served by worker 0.
    admin: Option<(std::net::TcpListener, SocketAddr)>,
}

impl Server {
    /// Binds every listen address once per worker (SO_REUSEPORT). A port 0
    /// is chosen by the kernel for the first worker and shared by the rest.
    pub fn bind(config: Arc<Config>, workers: usize) -> io::Result<Server> {
        let mut addrs = listen_addrs(&config);
        let mut sockets: Vec<Vec<std::net::TcpListener>> = (0..workers).map(|_| Vec::new()).collect();
        for addr in addrs.iter_mut() {
            for worker_sockets in sockets.iter_mut() {
                let l = listener::bind(*addr)?;
                if addr.port() == 0 {
                    *addr = l.local_addr()?;
                }
                worker_sockets.push(l);
            }
        }
        // One socket, not a SO_REUSEPORT group: one worker serves it.
        let admin = match &config.admin {
            Some(a) => {
                let l = listener::bind(a.listen)?;
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
    fn launch(self, on_give_up: Option<Box<dyn FnOnce() + Send>>) -> io::Result<Handle> {
        let driver = Driver::detect();
        let cores = core_affinity::get_core_ids().unwrap_or_default();
        let mut controls = Vec::new();
        let mut templates = Vec::new();
        // Active health: one prober for the process, its verdicts read by
        // every worker (see upstream::probe).
        let probed = Arc::new(Probed::new(&self.config));
        let prober = Prober::start(&self.config, probed.clone())?;
        let metrics = Arc::new(crate::metrics::Registry::new(
            self.config.clone(),
            self.workers,
            self.addrs.clone(),
            prober.is_some().then(|| probed.clone()),
        ));
        let mut admin = self.admin.map(|(l, _)| l);
        for (id, listeners) in self.sockets.into_iter().enumerate() {
            let (tx, rx) = flume::bounded(CONTROL_QUEUE);
            controls.push(tx);
            templates.push(worker::Template {
                core: (!cores.is_empty()).then(|| cores[id % cores.len()]),
                control: rx,
                listeners,
                admin: admin.take(),
            });
        }
        let (events_tx, events) = flume::unbounded();
        let shared = Arc::new(worker::Shared::default());
        let supervisor = worker::Supervisor {
            config: self.config.clone(),
            driver,
            templates,
            shared: shared.clone(),
            events_tx: events_tx.clone(),
            events,
            on_give_up,
            probed: prober.is_some().then(|| probed.clone()),
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
        let resolver = {
            let workers = controls.clone();
            let prober = prober.as_ref().map(Prober::sender);
            Resolver::start(&self.config, self.resolver, move |u| {
                publish(&workers, prober.as_ref(), u)
            })?
        };
        Ok(Handle {
            controls,
            events: events_tx,
            shared,
            supervisor,
            prober,
            resolver,
            probed,
            metrics,
        })
    }
}

/// Hands a new address to every worker and to the prober; false when one
/// of them did not take it within a second (its queue full: the resolver
/// sends it again after the next lookup; or it is gone, shutting down).
fn publish(workers: &[flume::Sender<Control>], prober: Option<&flume::Sender<ProbeMsg>>, u: Update) -> bool {
    let wait = std::time::Duration::from_secs(1);
    let mut all = true;
    for (id, w) in workers.iter().enumerate() {
        if w.send_timeout(Control::Addr(u), wait).is_err() {
            tracing::warn!(worker = id, "worker did not take a new upstream address");
            all = false;
        }
    }
    if let Some(p) = prober {
        all &= p.send_timeout(ProbeMsg::Addr(u), wait).is_ok();
    }
    all
}

/// Running workers.
pub struct Handle {
    controls: Vec<flume::Sender<Control>>,
    events: flume::Sender<worker::Event>,
    shared: Arc<worker::Shared>,
    supervisor: JoinHandle<Result<(), String>>,
    prober: Option<Prober>,
    resolver: Option<Resolver>,
    probed: Arc<Probed>,
    metrics: Arc<crate::metrics::Registry>,
}

impl Handle {
    /// Asks every worker to drain and stop (none is restarted after this),
    /// and the prober and resolver threads to end.
    pub fn shutdown(&self) {
        // First, so `/healthz` says 503 before anything stops accepting.
        self.metrics.set_draining();
        self.shared.stopping.store(true, Ordering::SeqCst);
        let _ = self.events.send(worker::Event::Stop);
        if let Some(r) = &self.resolver {
            r.stop();
        }
        if let Some(p) = &self.prober {
            p.stop();
        }
        for c in &self.controls {
            let _ = c.send(Control::Shutdown);
        }
    }

    /// Re-reads every TLS certificate and key and hands them to the
    /// workers. Connections already open keep their sessions; a file that
    /// fails its checks leaves that block's certificate as it was.
    pub fn reload_tls(&self, config: &Config) {
        let fresh = Arc::new(crate::tls::server::reload_material(config));
        // Kept for a worker that is restarted later: it starts from the
        // config's files and applies this on top.
        self.shared.set_tls_reloaded(fresh.clone());
        for c in &self.controls {
            // A worker that has not taken the previous messages yet gets this
            // one after them; a full queue means it is stuck or leaving.
            if c.try_send(Control::ReloadTls(fresh.clone())).is_err() {
                tracing::warn!("a worker did not take the reloaded certificates");
            }
        }
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
        if let Some(p) = self.prober {
            p.join();
        }
        workers
    }

    /// Whether active health checks have server `server` of upstream
    /// `upstream` (indexes in config order) out of rotation.
    pub fn probed_down(&self, upstream: usize, server: usize) -> bool {
        self.probed.is_down(upstream, server)
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
/// when a worker kept dying (see `worker`). SIGHUP reloads TLS certificates.
pub fn run(config: Arc<Config>, workers: usize) -> io::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    // Registered before the workers start, so an early signal is not lost.
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])?;
    let server = Server::bind(config.clone(), workers)?;
    // A worker that keeps dying ends the wait below as a signal would.
    let wake = signals.handle();
    let handle = server.launch(Some(Box::new(move || wake.close())))?;
    for sig in signals.forever() {
        if sig == SIGHUP {
            tracing::info!("signal {sig}: reloading TLS certificates");
            handle.reload_tls(&config);
            continue;
        }
        tracing::info!("signal {sig}: draining");
        break;
    }
    handle.shutdown();
    handle.wait()?;
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

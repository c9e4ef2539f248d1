//! How a worker's io_uring is set up: which `IORING_SETUP_*` task-work flags
//! its ring is built with.
//!
//! A completion that the kernel cannot post at once (a socket read that had
//! to wait for data) is finished as task work on the thread that owns the
//! ring. By default the kernel notifies that thread as for a signal
//! (`TWA_SIGNAL`), kicking it with an inter-processor interrupt when it is
//! running elsewhere, once per completion, and the thread's syscalls are cut
//! short to run the work. The flags ask for less:
//!
//! - `Defer`: `SINGLE_ISSUER` + `DEFER_TASKRUN` (Linux 6.1). Task work waits
//!   on the ring until its one submitter enters the kernel asking for
//!   completions (`IORING_ENTER_GETEVENTS`), and is run then, in a batch.
//! - `Coop`: `COOP_TASKRUN` + `TASKRUN_FLAG` (Linux 5.19). No interrupt
//!   (`TWA_SIGNAL_NO_IPI`): the work runs the next time the thread comes back
//!   from the kernel anyway; the flag marks the submission ring when some is
//!   pending.
//! - `Default`: neither (Linux 5.10 .. 5.18).
//!
//! Why monoio 0.2.4's driver is compatible with `Defer`: each worker builds
//! its ring on its own thread and is the only one that submits to it (other
//! threads wake it through an eventfd, never the ring), which is what
//! `SINGLE_ISSUER` demands; and the driver parks with `submit_and_wait(1)`,
//! or `submit_with_args(1, ..)` with a timeout, both of which enter with
//! `GETEVENTS`, so every park runs the deferred work. The one path that enters
//! without `GETEVENTS` is the runtime's "cold path" (`submit()` while tasks
//! are still queued after a round, and a park cut short by cross-thread
//! wakers): there, under `Defer`, completions that needed task work wait for
//! the next park, which comes as soon as the task queue is empty. A task
//! that re-queued itself forever would starve them; nothing in ringway does
//! (`io::yield_now` yields once).
//!
//! The kernel rejects flags it does not know with `EINVAL`, so support is
//! found by building a ring: the best setup that builds is used, the choice
//! is logged once per process, and `RINGWAY_URING_SETUP` can force one (for
//! measurement).

use std::io;
use std::sync::OnceLock;

/// The task-work flags a worker's ring is built with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    Default,
    Coop,
    Defer,
}

impl Setup {
    /// Best first.
    const PREFERENCE: [Setup; 3] = [Setup::Defer, Setup::Coop, Setup::Default];

    pub fn name(self) -> &'static str {
        match self {
            Setup::Default => "default",
            Setup::Coop => "coop",
            Setup::Defer => "defer",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Setup::Default => "no task-work flags",
            Setup::Coop => "IORING_SETUP_COOP_TASKRUN + IORING_SETUP_TASKRUN_FLAG",
            Setup::Defer => "IORING_SETUP_SINGLE_ISSUER + IORING_SETUP_DEFER_TASKRUN",
        }
    }

    /// Parses `default`, `coop` or `defer`.
    pub fn parse(s: &str) -> Option<Setup> {
        match s.trim().to_ascii_lowercase().as_str() {
            "default" | "none" => Some(Setup::Default),
            "coop" | "coop_taskrun" => Some(Setup::Coop),
            "defer" | "defer_taskrun" => Some(Setup::Defer),
            _ => None,
        }
    }

    /// An `io_uring::Builder` with this setup's flags.
    pub fn builder(self) -> io_uring::Builder {
        let mut b = io_uring::IoUring::builder();
        match self {
            Setup::Default => {}
            Setup::Coop => {
                b.setup_coop_taskrun().setup_taskrun_flag();
            }
            Setup::Defer => {
                b.setup_single_issuer().setup_defer_taskrun();
            }
        }
        b
    }

    /// Whether the kernel accepts this setup: builds a small ring and drops it.
    fn supported(self) -> bool {
        self.builder().build(8).is_ok()
    }
}

/// The setup every worker uses: chosen once per process, on first call.
pub fn setup() -> Setup {
    static CHOSEN: OnceLock<Setup> = OnceLock::new();
    *CHOSEN.get_or_init(|| {
        // Dropping a probe ring queues teardown work on the thread that
        // built it, which interrupts that thread's next blocking syscall
        // (see `Driver::detect`): probe on a thread that ends right after.
        std::thread::Builder::new()
            .name("ringway-probe".into())
            .spawn(choose)
            .ok()
            .and_then(|t| t.join().ok())
            .unwrap_or(Setup::Default)
    })
}

fn choose() -> Setup {
    let forced = match std::env::var("RINGWAY_URING_SETUP") {
        Err(_) => None,
        Ok(v) if v.is_empty() || v == "auto" => None,
        Ok(v) => {
            let s = Setup::parse(&v);
            if s.is_none() {
                tracing::warn!(
                    "RINGWAY_URING_SETUP={v:?} is not \"default\", \"coop\", \"defer\" or \"auto\"; detecting"
                );
            }
            s
        }
    };
    if let Some(s) = forced {
        if s.supported() {
            tracing::info!(
                "io_uring setup: {} ({}), as RINGWAY_URING_SETUP asks",
                s.name(),
                s.describe()
            );
            return s;
        }
        tracing::warn!(
            "RINGWAY_URING_SETUP={}: the kernel refuses {}; detecting",
            s.name(),
            s.describe()
        );
    }
    let chosen = Setup::PREFERENCE
        .into_iter()
        .find(|s| s.supported())
        .unwrap_or(Setup::Default);
    match chosen {
        Setup::Default => tracing::warn!(
            "io_uring setup: default; this kernel has neither DEFER_TASKRUN (Linux 6.1) nor COOP_TASKRUN (5.19), so each completion interrupts the worker"
        ),
        s => tracing::info!("io_uring setup: {} ({})", s.name(), s.describe()),
    }
    chosen
}

/// A worker's io_uring runtime with the chosen setup. If the ring cannot be
/// built with it (a limit hit only now), tries the default setup before
/// giving up.
pub fn runtime(entries: u32) -> io::Result<monoio::Runtime<monoio::time::TimeDriver<monoio::IoUringDriver>>> {
    let s = setup();
    let build = |s: Setup| {
        monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
            .with_entries(entries)
            .uring_builder(s.builder())
            .enable_timer()
            .build()
    };
    match build(s) {
        Ok(rt) => Ok(rt),
        Err(e) if s != Setup::Default => {
            tracing::warn!(
                "io_uring ring with {} failed ({e}); trying the default setup",
                s.describe()
            );
            build(Setup::Default)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Every setup this kernel accepts gets its completions: round trips
    /// over loopback, both ends in one runtime, where each read has to wait
    /// for the other task's write (so it completes as task work).
    #[test]
    fn completions_arrive_with_every_setup() {
        use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
        for s in Setup::PREFERENCE {
            if !s.supported() {
                continue;
            }
            let mut rt = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
                .uring_builder(s.builder())
                .enable_timer()
                .build()
                .expect("runtime");
            let done = rt.block_on(async {
                let l = monoio::net::TcpListener::bind("127.0.0.1:0").unwrap();
                let addr = l.local_addr().unwrap();
                let echo = monoio::spawn(async move {
                    let (mut c, _) = l.accept().await.unwrap();
                    let mut buf = vec![0u8; 64];
                    loop {
                        let (n, b) = c.read(buf).await;
                        buf = b;
                        match n {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                let (r, b) = c.write_all(buf[..n].to_vec()).await;
                                r.unwrap();
                                drop(b);
                            }
                        }
                    }
                });
                let trips = monoio::time::timeout(Duration::from_secs(10), async {
                    let mut c = monoio::net::TcpStream::connect(addr).await.unwrap();
                    let mut buf = vec![0u8; 64];
                    for i in 0..200u32 {
                        let (r, _) = c.write_all(i.to_be_bytes().to_vec()).await;
                        r.unwrap();
                        let (n, b) = c.read(buf).await;
                        buf = b;
                        assert_eq!(&buf[..n.unwrap()], &i.to_be_bytes());
                    }
                })
                .await;
                drop(echo);
                trips.is_ok()
            });
            assert!(done, "{}: round trips did not complete", s.name());
        }
    }

    #[test]
    fn parse_names() {
        assert_eq!(Setup::parse("defer"), Some(Setup::Defer));
        assert_eq!(Setup::parse("COOP"), Some(Setup::Coop));
        assert_eq!(Setup::parse("default"), Some(Setup::Default));
        assert_eq!(Setup::parse("sqpoll"), None);
    }
}

//! One worker: a thread pinned to a core, running its own monoio runtime on
//! io_uring (or epoll), with its own listeners and its own `WorkerCtx`.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::ctx::WorkerCtx;
use crate::upstream::health::Probed;

use super::{listener, Control, Driver};

/// How often idle upstream connections are checked for a close by the upstream.
const POOL_SWEEP: Duration = Duration::from_secs(1);
const POOL_SWEEP_TICKS: u32 = (POOL_SWEEP.as_millis() / crate::deadline::TICK.as_millis()) as u32;

pub struct WorkerSpec {
    pub id: usize,
    pub core: Option<core_affinity::CoreId>,
    pub config: Arc<Config>,
    pub listeners: Vec<TcpListener>,
    pub control: flume::Receiver<Control>,
    pub driver: Driver,
    /// Active health verdicts, when some upstream is checked.
    pub probed: Option<Arc<Probed>>,
}

/// The body of a worker thread.
pub fn run(spec: WorkerSpec) {
    if let Some(core) = spec.core {
        if !core_affinity::set_for_current(core) {
            tracing::warn!(worker = spec.id, "could not pin to core {}", core.id);
        }
    }
    let id = spec.id;
    let result = match spec.driver {
        Driver::Uring => match monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
            .with_entries(1024)
            .enable_timer()
            .build()
        {
            Ok(mut rt) => rt.block_on(main(spec)),
            Err(e) => {
                tracing::warn!(worker = id, "io_uring runtime failed ({e}); using epoll");
                legacy(spec)
            }
        },
        Driver::Legacy => legacy(spec),
    };
    if let Err(e) = result {
        tracing::error!(worker = id, "worker stopped: {e}");
    }
}

fn legacy(spec: WorkerSpec) -> std::io::Result<()> {
    let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build()?;
    rt.block_on(main(spec))
}

async fn main(spec: WorkerSpec) -> std::io::Result<()> {
    let ctx = WorkerCtx::new(spec.id, spec.config, spec.probed)?;
    for (i, l) in spec.listeners.into_iter().enumerate() {
        let l = monoio::net::TcpListener::from_std(l)?;
        monoio::spawn(listener::accept_loop(ctx.clone(), i, l));
    }
    // The worker's housekeeping tick: idle client deadlines every tick,
    // idle upstream connections every POOL_SWEEP.
    let ticker = ctx.clone();
    monoio::spawn(async move {
        let mut n = 0u32;
        while !ticker.shutdown.is_raised() {
            monoio::select! {
                _ = monoio::time::sleep(crate::deadline::TICK) => {},
                _ = ticker.shutdown.wait() => break,
            }
            ticker.deadlines.tick(Instant::now());
            n += 1;
            if n.is_multiple_of(POOL_SWEEP_TICKS) {
                for up in &ticker.upstreams {
                    up.pool.sweep();
                }
            }
        }
    });

    // Control messages from the main thread and the resolver, until a
    // shutdown; a closed channel means the process is going away, which is
    // a shutdown too. Each is applied here, between the polls of request
    // tasks, so no request sees a change half way.
    loop {
        match spec.control.recv_async().await {
            Ok(Control::ReloadTls(fresh)) => {
                let n = ctx.tls.reload(&ctx.config, &fresh);
                tracing::info!(
                    worker = ctx.id,
                    "TLS certificates reloaded ({n} server blocks updated)"
                );
            }
            Ok(Control::Addr(u)) => {
                if let Some(up) = ctx.upstreams.get(u.upstream) {
                    up.set_addr(u.server, u.addr);
                }
            }
            Ok(Control::Shutdown) | Err(_) => break,
        }
    }

    // Drain: stop accepting, close idle connections, let requests in
    // flight finish until drain_timeout.
    ctx.begin_shutdown();
    let drain_until = Instant::now() + ctx.config.global.drain_timeout;
    while ctx.active.get() > 0 && Instant::now() < drain_until {
        monoio::time::sleep(Duration::from_millis(20)).await;
    }
    if ctx.active.get() > 0 {
        // Whatever still waits on a socket fails now as timed out; the
        // tasks unwind, answer what they can and close their connections.
        tracing::warn!(
            worker = ctx.id,
            "drain timeout: closing {} connections",
            ctx.active.get()
        );
        ctx.deadlines.expire_all();
        let give_up = Instant::now() + Duration::from_secs(1);
        while ctx.active.get() > 0 && Instant::now() < give_up {
            monoio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    for up in &ctx.upstreams {
        up.pool.clear();
    }
    ctx.logs.flush_all();
    Ok(())
}

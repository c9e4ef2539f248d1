//! Full config reload (SIGHUP, `ringway --reload`, `reload_watch`) and log
//! reopening (SIGUSR1), on a thread of their own, never on a worker.
//!
//! A reload reads and checks the whole config (includes, certificates,
//! names) as `--check` does. If it fails, every error is logged as
//! `--check` prints it and the running config stays in force. If it
//! passes: the addresses it adds are bound (one SO_REUSEPORT group each),
//! its access log files opened, active health flags carried over by
//! upstream name, and every worker is handed the new snapshot with its
//! sockets of the added addresses and the list of removed ones. The prober
//! and resolver, built from config positions, are restarted. Listening
//! sockets of kept addresses are never closed. The snapshot carries the
//! metrics' series of the new config, carried over by name
//! (`metrics::series`); every reload is counted by its result
//! (`Registry::record_reload`). The admin listener is the process's for
//! its life: a config whose `[admin]` differs is refused.

use std::collections::HashSet;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::{bind_group, start_resolver, Control, Handle};
use crate::config::Config;
use crate::generation::Snapshot;
use crate::log::LogFiles;
use crate::route::listen_addrs;
use crate::upstream::probe::Prober;

/// What the reload thread is asked to do.
pub enum Job {
    /// Reload, saying why (the signal, or the watch).
    Reload(&'static str),
    ReopenLogs,
    /// SIGUSR2: hand the sockets to a new binary (see `upgrade`).
    Upgrade,
}

/// What a reload changed, by name: listen addresses, server blocks (by
/// names and addresses) and upstreams.
#[derive(Debug, Default)]
pub struct Changes {
    pub generation: u64,
    pub listeners_added: Vec<SocketAddr>,
    pub listeners_removed: Vec<SocketAddr>,
    pub servers_added: usize,
    pub servers_removed: usize,
    pub upstreams_added: Vec<String>,
    pub upstreams_removed: Vec<String>,
    pub upstreams_changed: Vec<String>,
}

impl std::fmt::Display for Changes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let addrs = |v: &[SocketAddr]| v.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(" ");
        write!(
            f,
            "listeners +[{}] -[{}], servers +{} -{}, upstreams +[{}] -[{}] changed [{}]",
            addrs(&self.listeners_added),
            addrs(&self.listeners_removed),
            self.servers_added,
            self.servers_removed,
            self.upstreams_added.join(" "),
            self.upstreams_removed.join(" "),
            self.upstreams_changed.join(" "),
        )
    }
}

/// Puts `config` in force; nothing changes when it fails.
pub(super) fn apply(h: &Handle, config: Config) -> io::Result<Changes> {
    let config = Arc::new(config);
    let mut live = h.live();
    let old = live.config.clone();
    if old.global.run_as != config.global.run_as {
        // The ids were given up at start; there is no way back to change them.
        tracing::warn!(
            "global.user / global.group changed: they take effect at the next start, not on reload"
        );
    }
    // The admin listener is bound once, for the life of the process.
    if config.admin != old.admin {
        let show = |c: &Config| {
            c.admin
                .as_ref()
                .map_or("none".to_string(), |a| a.listen.to_string())
        };
        return Err(io::Error::other(format!(
            "[admin] listen cannot change by a reload ({} in force, {} asked): restart to move it",
            show(&old),
            show(&config)
        )));
    }
    let logs = Arc::new(LogFiles::open(&config)?);
    let old_addrs = listen_addrs(&old);
    let new_addrs = listen_addrs(&config);
    let added: Vec<SocketAddr> = new_addrs
        .iter()
        .filter(|a| !old_addrs.contains(a))
        .copied()
        .collect();
    let removed: Vec<SocketAddr> = old_addrs
        .iter()
        .filter(|a| !new_addrs.contains(a))
        .copied()
        .collect();
    // Bind before anything changes: a port taken elsewhere fails the reload.
    let mut groups = Vec::new();
    for a in &added {
        groups.push((*a, bind_group(*a, h.workers)?));
    }

    let mut changes = Changes {
        generation: live.number + 1,
        listeners_added: groups.iter().map(|(_, (real, _))| *real).collect(),
        listeners_removed: removed.clone(),
        ..Changes::default()
    };
    let keys = |c: &Config| {
        c.servers
            .iter()
            .map(crate::tls::server::block_key)
            .collect::<HashSet<_>>()
    };
    let (ok, nk) = (keys(&old), keys(&config));
    changes.servers_added = nk.difference(&ok).count();
    changes.servers_removed = ok.difference(&nk).count();
    for u in &config.upstreams {
        match old.upstreams.iter().find(|o| o.name == u.name) {
            None => changes.upstreams_added.push(u.name.clone()),
            Some(o) if !o.same_as(u) => changes.upstreams_changed.push(u.name.clone()),
            Some(_) => {}
        }
    }
    for o in &old.upstreams {
        if !config.upstreams.iter().any(|u| u.name == o.name) {
            changes.upstreams_removed.push(o.name.clone());
        }
    }

    // Active health: flags carried by name; the prober starts again from them.
    let probed = Arc::new(live.probed.carry(&old, &config));
    // Started before the old one stops, so a failure here leaves the
    // running config untouched; for a moment both probe, into flags of the
    // same verdicts.
    let prober = Prober::start(&config, probed.clone())?;
    if let Some(p) = live.prober.take() {
        p.stop();
    }
    if let Some(r) = live.resolver.take() {
        r.stop();
    }
    live.prober = prober;
    let number = live.number + 1;
    // The metrics' series of the new config, carried over by name; each
    // listen address with the port it has (bound now or kept).
    let bound: Vec<(SocketAddr, SocketAddr)> = {
        let current = h.shared.current();
        let kept = current.as_ref().map_or(&[][..], |c| &c.listeners[..]);
        new_addrs
            .iter()
            .map(|a| {
                let real = groups
                    .iter()
                    .find(|(g, _)| g == a)
                    .map(|(_, (real, _))| *real)
                    .or_else(|| {
                        let (_, socks) = kept.iter().find(|(k, _)| k == a)?;
                        socks.first()?.local_addr().ok()
                    })
                    .unwrap_or(*a);
                (*a, real)
            })
            .collect()
    };
    let layout = Arc::new(crate::metrics::Layout::build(
        config.clone(),
        h.workers,
        &bound,
        live.prober.is_some().then(|| probed.clone()),
        Some(&h.metrics.layout()),
    ));
    let snapshot = Arc::new(Snapshot {
        number,
        config: config.clone(),
        probed: live.prober.is_some().then(|| probed.clone()),
        logs: logs.clone(),
        metrics: layout.clone(),
    });
    live.logs = logs;
    // Under the supervisor's lock: a worker restarted from now on starts
    // from this config and these sockets; one restarted before gets the
    // message below as well, and ignores what it already has.
    let mut per_worker: Vec<Vec<(SocketAddr, std::net::TcpListener)>> =
        (0..h.workers).map(|_| Vec::new()).collect();
    {
        let mut current = h.shared.current();
        let Some(cur) = current.as_mut() else {
            return Err(io::Error::other("the server is stopping"));
        };
        cur.snapshot = snapshot.clone();
        cur.listeners.retain(|(a, _)| !removed.contains(a));
        for (addr, (_, group)) in groups {
            for (w, sock) in group.iter().enumerate() {
                per_worker[w].push((addr, sock.try_clone()?));
            }
            cur.listeners.push((addr, group));
        }
    }
    for (w, (c, added)) in h.controls.iter().zip(per_worker).enumerate() {
        let msg = Control::Reload {
            snapshot: snapshot.clone(),
            added,
            removed: removed.clone(),
        };
        if c.send_timeout(msg, Duration::from_secs(1)).is_err() {
            tracing::warn!(
                worker = w,
                "a worker did not take the new config (it gets it when restarted)"
            );
        }
    }
    // The config is in force now: a resolver that cannot start is logged,
    // not a failed reload (names keep the addresses they were loaded with).
    live.resolver = start_resolver(&config, &live.resolve, &h.controls, live.prober.as_ref(), number)
        .unwrap_or_else(|e| {
            tracing::error!("reload: re-resolution cannot start: {e}");
            None
        });
    h.metrics.set_layout(layout);
    live.number = number;
    live.config = config;
    live.probed = probed;
    Ok(changes)
}

/// Reads, checks and applies the config at `path`, logging each step.
pub fn reload_from(h: &Handle, path: &Path, why: &str) -> bool {
    let started = Instant::now();
    super::notify::reloading();
    let ok = load_and_apply(h, path, why, started);
    super::notify::ready();
    ok
}

fn load_and_apply(h: &Handle, path: &Path, why: &str, started: Instant) -> bool {
    tracing::info!("reload ({why}): reading {}", path.display());
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(errors) => {
            // Exactly as --check prints them, one per line.
            for e in &errors.0 {
                tracing::error!("{e}");
            }
            tracing::error!(
                "reload failed: {} error{} in the configuration; the running config stays",
                errors.0.len(),
                if errors.0.len() == 1 { "" } else { "s" }
            );
            h.metrics.record_reload(false, 0);
            return false;
        }
    };
    match apply(h, config) {
        Ok(changes) => {
            tracing::info!(
                generation = changes.generation,
                "reload succeeded in {}ms: {changes}",
                started.elapsed().as_millis()
            );
            h.metrics.record_reload(true, changes.generation);
            true
        }
        Err(e) => {
            tracing::error!("reload failed: {e}; the running config stays");
            h.metrics.record_reload(false, 0);
            false
        }
    }
}

/// How often `reload_watch` looks at the config files' modification times.
const WATCH_EVERY: Duration = Duration::from_secs(1);

/// The files' modification times (`None` for one that cannot be read).
fn stamps(files: &[PathBuf]) -> Vec<Option<SystemTime>> {
    files
        .iter()
        .map(|f| std::fs::metadata(f).and_then(|m| m.modified()).ok())
        .collect()
}

/// The reload thread: jobs from the signal loop until it hangs up; with
/// `reload_watch`, a poll of the config files every second. A change is
/// acted on once the files have stayed the same for one more poll (the
/// debounce), so a file written in several steps is read once, whole.
///
/// After an upgrade that succeeded, `handed_over` is raised, `wake` ends
/// the main thread's wait for signals, and the thread returns.
pub(super) fn thread(
    h: &Handle,
    path: &Path,
    jobs: flume::Receiver<Job>,
    handed_over: &std::sync::atomic::AtomicBool,
    wake: &signal_hook::iterator::Handle,
) {
    let watched = |h: &Handle| {
        let live = h.live();
        live.config.global.reload_watch.then(|| live.config.files.clone())
    };
    let mut files = watched(h);
    let mut seen = files.as_deref().map(stamps);
    let mut pending = false;
    loop {
        match jobs.recv_timeout(WATCH_EVERY) {
            Ok(Job::Reload(why)) => {
                reload_from(h, path, why);
            }
            Ok(Job::ReopenLogs) => match h.reopen_logs() {
                Ok(n) => tracing::info!("SIGUSR1: {n} access log files reopened"),
                Err(e) => tracing::error!("SIGUSR1: cannot reopen the access logs: {e}"),
            },
            Ok(Job::Upgrade) => {
                if upgrade(h) {
                    handed_over.store(true, Ordering::SeqCst);
                    wake.close();
                    return;
                }
            }
            Err(flume::RecvTimeoutError::Disconnected) => return,
            Err(flume::RecvTimeoutError::Timeout) => {
                let Some(f) = &files else { continue };
                let now = stamps(f);
                if seen.as_ref() != Some(&now) {
                    seen = Some(now);
                    pending = true;
                    continue;
                }
                if !pending {
                    continue;
                }
                pending = false;
                reload_from(h, path, "a config file changed");
            }
        }
        // The watch follows the config in force (includes come and go).
        let next = watched(h);
        if next != files {
            seen = next.as_deref().map(stamps);
            files = next;
        }
    }
}

/// SIGUSR2: starts the new binary on this process's sockets; true once it
/// is ready. A failure is logged and this process goes on serving.
fn upgrade(h: &Handle) -> bool {
    tracing::info!("upgrade (SIGUSR2): starting the new binary");
    let pid_file = h.live().config.global.pid_file.clone();
    let result = h
        .listening_sockets()
        .map_err(|e| format!("cannot duplicate the listening sockets: {e}"))
        .and_then(|groups| super::upgrade::hand_over(&groups));
    match result {
        Ok(pid) => {
            tracing::info!("upgrade: process {pid} is ready; this process stops accepting");
            true
        }
        Err(why) => {
            // The new process may have written its id before it failed:
            // this process's id goes back first, so whoever reads the
            // failure in the log finds the file right.
            if let Some(p) = &pid_file {
                if let Err(e) = write_pid_file(p) {
                    tracing::error!("upgrade: {e}");
                }
            }
            tracing::error!("upgrade failed: {why}; this process goes on serving");
            false
        }
    }
}

/// Writes this process's id, so `ringway --reload` can find it.
#[allow(clippy::disallowed_methods)] // the main thread, before serving
pub fn write_pid_file(path: &Path) -> io::Result<()> {
    // Written beside it and renamed over it, so a reader never sees the
    // file empty or half written.
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}.tmp", std::process::id()));
    let tmp = std::path::PathBuf::from(tmp);
    std::fs::write(&tmp, format!("{}\n", std::process::id()))
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| io::Error::new(e.kind(), format!("pid_file {}: {e}", path.display())))
}

pub fn remove_pid_file(path: &Path) {
    // Only our own: a newer process may have written its id there since.
    if std::fs::read_to_string(path).is_ok_and(|s| s.trim() == std::process::id().to_string()) {
        let _ = std::fs::remove_file(path);
    }
}

/// `ringway --reload`: sends SIGHUP to the process named by `pid_file`.
pub fn signal_reload(config: &Config) -> Result<u32, String> {
    signal_running(config, "--reload", libc::SIGHUP)
}

/// `ringway --upgrade`: sends SIGUSR2 to the process named by `pid_file`.
pub fn signal_upgrade(config: &Config) -> Result<u32, String> {
    signal_running(config, "--upgrade", libc::SIGUSR2)
}

fn signal_running(config: &Config, flag: &str, sig: libc::c_int) -> Result<u32, String> {
    let path =
        config.global.pid_file.as_ref().ok_or_else(|| {
            format!("{flag} needs global.pid_file in the config, to find the running process")
        })?;
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "cannot read pid_file {}: {e} (is ringway running?)",
            path.display()
        )
    })?;
    let pid: i32 = text.trim().parse().ok().filter(|p| *p > 0).ok_or_else(|| {
        format!(
            "pid_file {} does not hold a process id: {:?}",
            path.display(),
            text.trim()
        )
    })?;
    // SAFETY: kill(2) with a positive pid and a valid signal number.
    if unsafe { libc::kill(pid, sig) } != 0 {
        return Err(format!(
            "cannot signal process {pid} (from {}): {}",
            path.display(),
            io::Error::last_os_error()
        ));
    }
    Ok(pid as u32)
}

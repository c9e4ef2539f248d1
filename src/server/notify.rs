//! The service manager's readiness protocol (systemd's `sd_notify`), written
//! out here rather than taken from a crate: one datagram of `KEY=value`
//! lines to the Unix socket named by `NOTIFY_SOCKET` (a path, or an abstract
//! name when it starts with `@`). Without that variable every call is a
//! no-op, so running outside systemd costs nothing.
//!
//! What is sent, and when (`dist/ringway.service` relies on it):
//! - `READY=1` once the workers are started on their listening sockets;
//! - `RELOADING=1` with `MONOTONIC_USEC=` when a reload starts (systemd 253's
//!   `Type=notify-reload` wants the timestamp; 252, Debian 12's, ignores it),
//!   then `READY=1` when it ends, applied or refused;
//! - `STOPPING=1` when a shutdown starts (not when the process hands its
//!   sockets to a new binary: the service goes on);
//! - `MAINPID=<pid>` then `READY=1` from the new process of a binary upgrade
//!   (systemd takes it from a process other than the main one only with
//!   `NotifyAccess=all`);
//! - `WATCHDOG=1` every half of `WATCHDOG_USEC`, when set.
//!
//! Sending never blocks for long: the socket is a datagram one, non-blocking,
//! and a failure is logged at debug level and forgotten.

use std::io;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// Sends `state` (newline-separated `KEY=value` lines) to the service
/// manager; `Ok(false)` when there is none to tell.
pub fn notify(state: &str) -> io::Result<bool> {
    let Some(target) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(false);
    };
    let target = target.to_string_lossy().into_owned();
    let sock = UnixDatagram::unbound()?;
    sock.set_nonblocking(true)?;
    if let Some(name) = target.strip_prefix('@') {
        // An abstract socket: the leading '@' stands for a NUL byte.
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
        sock.send_to_addr(state.as_bytes(), &addr)?;
    } else {
        sock.send_to(state.as_bytes(), &target)?;
    }
    Ok(true)
}

/// `notify`, logging a failure instead of returning it.
pub fn send(state: &str) {
    if let Err(e) = notify(state) {
        tracing::debug!("sd_notify {state:?}: {e}");
    }
}

pub fn ready() {
    send("READY=1");
}

pub fn stopping() {
    send("STOPPING=1");
}

/// `RELOADING=1` with the time on CLOCK_MONOTONIC, as `Type=notify-reload`
/// expects it.
pub fn reloading() {
    send(&format!("RELOADING=1\nMONOTONIC_USEC={}", monotonic_usec()));
}

/// From the new process of an upgrade: it is the service's main process now.
pub fn main_pid() {
    send(&format!("MAINPID={}\nREADY=1", std::process::id()));
}

fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into the valid pointer given.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1_000
}

/// How often to send `WATCHDOG=1`: half of `WATCHDOG_USEC`, when it is set
/// and meant for this process (`WATCHDOG_PID`, when present, names it).
pub fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.trim() != std::process::id().to_string() {
            return None;
        }
    }
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

/// Starts the thread that keeps the watchdog fed, for as long as the
/// process lives, when the service manager asked for it.
pub fn start_watchdog() -> io::Result<()> {
    let Some(every) = watchdog_interval() else {
        return Ok(());
    };
    tracing::info!("watchdog: WATCHDOG=1 every {}ms", every.as_millis());
    std::thread::Builder::new()
        .name("ringway-watchdog".into())
        .spawn(move || loop {
            send("WATCHDOG=1");
            #[allow(clippy::disallowed_methods)] // its own thread, not a worker
            std::thread::sleep(every);
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_monotonic_clock_moves_forward() {
        let a = monotonic_usec();
        let b = monotonic_usec();
        assert!(a > 0 && b >= a);
    }
}

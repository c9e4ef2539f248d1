//! Periodic re-resolution of servers written as a host name
//! (`resolve_interval` on an upstream; off by default, as in nginx OSS,
//! where names are resolved only when the config loads).
//!
//! Lookups block (getaddrinfo), so they run on a helper thread,
//! `ringway-resolve`, never on a worker: one lookup at a time, each server
//! once per its upstream's interval, the first one interval after start
//! (the config load has just resolved every name). A changed address goes
//! to every worker as a control message (`server::Control::Addr`), which the
//! worker applies between requests: new connections go to the new address
//! and the idle pooled connections to the old one are closed. The prober,
//! when there is one, is told too.
//!
//! A failed lookup, or one that finds no address, keeps the last good
//! address and is logged (warn the first time, debug while it goes on).
//!
//! Several addresses for one name: the server keeps one address, the one it
//! has while the name still resolves to it, else the first of the answer
//! (the load takes the first too). Unlike nginx, a name does not become one
//! server per address: server indexes are fixed for the balancers, hash
//! rings and per-worker health. To spread load over several addresses, list
//! each as its own server.
//!
//! [`Resolve`] is the seam for tests: a fake answers what a test says.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::config::Config;

/// Looks a host name up. Called only on the resolver thread: it may block.
pub trait Resolve: Send + Sync + 'static {
    fn lookup(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>>;
}

/// The system resolver (getaddrinfo: /etc/hosts, DNS, as configured).
pub struct SystemResolver;

impl Resolve for SystemResolver {
    // Blocking, which is why it runs on the resolver thread only.
    #[allow(clippy::disallowed_methods)]
    fn lookup(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        use std::net::ToSocketAddrs;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        (host, port).to_socket_addrs().map(Iterator::collect)
    }
}

/// A server's new address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Update {
    pub upstream: usize,
    pub server: usize,
    pub addr: SocketAddr,
}

/// The address a server keeps after a lookup: its current one while the
/// answer still has it, else the answer's first; `None` for an empty answer.
pub fn choose(current: SocketAddr, answer: &[SocketAddr]) -> Option<SocketAddr> {
    if answer.contains(&current) {
        Some(current)
    } else {
        answer.first().copied()
    }
}

struct Target {
    upstream: usize,
    server: usize,
    upstream_name: String,
    host: String,
    port: u16,
    interval: Duration,
    due: Instant,
    current: SocketAddr,
    failing: bool,
    /// `current` has not reached every worker yet.
    unsent: bool,
}

/// The running resolver thread.
pub struct Resolver {
    stop: flume::Sender<()>,
    // Detached on drop: see `stop`.
    _thread: JoinHandle<()>,
}

impl Resolver {
    /// Starts the thread when some upstream with `resolve_interval` has a
    /// server written as a name; `publish` hands each change on and says
    /// whether every receiver took it. One that was not taken is handed on
    /// again after the next lookup, changed or not.
    pub fn start(
        config: &Config,
        resolver: Arc<dyn Resolve>,
        mut publish: impl FnMut(Update) -> bool + Send + 'static,
    ) -> io::Result<Option<Resolver>> {
        let now = Instant::now();
        let mut targets = Vec::new();
        for (u, up) in config.upstreams.iter().enumerate() {
            let Some(interval) = up.resolve_interval else {
                continue;
            };
            for (s, peer) in up.servers.iter().enumerate() {
                let Some((host, port)) = peer.host_name() else {
                    continue;
                };
                targets.push(Target {
                    upstream: u,
                    server: s,
                    upstream_name: up.name.clone(),
                    host: host.to_string(),
                    port,
                    interval,
                    due: now + interval,
                    current: peer.addr,
                    failing: false,
                    unsent: false,
                });
            }
        }
        if targets.is_empty() {
            return Ok(None);
        }
        let (stop, stopped) = flume::bounded(1);
        let thread = std::thread::Builder::new()
            .name("ringway-resolve".into())
            .spawn(move || loop {
                let now = Instant::now();
                for t in targets.iter_mut().filter(|t| t.due <= now) {
                    t.due = now + t.interval;
                    if lookup(&*resolver, t) || t.unsent {
                        t.unsent = !publish(Update {
                            upstream: t.upstream,
                            server: t.server,
                            addr: t.current,
                        });
                    }
                }
                let next = targets.iter().map(|t| t.due).min().unwrap_or(now);
                // Sleeps until the next lookup is due; a stop (or the
                // handle going away) ends the thread.
                match stopped.recv_deadline(next) {
                    Err(flume::RecvTimeoutError::Timeout) => {}
                    Ok(()) | Err(flume::RecvTimeoutError::Disconnected) => break,
                }
            })?;
        Ok(Some(Resolver {
            stop,
            _thread: thread,
        }))
    }

    /// Asks the thread to stop. It is not waited for: it may be inside a
    /// lookup, which the system bounds with its own timeouts.
    pub fn stop(&self) {
        let _ = self.stop.try_send(());
    }
}

/// Looks one server up; true when its address changed (now `t.current`).
fn lookup(resolver: &dyn Resolve, t: &mut Target) -> bool {
    let why = match resolver.lookup(&t.host, t.port) {
        Ok(answer) => match choose(t.current, &answer) {
            Some(addr) => {
                if t.failing {
                    tracing::info!(upstream = %t.upstream_name, host = %t.host, "resolves again");
                    t.failing = false;
                }
                if addr == t.current {
                    return false;
                }
                tracing::info!(upstream = %t.upstream_name, host = %t.host, "now at {addr} (was {})", t.current);
                t.current = addr;
                return true;
            }
            None => "no address".to_string(),
        },
        Err(e) => e.to_string(),
    };
    if t.failing {
        tracing::debug!(upstream = %t.upstream_name, host = %t.host, "still cannot resolve ({why}); keeping {}", t.current);
    } else {
        tracing::warn!(upstream = %t.upstream_name, host = %t.host, "cannot resolve ({why}); keeping {}", t.current);
        t.failing = true;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_current_address_is_kept_while_the_answer_has_it() {
        let cur = a("10.0.0.2:80");
        assert_eq!(choose(cur, &[a("10.0.0.1:80"), cur]), Some(cur));
        assert_eq!(
            choose(cur, &[a("10.0.0.3:80"), a("10.0.0.1:80")]),
            Some(a("10.0.0.3:80"))
        );
        assert_eq!(choose(cur, &[]), None);
    }

    #[test]
    fn only_servers_written_as_names_are_looked_up_again() {
        let peer = |s: &str| crate::config::Peer::new(s.into(), a("127.0.0.1:1"));
        assert_eq!(peer("localhost:80").host_name(), Some(("localhost", 80)));
        assert_eq!(
            peer("app.internal:8080").host_name(),
            Some(("app.internal", 8080))
        );
        assert_eq!(peer("127.0.0.1:80").host_name(), None);
        assert_eq!(peer("[::1]:80").host_name(), None);
    }

    #[test]
    fn system_resolver_finds_localhost() {
        let got = SystemResolver.lookup("localhost", 8080).unwrap();
        assert!(!got.is_empty());
        assert!(
            got.iter().all(|s| s.ip().is_loopback() && s.port() == 8080),
            "{got:?}"
        );
    }

    struct Fails;
    impl Resolve for Fails {
        fn lookup(&self, _: &str, _: u16) -> io::Result<Vec<SocketAddr>> {
            Err(io::Error::other("no such host"))
        }
    }

    #[test]
    fn a_failed_lookup_keeps_the_last_good_address() {
        let mut t = Target {
            upstream: 0,
            server: 0,
            upstream_name: "app".into(),
            host: "app.internal".into(),
            port: 80,
            interval: Duration::from_secs(1),
            due: Instant::now(),
            current: a("10.0.0.1:80"),
            failing: false,
            unsent: false,
        };
        assert!(!lookup(&Fails, &mut t));
        assert!(t.failing);
        assert_eq!(t.current, a("10.0.0.1:80"));
        struct Moved;
        impl Resolve for Moved {
            fn lookup(&self, _: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
                Ok(vec![SocketAddr::from(([10, 0, 0, 9], port))])
            }
        }
        assert!(lookup(&Moved, &mut t));
        assert_eq!(t.current, a("10.0.0.9:80"));
        assert!(!t.failing);
        assert!(!lookup(&Moved, &mut t));
    }
}

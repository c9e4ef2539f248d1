//! Passive health, with nginx's `max_fails` / `fail_timeout` semantics:
//! `max_fails` failures within `fail_timeout` mark a server down for
//! `fail_timeout`; after that it is offered requests again, and a success
//! clears its count. `max_fails = 0` never marks a server down.
//!
//! This state is per worker. nginx workers share it through shared memory;
//! ringway's workers share nothing, so each learns about a failure on its
//! own: a dead server may receive up to `max_fails` requests from every
//! worker before all of them skip it. An upstream of a single server is
//! never marked down (as in nginx): there is nowhere else to send the request.
//!
//! Also here: the count of requests in flight per server, which least_conn
//! and random_two balance on; and what active checks (`probe.rs`) publish to
//! every worker, [`Probed`], with the rise/fall counting behind it, [`Streak`].
//! A server is offered requests only when neither says it is down.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::Config;

/// Active health as the prober publishes it: per upstream, a flag per
/// server, set while probes have the server out of rotation. Only the prober
/// thread writes; every worker's `select` reads with a relaxed load, no
/// lock. Nothing else is published through these flags, so no stronger
/// ordering is needed: a worker that sees a change a request late does no harm.
///
/// Indexed by the upstream's position in one config; each upstream's flags
/// are an `Arc` of their own, so a reload that keeps an upstream unchanged
/// keeps its flags (`carry`), whatever its new position.
pub struct Probed {
    ups: Box<[Arc<ProbedUpstream>]>,
}

/// One upstream's active health flags, one per server.
pub struct ProbedUpstream {
    down: Box<[AtomicBool]>,
}

impl ProbedUpstream {
    fn new(servers: usize) -> Arc<ProbedUpstream> {
        Arc::new(ProbedUpstream {
            down: (0..servers).map(|_| AtomicBool::new(false)).collect(),
        })
    }

    pub fn is_down(&self, server: usize) -> bool {
        self.down.get(server).is_some_and(|d| d.load(Ordering::Relaxed))
    }
}

impl Probed {
    /// Every server of every upstream starts up.
    pub fn new(config: &Config) -> Probed {
        Probed {
            ups: config
                .upstreams
                .iter()
                .map(|u| ProbedUpstream::new(u.servers.len()))
                .collect(),
        }
    }

    /// For a reloaded config: an upstream unchanged since `old_config` keeps
    /// its flags; a new or changed one starts with every server up.
    pub fn carry(&self, old_config: &Config, config: &Config) -> Probed {
        Probed {
            ups: config
                .upstreams
                .iter()
                .map(|u| match old_config.upstreams.iter().position(|o| o.same_as(u)) {
                    Some(i) => self.ups[i].clone(),
                    None => ProbedUpstream::new(u.servers.len()),
                })
                .collect(),
        }
    }

    /// Upstream `upstream`'s flags (by position in the config they were made for).
    pub fn upstream(&self, upstream: usize) -> Option<Arc<ProbedUpstream>> {
        self.ups.get(upstream).cloned()
    }

    pub fn is_down(&self, upstream: usize, server: usize) -> bool {
        self.ups.get(upstream).is_some_and(|u| u.is_down(server))
    }

    pub fn set(&self, upstream: usize, server: usize, down: bool) {
        if let Some(d) = self.ups.get(upstream).and_then(|u| u.down.get(server)) {
            d.store(down, Ordering::Relaxed);
        }
    }
}

/// The rise/fall count of one server's probes: `fall` failures in a row take
/// a server that is up out, `rise` passes in a row bring one that is down
/// back. A result that agrees with the current state resets the count.
#[derive(Debug, Clone, Copy, Default)]
pub struct Streak {
    down: bool,
    /// Results in a row that disagree with `down`.
    run: u32,
}

impl Streak {
    pub fn is_down(&self) -> bool {
        self.down
    }

    /// A count that starts from a known state (a prober restarted by a
    /// reload goes on from what its predecessor published).
    pub fn starting(down: bool) -> Streak {
        Streak { down, run: 0 }
    }

    /// Counts one probe; returns the new state (true: down) when it changed.
    pub fn record(&mut self, passed: bool, rise: u32, fall: u32) -> Option<bool> {
        if passed != self.down {
            self.run = 0;
            return None;
        }
        self.run += 1;
        if self.run < if self.down { rise } else { fall } {
            return None;
        }
        self.down = !self.down;
        self.run = 0;
        Some(self.down)
    }
}

/// What one worker knows about one server.
#[derive(Default)]
pub struct PeerState {
    /// Requests sent to this server that have not finished.
    active: Cell<u32>,
    /// Failures counted since `window_start`.
    fails: Cell<u32>,
    window_start: Cell<Option<Instant>>,
    /// Down until this instant; `None` when up.
    down_until: Cell<Option<Instant>>,
}

impl PeerState {
    pub fn active(&self) -> u32 {
        self.active.get()
    }

    /// Counts a request in flight for as long as the guard lives, so every
    /// way out of an exchange (success, error, a dropped future) undoes it.
    pub fn begin(&self) -> Active<'_> {
        self.active.set(self.active.get() + 1);
        Active(self)
    }

    /// Whether the server is down now. The clock is read only when a server
    /// has been marked down, so the usual case costs one load.
    pub fn is_down(&self) -> bool {
        let Some(until) = self.down_until.get() else {
            return false;
        };
        if Instant::now() < until {
            return true;
        }
        self.down_until.set(None);
        false
    }

    /// A failure at `now`. Returns true when it marked the server down.
    pub fn failure(&self, now: Instant, max_fails: u32, fail_timeout: Duration) -> bool {
        if max_fails == 0 {
            return false;
        }
        // Failures older than fail_timeout no longer count.
        if self
            .window_start
            .get()
            .is_none_or(|start| now.duration_since(start) >= fail_timeout)
        {
            self.window_start.set(Some(now));
            self.fails.set(0);
        }
        self.fails.set(self.fails.get() + 1);
        if self.fails.get() < max_fails {
            return false;
        }
        self.down_until.set(Some(now + fail_timeout));
        self.fails.set(0);
        self.window_start.set(None);
        true
    }

    /// A response head was received: the server works.
    pub fn success(&self) {
        if self.fails.get() != 0 {
            self.fails.set(0);
            self.window_start.set(None);
        }
    }
}

pub struct Active<'a>(&'a PeerState);

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0.active.set(self.0.active.get() - 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(10);

    fn config(upstreams: &str) -> Config {
        let text = format!("{upstreams}\n[[server]]\nlisten = [\"127.0.0.1:0\"]\n");
        Config::parse(&text, std::path::Path::new("t.toml")).unwrap()
    }

    #[test]
    fn a_reload_carries_the_flags_of_unchanged_upstreams_by_name() {
        let old = config(
            "[[upstream]]\nname = \"a\"\nservers = [\"127.0.0.1:1\", \"127.0.0.1:2\"]\n\
             [[upstream]]\nname = \"b\"\nservers = [\"127.0.0.1:3\"]\n",
        );
        let probed = Probed::new(&old);
        probed.set(0, 1, true);
        probed.set(1, 0, true);
        // Reordered: `a` unchanged at position 1, `b` changed (another key), `c` new.
        let new = config(
            "[[upstream]]\nname = \"b\"\nservers = [\"127.0.0.1:3\"]\nkeepalive = 4\n\
             [[upstream]]\nname = \"a\"\nservers = [\"127.0.0.1:1\", \"127.0.0.1:2\"]\n\
             [[upstream]]\nname = \"c\"\nservers = [\"127.0.0.1:1\"]\n",
        );
        assert!(old.upstreams[0].same_as(&new.upstreams[1]));
        assert!(!old.upstreams[1].same_as(&new.upstreams[0]));
        let carried = probed.carry(&old, &new);
        assert!(
            carried.is_down(1, 1) && !carried.is_down(1, 0),
            "a kept its flags"
        );
        assert!(!carried.is_down(0, 0), "b changed: fresh flags");
        assert!(!carried.is_down(2, 0), "c is new");
        // The same flags, not a copy: the old prober's last verdicts still land.
        probed.set(0, 0, true);
        assert!(carried.is_down(1, 0));
    }

    #[test]
    fn max_fails_within_fail_timeout_mark_down_for_fail_timeout() {
        let p = PeerState::default();
        let t0 = Instant::now();
        assert!(!p.failure(t0, 3, T));
        assert!(!p.failure(t0 + Duration::from_secs(1), 3, T));
        assert!(!p.is_down());
        assert!(p.failure(t0 + Duration::from_secs(2), 3, T));
        assert!(p.is_down());
        assert!(p.down_until.get().unwrap() >= t0 + Duration::from_secs(12));
    }

    #[test]
    fn old_failures_and_successes_reset_the_count() {
        let p = PeerState::default();
        let t0 = Instant::now();
        assert!(!p.failure(t0, 2, T));
        // Past the window: this one starts a new count.
        assert!(!p.failure(t0 + T, 2, T));
        p.success();
        assert!(!p.failure(t0 + T, 2, T));
        assert!(p.failure(t0 + T, 2, T));
    }

    #[test]
    fn max_fails_zero_never_marks_down_and_down_expires() {
        let p = PeerState::default();
        let t0 = Instant::now();
        assert!((0..10).all(|_| !p.failure(t0, 0, T)));
        assert!(!p.is_down());
        // Marked down in the past for a short while: up again now.
        assert!(p.failure(t0, 1, Duration::from_nanos(1)));
        assert!(!p.is_down());
    }

    #[test]
    fn streak_needs_fall_failures_and_rise_passes_in_a_row() {
        let mut s = Streak::default();
        // fall = 3: two failures, a pass, then three failures.
        assert_eq!(s.record(false, 2, 3), None);
        assert_eq!(s.record(false, 2, 3), None);
        assert_eq!(s.record(true, 2, 3), None);
        assert_eq!(s.record(false, 2, 3), None);
        assert_eq!(s.record(false, 2, 3), None);
        assert_eq!(s.record(false, 2, 3), Some(true));
        assert!(s.is_down());
        assert_eq!(s.record(false, 2, 3), None);
        // rise = 2: a pass, a failure, then two passes.
        assert_eq!(s.record(true, 2, 3), None);
        assert_eq!(s.record(false, 2, 3), None);
        assert_eq!(s.record(true, 2, 3), None);
        assert_eq!(s.record(true, 2, 3), Some(false));
        assert!(!s.is_down());
        // rise = fall = 1 flips on every change.
        assert_eq!(s.record(false, 1, 1), Some(true));
        assert_eq!(s.record(true, 1, 1), Some(false));
    }

    #[test]
    fn active_requests_are_counted_by_guards() {
        let p = PeerState::default();
        let a = p.begin();
        let b = p.begin();
        assert_eq!(p.active(), 2);
        drop(a);
        assert_eq!(p.active(), 1);
        drop(b);
        assert_eq!(p.active(), 0);
    }
}

//! Phase preaccess: `[[limit]]` rate and connection limits (nginx's
//! `limit_req` and `limit_conn`), exact across workers.
//!
//! Each limit's keys live in one process-wide [`Table`] that every worker
//! thread updates with compare-and-swap (see `table.rs`), so N workers
//! admit a key's rate once, not N times, whichever worker a connection
//! lands on. The states are built off the workers with the metrics'
//! layout of each config, and a limit whose definition a reload leaves
//! unchanged keeps its table (and so its keys' budgets); its counters go
//! on by name even when its definition changes.
//!
//! Counters (passed, delayed, refused) are per worker, summed when scraped.

pub mod config;
pub mod table;

use std::hash::Hasher;
use std::sync::Arc;

pub use config::{Kind, Limit, RawLimit};
use table::{Table, Verdict};

use crate::metrics::Counter;
use crate::vars;

/// One worker's counts of one limit.
#[derive(Default)]
pub struct LimitBlock {
    pub passed: Counter,
    pub delayed: Counter,
    pub refused: Counter,
}

pub struct LimitCounters {
    pub w: Box<[LimitBlock]>,
}

/// One limit of the config in force: its definition, its table and its
/// counters.
pub struct LimitState {
    pub def: Limit,
    pub table: Table,
    pub counters: Arc<LimitCounters>,
}

impl LimitState {
    /// The same definition, key expression included.
    fn same_as(&self, def: &Limit) -> bool {
        format!("{:?}", self.def) == format!("{def:?}")
    }
}

/// The states of `limits` for `workers` workers: a limit defined as in
/// `previous` is carried whole, a changed one keeps only its counters.
pub fn states(limits: &[Limit], workers: usize, previous: &[Arc<LimitState>]) -> Vec<Arc<LimitState>> {
    limits
        .iter()
        .map(|def| {
            let old = previous.iter().find(|p| p.def.name == def.name);
            if let Some(o) = old.filter(|o| o.same_as(def) && o.counters.w.len() == workers) {
                return o.clone();
            }
            let counters = old
                .map(|o| o.counters.clone())
                .filter(|c| c.w.len() == workers)
                .unwrap_or_else(|| {
                    Arc::new(LimitCounters {
                        w: (0..workers).map(|_| LimitBlock::default()).collect(),
                    })
                });
            Arc::new(LimitState {
                def: def.clone(),
                table: Table::new(def.max_keys),
                counters,
            })
        })
        .collect()
}

/// A refused request: its status, the header lines of its answer, and
/// its body when not the usual one for the status (forward auth passes
/// the auth service's on).
pub struct Refusal {
    pub status: u16,
    pub lines: Vec<u8>,
    pub body: Option<Vec<u8>>,
}

/// A place taken under a `connections` limit, given back when dropped:
/// when the request ends, however it ends (an error, a client gone, a
/// stream reset all drop the request's future).
pub struct Held {
    state: Arc<LimitState>,
    slot: usize,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.state.table.release(self.slot);
    }
}

/// The places a request holds (empty for most: no allocation then).
#[derive(Default)]
pub struct Holds(Vec<Held>);

/// Runs a location's limits, in order, for one request on worker `w`: a
/// delay is waited for here (a timer, never blocking the worker; the
/// longest of the limits' delays), a refusal is returned. A request
/// refused by a later limit stays counted by the earlier ones.
pub async fn preaccess(
    w: usize,
    states: &[Arc<LimitState>],
    list: &[usize],
    vars: &vars::Request<'_>,
) -> Result<Holds, Refusal> {
    let mut holds = Holds::default();
    let mut wait = std::time::Duration::ZERO;
    for &i in list {
        let st = &states[i];
        let def = &st.def;
        let mut h = st.table.hasher();
        if !def.key.feed(vars, |b| h.write(b)) {
            continue;
        }
        let h = Table::finish(h);
        let counts = &st.counters.w[w];
        let refused = |retry: Option<std::time::Duration>| {
            counts.refused.add(1);
            let mut lines = Vec::new();
            if let Some(d) = retry {
                // Whole seconds, rounded up (RFC 9110 §10.2.3).
                let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
                lines.extend_from_slice(b"Retry-After: ");
                lines.extend_from_slice(itoa::Buffer::new().format(secs.max(1)).as_bytes());
                lines.extend_from_slice(b"\r\n");
            }
            Refusal {
                status: def.status,
                lines,
                body: None,
            }
        };
        match def.kind {
            Kind::Rate {
                interval,
                burst,
                delay,
            } => match st.table.rate(h, interval, burst, delay) {
                Verdict::Pass => counts.passed.add(1),
                Verdict::Delay(d) => {
                    counts.delayed.add(1);
                    if def.dry_run {
                        tracing::info!(limit = %def.name, "dry run: would delay a request by {d:?}");
                    } else {
                        wait = wait.max(d);
                    }
                }
                v @ (Verdict::Refuse(_) | Verdict::Full) => {
                    let retry = match v {
                        Verdict::Refuse(d) => Some(d),
                        _ => None,
                    };
                    let r = refused(retry);
                    if def.dry_run {
                        tracing::info!(limit = %def.name, "dry run: would refuse a request");
                    } else {
                        tracing::debug!(limit = %def.name, full = retry.is_none(), "request refused");
                        return Err(r);
                    }
                }
            },
            Kind::Connections(max) => match st.table.acquire(h, max) {
                Ok(slot) => {
                    counts.passed.add(1);
                    holds.0.push(Held {
                        state: st.clone(),
                        slot,
                    });
                }
                Err(_) => {
                    let r = refused(None);
                    if def.dry_run {
                        tracing::info!(limit = %def.name, "dry run: would refuse a request");
                    } else {
                        tracing::debug!(limit = %def.name, "request refused");
                        return Err(r);
                    }
                }
            },
        }
    }
    if !wait.is_zero() {
        // Bounded: at most `burst` intervals. Boxed: monoio's timer entry
        // is over-aligned, and must not sit inline in the request's future.
        Box::pin(monoio::time::sleep(wait)).await;
    }
    Ok(holds)
}

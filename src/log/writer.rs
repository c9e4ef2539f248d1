//! The access log writers: one thread per log file (and one for stdout)
//! that does the `write(2)`s, so a slow disk never stalls a worker.
//!
//! A worker hands a whole buffer of lines to a writer through a bounded
//! channel (`std::sync::mpsc::sync_channel`, [`QUEUE`] buffers deep) with
//! `try_send`: when the writer is behind and the queue is full, the buffer's
//! lines are dropped and counted for the worker that dropped them
//! ([`dropped_log_lines`]). Nothing on a worker waits on a writer; the only
//! shared state a worker touches is the channel and one counter slot that it
//! alone increments.

use std::cell::Cell;
use std::fs::File;
use std::io::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Buffers waiting for one writer at most; with buffers flushed at 32 KiB
/// this bounds a log file's queue to about 2 MiB.
const QUEUE: usize = 64;

/// Where a writer's lines go.
pub(crate) enum Dest {
    Stdout,
    File(File),
}

/// A handle on one writer thread, cloned into every worker's sink.
#[derive(Clone)]
pub(crate) struct Writer {
    tx: SyncSender<Vec<u8>>,
    /// Buffers sent and not yet written (for [`Writer::drain`]).
    pending: Arc<AtomicUsize>,
}

impl Writer {
    /// Starts the writer thread of `dest`. The thread ends once every
    /// handle is dropped and the queue is written out.
    pub(crate) fn spawn(dest: Dest, name: &str) -> std::io::Result<Writer> {
        let (tx, rx) = sync_channel::<Vec<u8>>(QUEUE);
        let pending = Arc::new(AtomicUsize::new(0));
        let left = pending.clone();
        let what = name.to_string();
        std::thread::Builder::new()
            .name("ringway-log".into())
            .spawn(move || {
                let mut dest = dest;
                for buf in rx {
                    let res = match &mut dest {
                        Dest::Stdout => std::io::stdout().lock().write_all(&buf),
                        Dest::File(f) => f.write_all(&buf),
                    };
                    if let Err(e) = res {
                        tracing::warn!("access log {what}: write failed: {e}");
                    }
                    left.fetch_sub(1, Ordering::Release);
                }
            })?;
        Ok(Writer { tx, pending })
    }

    /// The process's stdout writer, started on first use.
    pub(crate) fn stdout() -> Writer {
        static STDOUT: OnceLock<Writer> = OnceLock::new();
        STDOUT
            .get_or_init(|| {
                Writer::spawn(Dest::Stdout, "stdout").expect("cannot start the stdout log writer")
            })
            .clone()
    }

    /// Hands `buf` (holding `lines` lines) to the writer without waiting;
    /// when its queue is full the lines are dropped and counted.
    pub(crate) fn send(&self, buf: Vec<u8>, lines: u64) {
        self.pending.fetch_add(1, Ordering::Acquire);
        match self.tx.try_send(buf) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.pending.fetch_sub(1, Ordering::Release);
                count_dropped(lines);
            }
        }
    }

    /// Waits, at most until `deadline`, for what was sent to be written
    /// (at shutdown, off the workers). Returns whether it was.
    #[allow(clippy::disallowed_methods)] // the thread stopping the process, never a worker
    pub(crate) fn drain(&self, deadline: Instant) -> bool {
        while self.pending.load(Ordering::Acquire) > 0 {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }
}

/// One slot per thread that dropped lines (slots are shared beyond
/// [`SLOTS`] threads, which stays correct: the adds are atomic).
const SLOTS: usize = 256;
static DROPPED: [AtomicU64; SLOTS] = [const { AtomicU64::new(0) }; SLOTS];
static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static SLOT: Cell<usize> = const { Cell::new(usize::MAX) };
}

fn count_dropped(lines: u64) {
    let slot = SLOT.with(|s| {
        if s.get() == usize::MAX {
            s.set(NEXT_SLOT.fetch_add(1, Ordering::Relaxed) % SLOTS);
        }
        s.get()
    });
    // Written by this thread alone: uncontended.
    DROPPED[slot].fetch_add(lines, Ordering::Relaxed);
}

/// Access log lines dropped because a writer could not keep up, summed over
/// every worker since the process started (for a metrics exporter).
pub fn dropped_log_lines() -> u64 {
    DROPPED.iter().map(|c| c.load(Ordering::Relaxed)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_drops_and_counts() {
        // A writer whose thread is gone: every send is refused and counted.
        let (tx, rx) = sync_channel::<Vec<u8>>(1);
        drop(rx);
        let w = Writer {
            tx,
            pending: Arc::new(AtomicUsize::new(0)),
        };
        let before = dropped_log_lines();
        w.send(b"a\nb\n".to_vec(), 2);
        assert!(dropped_log_lines() >= before + 2);
        assert!(w.drain(Instant::now()));
    }
}

//! Slow verifications (bcrypt, SHA-crypt, Apache MD5) off the workers: a
//! small pool of helper threads takes jobs from a bounded queue and
//! answers over a channel the worker awaits, as file opens do
//! (`files/open.rs`). A worker that finds the queue full answers 503
//! rather than wait, so a flood of wrong passwords costs the helpers, not
//! the event loops, and cannot queue without bound.

use std::sync::{Arc, OnceLock};

use super::htpasswd::Hash;

/// Helper threads: bcrypt at cost 10 is some 50 ms of one core, so more
/// threads than this would take the workers' cores.
const THREADS: usize = 2;
/// Verifications waiting for a helper, across workers.
const QUEUE: usize = 256;

struct Job {
    hash: Arc<Hash>,
    password: Vec<u8>,
    reply: flume::Sender<bool>,
}

/// The queue is full (or a helper is gone): answer 503.
#[derive(Debug)]
pub struct Busy;

fn pool() -> &'static flume::Sender<Job> {
    static POOL: OnceLock<flume::Sender<Job>> = OnceLock::new();
    POOL.get_or_init(|| {
        let (tx, rx) = flume::bounded::<Job>(QUEUE);
        for i in 0..THREADS {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("ringway-auth-{i}"))
                .spawn(move || {
                    while let Ok(job) = rx.recv() {
                        let ok = job.hash.verify(&job.password);
                        let _ = job.reply.send(ok);
                    }
                });
            if let Err(e) = spawned {
                tracing::error!("cannot start a password helper thread: {e}");
            }
        }
        tx
    })
}

/// Whether `password` matches `hash`, verified on a helper thread.
pub async fn verify(hash: &Arc<Hash>, password: &[u8]) -> Result<bool, Busy> {
    let (tx, rx) = flume::bounded(1);
    pool()
        .try_send(Job {
            hash: hash.clone(),
            password: password.to_vec(),
            reply: tx,
        })
        .map_err(|_| Busy)?;
    rx.recv_async().await.map_err(|_| Busy)
}

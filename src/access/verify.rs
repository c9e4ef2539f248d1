//! Slow verifications (bcrypt, SHA-crypt, Apache MD5) off the workers: a
//! small pool of helper threads takes jobs from a bounded queue and
//! answers over a channel the worker awaits (`crate::helpers`), as file
//! opens do. A worker that finds the queue full answers 503
//! rather than wait, so a flood of wrong passwords costs the helpers, not
//! the event loops, and cannot queue without bound.

use std::sync::{Arc, OnceLock};

use crate::helpers::Pool;

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

pub use crate::helpers::Busy;

fn pool() -> &'static Pool<Job> {
    static POOL: OnceLock<Pool<Job>> = OnceLock::new();
    POOL.get_or_init(|| {
        Pool::start("ringway-auth", THREADS, QUEUE, |job: Job| {
            let ok = job.hash.verify(&job.password);
            let _ = job.reply.send(ok);
        })
    })
}

/// Whether `password` matches `hash`, verified on a helper thread.
pub async fn verify(hash: &Arc<Hash>, password: &[u8]) -> Result<bool, Busy> {
    pool()
        .ask(|reply| Job {
            hash: hash.clone(),
            password: password.to_vec(),
            reply,
        })
        .await
}

//! Helper threads for work a worker's event loop must not do itself
//! (opening files, bcrypt): a fixed number of threads take jobs from one
//! bounded queue shared by every worker, and each job carries the channel
//! its answer goes back on, which the worker awaits. A full queue is
//! refused at once ([`Busy`]), so a flood can neither queue without bound
//! nor make a worker wait for room.

/// The queue is full, or a helper dropped the job's answer (it panicked):
/// the request is answered 503.
#[derive(Debug)]
pub struct Busy;

/// A pool of helper threads running jobs of type `J`.
pub struct Pool<J> {
    tx: flume::Sender<J>,
}

impl<J: Send + 'static> Pool<J> {
    /// Starts `threads` threads named `{name}-{i}`, each running `run` on
    /// the jobs it takes; at most `queue` jobs wait. A thread that cannot
    /// be started is logged; the others serve the queue.
    pub fn start(name: &str, threads: usize, queue: usize, run: fn(J)) -> Pool<J> {
        let (tx, rx) = flume::bounded::<J>(queue);
        for i in 0..threads {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || {
                    while let Ok(job) = rx.recv() {
                        run(job);
                    }
                });
            if let Err(e) = spawned {
                tracing::error!("cannot start helper thread {name}-{i}: {e}");
            }
        }
        Pool { tx }
    }

    /// Queues the job `make` builds around its answer's channel, and
    /// awaits the answer.
    pub async fn ask<T>(&self, make: impl FnOnce(flume::Sender<T>) -> J) -> Result<T, Busy> {
        let (tx, rx) = flume::bounded(1);
        self.tx.try_send(make(tx)).map_err(|_| Busy)?;
        rx.recv_async().await.map_err(|_| Busy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn double(job: (u32, flume::Sender<u32>)) {
        let _ = job.1.send(job.0 * 2);
    }

    /// Waits until its gate closes, then answers.
    fn gated(job: (flume::Receiver<()>, flume::Sender<()>)) {
        let _ = job.0.recv();
        let _ = job.1.send(());
    }

    #[test]
    fn answers_come_back_and_a_full_queue_is_refused() {
        let pool = Pool::start("test-double", 2, 4, double);
        assert_eq!(block_on(pool.ask(|tx| (21, tx))).unwrap(), 42);

        // One helper held by a job at a gate, one job waiting: no room.
        let held = Pool::start("test-gated", 1, 1, gated);
        let (gate, wait) = flume::bounded::<()>(1);
        let (a, done) = flume::bounded(1);
        held.tx.send((wait.clone(), a)).unwrap();
        while !held.tx.is_empty() {
            std::thread::yield_now();
        }
        let (b, _) = flume::bounded(1);
        held.tx.try_send((wait.clone(), b)).unwrap();
        assert!(matches!(block_on(held.ask(|tx| (wait.clone(), tx))), Err(Busy)));
        drop(gate);
        assert!(done.recv().is_ok());
    }

    /// A minimal executor for the test: polls until ready.
    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        use std::task::{Context, Poll, Wake, Waker};
        struct Thread(std::thread::Thread);
        impl Wake for Thread {
            fn wake(self: std::sync::Arc<Self>) {
                self.0.unpark();
            }
        }
        let waker = Waker::from(std::sync::Arc::new(Thread(std::thread::current())));
        let mut cx = Context::from_waker(&waker);
        let mut f = std::pin::pin!(f);
        loop {
            if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
            std::thread::park();
        }
    }
}

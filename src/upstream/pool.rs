//! Idle keep-alive connections to one upstream, per worker.
//!
//! A connection comes back here only through [`Pool::put`], which the proxy
//! calls after nginx's checklist (request fully sent, response fully read, no
//! error, keep-alive allowed, not shutting down); anything else is dropped and
//! so closed. `take` and `put` are synchronous: no borrow is ever held across
//! an await. An idle connection the upstream has closed is noticed by a
//! non-blocking peek, both when it is taken and by a periodic sweep.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::UpConn;

struct Idle {
    conn: UpConn,
    since: Instant,
}

pub struct Pool {
    idle: RefCell<VecDeque<Idle>>,
    max_idle: usize,
    idle_timeout: Duration,
}

impl Pool {
    pub fn new(max_idle: usize, idle_timeout: Duration) -> Pool {
        Pool {
            idle: RefCell::new(VecDeque::with_capacity(max_idle.min(64))),
            max_idle,
            idle_timeout,
        }
    }

    /// The most recently used live connection to `peer`, if any; with
    /// `sni`, one made for that TLS server name.
    pub fn take(&self, peer: usize, sni: Option<&str>) -> Option<UpConn> {
        let mut idle = self.idle.borrow_mut();
        let now = Instant::now();
        while let Some(pos) = idle
            .iter()
            .rposition(|c| c.conn.peer == peer && c.conn.sni.as_deref() == sni)
        {
            let entry = idle.remove(pos)?;
            if now.duration_since(entry.since) < self.idle_timeout && is_alive(&entry.conn) {
                let mut conn = entry.conn;
                conn.reused = true;
                return Some(conn);
            }
        }
        None
    }

    /// Keeps a connection for reuse; the oldest idle one is closed when full.
    pub fn put(&self, conn: UpConn) {
        if self.max_idle == 0 || !conn.rbuf.is_empty() {
            return;
        }
        let mut idle = self.idle.borrow_mut();
        if idle.len() >= self.max_idle {
            idle.pop_front();
        }
        idle.push_back(Idle {
            conn,
            since: Instant::now(),
        });
    }

    /// Drops idle connections that expired or that the upstream closed.
    pub fn sweep(&self) {
        let now = Instant::now();
        self.idle
            .borrow_mut()
            .retain(|c| now.duration_since(c.since) < self.idle_timeout && is_alive(&c.conn));
    }

    /// Closes the idle connections to one server (its address changed).
    pub fn drop_peer(&self, peer: usize) {
        self.idle.borrow_mut().retain(|c| c.conn.peer != peer);
    }

    /// Idle connections held now (for the metrics' gauge).
    pub fn idle_len(&self) -> usize {
        self.idle.borrow().len()
    }

    pub fn clear(&self) {
        self.idle.borrow_mut().clear();
    }
}

/// An idle HTTP/1.1 connection has nothing to say: a peek that finds data or
/// end-of-stream means it cannot be reused.
///
/// For TLS the peek is of the raw socket too, and readable bytes mean the
/// same. A TLS 1.3 server's session tickets do not trip it: it sends them
/// right after the handshake, ahead of any response, so they have been read
/// and consumed by the time a connection comes here (only after its whole
/// response was read). What can arrive later is a close_notify alert, a
/// close, or bytes no request asked for: the connection is dropped either
/// way, which is the pool's ordinary business and not logged as an error.
/// The peek cannot see what the TLS layer already read into its buffers
/// together with the last bytes of the response (a close_notify sent right
/// behind them, with the TCP close still on its way); such a connection
/// shows its end on reuse, where the stale-connection retry covers it.
fn is_alive(conn: &UpConn) -> bool {
    let mut byte = 0u8;
    // SAFETY: recv on a socket fd we own, into a one-byte local buffer;
    // MSG_DONTWAIT makes it return at once whatever the socket's mode.
    let n = unsafe {
        libc::recv(
            conn.stream.raw_fd(),
            (&mut byte as *mut u8).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::WouldBlock
}

//! Test support: the real proxy started in-process on `127.0.0.1:0`, backends
//! on plain `std::net` threads that can misbehave on purpose, and a raw-bytes
//! client. Every socket read has a deadline, so a broken case fails in seconds
//! instead of hanging, and every thread started here is joined on drop.

#![allow(dead_code)] // each test uses a different part of the kit

pub mod backend;
pub mod client;
pub mod peers;
pub mod pki;
pub mod tls_backend;
pub mod tls_client;
pub mod wire;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use backend::{Backend, Reply, Seen};
pub use client::{Client, ReadError, Response};
pub use wire::Framing;

/// The longest any single socket operation of a test may wait.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// A running proxy; dropping it shuts it down and waits for its workers.
pub struct Proxy {
    addrs: Vec<SocketAddr>,
    admin: Option<SocketAddr>,
    handle: Option<ringway::server::Handle>,
}

impl Proxy {
    /// Starts the proxy with one worker.
    pub fn start(toml: &str) -> Proxy {
        Proxy::with_workers(toml, 1)
    }

    pub fn with_workers(toml: &str, workers: usize) -> Proxy {
        let cfg = match ringway::config::Config::parse(toml, Path::new("test.toml")) {
            Ok(c) => c,
            Err(e) => panic!("test config does not parse:\n{e}\n---\n{toml}"),
        };
        Proxy::from_server(ringway::server::Server::bind(Arc::new(cfg), workers).expect("bind"))
    }

    /// Starts a server bound (and set up) by the test.
    pub fn from_server(server: ringway::server::Server) -> Proxy {
        let addrs = server.local_addrs().to_vec();
        let admin = server.admin_addr();
        let handle = server.start().expect("start workers");
        Proxy {
            addrs,
            admin,
            handle: Some(handle),
        }
    }

    /// The first listen address.
    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The `[admin]` listener's address (the config must have one).
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin.expect("the config has an [admin] listener")
    }

    pub fn client(&self) -> Client {
        Client::connect(self.addr())
    }

    /// Sends `raw` on a new connection and reads one response.
    pub fn send(&self, raw: impl AsRef<[u8]>) -> Response {
        let mut c = self.client();
        c.send(raw.as_ref());
        c.response()
    }

    /// `GET path` with `Host: host` on a new connection.
    pub fn get(&self, path: &str) -> Response {
        self.send(format!("GET {path} HTTP/1.1\r\nHost: test.local\r\n\r\n"))
    }

    /// The running workers' handle.
    pub fn handle(&self) -> &ringway::server::Handle {
        self.handle.as_ref().expect("proxy is running")
    }

    /// Shuts down and returns what the workers' supervisor reports.
    pub fn stop_and_wait(&mut self) -> std::io::Result<()> {
        let h = self.handle.take().expect("proxy is running");
        h.shutdown();
        h.wait()
    }

    /// Asks the workers to drain and stop, without waiting.
    pub fn begin_shutdown(&self) {
        if let Some(h) = &self.handle {
            h.shutdown();
        }
    }

    /// Shuts down and waits for every worker to finish.
    pub fn stop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.shutdown();
            h.join();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A config with a short drain, so a test's proxy stops quickly even when a
/// connection is left in flight. `rest` is everything after `[global]`'s
/// first line; it may add more `[global]` keys before its first table.
pub fn config(rest: &str) -> String {
    format!("[global]\ndrain_timeout = \"1s\"\n{rest}\n")
}

/// One server on 127.0.0.1:0, access log off, proxying every path to
/// `backend`. `server_extra` lines go into `[[server]]`, `location_extra`
/// lines into its only location.
pub fn proxy_all(backend: SocketAddr, server_extra: &str, location_extra: &str) -> String {
    config(&format!(
        r#"
[[server]]
listen = ["127.0.0.1:0"]
access_log = "off"
{server_extra}

[[server.location]]
path = "/"
proxy_pass = "http://{backend}"
{location_extra}
"#
    ))
}

/// A path in the system temp directory that no other test uses.
pub fn temp_path(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("ringway-test-{}-{n}-{name}", std::process::id()))
}

/// A temporary file removed on drop.
pub struct TempFile(pub PathBuf);

impl TempFile {
    pub fn new(name: &str) -> TempFile {
        TempFile(temp_path(name))
    }

    pub fn with_text(name: &str, text: &str) -> TempFile {
        let f = TempFile::new(name);
        std::fs::write(&f.0, text).expect("write temp file");
        f
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Polls `f` every 10ms until it returns `Some`, for at most `limit`.
pub fn wait_for<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A one-way gate between a test and a backend thread: the backend waits at
/// it (bounded) until the test opens it, so an order of events is enforced
/// rather than hoped for with sleeps.
#[derive(Clone, Default)]
pub struct Gate(Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>);

impl Gate {
    pub fn new() -> Gate {
        Gate::default()
    }

    pub fn open(&self) {
        *self.0 .0.lock().unwrap() = true;
        self.0 .1.notify_all();
    }

    /// Waits until the gate is open, for at most `IO_TIMEOUT`; true if it opened.
    pub fn wait(&self) -> bool {
        let (lock, cv) = &*self.0;
        let guard = lock.lock().unwrap();
        let (guard, _) = cv.wait_timeout_while(guard, IO_TIMEOUT, |open| !*open).unwrap();
        *guard
    }
}

/// A port on 127.0.0.1 with nothing listening on it (bound, then released).
pub fn closed_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    addr
}

/// A loopback port for the proxy to listen on, chosen by the test (for a
/// config written before the proxy starts, or a listener added by a reload).
///
/// Not from the kernel's ephemeral range: ringway listens with
/// SO_REUSEPORT, so a port handed out there, released, and then taken by
/// another proxy's `127.0.0.1:0` bind in the meantime would be shared by
/// both proxies, each getting some of the other's clients. Ports come from
/// 20000-32767 instead (below `ip_local_port_range`'s default 32768), one
/// after another within this process (from an offset by process id, so two
/// test processes seldom meet), each checked free before it is handed out.
pub fn listen_port() -> u16 {
    use std::sync::atomic::AtomicU32;
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_768;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id() * 997 % SPAN,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..SPAN {
        let port = (LOW + NEXT.fetch_add(1, Ordering::SeqCst) % SPAN) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in 20000-32767 on 127.0.0.1");
}

/// Deterministic bytes that are not a repeating short pattern, so a
/// misplaced or dropped block shows up in a comparison.
pub fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            // xorshift64
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Where two byte strings first differ, for readable failures on big bodies.
pub fn assert_same_bytes(got: &[u8], want: &[u8], what: &str) {
    if got == want {
        return;
    }
    let first = got
        .iter()
        .zip(want)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(want.len()));
    panic!(
        "{what}: {} bytes, expected {}; first difference at offset {first}",
        got.len(),
        want.len()
    );
}

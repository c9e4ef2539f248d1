//! Active health checks (`health_check` on an upstream).
//!
//! One prober serves the whole process: a dedicated thread, `ringway-health`,
//! with its own small monoio runtime (epoll: a handful of sockets does not
//! need io_uring). It probes each checked server once per `interval`,
//! whatever the worker count, so operators see one probe per server per
//! interval (a server listed in two checked upstreams is probed for each).
//! Workers never probe and never wait for the prober.
//!
//! How workers learn the result: the prober counts passes and failures in a
//! row ([`Streak`]) and, when `fall` failures take a server out or `rise`
//! passes bring it back, stores the new state in [`Probed`], one `AtomicBool`
//! per server, which every worker's `select` reads with a relaxed load. No
//! lock, no message on the request path. State changes are logged (warn on
//! down, info on up).
//!
//! Start state: every server is up, as in nginx after a reload, until `fall`
//! probes in a row fail; the first probe of every server starts at once.
//!
//! Bounds: each probe has the `timeout` deadline (connect, request and
//! status line together); at most [`MAX_IN_FLIGHT`] probes run at once; a
//! probe still running when the next is due is not doubled. The thread stops
//! when the server shuts down, dropping any probe in flight.

use std::cell::Cell;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use monoio::net::TcpStream;

use super::health::{Probed, Streak};
use super::resolve::Update;
use crate::config::{Config, HealthCheck, Probe};
use crate::tls::client::Connector;

/// Probes running at once, at most.
pub const MAX_IN_FLIGHT: usize = 64;

/// The longest status line a probe reads before giving up on the answer.
const STATUS_LINE_MAX: usize = 1024;

/// Messages to the prober thread.
#[derive(Debug)]
pub enum ProbeMsg {
    /// A server has a new address (`resolve_interval`): probe that one.
    Addr(Update),
    Stop,
}

/// The running prober thread.
pub struct Prober {
    tx: flume::Sender<ProbeMsg>,
    thread: JoinHandle<()>,
}

impl Prober {
    /// Starts the prober when some upstream has a `health_check`; `None` when none has.
    pub fn start(config: &Arc<Config>, probed: Arc<Probed>) -> io::Result<Option<Prober>> {
        let now = Instant::now();
        let mut targets = Vec::new();
        for (u, up) in config.upstreams.iter().enumerate() {
            let Some(check) = &up.health_check else { continue };
            // An HTTP probe of a TLS upstream speaks TLS, verified as the
            // proxied requests are; the prober has its own session cache.
            let tls = up.tls.as_ref().map(|t| Arc::new(Connector::new(t)));
            for (s, peer) in up.servers.iter().enumerate() {
                targets.push(Target {
                    upstream: u,
                    server: s,
                    upstream_name: up.name.clone(),
                    authority: peer.authority.clone(),
                    check: check.clone(),
                    tls: tls.clone(),
                    h2: up.protocol == crate::config::UpstreamProtocol::H2,
                    addr: Cell::new(peer.addr),
                    streak: Cell::new(Streak::starting(probed.is_down(u, s))),
                    busy: Cell::new(false),
                    due: Cell::new(now),
                });
            }
        }
        if targets.is_empty() {
            return Ok(None);
        }
        // Room for one address change per server and a stop: the sender
        // (the resolver thread) waits a bounded time when it is full.
        let (tx, rx) = flume::bounded(targets.len() + 1);
        tracing::info!("health checks: {} servers", targets.len());
        let thread = std::thread::Builder::new()
            .name("ringway-health".into())
            .spawn(move || {
                let rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
                    .enable_timer()
                    .build();
                match rt {
                    Ok(mut rt) => rt.block_on(schedule(targets.into(), probed, rx)),
                    Err(e) => tracing::error!("health checks cannot start: {e}"),
                }
            })?;
        Ok(Some(Prober { tx, thread }))
    }

    /// Where address changes for the prober go.
    pub fn sender(&self) -> flume::Sender<ProbeMsg> {
        self.tx.clone()
    }

    /// Asks the prober to stop; probes in flight are dropped.
    pub fn stop(&self) {
        // The channel may be full of address changes: then the stop waits
        // its turn, briefly. A failure means the thread is gone already.
        let _ = self.tx.send_timeout(ProbeMsg::Stop, Duration::from_secs(1));
    }

    pub fn join(self) {
        let _ = self.thread.join();
    }
}

/// One server of a checked upstream, as the prober tracks it.
struct Target {
    upstream: usize,
    server: usize,
    upstream_name: String,
    authority: String,
    check: HealthCheck,
    /// The upstream's TLS settings, when it has `tls = true`.
    tls: Option<Arc<Connector>>,
    /// The upstream speaks HTTP/2 (`protocol = "h2"`): so do HTTP probes.
    h2: bool,
    addr: Cell<SocketAddr>,
    streak: Cell<Streak>,
    /// A probe of this server is queued or running.
    busy: Cell<bool>,
    /// When the next probe starts.
    due: Cell<Instant>,
}

/// Starts each server's probe when it is due, on a fixed set of tasks that
/// take turns; returns on `Stop`.
async fn schedule(targets: Rc<[Target]>, probed: Arc<Probed>, rx: flume::Receiver<ProbeMsg>) {
    // One slot per server, and a server is queued at most once at a time:
    // a send never finds the queue full.
    let (jobs_tx, jobs_rx) = flume::bounded::<usize>(targets.len());
    let (done_tx, done_rx) = flume::bounded::<()>(targets.len());
    for _ in 0..MAX_IN_FLIGHT.min(targets.len()) {
        monoio::spawn(run_probes(
            targets.clone(),
            probed.clone(),
            jobs_rx.clone(),
            done_tx.clone(),
        ));
    }
    loop {
        let now = Instant::now();
        // Without a server to wait for, the loop still wakes now and then.
        let mut next = now + Duration::from_secs(60);
        for (k, t) in targets.iter().enumerate() {
            if t.busy.get() {
                // Rescheduled when it finishes (a message on `done`).
                continue;
            }
            if t.due.get() <= now {
                t.busy.set(true);
                // The next probe starts one interval after this one did.
                t.due.set(now + t.check.interval);
                let _ = jobs_tx.try_send(k);
            } else {
                next = next.min(t.due.get());
            }
        }
        monoio::select! {
            _ = monoio::time::sleep(next.saturating_duration_since(Instant::now())) => {}
            _ = done_rx.recv_async() => {}
            msg = rx.recv_async() => match msg {
                Ok(ProbeMsg::Addr(u)) => {
                    if let Some(t) = targets.iter().find(|t| (t.upstream, t.server) == (u.upstream, u.server)) {
                        t.addr.set(u.addr);
                    }
                }
                Ok(ProbeMsg::Stop) | Err(_) => break,
            },
        }
    }
}

/// One of the tasks that run probes, one at a time, as they are queued.
async fn run_probes(
    targets: Rc<[Target]>,
    probed: Arc<Probed>,
    jobs: flume::Receiver<usize>,
    done: flume::Sender<()>,
) {
    while let Ok(k) = jobs.recv_async().await {
        let t = &targets[k];
        let addr = t.addr.get();
        let tls = t.tls.as_deref().map(|c| (c, t.server));
        let result = probe(&t.check, addr, &t.authority, tls, t.h2).await;
        let mut streak = t.streak.get();
        match (streak.record(result.is_ok(), t.check.rise, t.check.fall), &result) {
            (Some(true), Err(why)) => {
                probed.set(t.upstream, t.server, true);
                tracing::warn!(upstream = %t.upstream_name, server = %t.authority, %addr,
                    "health check: server down after {} failed probes ({why})", t.check.fall);
            }
            (Some(false), _) => {
                probed.set(t.upstream, t.server, false);
                tracing::info!(upstream = %t.upstream_name, server = %t.authority, %addr,
                    "health check: server up after {} passed probes", t.check.rise);
            }
            (_, Err(why)) => {
                tracing::debug!(upstream = %t.upstream_name, server = %t.authority, %addr, "health check failed: {why}")
            }
            _ => {}
        }
        t.streak.set(streak);
        t.busy.set(false);
        // Full only when the scheduler has wake-ups pending already.
        let _ = done.try_send(());
    }
}

/// One probe of the server at `addr`, within `check.timeout`. `Err` says
/// why it failed, for the log. `authority` is the server as written in the
/// config: the Host of an HTTP probe unless `host` is set. `tls`: the
/// upstream's TLS connector and the server's index, for a TLS upstream.
/// `h2`: the upstream speaks HTTP/2, and so does an HTTP probe.
pub async fn probe(
    check: &HealthCheck,
    addr: SocketAddr,
    authority: &str,
    tls: Option<(&Connector, usize)>,
    h2: bool,
) -> Result<(), String> {
    match monoio::time::timeout(check.timeout, attempt(&check.probe, addr, authority, tls, h2)).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "no answer within {}",
            humantime::format_duration(check.timeout)
        )),
    }
}

async fn attempt(
    probe: &Probe,
    addr: SocketAddr,
    authority: &str,
    tls: Option<(&Connector, usize)>,
    h2: bool,
) -> Result<(), String> {
    let stream = TcpStream::connect_addr(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let Probe::Http { path, host, expect } = probe else {
        // A TCP check passes once the connection is made; dropping it closes.
        return Ok(());
    };
    let host = host.as_deref().unwrap_or(authority);
    if h2 {
        let session = match tls {
            Some((connector, server)) => {
                Some(connector.session(server, None).map_err(|e| format!("TLS: {e}"))?)
            }
            None => None,
        };
        let status = h2_status(stream, session, tls.is_some(), path, host).await?;
        return judge(status, expect);
    }
    match tls {
        None => http_check(stream, path, host, expect).await,
        Some((connector, server)) => {
            let stream = connector
                .handshake(server, None, stream)
                .await
                .map_err(|e| format!("TLS handshake: {e}"))?;
            http_check(stream, path, host, expect).await
        }
    }
}

/// Sends `GET path` and judges the status line against `expect`.
async fn http_check<S: AsyncReadRent + AsyncWriteRent>(
    mut stream: S,
    path: &str,
    host: &str,
    expect: &[(u16, u16)],
) -> Result<(), String> {
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: ringway-health-check\r\nConnection: close\r\n\r\n"
    );
    let (res, _) = stream.write_all(request.into_bytes()).await;
    res.map_err(|e| format!("send: {e}"))?;
    // Only the status line matters; the rest is left unread and the
    // connection closed.
    let mut head: Vec<u8> = Vec::with_capacity(STATUS_LINE_MAX);
    let line_end = loop {
        if let Some(end) = head.iter().position(|&b| b == b'\n') {
            break end;
        }
        if head.len() >= STATUS_LINE_MAX {
            return Err("no status line in the first 1024 bytes".into());
        }
        let buf = Vec::with_capacity(STATUS_LINE_MAX - head.len());
        let (res, buf) = stream.read(buf).await;
        match res {
            Ok(0) => return Err("closed before a status line".into()),
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e) => return Err(format!("read: {e}")),
        }
    };
    let status = status_code(&head[..line_end]).ok_or_else(|| "not an HTTP/1.x status line".to_string())?;
    judge(status, expect)
}

fn judge(status: u16, expect: &[(u16, u16)]) -> Result<(), String> {
    if expect.iter().any(|&(lo, hi)| (lo..=hi).contains(&status)) {
        Ok(())
    } else {
        Err(format!("status {status}"))
    }
}

/// `GET path` over HTTP/2 (h2c, or TLS with ALPN h2): the response's
/// status. The connection is driven by a task of its own for the probe's
/// length and dropped with it.
async fn h2_status(
    stream: TcpStream,
    tls: Option<rustls::ClientConnection>,
    https: bool,
    path: &str,
    host: &str,
) -> Result<u16, String> {
    let io = crate::h2io::Io::upstream(stream, tls)
        .into_poll()
        .map_err(|e| format!("socket: {e}"))?;
    let (send, conn) = h2::client::handshake(io)
        .await
        .map_err(|e| format!("HTTP/2 handshake: {e}"))?;
    let driver = monoio::spawn(async move {
        let _ = conn.await;
    });
    let uri = http::Uri::builder()
        .scheme(if https { "https" } else { "http" })
        .authority(host)
        .path_and_query(path)
        .build()
        .map_err(|e| format!("request: {e}"))?;
    let mut req = http::Request::new(());
    *req.uri_mut() = uri;
    req.headers_mut().insert(
        http::header::USER_AGENT,
        http::HeaderValue::from_static("ringway-health-check"),
    );
    let mut send = send.ready().await.map_err(|e| format!("HTTP/2: {e}"))?;
    let (response, _) = send.send_request(req, true).map_err(|e| format!("send: {e}"))?;
    let status = response
        .await
        .map_err(|e| format!("HTTP/2 response: {e}"))?
        .status()
        .as_u16();
    drop(send);
    drop(driver);
    Ok(status)
}

/// The status code of an HTTP/1.x status line (RFC 9112 §4:
/// `HTTP/1.1 SP 3DIGIT SP [reason]`), with or without its CR.
pub fn status_code(line: &[u8]) -> Option<u16> {
    let rest = line.strip_prefix(b"HTTP/1.")?;
    let (&minor, rest) = rest.split_first()?;
    let rest = rest.strip_prefix(b" ")?;
    if !minor.is_ascii_digit() || rest.len() < 3 || !rest[..3].iter().all(u8::is_ascii_digit) {
        return None;
    }
    if !matches!(rest.get(3), None | Some(b' ') | Some(b'\r')) {
        return None;
    }
    let code = rest[..3].iter().fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    (100..=599).contains(&code).then_some(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(status_code(b"HTTP/1.1 200 OK\r"), Some(200));
        assert_eq!(status_code(b"HTTP/1.0 503 Service Unavailable"), Some(503));
        assert_eq!(status_code(b"HTTP/1.1 204"), Some(204));
        assert_eq!(status_code(b"HTTP/1.1 204\r"), Some(204));
        assert_eq!(status_code(b"HTTP/1.1 2000 OK"), None);
        assert_eq!(status_code(b"HTTP/1.1 20 OK"), None);
        assert_eq!(status_code(b"HTTP/2 200 OK"), None);
        assert_eq!(status_code(b"HTTP/1.1 099 Low"), None);
        assert_eq!(status_code(b"ICY 200 OK"), None);
        assert_eq!(status_code(b""), None);
    }
}

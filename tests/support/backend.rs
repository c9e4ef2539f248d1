//! Backends: a std listener on 127.0.0.1:0, a thread per connection, and a
//! handler that decides how to behave. Connections are numbered from 1, and
//! the usual responders stamp every response with `X-Conn: <number>` so a
//! test can tell whether the proxy reused a connection. Every request read is
//! recorded exactly as it arrived (head and body bytes).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::wire::{decode_chunked, head_end, Framing, Head};
use super::IO_TIMEOUT;

/// A request as the backend received it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The backend connection it came on (1, 2, ...).
    pub conn: usize,
    pub head: Head,
    /// The body payload (chunked coding removed).
    pub body: Vec<u8>,
    /// The body bytes exactly as they came over the wire.
    pub body_raw: Vec<u8>,
    pub framing: Framing,
}

impl Seen {
    pub fn method(&self) -> &str {
        &self.head.line[0]
    }
    pub fn target(&self) -> &str {
        &self.head.line[1]
    }
    pub fn version(&self) -> &str {
        &self.head.line[2]
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.header(name)
    }
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.head.all(name)
    }
    pub fn has(&self, name: &str) -> bool {
        self.head.has(name)
    }
    pub fn head_text(&self) -> String {
        String::from_utf8_lossy(&self.head.raw).into_owned()
    }
}

type Handler = dyn Fn(&mut Conn) + Send + Sync;

struct Shared {
    stop: AtomicBool,
    conns: AtomicUsize,
    bytes: AtomicUsize,
    seen: Mutex<Vec<Seen>>,
    /// Clones of open connections, shut down when the backend is dropped so
    /// that no handler thread stays blocked in a read.
    open: Mutex<HashMap<usize, TcpStream>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

pub struct Backend {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl Backend {
    /// A backend whose every connection is handed to `handler`.
    pub fn start(handler: impl Fn(&mut Conn) + Send + Sync + 'static) -> Backend {
        Backend::start_at("127.0.0.1:0".parse().unwrap(), handler)
    }

    /// Like `start`, on a given address (a backend restarted on its old port).
    pub fn start_at(addr: SocketAddr, handler: impl Fn(&mut Conn) + Send + Sync + 'static) -> Backend {
        let listener = TcpListener::bind(addr).expect("backend bind");
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            conns: AtomicUsize::new(0),
            bytes: AtomicUsize::new(0),
            seen: Mutex::new(Vec::new()),
            open: Mutex::new(HashMap::new()),
            threads: Mutex::new(Vec::new()),
        });
        let handler: Arc<Handler> = Arc::new(handler);
        let sh = shared.clone();
        let accept = std::thread::Builder::new()
            .name(format!("backend-{}", addr.port()))
            .spawn(move || {
                for stream in listener.incoming() {
                    if sh.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let id = sh.conns.fetch_add(1, Ordering::SeqCst) + 1;
                    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
                    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
                    let _ = stream.set_nodelay(true);
                    if let Ok(c) = stream.try_clone() {
                        sh.open.lock().unwrap().insert(id, c);
                    }
                    let mut conn = Conn {
                        id,
                        stream,
                        buf: Vec::new(),
                        shared: sh.clone(),
                    };
                    let h = handler.clone();
                    let t = std::thread::spawn(move || {
                        h(&mut conn);
                        // The clone kept for shutting down would keep the
                        // socket open: drop it, so the handler's end closes.
                        let clone = conn.shared.open.lock().unwrap().remove(&conn.id);
                        drop(clone);
                    });
                    sh.threads.lock().unwrap().push(t);
                }
            })
            .unwrap();
        Backend {
            addr,
            shared,
            accept: Some(accept),
        }
    }

    /// A keep-alive backend that answers every request with `reply(request)`.
    pub fn serve(reply: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Backend {
        Backend::start(move |c| c.serve(&reply))
    }

    /// Answers every request 200 with the request target as the body.
    pub fn echo_target() -> Backend {
        Backend::serve(|r| Reply::ok(r.target()))
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.conns.load(Ordering::SeqCst)
    }

    /// Bytes received so far, on all connections.
    pub fn bytes_received(&self) -> usize {
        self.shared.bytes.load(Ordering::SeqCst)
    }

    /// Every request read so far, in the order they were read.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// The only request read so far (panics when there is not exactly one).
    pub fn only_request(&self) -> Seen {
        let seen = self.seen();
        assert_eq!(seen.len(), 1, "backend saw {} requests, expected one", seen.len());
        seen.into_iter().next().unwrap()
    }

    /// Waits (up to the I/O timeout) until `n` requests have been read.
    pub fn wait_requests(&self, n: usize) -> Vec<Seen> {
        super::wait_for(IO_TIMEOUT, || {
            let s = self.seen();
            (s.len() >= n).then_some(s)
        })
        .unwrap_or_else(|| panic!("backend saw {} requests, expected {n}", self.seen().len()))
    }

    /// Asserts the backend was never contacted.
    pub fn assert_untouched(&self, what: &str) {
        assert_eq!(
            (self.connections(), self.bytes_received()),
            (0, 0),
            "{what}: the backend was contacted (connections, bytes)"
        );
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        for (_, s) in self.shared.open.lock().unwrap().drain() {
            let _ = s.shutdown(Shutdown::Both);
        }
        let threads: Vec<_> = self.shared.threads.lock().unwrap().drain(..).collect();
        for t in threads {
            let _ = t.join();
        }
    }
}

/// One accepted connection, as a handler sees it.
pub struct Conn {
    pub id: usize,
    pub stream: TcpStream,
    /// Bytes read and not yet consumed.
    buf: Vec<u8>,
    shared: Arc<Shared>,
}

impl Conn {
    pub fn stopping(&self) -> bool {
        self.shared.stop.load(Ordering::SeqCst)
    }

    /// One read into the buffer; `Ok(0)` at end of stream.
    fn fill(&mut self) -> std::io::Result<usize> {
        let mut tmp = [0u8; 64 * 1024];
        let n = loop {
            match self.stream.read(&mut tmp) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                r => break r?,
            }
        };
        self.shared.bytes.fetch_add(n, Ordering::SeqCst);
        self.buf.extend_from_slice(&tmp[..n]);
        Ok(n)
    }

    /// Reads a request head; `None` if the peer closed or stalled first.
    pub fn read_head(&mut self) -> Option<Head> {
        loop {
            if let Some(end) = head_end(&self.buf) {
                let raw: Vec<u8> = self.buf.drain(..end).collect();
                return match Head::parse(&raw) {
                    Ok(h) => Some(h),
                    Err(e) => panic!(
                        "backend received a malformed head ({e}): {:?}",
                        String::from_utf8_lossy(&raw)
                    ),
                };
            }
            match self.fill() {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// Reads the body the head announces: `(payload, raw bytes)`.
    pub fn read_body(&mut self, head: &Head) -> Option<(Vec<u8>, Vec<u8>, Framing)> {
        let framing = match head.request_framing() {
            Ok(f) => f,
            Err(e) => panic!(
                "backend received ambiguous framing ({e}):\n{}",
                String::from_utf8_lossy(&head.raw)
            ),
        };
        match framing {
            Framing::None | Framing::Close => Some((Vec::new(), Vec::new(), framing)),
            Framing::Length(n) => {
                let n = n as usize;
                while self.buf.len() < n {
                    match self.fill() {
                        Ok(0) | Err(_) => return None,
                        Ok(_) => {}
                    }
                }
                let body: Vec<u8> = self.buf.drain(..n).collect();
                Some((body.clone(), body, framing))
            }
            Framing::Chunked => loop {
                match decode_chunked(&self.buf) {
                    Ok(Some((data, used))) => {
                        let raw: Vec<u8> = self.buf.drain(..used).collect();
                        return Some((data, raw, framing));
                    }
                    Ok(None) => match self.fill() {
                        Ok(0) | Err(_) => return None,
                        Ok(_) => {}
                    },
                    Err(e) => panic!("backend received invalid chunked coding: {e}"),
                }
            },
        }
    }

    /// Reads a whole request and records it; `None` when the peer closed.
    pub fn read_request(&mut self) -> Option<Seen> {
        let head = self.read_head()?;
        let (body, body_raw, framing) = self.read_body(&head)?;
        let seen = Seen {
            conn: self.id,
            head,
            body,
            body_raw,
            framing,
        };
        self.shared.seen.lock().unwrap().push(seen.clone());
        Some(seen)
    }

    /// Records a request read some other way (a head only, say).
    pub fn record(&self, head: Head) {
        self.shared.seen.lock().unwrap().push(Seen {
            conn: self.id,
            head,
            body: Vec::new(),
            body_raw: Vec::new(),
            framing: Framing::None,
        });
    }

    /// Writes everything; false if the peer is gone.
    pub fn write(&mut self, data: &[u8]) -> bool {
        self.stream.write_all(data).is_ok()
    }

    /// Writes `data` in pieces of `piece` bytes with a pause between them.
    pub fn write_slowly(&mut self, data: &[u8], piece: usize, pause: Duration) -> bool {
        for p in data.chunks(piece.max(1)) {
            if self.stream.write_all(p).is_err() {
                return false;
            }
            std::thread::sleep(pause);
        }
        true
    }

    /// Makes the coming close a reset (SO_LINGER 0): the connection ends
    /// abruptly when the handler returns.
    pub fn reset_on_close(&mut self) {
        let _ = socket2::SockRef::from(&self.stream).set_linger(Some(Duration::ZERO));
    }

    /// Waits until the peer closes (or the backend stops), discarding input.
    pub fn hold(&mut self) {
        let _ = self.stream.set_read_timeout(Some(Duration::from_millis(100)));
        let mut tmp = [0u8; 16 * 1024];
        let mut idle = Duration::ZERO;
        while !self.stopping() && idle < Duration::from_secs(20) {
            match self.stream.read(&mut tmp) {
                Ok(0) => return,
                Ok(n) => {
                    self.shared.bytes.fetch_add(n, Ordering::SeqCst);
                    idle = Duration::ZERO;
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock
                            | std::io::ErrorKind::TimedOut
                            | std::io::ErrorKind::Interrupted
                    ) =>
                {
                    idle += Duration::from_millis(100);
                }
                Err(_) => return,
            }
        }
    }

    /// Closes our sending side, then discards input until the peer closes:
    /// a close that cannot turn into a reset and destroy what was sent.
    pub fn close_gracefully(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Write);
        self.hold();
    }

    /// The usual keep-alive loop: read a request, answer it, until the peer
    /// closes or a reply asks to close.
    pub fn serve(&mut self, reply: &dyn Fn(&Seen) -> Reply) {
        while let Some(req) = self.read_request() {
            if !self.reply(&req, &reply(&req)) {
                return;
            }
        }
    }

    /// Answers `req` with `r`; false when the connection is done.
    pub fn reply(&mut self, req: &Seen, r: &Reply) -> bool {
        if let Some(d) = r.delay {
            std::thread::sleep(d);
        }
        let bytes = r.encode(self.id, req.method() == "HEAD");
        if !self.write(&bytes) {
            return false;
        }
        match r.after {
            After::KeepAlive => true,
            After::Close => {
                self.close_gracefully();
                false
            }
        }
    }
}

/// What a backend does with its connection after a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    KeepAlive,
    /// Close the connection (whatever the headers said).
    Close,
}

/// How a reply body goes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyOut {
    /// `Content-Length` (omitted for 204 and 304).
    Length,
    /// Chunked, in pieces of this many bytes.
    Chunked(usize),
    /// No length at all: the body ends when the backend closes.
    UntilClose,
}

/// A response for [`Conn::serve`]; `X-Conn` is added to every one.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub body_out: BodyOut,
    pub after: After,
    pub delay: Option<Duration>,
}

impl Reply {
    pub fn new(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            body_out: BodyOut::Length,
            after: After::KeepAlive,
            delay: None,
        }
    }

    pub fn ok(body: impl AsRef<[u8]>) -> Reply {
        Reply::new(200).body(body)
    }

    pub fn body(mut self, body: impl AsRef<[u8]>) -> Reply {
        self.body = body.as_ref().to_vec();
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn chunked(mut self, piece: usize) -> Reply {
        self.body_out = BodyOut::Chunked(piece);
        self
    }

    /// No Content-Length; the backend closes after the body.
    pub fn until_close(mut self) -> Reply {
        self.body_out = BodyOut::UntilClose;
        self.after = After::Close;
        self
    }

    /// Close the connection after this reply.
    pub fn then_close(mut self) -> Reply {
        self.after = After::Close;
        self
    }

    pub fn delay(mut self, d: Duration) -> Reply {
        self.delay = Some(d);
        self
    }

    pub fn encode(&self, conn: usize, head_request: bool) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nX-Conn: {conn}\r\n",
            self.status,
            reason(self.status)
        )
        .into_bytes();
        for (n, v) in &self.headers {
            out.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
        }
        let bodiless = self.status == 204 || self.status == 304 || self.status < 200;
        match self.body_out {
            BodyOut::Length if !bodiless => {
                out.extend_from_slice(format!("Content-Length: {}\r\n", self.body.len()).as_bytes())
            }
            BodyOut::Chunked(_) if !bodiless => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
            _ => {}
        }
        out.extend_from_slice(b"\r\n");
        if head_request || bodiless {
            return out;
        }
        match self.body_out {
            BodyOut::Chunked(piece) => out.extend_from_slice(&super::wire::chunked(&self.body, piece)),
            _ => out.extend_from_slice(&self.body),
        }
        out
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        404 => "Not Found",
        413 => "Payload Too Large",
        500 => "Internal Server Error",
        _ => "Whatever",
    }
}

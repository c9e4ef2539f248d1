//! The admin listener, `[admin] listen`: `/metrics` (Prometheus text, or
//! OpenMetrics by `Accept`), `/status` (JSON) and `/healthz` (200 while
//! serving, 503 once a shutdown began). Anything else is 404; a method
//! other than GET and HEAD is 405.
//!
//! **Which thread serves it: worker 0**, as tasks on its runtime beside its
//! client connections. The socket is bound once by `server::Server::bind`
//! and kept by the process with the other listening sockets
//! (`worker::Current`), so it outlives a restart of that worker
//! (connections queued meanwhile are served by the restarted worker) and
//! every reload (a reload that would change `[admin]` is refused), and no
//! thread or runtime exists only for it. A scrape reads every worker's counters (see
//! `metrics`) and formats them on worker 0 without waiting on anything; it
//! costs that worker tens of microseconds per scrape, and its reads and
//! writes are bounded in size and time like a client's. During a drain,
//! worker 0 keeps the admin listener open until every worker is done, so
//! a balancer in front sees `/healthz` turn 503 rather than a refused port.
//!
//! Admin connections are not counted as client connections, so they do
//! not hold a drain open, and at most `MAX_CONNECTIONS` are served at once.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;

use crate::http::parse::{parse_request, HeadLimits, Parsed};
use crate::http::{HttpError, Version};
use crate::isolate::Isolated;
use crate::metrics::text::{self, Format};
use crate::metrics::{status, Registry};
use crate::shutdown::Shutdown;

/// Bounds of one admin request: its head, the wait for it, the write of
/// the answer, and requests per connection.
const LIMITS: HeadLimits = HeadLimits {
    max_request_line: 2048,
    max_header_size: 8192,
    max_headers: 64,
};
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_REQUESTS: usize = 1000;
/// Admin connections served at once; more are closed on accept.
const MAX_CONNECTIONS: usize = 64;

/// Accepts admin connections until `stop` is raised.
pub async fn accept_loop(registry: Arc<Registry>, listener: monoio::net::TcpListener, stop: Rc<Shutdown>) {
    let open = Rc::new(Cell::new(0usize));
    let mut canceller = monoio::io::Canceller::new();
    loop {
        // As in server::listener: a cancelled accept is awaited, never
        // dropped, so a connection the kernel gave it is not leaked.
        let accept = listener.cancelable_accept(canceller.handle());
        let mut accept = std::pin::pin!(accept);
        let (accepted, last) = monoio::select! {
            r = &mut accept => (r, false),
            _ = stop.wait() => {
                canceller = canceller.cancel();
                (accept.await, true)
            }
        };
        match accepted {
            Err(_) if last => break,
            Ok((stream, _)) if open.get() >= MAX_CONNECTIONS => drop(stream),
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                open.set(open.get() + 1);
                let (registry, open) = (registry.clone(), open.clone());
                monoio::spawn(Isolated::new(
                    async move {
                        serve(&registry, stream).await;
                        open.set(open.get() - 1);
                    },
                    peer,
                ));
            }
            Err(e) => {
                tracing::warn!("admin accept failed: {e}");
                monoio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        if last {
            break;
        }
    }
}

/// One admin connection: requests one after another until the client
/// closes, asks to, or sends something refused.
async fn serve(registry: &Registry, mut stream: TcpStream) {
    let mut buf = BytesMut::with_capacity(4096);
    for _ in 0..MAX_REQUESTS {
        let reply = loop {
            if !buf.is_empty() {
                match parse_request(&buf, &LIMITS) {
                    Ok(Parsed::Complete(parts, len)) => {
                        let head = parts.into_head(buf.split_to(len).freeze());
                        break answer(registry, &head);
                    }
                    Ok(Parsed::Partial) => {}
                    Err(e) => break refusal(e),
                }
            }
            if buf.len() >= LIMITS.max_header_size {
                break refusal(HttpError::HeadersTooLarge);
            }
            buf.reserve(4096);
            let owned = std::mem::take(&mut buf);
            let (len, cap) = (owned.len(), owned.capacity());
            match monoio::time::timeout(HEAD_TIMEOUT, stream.read(owned.slice_mut(len..cap))).await {
                Ok((Ok(n), b)) if n > 0 => buf = b.into_inner(),
                // Closed, failed or silent for too long: nothing to answer.
                _ => return,
            }
        };
        let close = reply.close;
        let bytes = reply.encode();
        match monoio::time::timeout(SEND_TIMEOUT, stream.write_all(bytes)).await {
            Ok((Ok(_), _)) if !close => {}
            _ => return,
        }
    }
}

struct Reply {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
    head_only: bool,
    close: bool,
    allow: bool,
}

impl Reply {
    fn new(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status,
            content_type,
            body: body.into(),
            head_only: false,
            close: false,
            allow: false,
        }
    }

    fn encode(self) -> Vec<u8> {
        let reason = match self.status {
            200 => "OK",
            400 => "Bad Request",
            404 => "Not Found",
            405 => "Method Not Allowed",
            414 => "URI Too Long",
            431 => "Request Header Fields Too Large",
            503 => "Service Unavailable",
            _ => "",
        };
        let mut out = format!(
            "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\n",
            self.status,
            self.content_type,
            self.body.len()
        )
        .into_bytes();
        if self.allow {
            out.extend_from_slice(b"Allow: GET, HEAD\r\n");
        }
        if self.close {
            out.extend_from_slice(b"Connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
        if !self.head_only {
            out.extend_from_slice(&self.body);
        }
        out
    }
}

const PLAIN: &str = "text/plain; charset=utf-8";

/// A head that could not be read: answered, then the connection closes.
fn refusal(e: HttpError) -> Reply {
    let status = match e {
        HttpError::UriTooLong => 414,
        HttpError::HeadersTooLarge => 431,
        _ => 400,
    };
    let mut r = Reply::new(status, PLAIN, format!("{status}\n"));
    r.close = true;
    r
}

fn answer(registry: &Registry, head: &crate::http::RequestHead) -> Reply {
    let close_asked = head.version == Version::Http10
        || head
            .header("connection")
            .is_some_and(|v| crate::http::list_items(v).any(|t| t.eq_ignore_ascii_case(b"close")));
    // An admin request has no body; one that says otherwise is refused,
    // and the connection closed, since its bytes would be taken for the
    // next request.
    let has_body = head.header("transfer-encoding").is_some()
        || head
            .header("content-length")
            .is_some_and(|v| crate::http::trim(v) != b"0");
    let method = head.method();
    let mut r = if has_body {
        let mut r = Reply::new(400, PLAIN, "admin requests have no body\n");
        r.close = true;
        r
    } else if method == b"DELETE" && head.target().starts_with(b"/cache/") {
        let (status, body) = crate::cache::admin_purge(&registry.layout().caches, head.target());
        Reply::new(status, PLAIN, body)
    } else if method != b"GET" && method != b"HEAD" {
        let mut r = Reply::new(405, PLAIN, "405: GET or HEAD\n");
        r.allow = true;
        r
    } else {
        let target = head.target();
        let path = target.split(|&b| b == b'?').next().unwrap_or_default();
        match path {
            b"/metrics" => {
                let format = Format::negotiate(head.header("accept"));
                Reply::new(200, format.content_type(), text::render(registry, format))
            }
            b"/status" => Reply::new(200, "application/json", status::render(registry)),
            b"/healthz" if registry.draining() => Reply::new(503, PLAIN, "draining\n"),
            b"/healthz" => Reply::new(200, PLAIN, "ok\n"),
            _ => Reply::new(404, PLAIN, "404: /metrics, /status or /healthz\n"),
        }
    };
    r.head_only = method == b"HEAD";
    r.close |= close_asked;
    r
}

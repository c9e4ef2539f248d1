//! perf-backend: the origin server used by `perf/run.sh`.
//!
//! A deliberately small HTTP/1.1 server so that, in a side-by-side run, the
//! proxy under test is the thing being measured and not the origin.
//!
//! Usage: `perf-backend --listen 127.0.0.1:PORT [--threads N]`
//!
//! One monoio runtime per thread, each with its own SO_REUSEPORT listener.
//! Keep-alive and pipelining are supported; request bodies must carry a
//! Content-Length (chunked request bodies are refused with 501).
//!
//! Routes:
//! * `GET /size/N`  -> N bytes of `x`, `Content-Type: text/plain`.
//! * `GET /json/N`  -> N bytes (at most 64 KiB) of JSON-like records, each
//!   different, `Content-Type: application/json` (the compression scenario:
//!   text that compresses about as real API responses do).
//! * `GET /__echo`  -> the request head as received (to check which headers
//!   a proxy adds or rewrites).
//! * `GET /__conns` -> the number of TCP connections accepted so far, not
//!   counting connections whose first request is `/__conns` (so a probe with
//!   curl does not disturb the figure it reads).
//! * anything else  -> 100 bytes of `x`.
//!
//! Every response carries `X-Conn: K`, where K is the per-process sequence
//! number of the connection that carried it; a client can use it to check
//! that connections are reused.

use std::io;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use monoio::net::{TcpListener, TcpStream};

/// Connections accepted since start.
static ACCEPTED: AtomicU64 = AtomicU64::new(0);
/// Connections whose first request was `/__conns` (diagnostic probes).
static PROBES: AtomicU64 = AtomicU64::new(0);

/// Size of the shared static body; larger responses are written as repeats.
const BODY_CHUNK: usize = 4 << 20;
/// Bodies up to this size are copied next to the head and sent with one write.
const INLINE_BODY_MAX: usize = 64 << 10;
/// Read buffer size; a request head must fit in it.
const READ_BUF: usize = 64 << 10;
/// Default body size for unknown paths.
const DEFAULT_SIZE: usize = 100;
const MAX_HEADERS: usize = 64;

/// 64 KiB of records like an API's, different at every line.
fn json_bytes() -> &'static [u8] {
    static JSON: OnceLock<&'static [u8]> = OnceLock::new();
    JSON.get_or_init(|| {
        let mut out = b"[".to_vec();
        let mut i: u64 = 0;
        while out.len() < INLINE_BODY_MAX {
            let (a, b) = (i.wrapping_mul(2654435761) % 100_000, i * 7919 % 977);
            out.extend_from_slice(
                format!("{{\"id\":{i},\"user\":\"user{a}\",\"score\":{b},\"active\":{},\"tags\":[\"t{}\",\"t{}\"]}},\n", i.is_multiple_of(3), b % 17, a % 29)
                    .as_bytes(),
            );
            i += 1;
        }
        out.truncate(INLINE_BODY_MAX);
        Box::leak(out.into_boxed_slice())
    })
}

fn body_bytes() -> &'static [u8] {
    static BODY: OnceLock<&'static [u8]> = OnceLock::new();
    BODY.get_or_init(|| Box::leak(vec![b'x'; BODY_CHUNK].into_boxed_slice()))
}

struct Args {
    listen: SocketAddr,
    threads: usize,
}

fn usage() -> ! {
    eprintln!("usage: perf-backend --listen 127.0.0.1:PORT [--threads N]");
    std::process::exit(2);
}

fn parse_args() -> Args {
    let mut listen = None;
    let mut threads = 1usize;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let (key, inline) = match a.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (a.clone(), None),
        };
        let mut value = || inline.clone().or_else(|| it.next()).unwrap_or_else(|| usage());
        match key.as_str() {
            "--listen" => listen = Some(value().parse().unwrap_or_else(|_| usage())),
            "--threads" => threads = value().parse().unwrap_or_else(|_| usage()),
            "-h" | "--help" => usage(),
            _ => usage(),
        }
    }
    Args {
        listen: listen.unwrap_or_else(|| usage()),
        threads: threads.max(1),
    }
}

fn bind_reuseport(addr: SocketAddr) -> io::Result<StdListener> {
    use socket2::{Domain, Socket, Type};
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    sock.set_reuse_address(true)?;
    sock.set_reuse_port(true)?;
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())?;
    sock.listen(1024)?;
    Ok(sock.into())
}

fn main() {
    let args = parse_args();
    // Bind every listener before announcing readiness. With port 0 the first
    // bind picks the port and the others join it.
    let first = bind_reuseport(args.listen).unwrap_or_else(|e| {
        eprintln!("perf-backend: bind {}: {e}", args.listen);
        std::process::exit(1);
    });
    let addr = first.local_addr().expect("local_addr");
    let mut listeners = vec![first];
    for _ in 1..args.threads {
        listeners.push(bind_reuseport(addr).unwrap_or_else(|e| {
            eprintln!("perf-backend: bind {addr}: {e}");
            std::process::exit(1);
        }));
    }
    body_bytes();

    let handles: Vec<_> = listeners
        .into_iter()
        .enumerate()
        .map(|(i, l)| {
            std::thread::Builder::new()
                .name(format!("backend-{i}"))
                .spawn(move || run_thread(l))
                .expect("spawn thread")
        })
        .collect();

    let driver = if monoio::utils::detect_uring() {
        "io_uring"
    } else {
        "epoll"
    };
    eprintln!("perf-backend: {} thread(s), driver {driver}", args.threads);
    println!("listening on {addr}");
    use std::io::Write;
    let _ = io::stdout().flush();

    for h in handles {
        let _ = h.join();
    }
}

fn run_thread(std_listener: StdListener) {
    let mut rt = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
        .enable_timer()
        .build()
        .expect("build monoio runtime");
    rt.block_on(async move {
        let listener = TcpListener::from_std(std_listener).expect("register listener");
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let id = ACCEPTED.fetch_add(1, Ordering::Relaxed) + 1;
                    let _ = stream.set_nodelay(true);
                    monoio::spawn(async move {
                        let _ = serve(stream, id).await;
                    });
                }
                Err(e) => {
                    // Out of descriptors or similar: back off briefly.
                    eprintln!("perf-backend: accept: {e}");
                    monoio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    });
}

enum Route {
    Size(usize),
    Json(usize),
    Conns,
    Echo,
}

/// What a parsed request asks for; owned so the read buffer can be reused.
struct Request {
    head_len: usize,
    body_len: usize,
    route: Route,
    head_only: bool,
    close: bool,
    expect_continue: bool,
}

enum Parsed {
    Complete(Request),
    Partial,
    Invalid,
    Unsupported,
}

fn eq_ignore_case(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_ascii_lowercase() == *y)
}

fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&c| c == b',')
        .any(|t| eq_ignore_case(t.trim_ascii(), token))
}

fn parse(buf: &[u8], first_on_conn: bool) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Invalid,
    };
    let http10 = req.version == Some(0);
    let mut close = http10;
    let mut body_len = 0usize;
    let mut expect_continue = false;
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(b"content-length") {
            match std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse().ok())
            {
                Some(n) => body_len = n,
                None => return Parsed::Invalid,
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            return Parsed::Unsupported;
        } else if name.eq_ignore_ascii_case(b"connection") {
            if has_token(h.value, b"close") {
                close = true;
            } else if http10 && has_token(h.value, b"keep-alive") {
                close = false;
            }
        } else if name.eq_ignore_ascii_case(b"expect") {
            expect_continue = has_token(h.value, b"100-continue");
        }
    }
    let path = req.path.unwrap_or("/");
    let path = path.split('?').next().unwrap_or(path);
    let route = if path == "/__conns" {
        if first_on_conn {
            PROBES.fetch_add(1, Ordering::Relaxed);
        }
        Route::Conns
    } else if path == "/__echo" {
        Route::Echo
    } else if let Some(n) = path.strip_prefix("/size/").and_then(|n| n.parse().ok()) {
        Route::Size(n)
    } else if let Some(n) = path.strip_prefix("/json/").and_then(|n| n.parse::<usize>().ok()) {
        Route::Json(n.min(INLINE_BODY_MAX))
    } else {
        Route::Size(DEFAULT_SIZE)
    };
    Parsed::Complete(Request {
        head_len,
        body_len,
        route,
        head_only: req.method == Some("HEAD"),
        close,
        expect_continue,
    })
}

fn push_num(out: &mut Vec<u8>, mut n: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&tmp[i..]);
}

fn push_head(out: &mut Vec<u8>, status: &[u8], len: usize, conn_id: u64, close: bool) {
    push_typed_head(out, status, b"text/plain", len, conn_id, close);
}

fn push_typed_head(out: &mut Vec<u8>, status: &[u8], ty: &[u8], len: usize, conn_id: u64, close: bool) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status);
    out.extend_from_slice(b"\r\nContent-Type: ");
    out.extend_from_slice(ty);
    out.extend_from_slice(b"\r\nContent-Length: ");
    push_num(out, len as u64);
    out.extend_from_slice(b"\r\nX-Conn: ");
    push_num(out, conn_id);
    if close {
        out.extend_from_slice(b"\r\nConnection: close");
    }
    out.extend_from_slice(b"\r\n\r\n");
}

async fn flush(stream: &mut TcpStream, out: Vec<u8>) -> io::Result<Vec<u8>> {
    if out.is_empty() {
        return Ok(out);
    }
    let (res, mut out) = stream.write_all(out).await;
    res?;
    out.clear();
    Ok(out)
}

async fn serve(mut stream: TcpStream, conn_id: u64) -> io::Result<()> {
    let mut buf: Vec<u8> = Vec::with_capacity(READ_BUF);
    let mut out: Vec<u8> = Vec::with_capacity(INLINE_BODY_MAX + 512);
    let mut pos = 0usize; // start of unparsed data in `buf`
    let mut skip = 0usize; // request-body bytes still to discard
    let mut first = true;
    let body = body_bytes();

    // A request whose response waits until its body has been read.
    let mut pending: Option<Request> = None;
    let mut echo: Vec<u8> = Vec::new();

    loop {
        let mut close = false;
        // Answer every complete request already buffered (pipelining). A
        // response is sent only once the request body has been read in full,
        // as a typical origin would.
        loop {
            if skip > 0 {
                let n = skip.min(buf.len() - pos);
                pos += n;
                skip -= n;
                if skip > 0 {
                    break;
                }
            }
            if let Some(req) = pending.take() {
                close = req.close;
                match req.route {
                    Route::Conns => {
                        let n = ACCEPTED.load(Ordering::Relaxed) - PROBES.load(Ordering::Relaxed);
                        let mut digits = Vec::with_capacity(20);
                        push_num(&mut digits, n);
                        push_head(&mut out, b"200 OK", digits.len(), conn_id, close);
                        if !req.head_only {
                            out.extend_from_slice(&digits);
                        }
                    }
                    Route::Echo => {
                        push_head(&mut out, b"200 OK", echo.len(), conn_id, close);
                        if !req.head_only {
                            out.extend_from_slice(&echo);
                        }
                    }
                    Route::Json(n) => {
                        push_typed_head(&mut out, b"200 OK", b"application/json", n, conn_id, close);
                        if !req.head_only {
                            out.extend_from_slice(&json_bytes()[..n]);
                        }
                    }
                    Route::Size(n) => {
                        push_head(&mut out, b"200 OK", n, conn_id, close);
                        if req.head_only {
                        } else if n <= INLINE_BODY_MAX {
                            out.extend_from_slice(&body[..n]);
                        } else {
                            // Large body: head first, then shared static slices.
                            out = flush(&mut stream, out).await?;
                            let mut left = n;
                            while left > 0 {
                                let k = left.min(body.len());
                                let (res, _) = stream.write_all(&body[..k]).await;
                                res?;
                                left -= k;
                            }
                        }
                    }
                }
                if close {
                    break;
                }
            }
            if pos == buf.len() {
                break;
            }
            let req = match parse(&buf[pos..], first) {
                Parsed::Partial => break,
                Parsed::Complete(r) => r,
                Parsed::Invalid => {
                    push_head(&mut out, b"400 Bad Request", 0, conn_id, true);
                    close = true;
                    break;
                }
                Parsed::Unsupported => {
                    push_head(&mut out, b"501 Not Implemented", 0, conn_id, true);
                    close = true;
                    break;
                }
            };
            first = false;
            if let Route::Echo = req.route {
                echo.clear();
                echo.extend_from_slice(&buf[pos..pos + req.head_len]);
            }
            pos += req.head_len;
            skip = req.body_len;
            if req.expect_continue && req.body_len > buf.len() - pos {
                out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
            }
            pending = Some(req);
        }
        out = flush(&mut stream, out).await?;
        if close {
            let _ = stream.shutdown().await;
            return Ok(());
        }

        // Keep unparsed bytes at the front of the buffer.
        if pos == buf.len() {
            buf.clear();
        } else if pos > 0 {
            buf.drain(..pos);
        }
        pos = 0;
        if buf.len() == buf.capacity() {
            // A request head larger than the buffer.
            push_head(&mut out, b"431 Request Header Fields Too Large", 0, conn_id, true);
            let _ = flush(&mut stream, out).await;
            return Ok(());
        }
        let len = buf.len();
        let (res, slice) = stream.read(buf.slice_mut(len..)).await;
        buf = slice.into_inner();
        match res {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) => return Err(e),
        }
    }
}

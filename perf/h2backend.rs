//! perf-h2backend: the gRPC-style origin used by the `grpc` scenario of
//! `perf/run.sh`.
//!
//! Cleartext HTTP/2 with prior knowledge (h2c), the way gRPC servers are
//! usually reached behind a proxy. Every request, whatever its method or
//! path, is read to its end and answered like a unary gRPC call: `200`,
//! `content-type: application/grpc`, one length-prefixed message (a 5-byte
//! prefix: compressed flag 0 and the big-endian length, then the payload),
//! and the trailers `grpc-status: 0`. There is no protobuf: the payload is
//! opaque bytes, which is all a proxy sees of a message anyway.
//!
//! Usage: `perf-h2backend --listen 127.0.0.1:PORT [--threads N] [--payload BYTES]`
//!
//! One monoio runtime per thread (io_uring, epoll where io_uring is missing)
//! with its own SO_REUSEPORT listener. The `h2` codec runs over monoio's
//! poll-io bridge, as in `src/h2io/`; each stream is a task on the
//! connection's thread. The settings are generous (many concurrent streams,
//! large windows) so that flow control never paces a proxy that multiplexes
//! all its calls on one connection.

use std::io;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use monoio::io::IntoPollIo;
use monoio::net::{TcpListener, TcpStream};

/// Connections accepted since start (printed on exit, for the run's log).
static ACCEPTED: AtomicU64 = AtomicU64::new(0);

/// Streams one connection may have open: well above what a proxy opens on
/// one upstream connection at the load generator's concurrency.
const MAX_STREAMS: u32 = 4096;
/// Stream and connection windows: large, so WINDOW_UPDATE pacing is not
/// what is measured.
const WINDOW: u32 = 4 << 20;

struct Args {
    listen: SocketAddr,
    threads: usize,
    payload: usize,
}

fn usage() -> ! {
    eprintln!("usage: perf-h2backend --listen 127.0.0.1:PORT [--threads N] [--payload BYTES]");
    std::process::exit(2);
}

fn parse_args() -> Args {
    let mut listen = None;
    let mut threads = 1usize;
    let mut payload = 100usize;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--listen" => listen = Some(value().parse().unwrap_or_else(|_| usage())),
            "--threads" => threads = value().parse().unwrap_or_else(|_| usage()),
            "--payload" => payload = value().parse().unwrap_or_else(|_| usage()),
            _ => usage(),
        }
    }
    Args {
        listen: listen.unwrap_or_else(|| usage()),
        threads: threads.max(1),
        payload,
    }
}

fn bind_reuseport(addr: SocketAddr) -> io::Result<StdListener> {
    use socket2::{Domain, Socket, Type};
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    sock.set_reuse_address(true)?;
    sock.set_reuse_port(true)?;
    sock.bind(&addr.into())?;
    sock.listen(1024)?;
    Ok(sock.into())
}

/// The reply message: the gRPC length prefix (RFC-less, from the gRPC
/// "HTTP/2 protocol" document: 1 byte compressed flag, 4 bytes length),
/// then `len` bytes of payload.
fn grpc_frame(len: usize) -> Bytes {
    let mut v = Vec::with_capacity(5 + len);
    v.push(0);
    v.extend_from_slice(&(len as u32).to_be_bytes());
    v.resize(5 + len, b'x');
    Bytes::from(v)
}

fn main() {
    let args = parse_args();
    let first = bind_reuseport(args.listen).unwrap_or_else(|e| {
        eprintln!("perf-h2backend: bind {}: {e}", args.listen);
        std::process::exit(1);
    });
    let addr = first.local_addr().expect("local_addr");
    let mut listeners = vec![first];
    for _ in 1..args.threads {
        listeners.push(bind_reuseport(addr).unwrap_or_else(|e| {
            eprintln!("perf-h2backend: bind {addr}: {e}");
            std::process::exit(1);
        }));
    }
    let reply = grpc_frame(args.payload);
    let handles: Vec<_> = listeners
        .into_iter()
        .enumerate()
        .map(|(i, l)| {
            let reply = reply.clone();
            std::thread::Builder::new()
                .name(format!("h2backend-{i}"))
                .spawn(move || run_thread(l, reply))
                .expect("spawn thread")
        })
        .collect();
    let driver = if monoio::utils::detect_uring() {
        "io_uring"
    } else {
        "epoll"
    };
    eprintln!(
        "perf-h2backend: {} thread(s), driver {driver}, {}-byte messages",
        args.threads, args.payload
    );
    println!("listening on {addr}");
    use std::io::Write;
    let _ = io::stdout().flush();
    for h in handles {
        let _ = h.join();
    }
    eprintln!("perf-h2backend: {} connections", ACCEPTED.load(Ordering::Relaxed));
}

fn run_thread(std_listener: StdListener, reply: Bytes) {
    let mut rt = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
        .enable_timer()
        .build()
        .expect("build monoio runtime");
    rt.block_on(async move {
        let listener = TcpListener::from_std(std_listener).expect("register listener");
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    ACCEPTED.fetch_add(1, Ordering::Relaxed);
                    let _ = stream.set_nodelay(true);
                    let reply = reply.clone();
                    monoio::spawn(async move {
                        if let Err(e) = serve(stream, reply).await {
                            eprintln!("perf-h2backend: connection: {e}");
                        }
                    });
                }
                Err(_) => {
                    // Out of descriptors or similar: back off briefly.
                    monoio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    });
}

async fn serve(stream: TcpStream, reply: Bytes) -> Result<(), Box<dyn std::error::Error>> {
    let io = stream.into_poll_io()?;
    let mut conn = h2::server::Builder::new()
        .max_concurrent_streams(MAX_STREAMS)
        .initial_window_size(WINDOW)
        .initial_connection_window_size(WINDOW)
        .handshake::<_, Bytes>(io)
        .await?;
    // accept() also drives the connection: reads frames, flushes writes.
    while let Some(next) = conn.accept().await {
        let (req, respond) = next?;
        let reply = reply.clone();
        monoio::spawn(async move {
            let _ = answer(req, respond, reply).await;
        });
    }
    Ok(())
}

/// One call: drain the request body (giving the window back as it comes),
/// then headers, the message and `grpc-status: 0` as trailers.
async fn answer(
    req: http::Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
    reply: Bytes,
) -> Result<(), h2::Error> {
    let mut body = req.into_body();
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    let head = Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/grpc")
        .body(())
        .expect("static response head");
    let mut send = respond.send_response(head, false)?;
    send.send_data(reply, false)?;
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    send.send_trailers(trailers)
}

//! perf-floor: the least a proxy can do per request, as a yardstick for
//! `perf/run.sh`.
//!
//! Usage: `perf-floor --listen 127.0.0.1:PORT --upstream 127.0.0.1:PORT
//! [--setup default|coop|defer]` (or `RINGWAY_URING_SETUP`; default:
//! `default`).
//!
//! One thread, one monoio runtime on io_uring, built with the ring setup
//! named (the same `io_uring::Builder` flags ringway's workers use, from
//! `ringway::server::ring`). For each client connection it opens one
//! upstream connection of its own (no pool), then loops:
//!
//! 1. read the request: one read;
//! 2. write it upstream;
//! 3. read the response;
//! 4. write it back to the client.
//!
//! No parsing, no header rewriting, no deadlines, no pool. So it is valid
//! only for what it is used for: requests that arrive in one read (the
//! bodiless GETs of run.sh's download scenarios; not uploads, not
//! pipelining, not TLS). The one look it takes inside a message is at the
//! response head's `Content-Length`, so that a response that does not
//! arrive in one read (16 KiB and up) is read to its end before the next
//! request is read; a tiny response is one read, and its request costs the
//! four socket operations above and nothing else.

use std::net::SocketAddr;

use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::{TcpListener, TcpStream};
use ringway::server::ring::Setup;

/// Read buffer for each direction.
const BUF: usize = 64 << 10;

struct Args {
    listen: SocketAddr,
    upstream: SocketAddr,
    setup: Setup,
}

fn usage() -> ! {
    eprintln!(
        "usage: perf-floor --listen 127.0.0.1:PORT --upstream 127.0.0.1:PORT [--setup default|coop|defer]"
    );
    std::process::exit(2);
}

fn parse_args() -> Args {
    let mut listen = None;
    let mut upstream = None;
    let mut setup = std::env::var("RINGWAY_URING_SETUP")
        .ok()
        .map(|v| Setup::parse(&v).unwrap_or_else(|| usage()))
        .unwrap_or(Setup::Default);
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let (key, inline) = match a.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (a.clone(), None),
        };
        let mut value = || inline.clone().or_else(|| it.next()).unwrap_or_else(|| usage());
        match key.as_str() {
            "--listen" => listen = Some(value().parse().unwrap_or_else(|_| usage())),
            "--upstream" => upstream = Some(value().parse().unwrap_or_else(|_| usage())),
            "--setup" => setup = Setup::parse(&value()).unwrap_or_else(|| usage()),
            _ => usage(),
        }
    }
    Args {
        listen: listen.unwrap_or_else(|| usage()),
        upstream: upstream.unwrap_or_else(|| usage()),
        setup,
    }
}

/// The length of a whole response whose start is `b`, if its head is
/// complete and names a `Content-Length`. Nothing else is checked.
fn response_len(b: &[u8]) -> Option<usize> {
    let end = b.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&b[..end]).ok()?;
    head.split("\r\n").find_map(|l| {
        let (k, v) = l.split_once(':')?;
        if k.eq_ignore_ascii_case("content-length") {
            v.trim().parse::<usize>().ok().map(|n| end + n)
        } else {
            None
        }
    })
}

async fn serve(mut client: TcpStream, upstream: SocketAddr) {
    let Ok(mut up) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = up.set_nodelay(true);
    let mut req = Vec::with_capacity(BUF);
    let mut resp = Vec::with_capacity(BUF);
    loop {
        // 1. The request, in one read.
        let (n, b) = client.read(req).await;
        req = b;
        match n {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        // 2. Upstream.
        let (r, b) = up.write_all(req).await;
        req = b;
        if r.is_err() {
            return;
        }
        // 3 and 4. The response, read by read, each written back; one read
        // when it is small.
        let mut left: Option<usize> = None;
        loop {
            let (n, b) = up.read(resp).await;
            resp = b;
            let n = match n {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let more = match left {
                None => response_len(&resp).map_or(0, |total| total.saturating_sub(n)),
                Some(l) => l.saturating_sub(n),
            };
            let (r, b) = client.write_all(resp).await;
            resp = b;
            if r.is_err() {
                return;
            }
            if more == 0 {
                break;
            }
            left = Some(more);
        }
    }
}

fn main() {
    let args = parse_args();
    let listener = std::net::TcpListener::bind(args.listen).unwrap_or_else(|e| {
        eprintln!("perf-floor: bind {}: {e}", args.listen);
        std::process::exit(1);
    });
    let addr = listener.local_addr().expect("local_addr");
    let mut rt = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
        .with_entries(1024)
        .uring_builder(args.setup.builder())
        .enable_timer()
        .build()
        .unwrap_or_else(|e| {
            eprintln!("perf-floor: io_uring with {}: {e}", args.setup.describe());
            std::process::exit(1);
        });
    eprintln!(
        "perf-floor: io_uring setup {} ({}), upstream {}",
        args.setup.name(),
        args.setup.describe(),
        args.upstream
    );
    println!("listening on {addr}");
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let upstream = args.upstream;
    rt.block_on(async move {
        let listener = TcpListener::from_std(listener).expect("listener");
        loop {
            match listener.accept().await {
                Ok((c, _)) => {
                    monoio::spawn(serve(c, upstream));
                }
                Err(e) => eprintln!("perf-floor: accept: {e}"),
            }
        }
    });
}

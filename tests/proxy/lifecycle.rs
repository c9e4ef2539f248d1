//! Connections over time and the process around them: slow clients, the
//! access log, shutdown through the handle, several workers.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::*;

#[test]
fn a_stalled_head_gets_408_while_others_are_served() {
    let backend = Backend::echo_target();
    let p = Proxy::start(&proxy_all(backend.addr, "client_header_timeout = \"300ms\"", ""));
    let mut slow = p.client();
    slow.send("GET /slow HTTP/1.1\r\nHo");
    // One worker: the stalled client must not hold up the others.
    for i in 0..3 {
        let r = p.get(&format!("/other{i}"));
        assert_eq!(r.status, 200);
    }
    let started = Instant::now();
    let r = slow.response();
    assert_eq!(r.status, 408);
    assert!(r.says_close());
    slow.expect_closed();
    assert!(started.elapsed() < Duration::from_secs(5), "hang guard");
    assert!(backend.seen().iter().all(|s| s.target() != "/slow"));
}

#[test]
fn many_stalled_clients_do_not_block_a_worker() {
    let backend = Backend::echo_target();
    let p = Proxy::start(&proxy_all(backend.addr, "client_header_timeout = \"2s\"", ""));
    let mut stalled: Vec<Client> = (0..50)
        .map(|_| {
            let mut c = p.client();
            c.send("GET / HTTP/1.1\r\nHost: a\r\nX-Slow: ");
            c
        })
        .collect();
    let r = p.get("/served");
    assert_eq!((r.status, r.text().as_str()), (200, "/served"));
    for c in stalled.iter_mut().take(3) {
        assert_eq!(c.response().status, 408);
    }
}

/// `127.0.0.1 - - [dd/Mon/yyyy:HH:MM:SS +0000] "GET /p HTTP/1.1" 200 5 "ref" "ua" - -`
/// (the last two fields are the TLS protocol and cipher, `-` for plain HTTP).
fn check_combined(line: &str) -> (String, u16, u64, String, String) {
    let line = line
        .strip_suffix(" - -")
        .unwrap_or_else(|| panic!("no TLS fields: {line}"));
    let (ip, rest) = line.split_once(" - - [").unwrap_or_else(|| panic!("{line}"));
    assert_eq!(ip, "127.0.0.1", "{line}");
    let (time, rest) = rest.split_once("] \"").unwrap_or_else(|| panic!("{line}"));
    // dd/Mon/yyyy:HH:MM:SS +0000
    let b = time.as_bytes();
    assert_eq!(time.len(), 26, "{time}");
    assert!(b[0..2].iter().all(u8::is_ascii_digit), "{time}");
    assert_eq!(b[2], b'/');
    assert!(
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
            .contains(&&time[3..6]),
        "{time}"
    );
    assert_eq!(b[6], b'/');
    assert!(b[7..11].iter().all(u8::is_ascii_digit), "{time}");
    assert_eq!(&time[11..12], ":");
    assert!(
        time[12..20].bytes().enumerate().all(|(i, c)| if i % 3 == 2 {
            c == b':'
        } else {
            c.is_ascii_digit()
        }),
        "{time}"
    );
    assert_eq!(&time[20..], " +0000");
    let (request, rest) = rest.split_once("\" ").unwrap_or_else(|| panic!("{line}"));
    let mut fields = rest.splitn(3, ' ');
    let status: u16 = fields
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("{line}"));
    let bytes: u64 = fields
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("{line}"));
    let quoted = fields.next().unwrap_or_else(|| panic!("{line}"));
    let inner = quoted
        .strip_prefix('"')
        .and_then(|q| q.strip_suffix('"'))
        .unwrap_or_else(|| panic!("{line}"));
    let (referer, ua) = inner.split_once("\" \"").unwrap_or_else(|| panic!("{line}"));
    (
        request.to_string(),
        status,
        bytes,
        referer.to_string(),
        ua.to_string(),
    )
}

fn log_lines(path: &std::path::Path, n: usize) -> Vec<String> {
    wait_for(IO_TIMEOUT, || {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        (lines.len() >= n).then_some(lines)
    })
    .unwrap_or_else(|| {
        panic!(
            "access log has not {n} lines:\n{}",
            std::fs::read_to_string(path).unwrap_or_default()
        )
    })
}

#[test]
fn access_log_has_one_combined_line_per_request() {
    let backend = Backend::serve(|r| Reply::ok(format!("hello {}", r.target())));
    let log = TempFile::new("access.log");
    let p = Proxy::start(&config(&format!(
        r#"
[[server]]
listen = ["127.0.0.1:0"]
access_log = "{}"
[[server.location]]
path = "/app/"
proxy_pass = "http://{}"
[[server.location]]
path = "/"
return = {{ status = 200, body = "home" }}
"#,
        log.path().display(),
        backend.addr
    )));
    let mut c = p.client();
    let r = c.request("GET /app/page?q=1 HTTP/1.1\r\nHost: a\r\nReferer: http://ref.test/x\r\nUser-Agent: test-agent/1.0\r\n\r\n");
    assert_eq!(r.status, 200);
    let first = log_lines(log.path(), 1);
    assert_eq!(first.len(), 1, "one line per request: {first:?}");
    let (request, status, bytes, referer, ua) = check_combined(&first[0]);
    assert_eq!(request, "GET /app/page?q=1 HTTP/1.1");
    assert_eq!(status, 200);
    assert_eq!(bytes, r.body.len() as u64);
    assert_eq!(referer, "http://ref.test/x");
    assert_eq!(ua, "test-agent/1.0");

    c.get("/");
    c.get("/app/two");
    let r = c.request(
        "POST /app/x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    assert_eq!(r.status, 400);
    let lines = log_lines(log.path(), 4);
    assert_eq!(lines.len(), 4, "{lines:?}");
    let parsed: Vec<_> = lines.iter().map(|l| check_combined(l)).collect();
    assert_eq!(
        (
            parsed[1].0.as_str(),
            parsed[1].1,
            parsed[1].2,
            parsed[1].3.as_str(),
            parsed[1].4.as_str()
        ),
        ("GET / HTTP/1.1", 200, 4, "-", "-")
    );
    assert_eq!(
        (parsed[2].0.as_str(), parsed[2].1),
        ("GET /app/two HTTP/1.1", 200)
    );
    assert_eq!(parsed[3].1, 400);
}

#[test]
fn access_log_records_requests_refused_while_reading_the_head() {
    let log = TempFile::new("refused.log");
    let p = Proxy::start(&config(&format!(
        "[[server]]\nlisten = [\"127.0.0.1:0\"]\naccess_log = \"{}\"\nmax_request_line = \"1k\"\n\
         [[server.location]]\npath = \"/\"\nreturn = {{ status = 200, body = \"x\" }}\n",
        log.path().display()
    )));
    assert_eq!(
        p.send(format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(2000)))
            .status,
        414
    );
    assert_eq!(p.send("GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n").status, 400);
    assert_eq!(p.get("/").status, 200);
    // Lines are flushed just after each response: wait for all three.
    let lines = log_lines(log.path(), 3);
    let statuses: Vec<u16> = lines.iter().map(|l| check_combined(l).1).collect();
    assert_eq!(statuses, [414, 400, 200], "{lines:?}");
}

#[test]
fn shutdown_finishes_the_request_in_flight_and_closes_idle_connections() {
    // /slow is answered only once the test has seen the shutdown take effect.
    let gate = Gate::new();
    let g = gate.clone();
    let backend = Backend::serve(move |r| {
        if r.target() == "/slow" {
            assert!(g.wait(), "the test never released /slow");
            Reply::ok("finished")
        } else {
            Reply::ok("quick")
        }
    });
    let mut p = Proxy::start(&proxy_all(backend.addr, "", ""));
    let mut idle = p.client();
    assert_eq!(idle.get("/").text(), "quick");
    let mut busy = p.client();
    busy.send("GET /slow HTTP/1.1\r\nHost: a\r\n\r\n");
    backend.wait_requests(2);

    p.begin_shutdown();
    // The idle keep-alive connection is closed at once.
    idle.expect_closed();
    gate.open();
    // The one in flight gets its whole answer, and is told the connection ends.
    let r = busy.response();
    assert_eq!((r.status, r.text().as_str()), (200, "finished"));
    assert!(r.says_close(), "{}", r.head_text());
    busy.expect_closed();

    let addr = p.addr();
    let started = Instant::now();
    p.stop();
    assert!(started.elapsed() < Duration::from_secs(5), "hang guard");
    assert!(
        std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err(),
        "still accepting after the workers stopped"
    );
}

#[test]
fn shutdown_with_nothing_in_flight_is_prompt() {
    let mut p = Proxy::start(&config(
        "[[server]]\nlisten = [\"127.0.0.1:0\"]\naccess_log = \"off\"\n[[server.location]]\npath = \"/\"\nreturn = { status = 204 }\n",
    ));
    let mut c = p.client();
    assert_eq!(c.get("/").status, 204);
    let started = Instant::now();
    p.stop();
    c.expect_closed();
    assert!(started.elapsed() < Duration::from_secs(5), "hang guard");
}

#[test]
fn two_workers_serve_concurrent_clients() {
    let backend = Backend::serve(|r| Reply::ok(r.target()));
    let p = Proxy::with_workers(&proxy_all(backend.addr, "", ""), 2);
    let addr = p.addr();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            std::thread::spawn(move || {
                let mut c = Client::connect(addr);
                for i in 0..10 {
                    let path = format!("/t{t}/r{i}");
                    let r = c.get(&path);
                    assert_eq!((r.status, r.text()), (200, path));
                }
                // And on fresh connections.
                for i in 0..5 {
                    let path = format!("/t{t}/n{i}");
                    let r = Client::connect(addr).get(&path);
                    assert_eq!(r.text(), path);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client thread");
    }
    assert_eq!(backend.seen().len(), 8 * 15);
}

#[test]
fn shutdown_gives_up_on_requests_past_drain_timeout() {
    let backend = Backend::start(|c| {
        if c.read_request().is_some() {
            c.hold();
        }
    });
    let mut p = Proxy::start(&format!(
        "[global]\ndrain_timeout = \"300ms\"\n\n[[server]]\nlisten = [\"127.0.0.1:0\"]\naccess_log = \"off\"\n\
         [[server.location]]\npath = \"/\"\nproxy_pass = \"http://{}\"\n",
        backend.addr
    ));
    let mut c = p.client();
    c.send("GET /forever HTTP/1.1\r\nHost: a\r\n\r\n");
    backend.wait_requests(1);
    let started = Instant::now();
    p.stop();
    assert!(started.elapsed() < Duration::from_secs(5), "hang guard");
    // The request was cut off: the client sees the connection end, no response.
    match c.try_response() {
        Err(ReadError::Eof { got }) => assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got)),
        other => panic!("expected the connection to be closed: {other:?}"),
    }
}

#[test]
fn a_client_that_stops_reading_is_dropped_after_send_timeout() {
    const BIG: usize = 48 * 1024 * 1024;
    // Far more than the socket buffers on the way hold, so the proxy's
    // writes to a client that does not read must stall.
    let cut = Arc::new(AtomicBool::new(false));
    let cut2 = cut.clone();
    let backend = Backend::start(move |c| {
        while let Some(r) = c.read_request() {
            if r.target() != "/huge" {
                c.write(&Reply::ok("small").encode(c.id, false));
                continue;
            }
            let body = vec![b'h'; BIG];
            if !(c.write(format!("HTTP/1.1 200 OK\r\nContent-Length: {BIG}\r\n\r\n").as_bytes())
                && c.write(&body))
            {
                // The proxy gave up on the transfer and closed this connection.
                cut2.store(true, Ordering::SeqCst);
            }
            return;
        }
    });
    let p = Proxy::start(&proxy_all(backend.addr, "send_timeout = \"300ms\"", ""));
    let mut c = p.client();
    c.send("GET /huge HTTP/1.1\r\nHost: a\r\n\r\n");
    // The client reads nothing until the proxy has dropped the transfer.
    wait_for(Duration::from_secs(10), || {
        cut.load(Ordering::SeqCst).then_some(())
    })
    .expect("the proxy never gave up on a client that does not read");
    // Meanwhile the worker serves others.
    assert_eq!(p.get("/small").text(), "small");
    match c.try_response() {
        Err(ReadError::Eof { got }) => assert!(got.len() < BIG, "got {} bytes", got.len()),
        Ok(r) => panic!(
            "the whole body arrived ({} bytes) although the client stalled",
            r.body.len()
        ),
        Err(e) => panic!(
            "expected the connection to be closed: {}",
            crate::support::client::describe(&e)
        ),
    }
}

#[test]
fn past_max_connections_new_clients_get_503_then_a_freed_place_is_used() {
    let p = Proxy::start(&config(
        "max_connections = 2\n[[server]]\nlisten = [\"127.0.0.1:0\"]\naccess_log = \"off\"\n\
         [[server.location]]\npath = \"/\"\nreturn = { status = 200, body = \"in\" }\n",
    ));
    // Two clients hold the worker's two places.
    let mut a = p.client();
    let mut b = p.client();
    assert_eq!(a.get("/").text(), "in");
    assert_eq!(b.get("/").text(), "in");
    // A third is told why, and closed.
    let mut c = p.client();
    let r = c.get("/");
    assert_eq!(r.status, 503);
    assert!(r.says_close(), "{}", r.head_text());
    c.expect_closed();
    // The two held connections are unaffected.
    assert_eq!(a.get("/").status, 200);
    // Once one leaves, a new client gets its place.
    drop(b);
    let served = wait_for(Duration::from_secs(5), || {
        let mut d = p.client();
        (d.get("/").status == 200).then_some(())
    });
    assert!(served.is_some(), "a freed place was never reused");
    assert_eq!(a.get("/").status, 200);
}

/// What became of one client that connected while the proxy was stopping.
#[derive(Debug, PartialEq)]
enum Fate {
    /// A response arrived.
    Served,
    /// The connection was closed or reset before any response: fine, the
    /// client knows to try again.
    Closed,
    /// Nothing at all within the deadline: the connection was lost.
    Hung,
}

/// Sends one request on `s` and waits (bounded) for an answer or a close.
fn fate(mut s: std::net::TcpStream, deadline: Duration) -> Fate {
    use std::io::{ErrorKind, Read, Write};
    s.set_read_timeout(Some(deadline)).unwrap();
    s.set_write_timeout(Some(deadline)).unwrap();
    if s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return Fate::Closed;
    }
    let mut buf = [0u8; 256];
    match s.read(&mut buf) {
        Ok(0) => Fate::Closed,
        Ok(_) => Fate::Served,
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Fate::Hung,
        Err(_) => Fate::Closed,
    }
}

/// The accept in flight when a worker stops is cancelled and awaited, not
/// dropped: on io_uring a dropped accept may already hold a connection the
/// kernel accepted for it, and that client then waits on a descriptor no
/// one ever reads or closes. Clients connect as fast as they can while the
/// proxy stops, over several rounds; every one whose connect succeeded
/// must get an answer or a close. The deadline only bounds a lost client's
/// wait: a served or closed one is counted whenever its answer comes.
#[test]
fn stopping_while_clients_connect_leaves_none_hanging() {
    let toml = config(
        "[[server]]\nlisten = [\"127.0.0.1:0\"]\naccess_log = \"off\"\n\
         [[server.location]]\npath = \"/\"\nreturn = { status = 200, body = \"up\" }\n",
    );
    let mut fates: Vec<Fate> = Vec::new();
    for _round in 0..8 {
        let mut p = Proxy::start(&toml);
        let addr = p.addr();
        let served = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let clients: Vec<_> = (0..8)
            .map(|_| {
                let served = served.clone();
                std::thread::spawn(move || {
                    let mut mine = Vec::new();
                    // Until the proxy stops listening (or a bound on the
                    // round, should it never stop).
                    for _ in 0..2000 {
                        let Ok(s) = std::net::TcpStream::connect_timeout(&addr, IO_TIMEOUT) else {
                            break;
                        };
                        let f = fate(s, IO_TIMEOUT);
                        if f == Fate::Served {
                            served.fetch_add(1, Ordering::SeqCst);
                        }
                        mine.push(f);
                    }
                    mine
                })
            })
            .collect();
        // Stop once the clients are in full flow.
        wait_for(Duration::from_secs(10), || {
            (served.load(Ordering::SeqCst) >= 40).then_some(())
        })
        .expect("clients were not being served");
        p.stop();
        for c in clients {
            fates.extend(c.join().expect("client thread"));
        }
    }
    let hung = fates.iter().filter(|&f| *f == Fate::Hung).count();
    let closed = fates.iter().filter(|&f| *f == Fate::Closed).count();
    assert_eq!(
        hung,
        0,
        "{hung} of {} clients got neither an answer nor a close ({closed} closed)",
        fates.len()
    );
}

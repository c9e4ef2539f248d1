//! The process staying up: a worker that dies outside any connection is
//! restarted, and one that keeps dying stops the process with an error;
//! ten thousand idle connections neither starve other clients nor cost
//! more than a bounded amount of memory each.

use std::time::Duration;

use crate::support::*;

/// A config whose only location answers directly, so no backend is needed.
fn answering() -> String {
    config(
        r#"
[[server]]
listen = ["127.0.0.1:0"]
access_log = "off"

[[server.location]]
path = "/"
return = { status = 200, body = "up\n" }
"#,
    )
}

/// Waits until the handle has counted `n` restarts.
fn restarts_reach(p: &Proxy, n: usize) -> bool {
    wait_for(Duration::from_secs(10), || {
        (p.handle().restarts() >= n).then_some(())
    })
    .is_some()
}

#[test]
fn a_worker_that_dies_is_restarted_and_serves_again() {
    let p = Proxy::start(&answering());
    assert_eq!(p.get("/").text(), "up\n");
    assert_eq!(p.handle().restarts(), 0);

    // A keep-alive connection on the worker that is about to die.
    let mut before = p.client();
    assert_eq!(before.get("/").status, 200);

    p.handle().crash_worker(0);
    assert!(restarts_reach(&p, 1), "the worker was not restarted");
    assert_eq!(p.handle().restarts(), 1);

    // The dead worker's connections went with it; new ones are served by
    // the new worker on the same address. Many of them: a listener the dead
    // worker left open would take a share of new connections and never
    // answer them.
    before.expect_closed();
    for i in 0..20 {
        let r = p.get(&format!("/after{i}"));
        assert_eq!((r.status, r.text().as_str()), (200, "up\n"));
    }
    // A clean stop afterwards reports no failure.
    let mut p = p;
    p.stop_and_wait().expect("a clean stop");
}

/// The listening sockets belong to the process, not to a worker: while
/// the only worker is dead, new connections queue on its socket (instead
/// of being refused, or reset when a dying worker's socket closed with
/// clients in its queue) and the restarted worker serves them. Clients
/// connect, and send their request, from the worker's death until after
/// its restart; each must connect and get its answer.
#[test]
fn connections_queued_while_a_worker_is_down_are_served_after_its_restart() {
    let p = Proxy::start(&answering());
    let mut before = p.client();
    assert_eq!(before.get("/").status, 200);
    p.handle().crash_worker(0);
    // The dying worker closes its connections once it has stopped
    // accepting: from here on, no connection reaches it.
    before.expect_closed();
    let mut waiting = Vec::new();
    let mut after_restart = 0;
    // Until a few clients connected after the restart (bounded, should
    // the restart never come).
    while after_restart < 5 && waiting.len() < 300 {
        let restarted = p.handle().restarts() > 0;
        let s = std::net::TcpStream::connect_timeout(&p.addr(), IO_TIMEOUT).unwrap_or_else(|e| {
            panic!(
                "client {} could not connect {} the restart: {e}",
                waiting.len(),
                if restarted { "after" } else { "before" }
            )
        });
        let mut c = Client::from_stream(s);
        c.send(format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", waiting.len()));
        waiting.push(c);
        after_restart += usize::from(restarted);
        // Pacing only: each client waits for its answer below however long
        // the restart takes.
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(restarts_reach(&p, 1), "the worker was not restarted");
    for (i, c) in waiting.iter_mut().enumerate() {
        match c.try_response() {
            Ok(r) => assert_eq!((r.status, r.text().as_str()), (200, "up\n"), "client {i}"),
            Err(e) => panic!(
                "client {i} was not served: {}",
                crate::support::client::describe(&e)
            ),
        }
    }
}

#[test]
fn the_other_workers_are_untouched_by_a_restart() {
    let p = Proxy::with_workers(&answering(), 2);
    // Which worker took a connection is not visible from outside, so keep
    // many open and check that some, not all, survive worker 0's death.
    let mut open: Vec<Client> = (0..32)
        .map(|_| {
            let mut c = p.client();
            assert_eq!(c.get("/").status, 200);
            c
        })
        .collect();
    p.handle().crash_worker(0);
    assert!(restarts_reach(&p, 1), "the worker was not restarted");
    // Every connection either still works (worker 1's) or was closed
    // (worker 0's); none hangs or gets garbage.
    let mut survived = 0;
    for c in open.iter_mut() {
        c.send("GET /again HTTP/1.1\r\nHost: a\r\n\r\n");
        match c.try_response() {
            Ok(r) => {
                assert_eq!(r.status, 200);
                survived += 1;
            }
            Err(ReadError::Eof { got }) => assert!(got.is_empty(), "{got:?}"),
            Err(e) => panic!("{}", crate::support::client::describe(&e)),
        }
    }
    // SO_REUSEPORT spreads 32 connections over both workers; that all 32
    // landed on one worker has a probability of 2^-31.
    assert!(survived > 0, "no connection of worker 1 survived");
    assert!(survived < 32, "no connection was on worker 0");
    assert_eq!(p.get("/").status, 200);
}

#[test]
fn a_worker_that_keeps_dying_stops_the_process_with_an_error() {
    let mut p = Proxy::start(&answering());
    // Five restarts are allowed within a minute; the sixth death is one too many.
    for n in 1..=5 {
        p.handle().crash_worker(0);
        assert!(restarts_reach(&p, n), "restart {n} did not happen");
    }
    p.handle().crash_worker(0);
    assert!(
        wait_for(Duration::from_secs(10), || p.handle().gave_up().then_some(())).is_some(),
        "the supervisor did not give up"
    );
    assert_eq!(p.handle().restarts(), 5);
    let err = p
        .stop_and_wait()
        .expect_err("the supervisor should have given up");
    let msg = err.to_string();
    assert!(msg.contains("worker 0"), "{msg}");
    assert!(msg.contains("crash requested"), "{msg}");
    assert!(msg.contains("giving up"), "{msg}");
}

const BIN: &str = env!("CARGO_BIN_EXE_ringway");

/// The idle connections the test aims for.
const IDLE_TARGET: usize = 10_000;
/// Descriptors left for the rest of the test process (other tests run in
/// parallel in it).
const SPARE_FDS: u64 = 1024;

/// Raises the soft RLIMIT_NOFILE towards what the test needs, within the
/// hard limit, and returns the soft limit now in force. Children inherit it.
fn raise_nofile(want: u64) -> u64 {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit with a pointer to a local struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut l), 0);
        if l.rlim_cur < want {
            l.rlim_cur = want.min(l.rlim_max);
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &l), 0);
        }
    }
    l.rlim_cur
}

/// Resident memory of a process, in KiB (VmRSS in /proc/PID/status).
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS line");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// The ringway binary as a child, stopped (SIGKILL) if the test fails first.
struct Child {
    proc: std::process::Child,
    addr: std::net::SocketAddr,
}

impl Child {
    /// Starts `ringway --workers 1` on `toml` and waits for its address.
    fn start(toml: &str, cfg: &TempFile) -> Child {
        use std::io::{BufRead, BufReader};
        std::fs::write(cfg.path(), toml).unwrap();
        let mut proc = std::process::Command::new(BIN)
            .args(["--workers", "1", "--config", cfg.path().to_str().unwrap()])
            .env("RUST_LOG", "info")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn ringway");
        // stderr is read until it closes, so the child never blocks on it.
        let stderr = proc.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let mut child = Child {
            proc,
            addr: "127.0.0.1:1".parse().unwrap(),
        };
        child.addr = loop {
            let line = rx
                .recv_timeout(Duration::from_secs(10))
                .expect("no \"listening on\" line on stderr");
            if let Some(rest) = line.split("listening on ").nth(1) {
                break rest.split([' ', ',']).next().unwrap().parse().unwrap();
            }
        };
        child
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.proc.kill();
        let _ = self.proc.wait();
    }
}

#[test]
fn ten_thousand_idle_connections_leave_others_served_and_memory_bounded() {
    let soft = raise_nofile(IDLE_TARGET as u64 + 2 * SPARE_FDS);
    // Under a low hard limit, as many as it allows, keeping a quarter spare.
    let spare = SPARE_FDS.min(soft / 4);
    let idle = IDLE_TARGET.min(soft.saturating_sub(spare) as usize);
    assert!(idle >= 100, "RLIMIT_NOFILE {soft} is too low for this test");
    // Places past the idle ones: the warm-up client and the ones that must
    // still be served while the idle ones wait.
    let served = 4;
    let backend = Backend::echo_target();
    let cfg = TempFile::new("idle.toml");
    let child = Child::start(
        &format!(
            "[global]\ndrain_timeout = \"1s\"\nmax_connections = {}\n\n\
             [[server]]\nlisten = [\"127.0.0.1:0\"]\naccess_log = \"off\"\nclient_header_timeout = \"60s\"\n\n\
             [[server.location]]\npath = \"/\"\nproxy_pass = \"http://{}\"\n",
            idle + served,
            backend.addr
        ),
        &cfg,
    );
    let pid = child.proc.id();

    // Warm up: the first request sets up what every request needs once.
    // Its connection stays open (and counted) like the others below.
    let mut warm = Client::connect(child.addr);
    assert_eq!(warm.get("/warm").text(), "/warm");
    let mut kept = vec![warm];
    let before = rss_kib(pid);

    let mut conns = Vec::with_capacity(idle);
    for _ in 0..idle {
        conns.push(std::net::TcpStream::connect(child.addr).expect("idle connection"));
    }

    // Served, correctly, within the client's read deadline (IO_TIMEOUT).
    // Every connection stays open, so the count only goes up towards the
    // limit. One worker and one listener: these are accepted after every
    // idle one, so once they are answered all idle ones are in the proxy.
    for i in 1..served {
        let mut c = Client::connect(child.addr);
        let r = c.get(&format!("/busy{i}"));
        assert_eq!((r.status, r.text()), (200, format!("/busy{i}")));
        kept.push(c);
    }
    let after = rss_kib(pid);
    let per_conn = (after.saturating_sub(before) * 1024) / idle as u64;
    println!(
        "{idle} idle connections (RLIMIT_NOFILE {soft}): proxy RSS {before} KiB -> {after} KiB, {per_conn} bytes per connection"
    );
    assert!(
        per_conn < 16 * 1024,
        "{per_conn} bytes of RSS per idle connection"
    );

    // At max_connections: the next client is told so, politely, and closed.
    let mut over = Client::connect(child.addr);
    over.send("GET /over HTTP/1.1\r\nHost: a\r\n\r\n");
    let r = over.response();
    assert_eq!(r.status, 503, "{}", r.head_text());
    assert!(r.says_close());
    over.expect_closed();

    // The idle connections are alive, not dropped: a few of them now ask.
    for s in conns.iter().step_by(idle / 3).take(3) {
        let mut c = Client::from_stream(s.try_clone().unwrap());
        assert_eq!(c.get("/woke").text(), "/woke");
    }
    assert!(!backend.seen().iter().any(|s| s.target() == "/over"));
}

//! Full config reload through the built binary: SIGHUP, `--reload` through
//! `pid_file`, `include`, listeners added and removed, upstream state kept
//! or renewed, SIGUSR1 reopening the access log, and a run of reloads under
//! traffic with nothing failed.

use std::io::BufRead;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::Duration;

use crate::support::{self, Backend, Client, Reply, IO_TIMEOUT};

const BIN: &str = env!("CARGO_BIN_EXE_ringway");

/// A directory of its own for a test's config files, removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let d = support::temp_path(name);
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        // Written whole then renamed, as a deployment tool would.
        let tmp = self.0.join(format!(".{}.tmp", name.replace('/', "_")));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &p).unwrap();
        p
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The binary, its stderr lines on a channel; killed on drop.
struct Running {
    child: std::process::Child,
    lines: Receiver<String>,
}

impl Running {
    fn start(config: &Path) -> Running {
        let mut child = Command::new(BIN)
            .args(["--config", config.to_str().unwrap(), "--workers", "2"])
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ringway");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut r = Running { child, lines };
        r.wait_line("listening on ");
        r
    }

    /// The next stderr line containing `what` (bounded wait).
    fn wait_line(&mut self, what: &str) -> String {
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(10))
                .unwrap_or_else(|_| panic!("no stderr line with {what:?}"));
            if line.contains(what) {
                return line;
            }
        }
    }

    /// Every line up to the one containing `what`, that one included.
    fn lines_until(&mut self, what: &str) -> Vec<String> {
        let mut out = Vec::new();
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(10))
                .unwrap_or_else(|_| panic!("no stderr line with {what:?}; saw {out:#?}"));
            let last = line.contains(what);
            out.push(line);
            if last {
                return out;
            }
        }
    }

    fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) on the pid of a child we started and have not reaped.
        assert_eq!(unsafe { libc::kill(self.child.id() as libc::pid_t, sig) }, 0);
    }

    /// SIGHUP, then waits until both workers run generation `n`.
    fn reload_to(&mut self, n: u64) {
        self.signal(libc::SIGHUP);
        let what = format!("config generation {n} installed");
        self.wait_line(&what);
        self.wait_line(&what);
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One server on each of `ports`, `/` proxied to `backend`.
fn conf(ports: &[u16], backend: SocketAddr, extra_global: &str) -> String {
    let listen: Vec<String> = ports.iter().map(|p| format!("\"127.0.0.1:{p}\"")).collect();
    format!(
        "[global]\ndrain_timeout = \"2s\"\n{extra_global}\n[[upstream]]\nname = \"app\"\nservers = [\"{backend}\"]\n\n\
         [[server]]\nlisten = [{}]\naccess_log = \"off\"\n[[server.location]]\npath = \"/\"\nproxy_pass = \"http://app\"\n",
        listen.join(", ")
    )
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn body(c: &mut Client) -> String {
    let r = c.get("/");
    assert_eq!(r.status, 200, "{}", r.head_text());
    r.text()
}

#[test]
fn a_bad_config_is_logged_and_the_running_one_stays() {
    let a = Backend::serve(|_| Reply::ok("A"));
    let dir = Dir::new("reload-bad");
    let port = free_port();
    let path = dir.write("ringway.toml", &conf(&[port], a.addr, ""));
    let mut p = Running::start(&path);
    let mut kept = Client::connect(addr(port));
    assert_eq!(body(&mut kept), "A");

    // Two errors: both logged as --check prints them, and nothing changes.
    let bad = conf(&[port], a.addr, "workerz = 2\nlog_level = \"loud\"");
    dir.write("ringway.toml", &bad);
    let check = Command::new(BIN)
        .args(["--check", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&check.stderr).to_string();
    let expected: Vec<&str> = printed.lines().filter(|l| l.contains(".toml:")).collect();
    assert_eq!(expected.len(), 2, "{printed}");
    p.signal(libc::SIGHUP);
    let logged = p.lines_until("reload failed: 2 errors in the configuration; the running config stays");
    for e in &expected {
        assert!(
            logged.iter().any(|l| l.ends_with(e)),
            "{e:?} not logged in {logged:#?}"
        );
    }
    assert!(
        expected
            .iter()
            .any(|e| e.contains("ringway.toml:3:1: global.workerz")),
        "{expected:?}"
    );
    assert_eq!(body(&mut kept), "A");
    assert_eq!(body(&mut Client::connect(addr(port))), "A");
}

#[test]
fn a_changed_route_applies_to_new_connections_and_the_next_request_of_a_kept_one() {
    let a = Backend::serve(|_| Reply::ok("A"));
    // B answers /slow after a pause, so a request can be in flight across a reload.
    let b = Backend::serve(|_| Reply::ok("B"));
    let slow = Backend::serve(|_| {
        std::thread::sleep(Duration::from_millis(700));
        Reply::ok("A-slow")
    });
    let dir = Dir::new("reload-route");
    let port = free_port();
    let with = |app: SocketAddr| {
        format!(
            "{}[[server.location]]\npath = \"/slow\"\nproxy_pass = \"http://{}\"\n",
            conf(&[port], app, ""),
            slow.addr
        )
    };
    let path = dir.write("ringway.toml", &with(a.addr));
    let mut p = Running::start(&path);
    let mut kept = Client::connect(addr(port));
    assert_eq!(body(&mut kept), "A");

    // A request in flight when the reload lands finishes under the old config.
    let mut inflight = Client::connect(addr(port));
    inflight.send("GET /slow HTTP/1.1\r\nHost: t\r\n\r\n");
    std::thread::sleep(Duration::from_millis(100));
    dir.write(
        "ringway.toml",
        &with(b.addr).replace("path = \"/slow\"", "path = \"/gone\""),
    );
    p.reload_to(2);
    let r = inflight.response();
    assert_eq!((r.status, r.text().as_str()), (200, "A-slow"));
    // Its connection's next request is under the new config: /slow is gone, / is B.
    assert_eq!(body(&mut inflight), "B");
    assert_eq!(body(&mut kept), "B", "the kept-alive connection's next request");
    assert_eq!(body(&mut Client::connect(addr(port))), "B", "a new connection");
}

#[test]
fn listeners_added_and_removed() {
    let a = Backend::serve(|_| Reply::ok("A"));
    let dir = Dir::new("reload-listen");
    let (one, two) = (free_port(), free_port());
    let path = dir.write("ringway.toml", &conf(&[one], a.addr, ""));
    let mut p = Running::start(&path);
    assert!(
        TcpStream::connect(addr(two)).is_err(),
        "nothing listens on {two} yet"
    );
    let mut on_one = Client::connect(addr(one));
    assert_eq!(body(&mut on_one), "A");

    dir.write("ringway.toml", &conf(&[one, two], a.addr, ""));
    p.reload_to(2);
    // Every worker accepts on the added address: many connections all answered.
    for _ in 0..8 {
        assert_eq!(body(&mut Client::connect(addr(two))), "A");
    }

    dir.write("ringway.toml", &conf(&[two], a.addr, ""));
    p.reload_to(3);
    p.wait_line(&format!("stopped listening on 127.0.0.1:{one}"));
    p.wait_line(&format!("stopped listening on 127.0.0.1:{one}"));
    // The connection already open on the removed address is still answered,
    // and told to close.
    let r = on_one.get("/");
    assert_eq!((r.status, r.text().as_str()), (200, "A"));
    assert!(r.says_close(), "{}", r.head_text());
    on_one.expect_closed();
    let refused = support::wait_for(IO_TIMEOUT, || {
        TcpStream::connect(addr(one)).is_err().then_some(())
    });
    assert!(
        refused.is_some(),
        "new connections to the removed address are refused"
    );
    assert_eq!(body(&mut Client::connect(addr(two))), "A");
}

#[test]
fn an_unchanged_upstream_keeps_its_health_and_a_changed_one_starts_afresh() {
    // Server 0 fails its probes; server 1 passes.
    let sick = Backend::serve(|_| Reply::new(503).body("sick"));
    let well = Backend::serve(|_| Reply::ok("well"));
    let dir = Dir::new("reload-health");
    let port = free_port();
    let up = |extra: &str| {
        format!(
            "[global]\ndrain_timeout = \"1s\"\n[[upstream]]\nname = \"app\"\nservers = [\"{}\", \"{}\"]\n\
             health_check = {{ path = \"/h\", interval = \"100ms\", timeout = \"1s\", rise = 50, fall = 1 }}\n{extra}\n\
             [[server]]\nlisten = [\"127.0.0.1:{port}\"]\naccess_log = \"off\"\n[[server.location]]\npath = \"/\"\nproxy_pass = \"http://app\"\n",
            sick.addr, well.addr
        )
    };
    let path = dir.write("ringway.toml", &up(""));
    let mut p = Running::start(&path);
    p.wait_line("health check: server down");
    // An unchanged upstream (a location added elsewhere): the server stays
    // down (its probe state goes on from "down"), so every request goes to
    // the other, and no new "down" is logged.
    let more = up("").replace(
        "proxy_pass = \"http://app\"\n",
        "proxy_pass = \"http://app\"\n[[server.location]]\npath = \"/x\"\nreturn = { status = 204 }\n",
    );
    dir.write("ringway.toml", &more);
    p.reload_to(2);
    for _ in 0..6 {
        assert_eq!(body(&mut Client::connect(addr(port))), "well");
    }
    // Changed (another key): a fresh state, every server up until probed
    // again, so the sick one is taken out anew.
    dir.write("ringway.toml", &up("keepalive = 4"));
    p.signal(libc::SIGHUP);
    let done = p.lines_until("reload succeeded");
    assert!(!done.iter().any(|l| l.contains("server down")), "{done:#?}");
    assert!(done.last().unwrap().contains("changed [app]"), "{done:#?}");
    p.wait_line("health check: server down");
}

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
pub(super) struct Dir(PathBuf);

impl Dir {
    pub(super) fn new(name: &str) -> Dir {
        let d = support::temp_path(name);
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }

    pub(super) fn write(&self, name: &str, text: &str) -> PathBuf {
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
pub(super) struct Running {
    child: std::process::Child,
    lines: Receiver<String>,
}

impl Running {
    pub(super) fn start(config: &Path) -> Running {
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
    pub(super) fn wait_line(&mut self, what: &str) -> String {
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

    pub(super) fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) on the pid of a child we started and have not reaped.
        assert_eq!(unsafe { libc::kill(self.child.id() as libc::pid_t, sig) }, 0);
    }

    /// SIGHUP, then waits until both workers run generation `n`.
    pub(super) fn reload_to(&mut self, n: u64) {
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
    let port = support::listen_port();
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
    let port = support::listen_port();
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
    support::wait_for(IO_TIMEOUT, || (!slow.seen().is_empty()).then_some(()))
        .expect("the slow request is under way");
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
    let (one, two) = (support::listen_port(), support::listen_port());
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
    let port = support::listen_port();
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
    // Since the unchanged reload, up to this one: no server went down anew.
    let between = p.lines_until("reload (SIGHUP): reading");
    assert!(!between.iter().any(|l| l.contains("server down")), "{between:#?}");
    let mut after = p.lines_until("health check: server down");
    if !after.iter().any(|l| l.contains("reload succeeded")) {
        after.extend(p.lines_until("reload succeeded"));
    }
    let done = after.iter().find(|l| l.contains("reload succeeded")).unwrap();
    assert!(done.contains("changed [app]"), "{after:#?}");
}

fn check(path: &Path) -> (bool, String) {
    let out = Command::new(BIN)
        .args(["--check", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn include_merges_globbed_files_and_names_the_included_file_in_errors() {
    let a = Backend::serve(|_| Reply::ok("A"));
    let b = Backend::serve(|_| Reply::ok("B"));
    let dir = Dir::new("reload-include");
    let port = support::listen_port();
    let main = format!(
        "include = [\"conf.d/*.toml\"]\n[global]\ndrain_timeout = \"1s\"\n\n[[server]]\nlisten = [\"127.0.0.1:{port}\"]\n\
         access_log = \"off\"\n[[server.location]]\npath = \"/\"\nproxy_pass = \"http://{}\"\n",
        a.addr
    );
    let path = dir.write("ringway.toml", &main);
    dir.write(
        "conf.d/b.toml",
        &format!(
            "[[upstream]]\nname = \"b\"\nservers = [\"{}\"]\n\n[[server]]\nlisten = [\"127.0.0.1:{port}\"]\nserver_name = [\"b.test\"]\n\
             access_log = \"off\"\n[[server.location]]\npath = \"/\"\nproxy_pass = \"http://b\"\n",
            b.addr
        ),
    );
    dir.write("conf.d/notes.txt", "not toml, not matched");
    assert!(check(&path).0, "{}", check(&path).1);
    let mut p = Running::start(&path);
    let get = |host: &str| {
        Client::connect(addr(port))
            .request(format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n"))
            .text()
    };
    assert_eq!((get("a.test"), get("b.test")), ("A".into(), "B".into()));

    // An error inside an included file names that file, line and column,
    // in --check and in the reload's log; the running config stays.
    dir.write(
        "conf.d/c.toml",
        "[[upstream]]\nname = \"c\"\nservers = [\"127.0.0.1:1\"]\nkeepalive = -1\n",
    );
    let (ok, said) = check(&path);
    assert!(!ok);
    let inc = dir.0.join("conf.d/c.toml").display().to_string();
    let line = said
        .lines()
        .find(|l| l.contains("keepalive"))
        .unwrap_or_else(|| panic!("{said}"));
    assert!(
        line.starts_with(&format!("{inc}:4:13: upstream[1].keepalive")),
        "{line}"
    );
    p.signal(libc::SIGHUP);
    let logged = p.lines_until("reload failed");
    assert!(logged.iter().any(|l| l.ends_with(line)), "{logged:#?}");
    assert_eq!(get("b.test"), "B");
}

#[test]
fn include_refusals() {
    let dir = Dir::new("reload-include-bad");
    let base = "[[server]]\nlisten = [\"127.0.0.1:0\"]\n[[server.location]]\npath = \"/\"\nreturn = { status = 204 }\n";
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 6] = [
        (
            "include = \"conf.d/*.toml\"\n",
            &[],
            "ringway.toml:1:11: include: must be a list of file patterns",
        ),
        (
            "include = [\"\"]\n",
            &[],
            "ringway.toml:1:12: include[0]: an empty pattern names no file",
        ),
        (
            "include = [\"*/x.toml\"]\n",
            &[],
            "include[0]: \"*/x.toml\": wildcards are allowed in the file name only",
        ),
        (
            "include = [\"missing.toml\"]\n",
            &[],
            "include[0]: cannot read included file",
        ),
        (
            "include = [\"inc/*.toml\"]\n",
            &[("inc/g.toml", "[global]\nworkers = 2\n")],
            "inc/g.toml:1:2: global: an included file holds only [[server]] and [[upstream]] tables",
        ),
        (
            "include = [\"inc2/*.toml\"]\n",
            &[("inc2/n.toml", "include = [\"x.toml\"]\n")],
            "inc2/n.toml:1:1: include: an included file cannot include others",
        ),
    ];
    for (head, files, want) in cases {
        for (name, text) in files {
            dir.write(name, text);
        }
        let path = dir.write("ringway.toml", &format!("{head}{base}"));
        let (ok, said) = check(&path);
        assert!(!ok && said.contains(want), "{head:?}: want {want:?} in\n{said}");
    }
    // A glob that matches nothing is an empty conf.d: fine.
    std::fs::create_dir_all(dir.0.join("empty")).unwrap();
    let path = dir.write("ringway.toml", &format!("include = [\"empty/*.toml\"]\n{base}"));
    assert!(check(&path).0, "{}", check(&path).1);
}

#[test]
fn reload_flag_signals_the_process_in_pid_file_and_its_refusals() {
    let a = Backend::serve(|_| Reply::ok("A"));
    let b = Backend::serve(|_| Reply::ok("B"));
    let dir = Dir::new("reload-pid");
    let port = support::listen_port();
    let g = "pid_file = \"ringway.pid\"";
    let path = dir.write("ringway.toml", &conf(&[port], a.addr, g));
    let reload = || {
        Command::new(BIN)
            .args(["--reload", "--config", path.to_str().unwrap()])
            .output()
            .unwrap()
    };

    // No process yet: the pid file is missing.
    let out = reload();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot read pid_file"),
        "{out:?}"
    );

    let mut p = Running::start(&path);
    let pid = std::fs::read_to_string(dir.0.join("ringway.pid")).unwrap();
    assert_eq!(pid.trim(), p.child.id().to_string());
    assert_eq!(body(&mut Client::connect(addr(port))), "A");
    dir.write("ringway.toml", &conf(&[port], b.addr, g));
    let out = reload();
    assert!(out.status.success(), "{out:?}");
    p.wait_line("config generation 2 installed");
    p.wait_line("config generation 2 installed");
    assert_eq!(body(&mut Client::connect(addr(port))), "B");

    // A pid file that holds no process id, and a config without pid_file.
    std::fs::write(dir.0.join("ringway.pid"), "garbage\n").unwrap();
    let out = reload();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("does not hold a process id"),
        "{out:?}"
    );
    let bare = dir.write("bare.toml", &conf(&[port], b.addr, ""));
    let out = Command::new(BIN)
        .args(["--reload", "--config", bare.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--reload needs global.pid_file"),
        "{out:?}"
    );
}

#[test]
fn sigusr1_reopens_the_access_log() {
    let a = Backend::serve(|_| Reply::ok("A"));
    let dir = Dir::new("reload-usr1");
    let port = support::listen_port();
    let log = dir.0.join("access.log");
    let path = dir.write(
        "ringway.toml",
        &conf(&[port], a.addr, "").replace(
            "access_log = \"off\"",
            &format!("access_log = {:?}", log.display().to_string()),
        ),
    );
    let mut p = Running::start(&path);
    let count = |f: &Path, what: &str| {
        std::fs::read_to_string(f)
            .unwrap_or_default()
            .matches(what)
            .count()
    };
    Client::connect(addr(port)).get("/first");
    support::wait_for(IO_TIMEOUT, || (count(&log, "GET /first") == 1).then_some(())).expect("first line");
    // logrotate: rename, then signal; the next line lands in a new file.
    let rotated = dir.0.join("access.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    p.signal(libc::SIGUSR1);
    p.wait_line("access log files reopened");
    Client::connect(addr(port)).get("/second");
    support::wait_for(IO_TIMEOUT, || (count(&log, "GET /second") == 1).then_some(()))
        .expect("second line in the new file");
    assert_eq!(count(&rotated, "GET /second"), 0);
    assert_eq!(count(&rotated, "GET /first"), 1);
}

#[test]
fn twenty_reloads_under_traffic_fail_nothing() {
    let a = Backend::serve(|_| Reply::ok("A"));
    let b = Backend::serve(|_| Reply::ok("B"));
    let dir = Dir::new("reload-load");
    let port = support::listen_port();
    let path = dir.write("ringway.toml", &conf(&[port], a.addr, ""));
    let mut p = Running::start(&path);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|k| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let (mut ok, mut failed, mut seen) = (0u32, Vec::new(), std::collections::HashSet::new());
                let mut c: Option<Client> = None;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    // Half the clients keep their connection, half reconnect each time.
                    let mut conn = match c.take() {
                        Some(c) if k % 2 == 0 => c,
                        _ => match TcpStream::connect(addr(port)) {
                            Ok(s) => Client::from_stream(s),
                            Err(e) => {
                                failed.push(format!("connect: {e}"));
                                continue;
                            }
                        },
                    };
                    conn.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
                    match conn.try_response() {
                        Ok(r) if r.status == 200 => {
                            ok += 1;
                            seen.insert(r.text());
                            if !r.says_close() {
                                c = Some(conn);
                            }
                        }
                        Ok(r) => failed.push(format!("status {}", r.status)),
                        Err(e) => failed.push(format!("{e:?}")),
                    }
                }
                (ok, failed, seen)
            })
        })
        .collect();
    for n in 0..20u64 {
        let to = if n % 2 == 0 { b.addr } else { a.addr };
        dir.write("ringway.toml", &conf(&[port], to, ""));
        p.reload_to(n + 2);
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut total = 0;
    let mut seen = std::collections::HashSet::new();
    for c in clients {
        let (ok, failed, s) = c.join().unwrap();
        assert!(failed.is_empty(), "failed requests: {failed:?}");
        total += ok;
        seen.extend(s);
    }
    assert!(total > 100, "only {total} requests");
    assert_eq!(seen.len(), 2, "both routes were served: {seen:?}");
}

#[test]
fn reload_watch_follows_the_config_and_its_included_files() {
    let a = Backend::serve(|_| Reply::ok("A"));
    let b = Backend::serve(|_| Reply::ok("B"));
    let dir = Dir::new("reload-watch");
    let port = support::listen_port();
    let main = |pass: &str| {
        format!(
            "include = [\"conf.d/*.toml\"]\n[global]\ndrain_timeout = \"1s\"\nreload_watch = true\n\n[[server]]\n\
             listen = [\"127.0.0.1:{port}\"]\naccess_log = \"off\"\n[[server.location]]\npath = \"/\"\nproxy_pass = \"{pass}\"\n"
        )
    };
    let up = |to: SocketAddr| format!("[[upstream]]\nname = \"app\"\nservers = [\"{to}\"]\n");
    dir.write("conf.d/up.toml", &up(a.addr));
    let path = dir.write("ringway.toml", &main("http://app"));
    let mut p = Running::start(&path);
    assert_eq!(body(&mut Client::connect(addr(port))), "A");
    // An included file changes: no signal, the watch reloads.
    dir.write("conf.d/up.toml", &up(b.addr));
    let done = p.lines_until("reload succeeded");
    assert!(
        done.iter().any(|l| l.contains("reload (a config file changed)")),
        "{done:#?}"
    );
    let installed = done
        .iter()
        .filter(|l| l.contains("config generation 2 installed"))
        .count();
    for _ in installed..2 {
        p.wait_line("config generation 2 installed");
    }
    assert_eq!(body(&mut Client::connect(addr(port))), "B");
    // The main file changes to something invalid: logged, B stays.
    dir.write("ringway.toml", &main("http://nowhere"));
    p.wait_line("reload failed");
    assert_eq!(body(&mut Client::connect(addr(port))), "B");
}

#[test]
fn pid_file_refusals() {
    let dir = Dir::new("reload-pid-bad");
    let base = "[[server]]\nlisten = [\"127.0.0.1:0\"]\n[[server.location]]\npath = \"/\"\nreturn = { status = 204 }\n";
    let path = dir.write("empty.toml", &format!("[global]\npid_file = \"\"\n{base}"));
    let (ok, said) = check(&path);
    assert!(
        !ok && said.contains("empty.toml:2:12: global.pid_file: an empty path"),
        "{said}"
    );
    // A pid file that cannot be written stops the start, before serving.
    let path = dir.write(
        "nodir.toml",
        &format!("[global]\npid_file = \"no/such/dir/r.pid\"\n{base}"),
    );
    let out = Command::new(BIN)
        .args(["--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("pid_file") && err.contains("no/such/dir/r.pid"),
        "{err}"
    );
}

#[test]
fn an_unchanged_upstream_keeps_its_idle_connections_and_a_changed_one_opens_new_ones() {
    let a = Backend::serve(|_| Reply::ok("A"));
    let dir = Dir::new("reload-pool");
    let port = support::listen_port();
    let path = dir.write("ringway.toml", &conf(&[port], a.addr, ""));
    let mut p = Running::start(&path);
    // One client connection: its requests stay on one worker, and so on
    // that worker's pool.
    let mut c = Client::connect(addr(port));
    let first = c.get("/").conn();
    assert_eq!(c.get("/").conn(), first, "pooled before any reload");

    // Unchanged upstream (a location added): the same upstream connection.
    let more = conf(&[port], a.addr, "").replace(
        "proxy_pass = \"http://app\"\n",
        "proxy_pass = \"http://app\"\n[[server.location]]\npath = \"/x\"\nreturn = { status = 204 }\n",
    );
    dir.write("ringway.toml", &more);
    p.reload_to(2);
    assert_eq!(c.get("/").conn(), first, "the pool was kept");
    assert_eq!(a.connections(), 1);

    // Changed upstream: its idle connection is closed and a new one opened.
    dir.write(
        "ringway.toml",
        &more.replace("servers = [", "keepalive = 8\nservers = ["),
    );
    p.reload_to(3);
    let after = c.get("/");
    assert_eq!(after.text(), "A");
    assert_ne!(after.conn(), first, "a changed upstream reused an old connection");
    assert_eq!(a.connections(), 2);
}

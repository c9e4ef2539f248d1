//! Binary upgrade through the built binary (SIGUSR2, `--upgrade`): the
//! sockets handed to a new process under load with nothing failed, a
//! failed upgrade that leaves the old process serving, HTTP/2 told to go
//! with its stream finished, and the service manager's notifications.

use std::collections::HashSet;
use std::io::{BufRead, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::Duration;

use crate::support::{self, wait_for, Backend, Client, Gate, Reply};

const BIN: &str = env!("CARGO_BIN_EXE_ringway");

/// The old process, its stderr (and the new one's, which inherits it) on a
/// channel; on drop it is killed, and so is the process the pid file names.
struct Running {
    child: std::process::Child,
    lines: Receiver<String>,
    pid_file: PathBuf,
}

impl Running {
    fn start(config: &Path, pid_file: PathBuf, env: &[(&str, &str)]) -> Running {
        let mut child = Command::new(BIN)
            .args(["--config", config.to_str().unwrap(), "--workers", "2"])
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
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
        let mut r = Running {
            child,
            lines,
            pid_file,
        };
        r.wait_line("listening on ");
        r
    }

    /// Every stderr line up to the one containing `what` (bounded wait).
    fn lines_until(&mut self, what: &str) -> Vec<String> {
        let mut out = Vec::new();
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(15))
                .unwrap_or_else(|_| panic!("no stderr line with {what:?}; saw {out:#?}"));
            let last = line.contains(what);
            out.push(line);
            if last {
                return out;
            }
        }
    }

    fn wait_line(&mut self, what: &str) -> String {
        self.lines_until(what).pop().unwrap()
    }

    fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) on the pid of a child we started and have not reaped.
        assert_eq!(unsafe { libc::kill(self.child.id() as libc::pid_t, sig) }, 0);
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The id in the pid file once it differs from the old process's.
    fn new_pid(&self) -> u32 {
        wait_for(Duration::from_secs(15), || {
            let p: u32 = std::fs::read_to_string(&self.pid_file)
                .ok()?
                .trim()
                .parse()
                .ok()?;
            (p != self.pid()).then_some(p)
        })
        .expect("the pid file never named a new process")
    }

    /// Waits (bounded) for the old process to exit; its exit status.
    fn exited(&mut self) -> std::process::ExitStatus {
        wait_for(Duration::from_secs(15), || self.child.try_wait().unwrap())
            .expect("the old process did not exit")
    }
}

fn alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid as libc::pid_t, 0) == 0 }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(p) = std::fs::read_to_string(&self.pid_file)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
        {
            if p as u32 != self.child.id() {
                // SAFETY: the process the upgrade started, named by our pid file.
                unsafe { libc::kill(p, libc::SIGKILL) };
            }
        }
    }
}

/// A directory of its own, removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let d = support::temp_path(name);
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        let tmp = self.0.join(format!(".{name}.tmp"));
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

fn free_port() -> u16 {
    support::listen_port()
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// `/` proxied to `backend` on `port`, with a pid file in the directory.
fn conf(port: u16, backend: SocketAddr, server_extra: &str) -> String {
    format!(
        "[global]\ndrain_timeout = \"5s\"\npid_file = \"ringway.pid\"\n\n[[upstream]]\nname = \"app\"\nservers = [\"{backend}\"]\n\n\
         [[server]]\nlisten = [\"127.0.0.1:{port}\"]\naccess_log = \"off\"\n{server_extra}\n\
         [[server.location]]\npath = \"/\"\nproxy_pass = \"http://app\"\n"
    )
}

#[test]
fn an_upgrade_under_load_fails_nothing_and_the_new_process_serves() {
    let a = Backend::serve(|_| Reply::ok("A"));
    let b = Backend::serve(|_| Reply::ok("B"));
    let dir = Dir::new("upgrade-load");
    let port = free_port();
    let path = dir.write("ringway.toml", &conf(port, a.addr, ""));
    let mut old = Running::start(&path, dir.0.join("ringway.pid"), &[]);
    let old_pid = old.pid();
    let stop = Arc::new(AtomicBool::new(false));
    let served_b = Arc::new(AtomicUsize::new(0));
    let total = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..8)
        .map(|k| {
            let (stop, served_b, total) = (stop.clone(), served_b.clone(), total.clone());
            std::thread::spawn(move || {
                let (mut failed, mut seen) = (Vec::new(), HashSet::new());
                let mut c: Option<Client> = None;
                while !stop.load(Ordering::Relaxed) {
                    // Half the clients keep their connection, half open one per request.
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
                            total.fetch_add(1, Ordering::Relaxed);
                            let body = r.text();
                            if body == "B" {
                                served_b.fetch_add(1, Ordering::Relaxed);
                            }
                            seen.insert(body);
                            if !r.says_close() {
                                c = Some(conn);
                            }
                        }
                        Ok(r) => failed.push(format!("status {}", r.status)),
                        Err(e) => failed.push(crate::support::client::describe(&e)),
                    }
                }
                (failed, seen)
            })
        })
        .collect();
    wait_for(Duration::from_secs(10), || {
        (total.load(Ordering::Relaxed) > 200).then_some(())
    })
    .expect("no traffic before the upgrade");
    // Only the new process reads this: the old one never reloads here, so
    // a "B" can come from the new process alone.
    dir.write("ringway.toml", &conf(port, b.addr, ""));
    let before = total.load(Ordering::Relaxed);
    old.signal(libc::SIGUSR2);
    let new_pid = old.new_pid();
    assert_ne!(new_pid, old_pid);
    let status = old.exited();
    assert!(status.success(), "the old process ended with {status}");
    let after_exit = served_b.load(Ordering::Relaxed);
    wait_for(Duration::from_secs(10), || {
        (served_b.load(Ordering::Relaxed) > after_exit + 200).then_some(())
    })
    .expect("the new process served too little after the old one exited");
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    let mut seen = HashSet::new();
    for c in clients {
        let (failed, s) = c.join().unwrap();
        assert!(failed.is_empty(), "failed requests: {failed:?}");
        seen.extend(s);
    }
    assert_eq!(seen, HashSet::from(["A".to_string(), "B".to_string()]));
    eprintln!(
        "upgrade under load: {} requests ({before} before the signal), {} from the new process, none failed",
        total.load(Ordering::Relaxed),
        served_b.load(Ordering::Relaxed)
    );
    // The old process is gone: whatever answers now is the new one.
    assert!(alive(new_pid), "the new process is not running");
    let mut c = Client::connect(addr(port));
    assert_eq!(c.get("/").text(), "B");
    let log = old.lines_until(&format!("upgrade: serving as process {new_pid}"));
    assert!(!log.iter().any(|l| l.contains("ERROR")), "{log:#?}");
}

#[test]
fn an_idle_keep_alive_connection_of_the_old_process_is_told_to_close_not_closed() {
    let a = Backend::serve(|_| Reply::ok("A"));
    let b = Backend::serve(|_| Reply::ok("B"));
    let dir = Dir::new("upgrade-idle");
    let port = free_port();
    let path = dir.write("ringway.toml", &conf(port, a.addr, ""));
    let mut old = Running::start(&path, dir.0.join("ringway.pid"), &[]);
    let mut kept = Client::connect(addr(port));
    let r = kept.get("/");
    assert_eq!(r.text(), "A");
    assert!(!r.says_close());
    dir.write("ringway.toml", &conf(port, b.addr, ""));
    old.signal(libc::SIGUSR2);
    old.new_pid();
    // Both workers of the old process have stopped accepting.
    old.wait_line("handed over: stopped accepting");
    old.wait_line("handed over: stopped accepting");
    // The connection was kept open: the old process answers its next
    // request (its own route) and says to close.
    let r = kept.get("/");
    assert_eq!((r.status, r.text()), (200, "A".to_string()));
    assert!(r.says_close(), "{}", r.head_text());
    kept.expect_closed();
    assert_eq!(Client::connect(addr(port)).get("/").text(), "B");
    assert!(old.exited().success());
}

#[test]
fn a_failed_upgrade_leaves_the_old_process_serving_and_says_why() {
    let a = Backend::serve(|_| Reply::ok("A"));
    let dir = Dir::new("upgrade-bad");
    let port = free_port();
    let path = dir.write("ringway.toml", &conf(port, a.addr, ""));
    let mut old = Running::start(&path, dir.0.join("ringway.pid"), &[]);
    let mut kept = Client::connect(addr(port));
    assert_eq!(kept.get("/").text(), "A");
    dir.write("ringway.toml", &conf(port, a.addr, "acces_log = \"off\"\n"));
    old.signal(libc::SIGUSR2);
    let log = old.lines_until("upgrade failed");
    let all = log.join("\n");
    assert!(all.contains("unknown key `acces_log`"), "{all}");
    assert!(
        log.last()
            .unwrap()
            .contains("the new process ended with exit status: 1"),
        "{all}"
    );
    // The same process serves, its keep-alive connection included, and the
    // pid file still names it.
    let r = kept.get("/");
    assert_eq!((r.status, r.text()), (200, "A".to_string()));
    assert!(!r.says_close());
    assert_eq!(Client::connect(addr(port)).get("/").text(), "A");
    let pid = std::fs::read_to_string(dir.0.join("ringway.pid")).unwrap();
    assert_eq!(pid.trim(), old.pid().to_string());
    assert!(old.child.try_wait().unwrap().is_none());
}

/// `conf` on several ports.
fn conf_ports(ports: &[u16], backend: SocketAddr) -> String {
    let listen: Vec<String> = ports.iter().map(|p| format!("\"127.0.0.1:{p}\"")).collect();
    conf(ports[0], backend, "").replace(
        &format!("listen = [\"127.0.0.1:{}\"]", ports[0]),
        &format!("listen = [{}]", listen.join(", ")),
    )
}

#[test]
fn a_new_process_that_cannot_bind_an_added_address_leaves_the_old_one_serving() {
    let a = Backend::serve(|_| Reply::ok("A"));
    let dir = Dir::new("upgrade-bind");
    let port = free_port();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_port = taken.local_addr().unwrap().port();
    let path = dir.write("ringway.toml", &conf(port, a.addr, ""));
    let mut old = Running::start(&path, dir.0.join("ringway.pid"), &[]);
    dir.write("ringway.toml", &conf_ports(&[port, taken_port], a.addr));
    old.signal(libc::SIGUSR2);
    let log = old.lines_until("upgrade failed");
    let all = log.join("\n");
    assert!(
        all.contains(&format!("cannot listen on 127.0.0.1:{taken_port}")),
        "{all}"
    );
    assert_eq!(Client::connect(addr(port)).get("/").text(), "A");
    let pid = std::fs::read_to_string(dir.0.join("ringway.pid")).unwrap();
    assert_eq!(pid.trim(), old.pid().to_string());
}

#[test]
fn addresses_the_new_config_drops_are_closed_and_new_ones_bound() {
    let a = Backend::serve(|_| Reply::ok("A"));
    let dir = Dir::new("upgrade-addrs");
    let (kept, dropped, added) = (free_port(), free_port(), free_port());
    let path = dir.write("ringway.toml", &conf_ports(&[kept, dropped], a.addr));
    let mut old = Running::start(&path, dir.0.join("ringway.pid"), &[]);
    assert_eq!(Client::connect(addr(dropped)).get("/").text(), "A");
    dir.write("ringway.toml", &conf_ports(&[kept, added], a.addr));
    old.signal(libc::SIGUSR2);
    old.new_pid();
    assert!(old.exited().success());
    assert_eq!(Client::connect(addr(kept)).get("/").text(), "A");
    assert_eq!(Client::connect(addr(added)).get("/").text(), "A");
    let refused = TcpStream::connect(addr(dropped));
    assert!(refused.is_err(), "{dropped} still accepts");
}

#[test]
fn upgrade_flag_signals_the_pid_file_process_and_its_refusals() {
    let dir = Dir::new("upgrade-flag");
    let port = free_port();
    let a = Backend::serve(|_| Reply::ok("A"));
    let no_pid = dir.write(
        "nopid.toml",
        &conf(port, a.addr, "").replace("pid_file = \"ringway.pid\"\n", ""),
    );
    let out = Command::new(BIN)
        .args(["--config", no_pid.to_str().unwrap(), "--upgrade"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--upgrade needs global.pid_file"), "{err}");
    // A pid file that is not there: nothing is running.
    let path = dir.write("ringway.toml", &conf(port, a.addr, ""));
    let out = Command::new(BIN)
        .args(["--config", path.to_str().unwrap(), "--upgrade"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot read pid_file"), "{err}");
    // And with a process running, it upgrades it.
    let mut old = Running::start(&path, dir.0.join("ringway.pid"), &[]);
    let out = Command::new(BIN)
        .args(["--config", path.to_str().unwrap(), "--upgrade"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let new_pid = old.new_pid();
    assert!(old.exited().success());
    assert!(alive(new_pid));
    assert_eq!(Client::connect(addr(port)).get("/").text(), "A");
    // The process an upgrade started can be upgraded in turn.
    let out = Command::new(BIN)
        .args(["--config", path.to_str().unwrap(), "--upgrade"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let third = wait_for(Duration::from_secs(15), || {
        let p: u32 = std::fs::read_to_string(dir.0.join("ringway.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        (p != new_pid).then_some(p)
    })
    .expect("the second upgrade never wrote the pid file");
    wait_for(Duration::from_secs(15), || (!alive(new_pid)).then_some(()))
        .expect("the second process did not exit");
    assert!(alive(third));
    assert_eq!(Client::connect(addr(port)).get("/").text(), "A");
}

/// Reads HTTP/2 frames: (type, flags, stream id, payload).
fn read_frame(s: &mut TcpStream) -> std::io::Result<(u8, u8, u32, Vec<u8>)> {
    let mut head = [0u8; 9];
    s.read_exact(&mut head)?;
    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    let sid = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
    let mut payload = vec![0u8; len];
    s.read_exact(&mut payload)?;
    Ok((head[3], head[4], sid, payload))
}

#[test]
fn an_http2_connection_open_during_the_upgrade_gets_goaway_and_its_stream_finishes() {
    let gate = Gate::new();
    let held = gate.clone();
    let backend = Backend::serve(move |seen| {
        if seen.target() == "/held" {
            held.wait();
        }
        Reply::ok("done")
    });
    let dir = Dir::new("upgrade-h2");
    let port = free_port();
    let path = dir.write("ringway.toml", &conf(port, backend.addr, "h2c = true\n"));
    let mut old = Running::start(&path, dir.0.join("ringway.pid"), &[]);
    let mut s = TcpStream::connect(addr(port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // Preface, empty SETTINGS, then HEADERS for GET /held (HPACK: :method
    // GET, :scheme http, literal :path and :authority), END_STREAM|END_HEADERS.
    let mut block = vec![0x82, 0x86, 0x04, 5];
    block.extend_from_slice(b"/held");
    block.extend_from_slice(&[0x01, 1, b't']);
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
    out.extend_from_slice(&[0, 0, block.len() as u8, 1, 0x05, 0, 0, 0, 1]);
    out.extend_from_slice(&block);
    s.write_all(&out).unwrap();
    wait_for(Duration::from_secs(10), || {
        (!backend.seen().is_empty()).then_some(())
    })
    .expect("the stream never reached the backend");
    old.signal(libc::SIGUSR2);
    old.new_pid();
    let (mut goaway, mut status, mut body) = (false, None, Vec::new());
    loop {
        let (kind, flags, sid, payload) = read_frame(&mut s).expect("the connection ended early");
        match kind {
            4 if flags & 1 == 0 => s.write_all(&[0, 0, 0, 4, 1, 0, 0, 0, 0]).unwrap(),
            7 => {
                goaway = true;
                // The stream in flight is let through; then it may finish.
                let last = u32::from_be_bytes(payload[..4].try_into().unwrap()) & 0x7fff_ffff;
                assert!(last >= 1, "GOAWAY refused the stream in flight");
                gate.open();
            }
            1 if sid == 1 => status = Some(payload.first().copied()),
            0 if sid == 1 => {
                body.extend_from_slice(&payload);
                if flags & 1 != 0 {
                    break;
                }
            }
            _ => {}
        }
    }
    assert!(goaway, "no GOAWAY before the stream finished");
    // 0x88: HPACK's static entry for :status 200.
    assert_eq!(status, Some(Some(0x88)));
    assert_eq!(body, b"done");
    assert!(old.exited().success());
}

/// A datagram socket the test reads the notifications from.
fn notify_socket(dir: &Dir) -> (UnixDatagram, PathBuf) {
    let p = dir.0.join("notify.sock");
    let s = UnixDatagram::bind(&p).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    (s, p)
}

fn next(s: &UnixDatagram) -> String {
    let mut buf = [0u8; 512];
    let n = s.recv(&mut buf).expect("no notification");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn notifications_ready_reloading_mainpid_and_stopping() {
    let a = Backend::serve(|_| Reply::ok("A"));
    let dir = Dir::new("upgrade-notify");
    let port = free_port();
    let path = dir.write("ringway.toml", &conf(port, a.addr, ""));
    let (sock, sock_path) = notify_socket(&dir);
    let mut old = Running::start(
        &path,
        dir.0.join("ringway.pid"),
        &[("NOTIFY_SOCKET", sock_path.to_str().unwrap())],
    );
    assert_eq!(next(&sock), "READY=1");
    old.signal(libc::SIGHUP);
    let reloading = next(&sock);
    let usec = reloading
        .strip_prefix("RELOADING=1\nMONOTONIC_USEC=")
        .unwrap_or_else(|| panic!("{reloading:?}"));
    assert!(usec.parse::<u64>().unwrap() > 0, "{reloading:?}");
    assert_eq!(next(&sock), "READY=1");
    old.signal(libc::SIGUSR2);
    let new_pid = old.new_pid();
    assert_eq!(next(&sock), format!("MAINPID={new_pid}\nREADY=1"));
    assert!(old.exited().success());
    // The old process handed over: it does not say the service stops.
    // SAFETY: kill(2) on the process the upgrade started.
    assert_eq!(unsafe { libc::kill(new_pid as i32, libc::SIGTERM) }, 0);
    assert_eq!(next(&sock), "STOPPING=1");
    wait_for(Duration::from_secs(10), || (!alive(new_pid)).then_some(()))
        .expect("the new process did not stop");
}

#[test]
fn notifications_reach_an_abstract_socket() {
    let a = Backend::serve(|_| Reply::ok("A"));
    let dir = Dir::new("upgrade-notify-abstract");
    let port = free_port();
    let path = dir.write("ringway.toml", &conf(port, a.addr, ""));
    use std::os::linux::net::SocketAddrExt;
    let name = format!("ringway-test-{}-{port}", std::process::id());
    let sock =
        UnixDatagram::bind_addr(&std::os::unix::net::SocketAddr::from_abstract_name(&name).unwrap()).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let mut old = Running::start(
        &path,
        dir.0.join("ringway.pid"),
        &[("NOTIFY_SOCKET", &format!("@{name}"))],
    );
    assert_eq!(next(&sock), "READY=1");
    old.signal(libc::SIGTERM);
    assert_eq!(next(&sock), "STOPPING=1");
    assert!(old.exited().success());
}

/// The inodes of the sockets listening on 127.0.0.1:`port`, from the
/// kernel's table (/proc/net/tcp): the same inode before and after an
/// upgrade means the same socket, handed over rather than bound anew.
fn listening_inodes(port: u16) -> HashSet<u64> {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let local = format!("0100007F:{port:04X}");
    table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(1) == Some(&local.as_str()) && f.get(3) == Some(&"0A")).then(|| f[9].parse().unwrap())
        })
        .collect()
}

#[test]
fn the_admin_listener_is_handed_over_not_bound_again() {
    let a = Backend::serve(|_| Reply::ok("A"));
    let dir = Dir::new("upgrade-admin");
    let (port, admin) = (free_port(), free_port());
    let cfg = format!(
        "{}
[admin]
listen = \"127.0.0.1:{admin}\"
",
        conf(port, a.addr, "")
    );
    let path = dir.write("ringway.toml", &cfg);
    let mut old = Running::start(&path, dir.0.join("ringway.pid"), &[]);
    let before = listening_inodes(admin);
    assert_eq!(before.len(), 1, "one admin socket: {before:?}");
    old.signal(libc::SIGUSR2);
    old.new_pid();
    assert!(old.exited().success());
    assert_eq!(listening_inodes(admin), before, "the admin socket was bound anew");
    let r = Client::connect(addr(admin)).get("/healthz");
    assert_eq!(r.status, 200);
}

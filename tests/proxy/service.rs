//! Running as a service, through the built binary: `global.user` giving up
//! root in every thread while keeping CAP_NET_BIND_SERVICE (seen from
//! /proc/<pid>/task/*/status), a reload binding a port below 1024 after
//! that, log files opened as root still written, the refusals of
//! `global.user`, and `dist/ringway.service` through `.ci/verify-unit`.
//!
//! Changing ids needs root; the tests that do say so and return when the
//! suite runs as another user.

use std::io::BufRead;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::Duration;

use crate::support::{self, Backend, Client, Reply, IO_TIMEOUT};

const BIN: &str = env!("CARGO_BIN_EXE_ringway");
/// The one capability kept: bit 10 of CapEff.
const NET_BIND_SERVICE: u64 = 1 << 10;

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// `nobody`'s uid and gid, from /etc/passwd.
fn nobody() -> (u32, u32) {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let line = passwd
        .lines()
        .find(|l| l.starts_with("nobody:"))
        .expect("a nobody user in /etc/passwd");
    let f: Vec<&str> = line.split(':').collect();
    (f[2].parse().unwrap(), f[3].parse().unwrap())
}

/// A directory of the test's own, world-readable (the proxy reads its
/// config there after giving up root), removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let d = support::temp_path(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        Dir(d)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        let tmp = self.0.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::rename(&tmp, &p).unwrap();
        p
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The binary with its stderr lines on a channel; killed on drop.
struct Running {
    child: std::process::Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    /// Starts the binary, as the user `ids` names when given.
    fn spawn(config: &Path, ids: Option<(u32, u32)>) -> Running {
        Running::spawn_under(&[], config, ids)
    }

    /// Starts the binary through `wrapper` (a command and its arguments
    /// that run the rest), when not empty.
    fn spawn_under(wrapper: &[String], config: &Path, ids: Option<(u32, u32)>) -> Running {
        let mut cmd = match wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(BIN);
                c
            }
            None => Command::new(BIN),
        };
        cmd.args(["--config", config.to_str().unwrap(), "--workers", "2"])
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some((uid, gid)) = ids {
            // std drops the supplementary groups when it changes the uid as root.
            cmd.uid(uid).gid(gid);
        }
        let mut child = cmd.spawn().expect("spawn ringway");
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
        Running {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The next stderr line containing `what` (bounded wait).
    fn wait_line(&mut self, what: &str) -> String {
        loop {
            let Ok(line) = self.lines.recv_timeout(Duration::from_secs(10)) else {
                panic!("no stderr line with {what:?}; saw {:#?}", self.seen);
            };
            self.seen.push(line.clone());
            if line.contains(what) {
                return line;
            }
        }
    }

    /// Waits (bounded) for the process to exit; its status.
    fn exit_status(&mut self) -> std::process::ExitStatus {
        support::wait_for(Duration::from_secs(10), || self.child.try_wait().unwrap())
            .expect("the process exits")
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port below 1024 on 127.0.0.1 in `range` free a moment ago (the test
/// runs as root). Each test has a range of its own, so that two running at
/// once never pick the same port.
fn free_low_port(mut range: std::ops::Range<u16>) -> u16 {
    range
        .find(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
        .expect("a free port below 1024 on 127.0.0.1")
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn conf(ports: &[u16], backend: SocketAddr, global: &str, access_log: &str) -> String {
    let listen: Vec<String> = ports.iter().map(|p| format!("\"127.0.0.1:{p}\"")).collect();
    format!(
        "[global]\ndrain_timeout = \"2s\"\n{global}\n[[upstream]]\nname = \"app\"\nservers = [\"{backend}\"]\n\n\
         [[server]]\nlisten = [{}]\naccess_log = {access_log:?}\n[[server.location]]\npath = \"/\"\nproxy_pass = \"http://app\"\n",
        listen.join(", ")
    )
}

fn body(a: SocketAddr) -> String {
    let r = Client::connect(a).get("/");
    assert_eq!(r.status, 200, "{}", r.head_text());
    r.text()
}

/// Every thread of `pid`: its name and the fields of its status file.
fn threads(pid: u32) -> Vec<(String, std::collections::HashMap<String, String>)> {
    let mut out = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let Ok(status) = std::fs::read_to_string(t.unwrap().path().join("status")) else {
            continue; // a thread that ended meanwhile
        };
        let fields: std::collections::HashMap<String, String> = status
            .lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.to_string(), v.trim().to_string()))
            .collect();
        out.push((fields["Name"].clone(), fields));
    }
    assert!(!out.is_empty());
    out
}

/// Every thread runs as `uid`/`gid` (real, effective, saved, fs), with no
/// supplementary group but `gid`, and CAP_NET_BIND_SERVICE its only
/// capability. Returns the thread names seen.
fn assert_dropped(pid: u32, uid: u32, gid: u32) -> Vec<String> {
    let ids = |v: &str| {
        v.split_whitespace()
            .map(|x| x.parse::<u32>().unwrap())
            .collect::<Vec<_>>()
    };
    let cap = |v: &str| u64::from_str_radix(v, 16).unwrap();
    let mut names = Vec::new();
    for (name, f) in threads(pid) {
        assert_eq!(ids(&f["Uid"]), [uid; 4], "thread {name}: Uid");
        assert_eq!(ids(&f["Gid"]), [gid; 4], "thread {name}: Gid");
        assert_eq!(ids(&f["Groups"]), [gid], "thread {name}: Groups");
        // The access-log writer threads start with the log files, before
        // the drop; the uid change there leaves them no capability at all
        // (they never bind). Every other thread keeps exactly the one.
        let want = |c: u64| {
            if name.starts_with("ringway-log") {
                c & !NET_BIND_SERVICE == 0
            } else {
                c == NET_BIND_SERVICE
            }
        };
        for k in ["CapEff", "CapPrm", "CapAmb"] {
            assert!(want(cap(&f[k])), "thread {name}: {k} {}", f[k]);
        }
        names.push(name);
    }
    names
}

#[test]
fn global_user_drops_every_thread_and_log_files_opened_as_root_keep_working() {
    if !is_root() {
        eprintln!("skipped: changing to global.user needs the suite to run as root");
        return;
    }
    let (uid, gid) = nobody();
    let a = Backend::serve(|_| Reply::ok("A"));
    let dir = Dir::new("service-drop");
    // The log lives where nobody cannot reach it: only a file opened
    // before the drop can be written.
    let logs = dir.0.join("logs");
    std::fs::create_dir(&logs).unwrap();
    std::fs::set_permissions(&logs, std::fs::Permissions::from_mode(0o700)).unwrap();
    let log = logs.join("access.log");
    let port = support::listen_port();
    let path = dir.write(
        "ringway.toml",
        &conf(&[port], a.addr, "user = \"nobody\"", log.to_str().unwrap()),
    );
    let mut p = Running::spawn(&path, None);
    p.wait_line("running as user nobody");
    p.wait_line("listening on ");
    assert_eq!(body(addr(port)), "A");
    let names = assert_dropped(p.pid(), uid, gid);
    for want in ["ringway-w0", "ringway-w1", "ringway-reload"] {
        assert!(
            names.iter().any(|n| n == want),
            "no thread {want} among {names:?}"
        );
    }
    Client::connect(addr(port)).get("/logged-after-the-drop");
    let logged = support::wait_for(IO_TIMEOUT, || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("GET /logged-after-the-drop")
            .then_some(())
    });
    assert!(logged.is_some(), "the access log opened as root is still written");
}

#[test]
fn after_the_drop_a_reload_binds_a_port_below_1024_and_cannot_change_the_user() {
    if !is_root() {
        eprintln!("skipped: changing to global.user and binding below 1024 need the suite to run as root");
        return;
    }
    let (uid, gid) = nobody();
    let a = Backend::serve(|_| Reply::ok("A"));
    let dir = Dir::new("service-low-port");
    let port = support::listen_port();
    let path = dir.write("ringway.toml", &conf(&[port], a.addr, "user = \"nobody\"", "off"));
    let mut p = Running::spawn(&path, None);
    p.wait_line("listening on ");
    assert_eq!(body(addr(port)), "A");

    let low = free_low_port(1000..1012);
    dir.write(
        "ringway.toml",
        &conf(&[port, low], a.addr, "user = \"nobody\"", "off"),
    );
    // SAFETY: kill(2) on the pid of a child we started and have not reaped.
    assert_eq!(unsafe { libc::kill(p.pid() as libc::pid_t, libc::SIGHUP) }, 0);
    p.wait_line("config generation 2 installed");
    p.wait_line("config generation 2 installed");
    for _ in 0..4 {
        assert_eq!(body(addr(low)), "A", "served on the added port {low}");
    }
    assert_eq!(body(addr(port)), "A");
    assert_dropped(p.pid(), uid, gid);

    // Ids are given up once: a reload naming another user says so, applies
    // the rest, and the process stays nobody.
    dir.write("ringway.toml", &conf(&[port], a.addr, "user = \"daemon\"", "off"));
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(p.pid() as libc::pid_t, libc::SIGHUP) }, 0);
    p.wait_line("global.user / global.group changed: they take effect at the next start, not on reload");
    p.wait_line("config generation 3 installed");
    p.wait_line("config generation 3 installed");
    assert_eq!(body(addr(port)), "A");
    assert_dropped(p.pid(), uid, gid);
}

#[test]
fn global_user_refusals_at_start() {
    if !is_root() {
        eprintln!("skipped: starting the binary as another user needs the suite to run as root");
        return;
    }
    let (uid, gid) = nobody();
    let a = Backend::serve(|_| Reply::ok("A"));
    let dir = Dir::new("service-not-root");
    // Started as nobody, asked to become daemon: refused, nothing served.
    let port = support::listen_port();
    let path = dir.write("ringway.toml", &conf(&[port], a.addr, "user = \"daemon\"", "off"));
    let mut p = Running::spawn(&path, Some((uid, gid)));
    p.wait_line("global.user = \"daemon\" needs ringway to be started as root, or as that user and group (running as uid");
    assert!(!p.exit_status().success());
    a.assert_untouched("a refused start");

    // Started as nobody with global.user = "nobody" (systemd's User=): runs.
    let path = dir.write("ringway.toml", &conf(&[port], a.addr, "user = \"nobody\"", "off"));
    let mut p = Running::spawn(&path, Some((uid, gid)));
    p.wait_line("already running as user nobody");
    p.wait_line("listening on ");
    assert_eq!(body(addr(port)), "A");
}

#[test]
fn the_units_bounding_set_for_a_root_start_is_enough_to_drop_and_bind_low() {
    if !is_root() {
        eprintln!("skipped: a root start needs the suite to run as root");
        return;
    }
    if Command::new("setpriv").arg("--version").output().is_err() {
        eprintln!("skipped: setpriv (util-linux) is missing");
        return;
    }
    // The commented bounding set of dist/ringway.service, as setpriv's
    // `--bounding-set=-all,+net_bind_service,...`.
    let unit =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("dist/ringway.service")).unwrap();
    let caps = unit
        .lines()
        .find_map(|l| l.strip_prefix("#CapabilityBoundingSet="))
        .expect("the root-start bounding set in the unit");
    let mut bounding = String::from("--bounding-set=-all");
    for c in caps.split_whitespace() {
        bounding.push_str(",+");
        bounding.push_str(&c.trim_start_matches("CAP_").to_lowercase());
    }
    let wrapper = ["setpriv".to_string(), bounding, "--inh-caps=-all".to_string()];
    let (uid, gid) = nobody();
    let a = Backend::serve(|_| Reply::ok("A"));
    let dir = Dir::new("service-bounding");
    let port = support::listen_port();
    let path = dir.write("ringway.toml", &conf(&[port], a.addr, "user = \"nobody\"", "off"));
    let mut p = Running::spawn_under(&wrapper, &path, None);
    p.wait_line("running as user nobody");
    p.wait_line("listening on ");
    assert_eq!(body(addr(port)), "A");
    assert_dropped(p.pid(), uid, gid);
    let low = free_low_port(1012..1024);
    dir.write(
        "ringway.toml",
        &conf(&[port, low], a.addr, "user = \"nobody\"", "off"),
    );
    // SAFETY: kill(2) on the pid of a child we started and have not reaped.
    assert_eq!(unsafe { libc::kill(p.pid() as libc::pid_t, libc::SIGHUP) }, 0);
    p.wait_line("config generation 2 installed");
    p.wait_line("config generation 2 installed");
    assert_eq!(body(addr(low)), "A", "served on the added port {low}");
}

fn check(dir: &Dir, global: &str) -> String {
    let path = dir.write(
        "check.toml",
        &conf(&[support::listen_port()], addr(9), global, "off"),
    );
    let out = Command::new(BIN)
        .args(["--check", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success(), "--check accepted {global:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn check_refuses_unknown_user_or_group_root_and_a_group_alone() {
    let dir = Dir::new("service-check");
    let file = dir.0.join("check.toml").display().to_string();
    // conf() puts `[global]` on line 1, `drain_timeout` on 2, these on 3.
    let cases = [
        (
            "user = \"no-such-user-here\"",
            "3:8: global.user: unknown user \"no-such-user-here\"",
        ),
        (
            "user = \"nobody\"\ngroup = \"no-such-group-here\"",
            "4:9: global.group: unknown group \"no-such-group-here\"",
        ),
        (
            "user = \"root\"",
            "3:8: global.user: \"root\" is root (uid 0): leave global.user out to keep running as root",
        ),
        (
            "user = \"nobody\"\ngroup = \"root\"",
            "4:9: global.group: the group would be root's (gid 0)",
        ),
        (
            "group = \"nogroup\"",
            "3:9: global.group: global.group needs global.user",
        ),
    ];
    for (global, want) in cases {
        let err = check(&dir, global);
        assert!(err.contains(&format!("{file}:{want}")), "{global:?}: {err}");
    }
}

/// Runs `.ci/verify-unit` on `unit`; its success and everything it printed.
fn verify_unit(unit: &Path) -> (bool, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/verify-unit");
    let out = Command::new(script).arg(BIN).arg(unit).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn the_shipped_unit_verifies_clean_and_a_bad_key_fails_the_check() {
    if Command::new("systemd-analyze").arg("--version").output().is_err() {
        eprintln!("skipped: systemd-analyze is missing (apt-get install systemd; .ci/run installs it)");
        return;
    }
    let unit = Path::new(env!("CARGO_MANIFEST_DIR")).join("dist/ringway.service");
    let (ok, text) = verify_unit(&unit);
    assert!(ok, "{text}");
    assert!(text.contains("no findings"), "{text}");

    // A misspelt key: systemd 252 exits 0 for it, the script must not.
    let dir = Dir::new("service-unit");
    let shipped = std::fs::read_to_string(&unit).unwrap();
    let bad = dir.write(
        "ringway.service",
        &shipped.replacen("ProtectHome=yes", "ProtectHome=yes\nProtectHomme=yes", 1),
    );
    let (ok, text) = verify_unit(&bad);
    assert!(!ok, "a misspelt key passed: {text}");
    assert!(text.contains("Unknown key 'ProtectHomme'"), "{text}");
}

//! The binary: `--check`, config errors with positions, refusing to start on
//! a bad config, and draining on SIGTERM.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::support::*;

const BIN: &str = env!("CARGO_BIN_EXE_ringway");

pub(crate) fn ringway(args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args).env_remove("RUST_LOG").stdin(Stdio::null());
    c
}

/// Runs to completion, killing the process if it outlives `limit`.
pub(crate) fn run_bounded(mut cmd: Command, limit: Duration) -> Output {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ringway");
    let mut guard = ChildGuard(Some(child));
    let end = Instant::now() + limit;
    loop {
        let child = guard.0.as_mut().unwrap();
        if child.try_wait().unwrap().is_some() {
            return guard.0.take().unwrap().wait_with_output().unwrap();
        }
        assert!(Instant::now() < end, "ringway did not exit within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Kills the child if a test fails before it exits.
struct ChildGuard(Option<Child>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub(crate) fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// 1-based (line, column) of the first occurrence of `needle` in `hay`.
pub(crate) fn position(hay: &str, needle: &str) -> (usize, usize) {
    let at = hay
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in config"));
    let before = &hay[..at];
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, col)
}

#[test]
fn check_accepts_a_valid_config() {
    let f = TempFile::with_text("valid.toml", &proxy_all("127.0.0.1:9".parse().unwrap(), "", ""));
    let out = run_bounded(
        ringway(&["--check", "--config", f.path().to_str().unwrap()]),
        Duration::from_secs(10),
    );
    assert!(
        out.status.success(),
        "exit {:?}, stderr:\n{}",
        out.status,
        text(&out.stderr)
    );
    let stdout = text(&out.stdout);
    assert!(stdout.contains("test is successful"), "stdout: {stdout}");
    assert!(
        stdout.contains(&f.path().display().to_string()),
        "names the file: {stdout}"
    );
}

#[test]
fn check_accepts_the_shipped_configs() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut files = vec![root.join("ringway.toml")];
    for e in std::fs::read_dir(root.join("examples")).unwrap() {
        let path = e.unwrap().path();
        // certs/ holds the TLS example's files.
        if path.extension().is_some_and(|e| e == "toml") {
            files.push(path);
        }
    }
    for f in files {
        let out = run_bounded(
            ringway(&["-t", "-c", f.to_str().unwrap()]),
            Duration::from_secs(10),
        );
        assert!(out.status.success(), "{}: {}", f.display(), text(&out.stderr));
        assert!(text(&out.stdout).contains("test is successful"));
    }
}

/// Several independent mistakes are all reported, each as
/// `file:line:col: key: message`, with what to do about it.
#[test]
fn check_reports_every_error_with_its_position() {
    let cfg = r#"[global]
drain_timeout = "soon"

[[upstream]]
name = "web"
servers = ["127.0.0.1:3000"]

[[upstream]]
name = "static"
servers = ["127.0.0.1:3001"]
read_timeout = "60"

[[server]]
listen = ["nowhere:80"]

[[server.location]]
path = "/"
proxy_pass = "http://api/"
"#;
    let f = TempFile::with_text("bad.toml", cfg);
    let file = f.path().display().to_string();
    let out = run_bounded(ringway(&["--check", "--config", &file]), Duration::from_secs(10));
    assert!(!out.status.success(), "a bad config must fail the check");
    assert!(!text(&out.stdout).contains("successful"));
    let stderr = text(&out.stderr);

    let at = |needle: &str| {
        let (l, c) = position(cfg, needle);
        format!("{file}:{l}:{c}: ")
    };
    let expected = [
        format!("{}global.drain_timeout: bad duration \"soon\"", at("\"soon\"")),
        format!("{}upstream[1].read_timeout: bad duration \"60\"", at("\"60\"")),
        format!(
            "{}server[0].listen[0]: not a listen address",
            at("\"nowhere:80\"")
        ),
        format!(
            "{}server[0].location[0].proxy_pass: unknown upstream \"api\" (defined: \"static\", \"web\")",
            at("\"http://api/\"")
        ),
    ];
    let lines: Vec<&str> = stderr.lines().collect();
    for (i, want) in expected.iter().enumerate() {
        assert!(
            lines.get(i).is_some_and(|l| l.starts_with(want.as_str())),
            "line {i} should start with {want:?}; stderr:\n{stderr}"
        );
    }
    // Each error says how to write it instead.
    assert!(lines[0].contains("\"750ms\""), "{}", lines[0]);
    assert!(lines[2].contains("\"127.0.0.1:8080\""), "{}", lines[2]);
    assert!(lines[3].contains("host:port"), "{}", lines[3]);
    assert!(stderr.contains("test failed (4 errors)"), "{stderr}");
}

#[test]
fn check_reports_an_unknown_key_with_position_and_suggestion() {
    let cfg = "[[server]]\nlisten = [\"127.0.0.1:0\"]\nacces_log = \"off\"\n";
    let f = TempFile::with_text("typo.toml", cfg);
    let file = f.path().display().to_string();
    let out = run_bounded(ringway(&["--check", "--config", &file]), Duration::from_secs(10));
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    let first = stderr.lines().next().unwrap_or_default();
    assert!(first.starts_with(&format!("{file}:3:1: ")), "{stderr}");
    assert!(first.contains("acces_log"), "{first}");
    assert!(first.contains("did you mean `access_log`?"), "{first}");
}

/// An unknown key must not hide the other mistakes in the same file.
#[test]
fn check_reports_an_unknown_key_together_with_other_errors() {
    let cfg = r#"[global]
drain_timeout = "soon"

[[server]]
listen = ["nowhere:80"]
acces_log = "off"

[[server.location]]
path = "/"
proxy_pass = "http://api/"
"#;
    let f = TempFile::with_text("mixed.toml", cfg);
    let file = f.path().display().to_string();
    let out = run_bounded(ringway(&["--check", "--config", &file]), Duration::from_secs(10));
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    for key in [
        "global.drain_timeout",
        "acces_log",
        "server[0].listen[0]",
        "proxy_pass",
    ] {
        assert!(stderr.contains(key), "{key} not reported; stderr:\n{stderr}");
    }
    assert!(stderr.contains("(4 errors)"), "{stderr}");
}

#[test]
fn bad_config_without_check_exits_before_binding() {
    // The listen address is held here (without SO_REUSEPORT): had ringway
    // tried to bind it, it would have failed with "cannot listen on".
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap();
    let cfg = format!(
        "[[server]]\nlisten = [\"{port}\"]\naccess_log = \"off\"\n\n[[server.location]]\npath = \"/\"\nproxy_pass = \"http://nowhere/\"\n"
    );
    let f = TempFile::with_text("bad-run.toml", &cfg);
    let file = f.path().display().to_string();
    let out = run_bounded(
        ringway(&["--config", &file, "--workers", "1"]),
        Duration::from_secs(10),
    );
    assert!(!out.status.success(), "must not start with a bad config");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "{file}:7:14: server[0].location[0].proxy_pass: unknown upstream \"nowhere\" (none defined)"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("test failed (1 error)"), "{stderr}");
    assert!(
        !stderr.contains("cannot listen") && !stderr.contains("listening on"),
        "{stderr}"
    );
}

#[test]
fn a_good_config_with_a_taken_address_fails_to_start() {
    // The counterpart of the test above: binding is attempted, and reported.
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap();
    let cfg = format!(
        "[[server]]\nlisten = [\"{port}\"]\naccess_log = \"off\"\n\n[[server.location]]\npath = \"/\"\nreturn = {{ status = 200 }}\n"
    );
    let f = TempFile::with_text("taken.toml", &cfg);
    let out = run_bounded(
        ringway(&["--config", f.path().to_str().unwrap(), "--workers", "1"]),
        Duration::from_secs(10),
    );
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains(&format!("cannot listen on {port}")), "{stderr}");
}

#[test]
fn missing_config_file_is_an_error() {
    let path = temp_path("absent.toml");
    let out = run_bounded(
        ringway(&["--check", "--config", path.to_str().unwrap()]),
        Duration::from_secs(10),
    );
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("cannot read config file"), "{stderr}");
}

/// SIGTERM: the request in flight still completes, then the process exits 0.
#[test]
fn sigterm_drains_the_request_in_flight_and_exits_zero() {
    // The backend answers only once the proxy has logged that it is draining.
    let gate = Gate::new();
    let g = gate.clone();
    let backend = Backend::serve(move |_| {
        assert!(g.wait(), "the test never released the request");
        Reply::ok("slow and complete")
    });
    let cfg = format!(
        "[global]\ndrain_timeout = \"10s\"\n\n[[server]]\nlisten = [\"127.0.0.1:0\"]\naccess_log = \"off\"\n\n\
         [[server.location]]\npath = \"/\"\nproxy_pass = \"http://{}\"\n",
        backend.addr
    );
    let f = TempFile::with_text("sigterm.toml", &cfg);
    let child = ringway(&["--config", f.path().to_str().unwrap(), "--workers", "1"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ringway");
    let mut guard = ChildGuard(Some(child));
    let pid = guard.0.as_ref().unwrap().id() as libc::pid_t;

    // stderr is read on a thread until it closes (when the process exits).
    let stderr = guard.0.as_mut().unwrap().stderr.take().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let addr: SocketAddr = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("no \"listening on\" line on stderr");
        if let Some(rest) = line.split("listening on ").nth(1) {
            let a = rest.split([' ', ',']).next().unwrap();
            break a.parse().unwrap_or_else(|_| panic!("no address in {line:?}"));
        }
    };

    let mut client = Client::connect(addr);
    client.send("GET /slow HTTP/1.1\r\nHost: drain.test\r\n\r\n");
    backend.wait_requests(1);
    // SAFETY: kill(2) on the pid of a child we started and have not reaped.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);

    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("no \"draining\" line on stderr after SIGTERM");
        if line.contains("draining") {
            break;
        }
    }
    // The worker has taken the signal once it stops accepting.
    wait_for(Duration::from_secs(10), || {
        std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1))
            .is_err()
            .then_some(())
    })
    .expect("still accepting after SIGTERM");
    gate.open();
    let r = client.response();
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "slow and complete");
    assert!(r.says_close(), "{}", r.head_text());

    let end = Instant::now() + Duration::from_secs(10);
    let status: ExitStatus = loop {
        if let Some(s) = guard.0.as_mut().unwrap().try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < end, "ringway did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    guard.0 = None;
    assert!(status.success(), "exit status {status:?}");
    reader.join().unwrap();
}

//! Real protocol peers that users have: curl, nghttp, and Python clients
//! (`h2` for raw frames, `websockets`, `grpcio`) from a virtualenv under
//! `target/`, made on first use from `tests/peers/requirements.txt`. A
//! missing tool fails the test with what to install: nothing is skipped.
//!
//! Python peers are scripts in `tests/peers/`; each prints one JSON object
//! on its last line of stdout, which the test asserts on.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The longest a peer process may run before it is killed.
pub const PEER_TIMEOUT: Duration = Duration::from_secs(30);

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The test virtualenv's python, made (once per test binary) if missing.
pub fn python() -> PathBuf {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| {
        let venv = root().join("target/test-peers-venv");
        let py = venv.join("bin/python");
        let reqs = root().join("tests/peers/requirements.txt");
        let stamp = venv.join("requirements.txt");
        let wanted = std::fs::read(&reqs).expect("tests/peers/requirements.txt");
        if py.exists() && std::fs::read(&stamp).ok().as_deref() == Some(&wanted[..]) {
            return py;
        }
        // Another test binary may be making it: a lock directory, waited on.
        let lock = root().join("target/test-peers-venv.lock");
        let _ = std::fs::create_dir_all(root().join("target"));
        let start = Instant::now();
        while std::fs::create_dir(&lock).is_err() {
            // A lock left by a test process that was killed while making the
            // virtualenv: its owner is gone, so it is taken over.
            let owner = std::fs::read_to_string(lock.join("pid"))
                .ok()
                .and_then(|p| p.trim().parse::<i32>().ok());
            // SAFETY: signal 0 only checks whether the process exists.
            if owner.is_some_and(|p| unsafe { libc::kill(p, 0) } != 0) {
                let _ = std::fs::remove_dir_all(&lock);
                continue;
            }
            assert!(
                start.elapsed() < Duration::from_secs(600),
                "{} is held",
                lock.display()
            );
            std::thread::sleep(Duration::from_millis(200));
            if py.exists() && std::fs::read(&stamp).ok().as_deref() == Some(&wanted[..]) {
                return py;
            }
        }
        let _ = std::fs::write(lock.join("pid"), std::process::id().to_string());
        let ok = (|| {
            run_ok(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
            run_ok(
                Command::new(venv.join("bin/pip"))
                    .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
                    .arg(&reqs),
            )?;
            std::fs::write(&stamp, &wanted).map_err(|e| e.to_string())
        })();
        let _ = std::fs::remove_dir_all(&lock);
        if let Err(e) = ok {
            panic!("cannot make the test peers' virtualenv (python3 with venv and PyPI access needed): {e}");
        }
        py
    })
    .clone()
}

fn run_ok(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr)))
    }
}

/// Runs `cmd` to its end, killing it after `PEER_TIMEOUT`.
pub fn run(cmd: &mut Command) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (is it installed?)"));
    let start = Instant::now();
    loop {
        match child.try_wait().expect("wait") {
            Some(_) => break,
            None if start.elapsed() > PEER_TIMEOUT => {
                let _ = child.kill();
                break;
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    child.wait_with_output().expect("output")
}

/// Runs a Python peer script from `tests/peers/` and returns its JSON result.
pub fn py(script: &str, args: &[&str]) -> serde_json::Value {
    let path: PathBuf = root().join("tests/peers").join(script);
    let out = run(Command::new(python()).arg(&path).args(args));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or("");
    serde_json::from_str(last).unwrap_or_else(|e| {
        panic!(
            "{script} {args:?}: no JSON result ({e}); status {:?}\nstdout:\n{stdout}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// curl's exit status, headers and body. `args` go before the URL.
pub struct Curl {
    pub status: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

pub fn curl(args: &[&str], url: &str) -> Curl {
    let out = run(Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .args(args)
        .arg(url));
    Curl {
        status: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A path under `tests/peers/`.
pub fn peer_file(name: &str) -> PathBuf {
    root().join("tests/peers").join(name)
}

/// A Python peer server (a script in `tests/peers/`) on 127.0.0.1:0 that
/// prints JSON lines, the first `{"port": N}`; killed on drop.
pub struct PyServer {
    child: Child,
    pub addr: SocketAddr,
    events: mpsc::Receiver<Value>,
    reader: Option<JoinHandle<()>>,
}

impl PyServer {
    pub fn start(script: &str, args: &[&str]) -> PyServer {
        let mut child = Command::new(python())
            .arg(peer_file(script))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {script}: {e}"));
        let stdout = child.stdout.take().expect("stdout");
        let (tx, events) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    if tx.send(v).is_err() {
                        break;
                    }
                }
            }
        });
        let mut s = PyServer {
            child,
            addr: "127.0.0.1:0".parse().unwrap(),
            events,
            reader: Some(reader),
        };
        let first = s
            .events
            .recv_timeout(PEER_TIMEOUT)
            .unwrap_or_else(|_| panic!("{script} printed no port"));
        let port = first["port"].as_u64().expect("a port") as u16;
        s.addr = SocketAddr::from(([127, 0, 0, 1], port));
        s
    }

    /// The next event of this kind ("open", "closed"), skipping others.
    pub fn event(&self, kind: &str) -> Value {
        loop {
            let v = self
                .events
                .recv_timeout(super::IO_TIMEOUT * 2)
                .unwrap_or_else(|_| panic!("the peer server reported no {kind:?} event"));
            if v["event"] == kind {
                return v;
            }
        }
    }
}

impl Drop for PyServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

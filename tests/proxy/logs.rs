//! Access logs: the `json` format read back by serde_json (never by
//! ringway's own code) with hostile bytes in the request, its config
//! refusals, and lines dropped and counted when the writer cannot keep up.

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use serde_json::Value;

use crate::support::{self, Backend, Client, Proxy, Reply, TempFile, IO_TIMEOUT};

fn json_log(backend: std::net::SocketAddr, path: &Path) -> String {
    support::proxy_all(backend, "", "").replace(
        "access_log = \"off\"",
        &format!(
            "access_log = {{ path = {:?}, format = \"json\" }}",
            path.display().to_string()
        ),
    )
}

/// The lines of `path` once it has `n` of them, each parsed as JSON.
fn lines(path: &Path, n: usize) -> Vec<Value> {
    let text = support::wait_for(IO_TIMEOUT, || {
        let t = std::fs::read(path).unwrap_or_default();
        (t.iter().filter(|&&b| b == b'\n').count() >= n).then_some(t)
    })
    .unwrap_or_else(|| panic!("{n} lines in {}", path.display()));
    // The whole file is UTF-8, whatever the requests held.
    let text = String::from_utf8(text).expect("the log is UTF-8");
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}")))
        .collect()
}

/// A backend that answers every request head with "hello", whatever bytes
/// it holds (the kit's backend refuses heads that are not text).
pub(super) fn raw_backend() -> Backend {
    Backend::start(|c| {
        let mut buf = Vec::new();
        let mut tmp = [0u8; 16 * 1024];
        loop {
            while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                buf.drain(..end + 4);
                if c.stream
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
                    .is_err()
                {
                    return;
                }
            }
            match c.stream.read(&mut tmp) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&tmp[..n]),
            }
        }
    })
}

#[test]
fn json_lines_survive_hostile_bytes() {
    let b = raw_backend();
    let log = TempFile::new("access.json");
    let p = Proxy::start(&json_log(b.addr, log.path()));
    // A user agent with quotes, a backslash, a tab, 0xFF, an overlong '/'
    // (C0 AF), a lone continuation byte and well-formed UTF-8; a referer.
    let ua: &[u8] = b"x\"y\\z\t\xff\xc0\xaf\x80 caf\xc3\xa9";
    let mut req = b"GET /a?q=\"1\" HTTP/1.1\r\nHost: h\r\nReferer: http://r/\r\nUser-Agent: ".to_vec();
    req.extend_from_slice(ua);
    req.extend_from_slice(b"\r\n\r\n");
    let mut c = Client::connect(p.addr());
    assert_eq!(c.request(&req).status, 200);
    // A request line with a NUL, control bytes and 0xFF: refused with a
    // 400, logged as received.
    let mut c = Client::connect(p.addr());
    let r = c.request(b"GET /\x00\x01\x1b[31m\xff\\\" HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(r.status, 400);

    let got = lines(log.path(), 2);
    let ok = &got[0];
    assert_eq!(ok["request"], "GET /a?q=\"1\" HTTP/1.1");
    assert_eq!(ok["status"], 200);
    assert_eq!(ok["body_bytes_sent"], 5);
    assert_eq!(ok["remote_addr"], "127.0.0.1");
    assert_eq!(ok["http_referer"], "http://r/");
    // Bytes that are not UTF-8 come back as U+00XX of each byte.
    assert_eq!(ok["http_user_agent"], "x\"y\\z\t\u{ff}\u{c0}\u{af}\u{80} café");
    assert_eq!(ok["upstream_addr"], b.addr.to_string());
    assert_eq!(ok["upstream_status"], "200");
    assert_eq!(ok["ssl_protocol"], Value::Null);
    let id = ok["request_id"].as_str().expect("an id");
    assert_eq!(id.len(), 32, "{id}");
    assert_eq!(bad_id(&got), Value::Null);
    let time = ok["time"].as_str().expect("time is a string");
    assert!(
        time.len() == 25 && time.ends_with("+00:00") && time.as_bytes()[10] == b'T',
        "{time}"
    );

    let bad = &got[1];
    assert_eq!(bad["status"], 400);
    assert_eq!(bad["request"], "GET /\u{0}\u{1}\u{1b}[31m\u{ff}\\\" HTTP/1.1");
    assert_eq!(bad["http_user_agent"], Value::Null);
    assert_eq!(bad["upstream_addr"], Value::Null);
    let fields: Vec<&str> = ok.as_object().unwrap().keys().map(|k| k.as_str()).collect();
    assert_eq!(fields.len(), 13, "{fields:?}");
    assert_eq!(ok["trace_id"], Value::Null);
}

fn bad_id(got: &[Value]) -> Value {
    got[1]["request_id"].clone()
}

#[test]
fn the_table_form_defaults_to_combined() {
    let b = Backend::serve(|_| Reply::ok("hello"));
    let log = TempFile::new("access.log");
    let toml = support::proxy_all(b.addr, "", "").replace(
        "access_log = \"off\"",
        &format!("access_log = {{ path = {:?} }}", log.path().display().to_string()),
    );
    let p = Proxy::start(&toml);
    assert_eq!(Client::connect(p.addr()).get("/c").status, 200);
    let line = support::wait_for(IO_TIMEOUT, || {
        let t = std::fs::read_to_string(log.path()).unwrap_or_default();
        t.ends_with('\n').then_some(t)
    })
    .expect("a line");
    assert!(
        line.starts_with("127.0.0.1 - - [") && line.contains("\"GET /c HTTP/1.1\" 200 5 "),
        "{line}"
    );
}

#[test]
fn access_log_refusals() {
    for (value, says) in [
        (r#"{ path = "/tmp/x", format = "xml" }"#, "unknown format \"xml\""),
        (r#"{ path = "" }"#, "a path, \"stdout\" or \"off\""),
        (r#""""#, "a path, \"stdout\" or \"off\""),
        (
            r#"{ path = "/tmp/x", fromat = "json" }"#,
            "unknown field `fromat`",
        ),
    ] {
        let toml = support::proxy_all("127.0.0.1:9".parse().unwrap(), "", "")
            .replace("access_log = \"off\"", &format!("access_log = {value}"));
        let e = ringway::config::Config::parse(&toml, Path::new("t.toml"))
            .expect_err(value)
            .to_string();
        // Every refusal points at the line of the value.
        let line = toml.lines().position(|l| l.starts_with("access_log")).unwrap() + 1;
        assert!(
            e.contains(&format!("t.toml:{line}:")) && e.contains(says),
            "{value}: {e}"
        );
    }
}

#[test]
fn a_log_nobody_reads_drops_lines_and_counts_them() {
    let b = Backend::serve(|_| Reply::ok("hello"));
    let fifo = TempFile::new("access.fifo");
    let c_path = std::ffi::CString::new(fifo.path().display().to_string()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0, "mkfifo");
    // A reader that never reads: the proxy's open succeeds, its writes
    // fill the pipe and then block.
    let reader = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(fifo.path())
        .expect("open the fifo");
    let before = ringway::log::dropped_log_lines();
    let toml = json_log(b.addr, fifo.path())
        .replace("[[server]]", "[admin]\nlisten = \"127.0.0.1:0\"\n\n[[server]]");
    let p = Proxy::start(&toml);
    // Long lines: the pipe (64 KiB) and the writer's queue fill after a
    // few hundred requests.
    let ua = "u".repeat(2000);
    let mut c = Client::connect(p.addr());
    for i in 0..600 {
        let r = c.request(format!(
            "GET /{i} HTTP/1.1\r\nHost: h\r\nUser-Agent: {ua}\r\n\r\n"
        ));
        assert_eq!(r.status, 200, "request {i}");
    }
    let dropped = support::wait_for(IO_TIMEOUT, || {
        let n = ringway::log::dropped_log_lines() - before;
        (n > 0).then_some(n)
    })
    .expect("lines dropped");
    assert!(dropped < 600, "{dropped}");
    // The count is published (process-wide, so other tests' drops may add
    // to it, never take from it).
    let s = super::metrics::Scrape::take(p.admin_addr(), false);
    let published = s.get("ringway_access_log_lines_dropped_total", &[]);
    assert!(published >= dropped as f64, "{published} < {dropped}");
    // The reader goes away: the writer's next writes fail, and the proxy
    // still stops.
    drop(reader);
    drop(p);
}

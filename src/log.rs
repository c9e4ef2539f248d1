//! Access logs (nginx's combined format, then the TLS protocol and cipher:
//! `$ssl_protocol $ssl_cipher`, `- -` for plain HTTP) and the per-second
//! date cache.
//!
//! Each worker keeps its own buffer per log destination. A line is appended to
//! the buffer, and a flush runs once the tasks that are ready have had their
//! turn: under load many lines go out in one write, when idle each line goes
//! out at once. The write itself is a plain `write(2)` to a file opened in
//! append mode or to stdout: short, and never waiting on the network.
//! Files are opened off the workers ([`LogFiles`], at start, on a reload and
//! on SIGUSR1) and shared by every worker's sinks of one generation.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::{AccessLog, Config};

/// Flush early when a buffer reaches this size.
const FLUSH_AT: usize = 32 * 1024;

enum Target {
    Stdout,
    File(Arc<File>),
}

struct Sink {
    /// Replaced when log files are reopened (SIGUSR1).
    target: RefCell<Target>,
    path: Option<PathBuf>,
    buf: RefCell<Vec<u8>>,
    flush_pending: Cell<bool>,
}

impl Sink {
    fn flush(&self) {
        let mut buf = self.buf.borrow_mut();
        if buf.is_empty() {
            return;
        }
        let res = match &*self.target.borrow() {
            Target::Stdout => std::io::stdout().lock().write_all(&buf),
            Target::File(f) => (&**f).write_all(&buf),
        };
        if let Err(e) = res {
            tracing::warn!("access log write failed: {e}");
        }
        buf.clear();
    }
}

impl Drop for Sink {
    /// A config generation that goes away writes what it still holds.
    fn drop(&mut self) {
        self.flush();
    }
}

/// Every access log file of a config, opened in append mode by the thread
/// that loads the config (never a worker), shared by every worker: each
/// line goes out in one `write(2)` on an `O_APPEND` descriptor, so the
/// workers' lines do not mix.
#[derive(Default)]
pub struct LogFiles {
    files: HashMap<PathBuf, Arc<File>>,
}

impl LogFiles {
    /// Opens (creating when missing) every file named by an `access_log`.
    #[allow(clippy::disallowed_methods)] // off the workers: start, reload, SIGUSR1
    pub fn open(cfg: &Config) -> std::io::Result<LogFiles> {
        let mut files = HashMap::new();
        for s in &cfg.servers {
            let AccessLog::File(p) = &s.access_log else {
                continue;
            };
            if files.contains_key(p) {
                continue;
            }
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|e| std::io::Error::new(e.kind(), format!("access log {}: {e}", p.display())))?;
            files.insert(p.clone(), Arc::new(f));
        }
        Ok(LogFiles { files })
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

/// One request's line in the log.
pub struct Entry<'a> {
    pub client: IpAddr,
    pub request_line: &'a [u8],
    pub status: u16,
    pub body_bytes: u64,
    pub referer: Option<&'a [u8]>,
    pub user_agent: Option<&'a [u8]>,
    /// A request tried on more than one server: every server's address and
    /// status, comma-separated in order (nginx's `$upstream_addr` and
    /// `$upstream_status`), written as two more quoted fields.
    pub tries: Option<(&'a str, &'a str)>,
    /// TLS version and cipher suite; `None` for plain HTTP.
    pub tls: Option<(&'a str, &'a str)>,
}

pub struct AccessLogs {
    sinks: Vec<Rc<Sink>>,
    /// For each server block, its sink (or none for `access_log = "off"`).
    by_server: Vec<Option<usize>>,
}

impl AccessLogs {
    /// One sink per destination named in the config, writing to `files`
    /// (opened off the worker). No file is opened here.
    pub fn new(cfg: &Config, files: &LogFiles) -> AccessLogs {
        let mut sinks: Vec<(AccessLog, Rc<Sink>)> = Vec::new();
        let mut by_server = Vec::new();
        for s in &cfg.servers {
            if s.access_log == AccessLog::Off {
                by_server.push(None);
                continue;
            }
            if let Some(i) = sinks.iter().position(|(t, _)| *t == s.access_log) {
                by_server.push(Some(i));
                continue;
            }
            let (target, path) = match &s.access_log {
                AccessLog::File(p) => match files.files.get(p) {
                    Some(f) => (Target::File(f.clone()), Some(p.clone())),
                    None => {
                        // LogFiles::open fails instead; only a mismatch
                        // between the two could get here.
                        tracing::error!("access log {} is not open; writing to stdout", p.display());
                        (Target::Stdout, None)
                    }
                },
                _ => (Target::Stdout, None),
            };
            by_server.push(Some(sinks.len()));
            sinks.push((
                s.access_log.clone(),
                Rc::new(Sink {
                    target: RefCell::new(target),
                    path,
                    buf: RefCell::new(Vec::with_capacity(4096)),
                    flush_pending: Cell::new(false),
                }),
            ));
        }
        AccessLogs {
            sinks: sinks.into_iter().map(|(_, s)| s).collect(),
            by_server,
        }
    }

    /// Writes what is buffered to the old files, then goes on in `files`
    /// (reopened after a rotation). Returns how many sinks switched.
    pub fn reopen(&self, files: &LogFiles) -> usize {
        let mut n = 0;
        for s in &self.sinks {
            let Some(f) = s.path.as_ref().and_then(|p| files.files.get(p)) else {
                continue;
            };
            s.flush();
            *s.target.borrow_mut() = Target::File(f.clone());
            n += 1;
        }
        n
    }

    pub fn enabled(&self, server: usize) -> bool {
        self.by_server[server].is_some()
    }

    pub fn write(&self, server: usize, dates: &Dates, e: &Entry) {
        let Some(i) = self.by_server[server] else { return };
        let sink = &self.sinks[i];
        {
            let mut b = sink.buf.borrow_mut();
            let _ = write!(b, "{} - - [{}] \"", e.client, dates.log_time());
            escape(e.request_line, &mut b);
            let _ = write!(b, "\" {} {} \"", e.status, e.body_bytes);
            escape(e.referer.unwrap_or(b"-"), &mut b);
            b.extend_from_slice(b"\" \"");
            escape(e.user_agent.unwrap_or(b"-"), &mut b);
            let (version, cipher) = e.tls.unwrap_or(("-", "-"));
            let _ = write!(b, "\" {version} {cipher}");
            // Tried on several servers: nginx's $upstream_addr and
            // $upstream_status, after the fields every line has.
            if let Some((addrs, statuses)) = e.tries {
                let _ = write!(b, " \"{addrs}\" \"{statuses}\"");
            }
            b.push(b'\n');
            if b.len() < FLUSH_AT && sink.flush_pending.get() {
                return;
            }
        }
        if sink.buf.borrow().len() >= FLUSH_AT {
            sink.flush();
            return;
        }
        sink.flush_pending.set(true);
        let sink = sink.clone();
        monoio::spawn(async move {
            crate::io::yield_now().await;
            sink.flush_pending.set(false);
            sink.flush();
        });
    }

    pub fn flush_all(&self) {
        for s in &self.sinks {
            s.flush();
        }
    }
}

/// nginx's escaping for log fields: `"`, `\` and non-printable bytes as `\xHH`.
fn escape(s: &[u8], out: &mut Vec<u8>) {
    for &b in s {
        if b == b'"' || b == b'\\' || !(0x20..0x7f).contains(&b) {
            let _ = write!(out, "\\x{b:02X}");
        } else {
            out.push(b);
        }
    }
}

/// The current time formatted for logs and `Date` headers, recomputed at most
/// once a second per worker.
pub struct Dates {
    second: Cell<u64>,
    log: RefCell<String>,
    http: RefCell<String>,
}

impl Default for Dates {
    fn default() -> Self {
        Dates {
            second: Cell::new(u64::MAX),
            log: RefCell::new(String::new()),
            http: RefCell::new(String::new()),
        }
    }
}

impl Dates {
    fn refresh(&self) {
        let now = SystemTime::now();
        let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if secs == self.second.get() {
            return;
        }
        self.second.set(secs);
        *self.http.borrow_mut() = httpdate::fmt_http_date(now);
        let t = time::OffsetDateTime::from(now);
        let fmt = time::macros::format_description!(
            "[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000"
        );
        *self.log.borrow_mut() = t.format(&fmt).unwrap_or_default();
    }

    /// `10/Oct/2000:13:55:36 +0000`, as in nginx's `$time_local` (in UTC).
    pub fn log_time(&self) -> std::cell::Ref<'_, String> {
        self.refresh();
        self.log.borrow()
    }

    /// An IMF-fixdate for a `Date` header (RFC 9110 §5.6.7).
    pub fn http_date(&self) -> std::cell::Ref<'_, String> {
        self.refresh();
        self.http.borrow()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_nginx() {
        let mut out = Vec::new();
        escape(b"GET /a\"b\\c\x01\xff HTTP/1.1", &mut out);
        assert_eq!(out, b"GET /a\\x22b\\x5Cc\\x01\\xFF HTTP/1.1");
    }

    #[test]
    fn date_shapes() {
        let d = Dates::default();
        let log = d.log_time().clone();
        assert_eq!(log.len(), "10/Oct/2000:13:55:36 +0000".len(), "{log}");
        assert!(d.http_date().ends_with(" GMT"));
    }
}

//! Access logs: nginx's combined format (then the TLS protocol and cipher:
//! `$ssl_protocol $ssl_cipher`, `- -` for plain HTTP) or one JSON object a
//! line ([`json`]), and the per-second date cache.
//!
//! Each worker keeps its own buffer per log destination. A line is appended to
//! the buffer, and the buffer is handed to the destination's writer thread
//! ([`writer`]) once the tasks that are ready have had their turn (or when it
//! reaches [`FLUSH_AT`]): under load many lines go out in one hand-off, when
//! idle each line goes out at once. The worker never writes itself; a writer
//! that is behind makes lines drop (counted), never a request wait.
//! Files are opened off the workers ([`LogFiles`], at start, on a reload and
//! on SIGUSR1) and shared by every worker's sinks of one generation.

mod json;
mod template;
mod writer;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::config::{AccessLog, Config, LogFormat};
pub use template::{basic_user, Escape, Finished, LogTemplate, NAMES as FINISHED_NAMES};
pub use writer::dropped_log_lines;
use writer::{Dest, Writer};

/// Hand a buffer to the writer early when it reaches this size.
const FLUSH_AT: usize = 32 * 1024;

struct Sink {
    /// Replaced when log files are reopened (SIGUSR1).
    target: RefCell<Writer>,
    path: Option<PathBuf>,
    format: LogFormat,
    /// The template of a `LogFormat::Named` format.
    template: Option<std::sync::Arc<LogTemplate>>,
    buf: RefCell<Vec<u8>>,
    /// Lines in `buf`, counted when a full writer queue drops them.
    lines: Cell<u64>,
    flush_pending: Cell<bool>,
}

impl Sink {
    fn flush(&self) {
        let mut buf = self.buf.borrow_mut();
        if buf.is_empty() {
            return;
        }
        let full = std::mem::replace(&mut *buf, Vec::with_capacity(4096));
        self.target.borrow().send(full, self.lines.replace(0));
    }
}

impl Drop for Sink {
    /// A config generation that goes away hands over what it still holds.
    fn drop(&mut self) {
        self.flush();
    }
}

/// Every access log file of a config, opened in append mode by the thread
/// that loads the config (never a worker), each with its writer thread,
/// shared by every worker: a writer writes each buffer it is handed in one
/// `write(2)` on an `O_APPEND` descriptor, so the workers' lines do not mix.
#[derive(Default)]
pub struct LogFiles {
    files: HashMap<PathBuf, Writer>,
}

impl LogFiles {
    /// Opens (creating when missing) every file named by an `access_log`
    /// and starts its writer.
    #[allow(clippy::disallowed_methods)] // off the workers: start, reload, SIGUSR1
    pub fn open(cfg: &Config) -> std::io::Result<LogFiles> {
        let mut files = HashMap::new();
        for s in &cfg.servers {
            let AccessLog::File(p, _) = &s.access_log else {
                continue;
            };
            if files.contains_key(p) {
                continue;
            }
            let what =
                |e: std::io::Error| std::io::Error::new(e.kind(), format!("access log {}: {e}", p.display()));
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(what)?;
            let w = Writer::spawn(Dest::File(f), &p.display().to_string()).map_err(what)?;
            files.insert(p.clone(), w);
        }
        Ok(LogFiles { files })
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Waits, at most until `deadline`, for the lines handed to these
    /// files' writers (and stdout's) to be written. At shutdown, after the
    /// workers flushed; a writer stuck on a slow disk is given up on.
    pub fn drain(&self, deadline: Instant) -> bool {
        let files = self.files.values().all(|w| w.drain(deadline));
        Writer::stdout().drain(deadline) && files
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
    /// Every server the request was sent to: their addresses and statuses,
    /// comma-separated in order (nginx's `$upstream_addr` and
    /// `$upstream_status`). The combined format writes them as two more
    /// quoted fields when there were several.
    pub tries: Option<(&'a str, &'a str)>,
    /// How many servers were tried.
    pub tried: usize,
    /// TLS version and cipher suite; `None` for plain HTTP.
    pub tls: Option<(&'a str, &'a str)>,
    /// `X-Request-ID`; `None` for a request refused before it had one.
    pub request_id: Option<&'a [u8]>,
    /// The W3C trace id sent upstream, if any.
    pub trace_id: Option<&'a [u8]>,
    /// For a `[log_format.NAME]` line: the request's variables (none for
    /// a request refused before its head was read) and what the finished
    /// request adds, made only for such a line.
    pub template: Option<(Option<&'a crate::vars::Request<'a>>, &'a Finished<'a>)>,
}

pub struct AccessLogs {
    sinks: Vec<Rc<Sink>>,
    /// For each server block, its sink (or none for `access_log = "off"`).
    by_server: Vec<Option<usize>>,
}

impl AccessLogs {
    /// One sink per destination and format named in the config, writing
    /// through `files` (opened off the worker). No file is opened here.
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
            let (target, path, format) = match &s.access_log {
                AccessLog::File(p, format) => match files.files.get(p) {
                    Some(w) => (w.clone(), Some(p.clone()), *format),
                    None => {
                        // LogFiles::open fails instead; only a mismatch
                        // between the two could get here.
                        tracing::error!("access log {} is not open; writing to stdout", p.display());
                        (Writer::stdout(), None, *format)
                    }
                },
                AccessLog::Stdout(format) => (Writer::stdout(), None, *format),
                AccessLog::Off => unreachable!("skipped above"),
            };
            by_server.push(Some(sinks.len()));
            sinks.push((
                s.access_log.clone(),
                Rc::new(Sink {
                    target: RefCell::new(target),
                    path,
                    template: match format {
                        LogFormat::Named(i) => cfg.log_formats.get(i).cloned(),
                        _ => None,
                    },
                    format,
                    buf: RefCell::new(Vec::with_capacity(4096)),
                    lines: Cell::new(0),
                    flush_pending: Cell::new(false),
                }),
            ));
        }
        AccessLogs {
            sinks: sinks.into_iter().map(|(_, s)| s).collect(),
            by_server,
        }
    }

    /// Hands what is buffered to the old files' writers, then goes on with
    /// `files` (reopened after a rotation). Returns how many sinks switched.
    pub fn reopen(&self, files: &LogFiles) -> usize {
        let mut n = 0;
        for s in &self.sinks {
            let Some(w) = s.path.as_ref().and_then(|p| files.files.get(p)) else {
                continue;
            };
            s.flush();
            *s.target.borrow_mut() = w.clone();
            n += 1;
        }
        n
    }

    pub fn enabled(&self, server: usize) -> bool {
        self.by_server[server].is_some()
    }

    /// Whether server block `server`'s lines name the server of a request
    /// sent to one only (the `json` format and templates do; `combined`
    /// names them only when there were several).
    pub fn names_upstream(&self, server: usize) -> bool {
        self.by_server[server].is_some_and(|i| self.sinks[i].format != LogFormat::Combined)
    }

    /// Whether server block `server` logs with a `[log_format.NAME]` template.
    pub fn templated(&self, server: usize) -> bool {
        self.by_server[server].is_some_and(|i| self.sinks[i].template.is_some())
    }

    pub fn write(&self, server: usize, dates: &Dates, e: &Entry) {
        let Some(i) = self.by_server[server] else { return };
        let sink = &self.sinks[i];
        {
            let mut b = sink.buf.borrow_mut();
            match (&sink.template, e.template) {
                (Some(t), Some((vars, finished))) => t.write(vars, finished, dates, &mut b),
                (Some(t), None) => t.write(None, &Finished::of(e), dates, &mut b),
                _ if sink.format == LogFormat::Json => json_line(&mut b, dates, e),
                _ => combined(&mut b, dates, e),
            }
            sink.lines.set(sink.lines.get() + 1);
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

/// nginx's combined format, then `$ssl_protocol $ssl_cipher`.
fn combined(b: &mut Vec<u8>, dates: &Dates, e: &Entry) {
    let _ = write!(b, "{} - - [{}] \"", e.client, dates.log_time());
    escape(e.request_line, b);
    let _ = write!(b, "\" {} {} \"", e.status, e.body_bytes);
    escape(e.referer.unwrap_or(b"-"), b);
    b.extend_from_slice(b"\" \"");
    escape(e.user_agent.unwrap_or(b"-"), b);
    let (version, cipher) = e.tls.unwrap_or(("-", "-"));
    let _ = write!(b, "\" {version} {cipher}");
    // Tried on several servers: nginx's $upstream_addr and
    // $upstream_status, after the fields every line has.
    if let (Some((addrs, statuses)), true) = (e.tries, e.tried > 1) {
        let _ = write!(b, " \"{addrs}\" \"{statuses}\"");
    }
    b.push(b'\n');
}

/// The `json` format: one object a line with a fixed set of fields, in this
/// order; a field with no value (no referer, plain HTTP, no upstream) is
/// `null`, numbers are JSON numbers.
fn json_line(b: &mut Vec<u8>, dates: &Dates, e: &Entry) {
    b.push(b'{');
    json::field(b, true, "time", Some(dates.iso_time().as_bytes()));
    json::field(b, false, "remote_addr", Some(e.client.to_string().as_bytes()));
    json::field(b, false, "request", Some(e.request_line));
    let _ = write!(b, ",\"status\":{},\"body_bytes_sent\":{}", e.status, e.body_bytes);
    json::field(b, false, "http_referer", e.referer);
    json::field(b, false, "http_user_agent", e.user_agent);
    json::field(b, false, "upstream_addr", e.tries.map(|t| t.0.as_bytes()));
    json::field(b, false, "upstream_status", e.tries.map(|t| t.1.as_bytes()));
    json::field(b, false, "ssl_protocol", e.tls.map(|t| t.0.as_bytes()));
    json::field(b, false, "ssl_cipher", e.tls.map(|t| t.1.as_bytes()));
    json::field(b, false, "request_id", e.request_id);
    json::field(b, false, "trace_id", e.trace_id);
    b.extend_from_slice(b"}\n");
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
    iso: RefCell<String>,
    http: RefCell<String>,
}

impl Default for Dates {
    fn default() -> Self {
        Dates {
            second: Cell::new(u64::MAX),
            log: RefCell::new(String::new()),
            iso: RefCell::new(String::new()),
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
        let iso = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]+00:00");
        *self.iso.borrow_mut() = t.format(&iso).unwrap_or_default();
    }

    /// `10/Oct/2000:13:55:36 +0000`, as in nginx's `$time_local` (in UTC).
    pub fn log_time(&self) -> std::cell::Ref<'_, String> {
        self.refresh();
        self.log.borrow()
    }

    /// `2000-10-10T13:55:36+00:00`, as in nginx's `$time_iso8601` (in UTC).
    pub fn iso_time(&self) -> std::cell::Ref<'_, String> {
        self.refresh();
        self.iso.borrow()
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

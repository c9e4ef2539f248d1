//! `auth = { request = { url, copy_headers, timeout, cache } }`: forward
//! auth (nginx's `auth_request`, Traefik's ForwardAuth). Each request is
//! first asked of an auth service: a request with the original method and
//! fields (hop-by-hop ones aside, no body) plus `X-Forwarded-Method`,
//! `X-Forwarded-Uri`, `X-Forwarded-Host` and `X-Forwarded-Proto`. A 2xx
//! lets it through with the `copy_headers` fields of the answer; a 401 or
//! 403 goes back to the client with the service's body (and its
//! `WWW-Authenticate`); anything else, a timeout or a failure is a 500.
//!
//! The service's address is resolved when the config loads. Each check is
//! one connection, closed after the answer, all of it under `timeout`. A
//! 2xx is remembered for `cache`, keyed by an HMAC of the request's
//! `Authorization` and `Cookie` values; refusals are not remembered. The
//! remembered answers live per worker thread (a `thread_local!`: they hold
//! the copied fields, which the lock-free table of `cache.rs` cannot), at
//! most [`CACHE_ENTRIES`] on each.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use serde::Deserialize;
use toml::Spanned;

use super::cache::Verified;
use super::config::Report;
use crate::http::encode::{self, is_hop_by_hop};
use crate::http::parse::{parse_response, Parsed};
use crate::http::{BodyKind, RequestHead};
use crate::limit::Refusal;

/// `request = { url = "http://auth:9000/check", copy_headers = ["X-User"],
/// timeout = "1s", cache = "10s" }`.
#[derive(Debug, Deserialize)]
pub struct RawRequest {
    pub url: Spanned<String>,
    pub copy_headers: Option<Spanned<Vec<Spanned<String>>>>,
    pub timeout: Option<Spanned<String>>,
    pub cache: Option<Spanned<String>>,
}

/// Remembered answers per worker thread, across every `request` auth.
pub const CACHE_ENTRIES: usize = 4096;
/// The auth service's answer, head and body, read at most this far.
const MAX_ANSWER: usize = 64 * 1024;
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

pub struct Forward {
    addr: SocketAddr,
    /// `Host` of the subrequest, and its target.
    authority: String,
    path: String,
    /// Lower-case names of the answer's fields copied upstream.
    pub copy: Vec<String>,
    timeout: Duration,
    cache_for: Option<Duration>,
    /// Tells this config load's entries from any other's.
    id: u64,
    /// Only its HMAC key is used: the cache keys' tags.
    tags: Verified,
}

impl std::fmt::Debug for Forward {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Forward({} {})", self.addr, self.path)
    }
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Checks `request` and resolves the service's address.
pub fn check<R: Report>(r: &mut R, raw: &RawRequest, key: &str) -> Option<Forward> {
    let mut ok = true;
    let url = raw.url.get_ref();
    let parsed = url
        .strip_prefix("http://")
        .map(|rest| match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        })
        .filter(|(auth, _)| !auth.is_empty());
    let (authority, path) = match parsed {
        Some(p) => p,
        None => {
            let m = if url.starts_with("https://") {
                "an https auth service is not supported yet: write http://host:port/path".to_string()
            } else {
                format!("{url:?} is not an http://host[:port]/path URL")
            };
            r.error(raw.url.span(), format!("{key}.url"), m);
            return None;
        }
    };
    let with_port = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let addr = match r.resolve(&with_port) {
        Ok(a) => Some(a),
        Err(e) => {
            r.error(raw.url.span(), format!("{key}.url"), e);
            None
        }
    };
    let mut copy = Vec::new();
    for (i, h) in raw
        .copy_headers
        .iter()
        .flat_map(|v| v.get_ref().iter().enumerate())
    {
        if is_token(h.get_ref()) {
            copy.push(h.get_ref().to_ascii_lowercase());
        } else {
            r.error(
                h.span(),
                format!("{key}.copy_headers[{i}]"),
                format!("{:?} is not a field name", h.get_ref()),
            );
            ok = false;
        }
    }
    let mut duration = |r: &mut R, v: &Option<Spanned<String>>, k: &str| -> Option<Duration> {
        let v = v.as_ref()?;
        match humantime::parse_duration(v.get_ref().trim()) {
            Ok(d) => Some(d),
            Err(e) => {
                r.error(
                    v.span(),
                    format!("{key}.{k}"),
                    format!("bad duration {:?}: {e}", v.get_ref()),
                );
                ok = false;
                None
            }
        }
    };
    let timeout = duration(r, &raw.timeout, "timeout").unwrap_or(DEFAULT_TIMEOUT);
    let cache_for = duration(r, &raw.cache, "cache").filter(|d| !d.is_zero());
    if timeout.is_zero() || timeout > Duration::from_secs(60) {
        if let Some(t) = &raw.timeout {
            r.error(
                t.span(),
                format!("{key}.timeout"),
                "must be above 0 and at most 60s".into(),
            );
        }
        ok = false;
    }
    static IDS: AtomicU64 = AtomicU64::new(0);
    (ok && addr.is_some()).then(|| Forward {
        addr: addr.unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0))),
        authority: authority.to_string(),
        path: path.to_string(),
        copy,
        timeout,
        cache_for,
        id: IDS.fetch_add(1, Ordering::Relaxed),
        tags: Verified::new(1),
    })
}

/// A 2xx remembered: its copied fields, until when.
struct Entry {
    lines: Rc<[u8]>,
    until: Instant,
}

thread_local! {
    // Per worker thread: the fields copied from a 2xx, by (auth, tag).
    static ANSWERS: RefCell<HashMap<(u64, [u64; 2]), Entry>> = RefCell::new(HashMap::new());
}

/// What the service said.
enum Answer {
    Pass(Vec<u8>),
    Refuse(u16, Vec<u8>, Vec<u8>),
}

impl Forward {
    fn key(&self, head: &RequestHead) -> Option<(u64, [u64; 2])> {
        self.cache_for?;
        let mut parts: Vec<&[u8]> = Vec::new();
        for (n, v) in head.headers() {
            if n.eq_ignore_ascii_case(b"authorization") {
                parts.extend([&b"a"[..], v]);
            } else if n.eq_ignore_ascii_case(b"cookie") {
                parts.extend([&b"c"[..], v]);
            }
        }
        Some((self.id, self.tags.tag(&parts).words()))
    }

    /// Asks the service; on a 2xx appends the copied fields to `lines`.
    pub async fn check(
        &self,
        head: &RequestHead,
        host: Option<&[u8]>,
        https: bool,
        lines: &mut Vec<u8>,
    ) -> Result<(), Refusal> {
        let key = self.key(head);
        if let Some(k) = key {
            let now = Instant::now();
            let hit = ANSWERS.with(|a| {
                let a = a.borrow();
                a.get(&k).filter(|e| e.until > now).map(|e| e.lines.clone())
            });
            if let Some(l) = hit {
                lines.extend_from_slice(&l);
                return Ok(());
            }
        }
        // Boxed: monoio's timer entry is over-aligned and must not sit
        // inline in the request's future (nor should a rare path's state).
        let asked = Box::pin(monoio::time::timeout(self.timeout, self.ask(head, host, https))).await;
        match asked {
            Ok(Ok(Answer::Pass(copied))) => {
                if let (Some(k), Some(d)) = (key, self.cache_for) {
                    ANSWERS.with(|a| {
                        let mut a = a.borrow_mut();
                        if a.len() >= CACHE_ENTRIES {
                            let now = Instant::now();
                            a.retain(|_, e| e.until > now);
                        }
                        if a.len() < CACHE_ENTRIES {
                            a.insert(
                                k,
                                Entry {
                                    lines: copied.clone().into(),
                                    until: Instant::now() + d,
                                },
                            );
                        }
                    });
                }
                lines.extend_from_slice(&copied);
                Ok(())
            }
            Ok(Ok(Answer::Refuse(status, challenge, body))) => Err(Refusal {
                status,
                lines: challenge,
                body: Some(body),
            }),
            Ok(Err(why)) => {
                tracing::warn!(service = %self.addr, "forward auth failed: {why}");
                Err(Refusal {
                    status: 500,
                    lines: Vec::new(),
                    body: None,
                })
            }
            Err(_) => {
                tracing::warn!(service = %self.addr, "forward auth: no answer within {:?}", self.timeout);
                Err(Refusal {
                    status: 500,
                    lines: Vec::new(),
                    body: None,
                })
            }
        }
    }

    fn subrequest(&self, head: &RequestHead, host: Option<&[u8]>, https: bool) -> Vec<u8> {
        let method = head.method.of(&head.buf);
        let mut out = Vec::with_capacity(head.buf.len() + 256);
        encode::request_line(method, self.path.as_bytes(), &mut out);
        encode::header(b"Host", self.authority.as_bytes(), &mut out);
        for (n, v) in head.headers() {
            let ours = [
                &b"host"[..],
                b"expect",
                b"x-forwarded-method",
                b"x-forwarded-uri",
                b"x-forwarded-host",
                b"x-forwarded-proto",
            ];
            if is_hop_by_hop(n) || ours.iter().any(|o| n.eq_ignore_ascii_case(o)) {
                continue;
            }
            encode::header(n, v, &mut out);
        }
        encode::header(b"X-Forwarded-Method", method, &mut out);
        encode::header(b"X-Forwarded-Uri", head.target.of(&head.buf), &mut out);
        if let Some(h) = host {
            encode::header(b"X-Forwarded-Host", h, &mut out);
        }
        encode::header(
            b"X-Forwarded-Proto",
            if https { b"https" } else { b"http" },
            &mut out,
        );
        // The body stays with the request: the service gets none.
        if !matches!(method, b"GET" | b"HEAD") {
            encode::content_length(0, &mut out);
        }
        encode::header(b"Connection", b"close", &mut out);
        encode::end_head(&mut out);
        out
    }

    async fn ask(&self, head: &RequestHead, host: Option<&[u8]>, https: bool) -> Result<Answer, String> {
        let mut stream = crate::upstream::connect::tcp(self.addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let (res, _) = stream.write_all(self.subrequest(head, host, https)).await;
        res.map_err(|e| format!("send: {e}"))?;
        let mut buf: Vec<u8> = Vec::with_capacity(4096);
        let mut eof = false;
        let (resp, at) = loop {
            if let Parsed::Complete(mut h, n) =
                parse_response(&buf, 100).map_err(|e| format!("answer: {e:?}"))?
            {
                // The head's spans are offsets into its own bytes.
                h.buf = bytes::Bytes::copy_from_slice(&buf[..n]);
                break (h, n);
            }
            if eof || buf.len() >= MAX_ANSWER {
                return Err("no complete answer head".into());
            }
            eof = read_more(&mut stream, &mut buf).await?;
        };
        let status = resp.status;
        if (200..300).contains(&status) {
            let mut copied = Vec::new();
            for (n, v) in resp.headers() {
                if self.copy.iter().any(|c| n.eq_ignore_ascii_case(c.as_bytes())) {
                    encode::header(n, v, &mut copied);
                }
            }
            return Ok(Answer::Pass(copied));
        }
        if status != 401 && status != 403 {
            return Err(format!("the service answered {status}"));
        }
        let mut challenge = Vec::new();
        if let Some(v) = resp.header("www-authenticate") {
            encode::header(b"WWW-Authenticate", v, &mut challenge);
        }
        let meta = crate::http::framing::response_meta(&resp, head.method.of(&head.buf) == b"HEAD")
            .map_err(|e| format!("answer: {e:?}"))?;
        let mut body = buf.split_off(at);
        match meta.body {
            BodyKind::Empty => body.clear(),
            BodyKind::Length(n) => {
                let n = usize::try_from(n).unwrap_or(usize::MAX);
                if n > MAX_ANSWER {
                    return Err("the refusal's body is over 64 KiB".into());
                }
                while body.len() < n && !eof {
                    eof = read_more(&mut stream, &mut body).await?;
                }
                if body.len() < n {
                    return Err("the refusal's body ended early".into());
                }
                body.truncate(n);
            }
            BodyKind::UntilClose => {
                while !eof && body.len() <= MAX_ANSWER {
                    eof = read_more(&mut stream, &mut body).await?;
                }
                if body.len() > MAX_ANSWER {
                    return Err("the refusal's body is over 64 KiB".into());
                }
            }
            BodyKind::Chunked => {
                let mut raw = body;
                let mut dec = crate::http::chunked::Decoder::new();
                let mut data = Vec::new();
                let mut from = 0;
                loop {
                    while from < raw.len() && !dec.is_done() {
                        let p = dec.decode(&raw[from..]).map_err(|e| format!("answer: {e:?}"))?;
                        if let Some(d) = p.data {
                            data.extend_from_slice(&raw[from + d.start..from + d.end]);
                        }
                        from += p.consumed;
                    }
                    if dec.is_done() {
                        break;
                    }
                    if eof || data.len() > MAX_ANSWER {
                        return Err("the refusal's body is incomplete or over 64 KiB".into());
                    }
                    eof = read_more(&mut stream, &mut raw).await?;
                }
                body = data;
            }
        }
        Ok(Answer::Refuse(status, challenge, body))
    }
}

/// Reads more into `buf`; true at the end of the stream.
async fn read_more(stream: &mut monoio::net::TcpStream, buf: &mut Vec<u8>) -> Result<bool, String> {
    let chunk = Vec::with_capacity(8192);
    let (res, chunk) = stream.read(chunk).await;
    match res {
        Ok(0) => Ok(true),
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            Ok(false)
        }
        Err(e) => Err(format!("read: {e}")),
    }
}

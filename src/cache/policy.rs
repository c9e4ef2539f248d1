//! RFC 9111 as pure functions over heads and times: what a shared cache may
//! store, how long it stays fresh, how old it is, what a request's own
//! `Cache-Control` allows, which stored variant a request selects (`Vary`)
//! and what an unsafe method invalidates. No I/O, no clock: the caller
//! hands in the times, so every rule is unit-tested here.

use std::time::SystemTime;

use crate::http::{RequestHead, ResponseHead};

/// `Cache-Control` directives, request or response (RFC 9111 §5.2).
/// A directive given twice keeps its first value; an invalid delta-seconds
/// value is taken as its most conservative meaning.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Directives {
    pub no_store: bool,
    /// `no-cache`, with or without field names (a qualified one is taken
    /// as unqualified: revalidate every time, the safe reading).
    pub no_cache: bool,
    /// `private`, likewise qualified or not: a shared cache never stores it.
    pub private: bool,
    pub public: bool,
    pub must_revalidate: bool,
    pub proxy_revalidate: bool,
    pub max_age: Option<u64>,
    pub s_maxage: Option<u64>,
    /// Request only: `max-stale` (`Some(None)`: any staleness).
    pub max_stale: Option<Option<u64>>,
    pub min_fresh: Option<u64>,
    pub only_if_cached: bool,
    /// RFC 5861.
    pub stale_while_revalidate: Option<u64>,
    pub stale_if_error: Option<u64>,
}

/// Delta-seconds (RFC 9111 §1.2.2): digits only; a value too large for
/// the type is 2^31, as the RFC asks.
fn delta_seconds(v: &[u8]) -> Option<u64> {
    let v = v
        .strip_prefix(b"\"")
        .and_then(|v| v.strip_suffix(b"\""))
        .unwrap_or(v);
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        std::str::from_utf8(v)
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(1 << 31)
            .min(1 << 31),
    )
}

/// Splits a field value at the commas that are not inside a quoted
/// string, trimmed, empty members left out (RFC 9110 §5.6.1).
pub(crate) fn split_list(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(v);
    std::iter::from_fn(move || loop {
        let s = rest?;
        let (mut quoted, mut escaped) = (false, false);
        let mut end = s.len();
        for (i, &b) in s.iter().enumerate() {
            if escaped {
                escaped = false;
                continue;
            }
            match b {
                b'\\' if quoted => escaped = true,
                b'"' => quoted = !quoted,
                b',' if !quoted => {
                    end = i;
                    break;
                }
                _ => {}
            }
        }
        let piece = s[..end].trim_ascii();
        rest = (end < s.len()).then(|| &s[end + 1..]);
        if !piece.is_empty() {
            return Some(piece);
        }
    })
}

/// The values of every field of one name (case ignored), in order.
pub(crate) fn named<'a>(
    fields: impl Iterator<Item = (&'a [u8], &'a [u8])> + 'a,
    name: &'a str,
) -> impl Iterator<Item = &'a [u8]> + 'a {
    fields.filter_map(move |(n, v)| n.eq_ignore_ascii_case(name.as_bytes()).then_some(v))
}

/// The directives of every `Cache-Control` value given.
pub fn directives<'a>(values: impl Iterator<Item = &'a [u8]>) -> Directives {
    let mut d = Directives::default();
    for value in values {
        for item in split_list(value) {
            let (name, arg) = match item.iter().position(|&b| b == b'=') {
                Some(eq) => (item[..eq].trim_ascii(), Some(item[eq + 1..].trim_ascii())),
                None => (item, None),
            };
            let name = name.to_ascii_lowercase();
            // A malformed number is read the safe way: no freshness from
            // max-age (stale), no allowance from the others.
            let secs = arg.map(delta_seconds);
            match name.as_slice() {
                b"no-store" => d.no_store = true,
                b"no-cache" => d.no_cache = true,
                b"private" => d.private = true,
                b"public" => d.public = true,
                b"must-revalidate" => d.must_revalidate = true,
                b"proxy-revalidate" => d.proxy_revalidate = true,
                b"only-if-cached" => d.only_if_cached = true,
                b"max-age" if d.max_age.is_none() => d.max_age = Some(secs.flatten().unwrap_or(0)),
                b"s-maxage" if d.s_maxage.is_none() => d.s_maxage = Some(secs.flatten().unwrap_or(0)),
                b"max-stale" if d.max_stale.is_none() => {
                    d.max_stale = match secs {
                        None => Some(None),
                        Some(s) => Some(Some(s.unwrap_or(0))),
                    }
                }
                b"min-fresh" if d.min_fresh.is_none() => d.min_fresh = secs.flatten().or(Some(0)),
                b"stale-while-revalidate" if d.stale_while_revalidate.is_none() => {
                    d.stale_while_revalidate = secs.flatten()
                }
                b"stale-if-error" if d.stale_if_error.is_none() => d.stale_if_error = secs.flatten(),
                _ => {}
            }
        }
    }
    d
}

/// A response's directives.
pub fn response_directives(head: &ResponseHead) -> Directives {
    directives(named(head.headers(), "cache-control"))
}

/// A request's directives; `Pragma: no-cache` counts as `no-cache` when
/// there is no `Cache-Control` (RFC 9111 §5.4).
pub fn request_directives(head: &RequestHead) -> Directives {
    let mut d = directives(named(head.headers(), "cache-control"));
    if head.header("cache-control").is_none()
        && named(head.headers(), "pragma").any(|v| split_list(v).any(|p| p.eq_ignore_ascii_case(b"no-cache")))
    {
        d.no_cache = true;
    }
    d
}

/// An HTTP-date as seconds since the epoch; `None` when it is not one.
pub fn http_date(v: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(v).ok()?.trim();
    let t = httpdate::parse_http_date(s).ok()?;
    t.duration_since(SystemTime::UNIX_EPOCH).ok().map(|d| d.as_secs())
}

/// What the location's configuration adds to the RFC's rules.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rules<'a> {
    /// `valid`: (status, seconds) for a response without explicit
    /// freshness; status 0 is `any`.
    pub valid: &'a [(u16, u64)],
    /// `heuristic`: RFC 9111 §4.2.2 freshness from Last-Modified.
    pub heuristic: bool,
    /// `ignore_headers = ["Set-Cookie"]`.
    pub ignore_set_cookie: bool,
    /// `ignore_headers = ["Cache-Control"]` / `["Expires"]`: as nginx's
    /// proxy_ignore_headers, these fields are not read for freshness.
    pub ignore_cache_control: bool,
    pub ignore_expires: bool,
    /// The request passed ringway's own `auth`: treated as one with
    /// `Authorization` (§3.5), whatever carried its credentials.
    pub credentials: bool,
}

impl Rules<'_> {
    /// `valid`'s time for a status (its own, else `any`'s).
    pub fn valid_for(&self, status: u16) -> Option<u64> {
        self.valid
            .iter()
            .find(|(s, _)| *s == status)
            .or_else(|| self.valid.iter().find(|(s, _)| *s == 0))
            .map(|(_, t)| *t)
    }
}

/// Statuses cacheable by default (RFC 9110 §15.1), which heuristic
/// freshness may be given to.
fn heuristically_cacheable(status: u16) -> bool {
    matches!(
        status,
        200 | 203 | 204 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// Statuses this cache understands well enough to store: final ones, less
/// 206 (only whole responses are stored) and 304 (not a representation).
fn understood(status: u16) -> bool {
    (200..600).contains(&status) && !matches!(status, 206 | 304)
}

/// Why a response is not stored (for logs and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotStored {
    Method,
    Status,
    NoStore,
    Private,
    Authorization,
    SetCookie,
    VaryAny,
    /// Nothing says it may be kept: no explicit freshness, no `valid`
    /// time, no heuristic, no validator to revalidate with.
    NoFreshness,
}

/// RFC 9111 §3: whether a shared cache may store this response to this
/// request (only GET responses are stored; a HEAD is answered from them).
pub fn storable(
    req: &RequestHead,
    req_cc: &Directives,
    resp: &ResponseHead,
    rules: &Rules,
) -> Result<(), NotStored> {
    if req.method() != b"GET" {
        return Err(NotStored::Method);
    }
    if !understood(resp.status) {
        return Err(NotStored::Status);
    }
    let cc = if rules.ignore_cache_control {
        Directives::default()
    } else {
        response_directives(resp)
    };
    if cc.no_store || req_cc.no_store {
        return Err(NotStored::NoStore);
    }
    if cc.private {
        return Err(NotStored::Private);
    }
    // §3.5: a response to a request with credentials only when the origin
    // said a shared cache may keep it.
    let credentials = rules.credentials || req.header("authorization").is_some();
    if credentials && !(cc.public || cc.s_maxage.is_some() || cc.must_revalidate) {
        return Err(NotStored::Authorization);
    }
    if resp.header("set-cookie").is_some() && !rules.ignore_set_cookie {
        return Err(NotStored::SetCookie);
    }
    if vary_any(resp) {
        return Err(NotStored::VaryAny);
    }
    let explicit = explicit_lifetime(resp, &cc, rules).is_some();
    let validators = resp.header("etag").is_some() || resp.header("last-modified").is_some();
    let heuristic =
        rules.heuristic && heuristically_cacheable(resp.status) && resp.header("last-modified").is_some();
    if explicit
        || cc.public
        || rules.valid_for(resp.status).is_some()
        || heuristic
        || (cc.no_cache && validators)
    {
        Ok(())
    } else {
        Err(NotStored::NoFreshness)
    }
}

/// `Vary: *` (RFC 9111 §4.1: such a response never matches a request).
pub fn vary_any(resp: &ResponseHead) -> bool {
    named(resp.headers(), "vary").any(|v| split_list(v).any(|p| p == b"*"))
}

/// The explicit freshness lifetime (§4.2.1): s-maxage, max-age, then
/// Expires − Date; `None` without any of them.
fn explicit_lifetime(resp: &ResponseHead, cc: &Directives, rules: &Rules) -> Option<u64> {
    if let Some(s) = cc.s_maxage.or(cc.max_age) {
        return Some(s);
    }
    if rules.ignore_expires {
        return None;
    }
    let expires = resp.header("expires")?;
    // An invalid Expires (such as "0") means already expired (§5.3).
    let Some(exp) = http_date(expires) else {
        return Some(0);
    };
    let date = resp.header("date").and_then(http_date)?;
    Some(exp.saturating_sub(date))
}

/// The freshness lifetime of a stored response in seconds (§4.2.1): the
/// explicit one, else the location's `valid` time for its status, else
/// (only when configured) a tenth of the time since Last-Modified, at most
/// a day (§4.2.2), else 0.
pub fn lifetime(resp: &ResponseHead, now: u64, rules: &Rules) -> u64 {
    let cc = if rules.ignore_cache_control {
        Directives::default()
    } else {
        response_directives(resp)
    };
    if let Some(l) = explicit_lifetime(resp, &cc, rules) {
        return l;
    }
    if let Some(v) = rules.valid_for(resp.status) {
        return v;
    }
    if rules.heuristic && heuristically_cacheable(resp.status) {
        if let Some(lm) = resp.header("last-modified").and_then(http_date) {
            let date = resp.header("date").and_then(http_date).unwrap_or(now);
            return (date.saturating_sub(lm) / 10).min(86_400);
        }
    }
    0
}

/// The corrected initial age of a response when it is stored (§4.2.3), in
/// seconds: `request_time` and `response_time` bracket the exchange.
pub fn initial_age(resp: &ResponseHead, request_time: u64, response_time: u64) -> u64 {
    let age_value = resp
        .header("age")
        .and_then(|v| delta_seconds(v.trim_ascii()))
        .unwrap_or(0);
    let date = resp.header("date").and_then(http_date).unwrap_or(response_time);
    let apparent = response_time.saturating_sub(date);
    let delay = response_time.saturating_sub(request_time);
    apparent.max(age_value + delay)
}

/// What a request may be given from a stored entry of `age` seconds and
/// `lifetime` seconds of freshness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// Fresh enough for this request: served as it is.
    Fresh,
    /// Stale (or the request or entry asks for validation): go upstream,
    /// conditionally when the entry has validators.
    Revalidate,
}

/// The facts of a stored entry that decide how it may be used.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stored {
    pub age: u64,
    pub lifetime: u64,
    /// `no-cache` on the stored response: validated on every use.
    pub no_cache: bool,
    /// `must-revalidate`, `proxy-revalidate` or `s-maxage` (§5.2.2.10):
    /// never used stale, whatever a request or `use_stale` allows.
    pub must_revalidate: bool,
}

/// §4.2 and the request's directives (§5.2.1): whether a stored entry may
/// be served without going to the origin.
pub fn usable(e: &Stored, req: &Directives) -> Use {
    if e.no_cache || req.no_cache {
        return Use::Revalidate;
    }
    let fresh_left = e.lifetime as i64 - e.age as i64;
    // max-age=0 asks for a response validated now (ages are whole
    // seconds, so "not older than 0" would otherwise take one of 0.9 s).
    if let Some(max) = req.max_age {
        if e.age > max || max == 0 {
            return Use::Revalidate;
        }
    }
    if let Some(min) = req.min_fresh {
        if fresh_left < min as i64 {
            return Use::Revalidate;
        }
    }
    if fresh_left > 0 {
        return Use::Fresh;
    }
    // §5.2.1.2: a client may accept staleness, unless the origin forbade it.
    match req.max_stale {
        Some(limit) if !e.must_revalidate && limit.is_none_or(|l| (-fresh_left) as u64 <= l) => Use::Fresh,
        _ => Use::Revalidate,
    }
}

/// How long past its freshness an entry stays servable when the origin
/// fails (RFC 5861 `stale-if-error`), if the response said so.
pub fn stale_if_error_ok(e: &Stored, resp_stale_if_error: Option<u64>, req: &Directives) -> bool {
    if e.must_revalidate {
        return false;
    }
    let over = e.age.saturating_sub(e.lifetime);
    let allowed = req.stale_if_error.or(resp_stale_if_error);
    allowed.is_some_and(|a| over <= a)
}

/// RFC 5861 stale-while-revalidate: whether a stale entry is within the
/// window its response gave for serving it while it is refreshed.
pub fn stale_while_revalidate_ok(e: &Stored, swr: Option<u64>) -> bool {
    !e.must_revalidate && swr.is_some_and(|w| e.age.saturating_sub(e.lifetime) <= w)
}

/// Whether `*` or a tag of a comma-separated list matches `ours`: by weak
/// comparison (`W/` set aside), or by strong (neither weak).
fn tag_matches(list: &[u8], ours: &[u8], strong: bool) -> bool {
    let list = list.trim_ascii();
    if list == b"*" {
        return true;
    }
    let (our_weak, ours) = match ours.strip_prefix(b"W/") {
        Some(o) => (true, o),
        None => (false, ours),
    };
    split_list(list).any(|t| {
        let (weak, opaque) = match t.strip_prefix(b"W/") {
            Some(rest) => (true, rest),
            None => (false, t),
        };
        !(strong && (weak || our_weak)) && opaque == ours
    })
}

/// What a request's preconditions make of a stored response with these
/// validators (RFC 9110 §13.2.2, for GET and HEAD): `Some(304)` when the
/// client's copy is current, `Some(412)` when If-Match or
/// If-Unmodified-Since fails, `None` to send the response.
pub fn precondition(req: &RequestHead, etag: Option<&[u8]>, last_modified: Option<&[u8]>) -> Option<u16> {
    let modified = last_modified.and_then(http_date);
    if let Some(v) = req.header("if-match") {
        if !etag.is_some_and(|e| tag_matches(v, e, true)) {
            return Some(412);
        }
    } else if let (Some(d), Some(m)) = (req.header("if-unmodified-since").and_then(http_date), modified) {
        if m > d {
            return Some(412);
        }
    }
    if let Some(v) = req.header("if-none-match") {
        if etag.is_some_and(|e| tag_matches(v, e, false)) || v.trim_ascii() == b"*" {
            return Some(304);
        }
    } else if let (Some(d), Some(m)) = (req.header("if-modified-since").and_then(http_date), modified) {
        if m <= d {
            return Some(304);
        }
    }
    None
}

/// Whether an `If-Range` lets a range through (RFC 9110 §13.1.5): a strong
/// tag equal to the stored one, or a date equal to its Last-Modified.
pub fn if_range_holds(v: &[u8], etag: Option<&[u8]>, last_modified: Option<&[u8]>) -> bool {
    let v = v.trim_ascii();
    if v.starts_with(b"\"") || v.starts_with(b"W/") {
        return !v.starts_with(b"W/") && etag == Some(v);
    }
    http_date(v).is_some() && http_date(v) == last_modified.and_then(http_date)
}

/// The names of the request fields a response varies on, lower-cased
/// (RFC 9111 §4.1); `None` for `Vary: *`.
pub fn vary_names(resp: &ResponseHead) -> Option<Vec<Box<str>>> {
    let mut names: Vec<Box<str>> = Vec::new();
    for v in named(resp.headers(), "vary") {
        for p in split_list(v) {
            if p == b"*" {
                return None;
            }
            let n = String::from_utf8_lossy(p).to_ascii_lowercase().into_boxed_str();
            if !names.contains(&n) {
                names.push(n);
            }
        }
    }
    Some(names)
}

/// A request's values of the fields named, normalised (§4.1: the values
/// of one field combined in order, whitespace around commas removed), for
/// comparing a request with the one a variant was stored for.
pub fn vary_values(req: &RequestHead, names: &[Box<str>]) -> Vec<Option<Box<[u8]>>> {
    names
        .iter()
        .map(|n| {
            let mut out: Option<Vec<u8>> = None;
            for v in named(req.headers(), n) {
                let o = out.get_or_insert_with(Vec::new);
                for p in split_list(v) {
                    if !o.is_empty() {
                        o.push(b',');
                    }
                    o.extend_from_slice(p);
                }
            }
            out.map(Vec::into_boxed_slice)
        })
        .collect()
}

/// §4.4: an unsafe method whose response is a success or a redirect
/// invalidates what is stored for the target URI (and for same-host
/// `Location` and `Content-Location`, see `invalidated_paths`).
pub fn invalidates(method: &[u8], status: u16) -> bool {
    !matches!(method, b"GET" | b"HEAD" | b"OPTIONS" | b"TRACE") && (200..400).contains(&status)
}

/// The request-URI parts (path and query) of a response's `Location` and
/// `Content-Location` that name the same host as the request (§4.4: a
/// cache must not invalidate another origin's entries on one's say-so).
pub fn invalidated_paths(resp: &ResponseHead, scheme: &[u8], host: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for name in ["location", "content-location"] {
        let Some(v) = resp.header(name) else { continue };
        let v = v.trim_ascii();
        if v.starts_with(b"/") && !v.starts_with(b"//") {
            out.push(v.to_vec());
            continue;
        }
        let Some(rest) = v.strip_prefix(scheme).and_then(|r| r.strip_prefix(b"://")) else {
            continue;
        };
        let end = rest
            .iter()
            .position(|&b| b == b'/' || b == b'?')
            .unwrap_or(rest.len());
        if rest[..end].eq_ignore_ascii_case(host) {
            let path = &rest[end..];
            out.push(if path.is_empty() {
                b"/".to_vec()
            } else {
                path.to_vec()
            });
        }
    }
    out
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;

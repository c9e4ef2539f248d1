//! `[[cache]]` zones and a location's `cache = { ... }` as written, their
//! checks and the compiled plans. The config loader hands a [`Report`] in,
//! so these errors carry file:line:col like every other.

use std::collections::BTreeMap;

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::compress::RawSize as StrOrInt;
pub use crate::compress::Report;
use crate::vars::{Scope, Template};

/// `[[cache]] name = "main", memory = "512m", max_object = "8m"`.
#[derive(Debug, Deserialize)]
pub struct RawZone {
    pub name: Spanned<String>,
    pub memory: Option<Spanned<StrOrInt>>,
    pub max_object: Option<Spanned<StrOrInt>>,
}

/// A location's `cache = { zone = "main", ... }`.
#[derive(Debug, Deserialize)]
pub struct RawCache {
    pub zone: Spanned<String>,
    pub key: Option<Spanned<String>>,
    pub valid: Option<Spanned<BTreeMap<String, Spanned<String>>>>,
    pub bypass: Option<Spanned<Vec<Spanned<String>>>>,
    pub status_header: Option<Spanned<String>>,
    pub ignore_headers: Option<Spanned<Vec<Spanned<String>>>>,
    pub heuristic: Option<Spanned<bool>>,
    pub lock: Option<Spanned<bool>>,
    pub lock_timeout: Option<Spanned<String>>,
    pub use_stale: Option<Spanned<Vec<Spanned<String>>>>,
    pub purge_allow: Option<Spanned<Vec<Spanned<String>>>>,
    pub min_uses: Option<Spanned<i64>>,
    pub background_update: Option<Spanned<bool>>,
}

/// One `[[cache]]` zone, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneDef {
    pub name: String,
    /// `memory`: the bytes the memory tier may hold (nginx's keys_zone
    /// and max_size together: entries and their index).
    pub memory: u64,
    /// `max_object`: the largest body stored; a larger response is sent
    /// on uncached. Default 8 MiB (or `memory`, if smaller).
    pub max_object: u64,
}

pub const DEFAULT_MAX_OBJECT: u64 = 8 << 20;
pub const DEFAULT_KEY: &str = "$scheme$host$request_uri";
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(5);
/// The smallest zone worth having: a few entries.
const MIN_MEMORY: u64 = 64 * 1024;

/// A location's cache plan.
#[derive(Debug, Clone)]
pub struct Cache {
    /// The zone's position in the config's `[[cache]]` list.
    pub zone: usize,
    pub zone_name: String,
    /// `key`: what entries are found by (nginx's proxy_cache_key).
    pub key: Template,
    /// Whether `key` is the default one, so that a `Location` URI can be
    /// turned into the key it invalidates (RFC 9111 §4.4).
    pub key_is_default: bool,
    /// `valid`: (status, seconds), status 0 for `any` (nginx's
    /// proxy_cache_valid): only for responses without explicit freshness.
    pub valid: Vec<(u16, u64)>,
    /// `bypass`: a request with any of these non-empty and not "0" goes
    /// upstream and its response is stored (nginx's proxy_cache_bypass).
    pub bypass: Vec<Template>,
    /// `status_header`: the field that carries HIT, MISS, ... (nginx's
    /// `add_header X-Cache-Status $upstream_cache_status`).
    pub status_header: Option<String>,
    /// `ignore_headers` (nginx's proxy_ignore_headers).
    pub ignore_set_cookie: bool,
    pub ignore_cache_control: bool,
    pub ignore_expires: bool,
    /// `heuristic`: RFC 9111 §4.2.2 freshness from Last-Modified.
    pub heuristic: bool,
    /// The location authenticates its requests itself (`auth`): a request
    /// that passed is as one with `Authorization` to RFC 9111 §3.5, so its
    /// response is stored only if the origin says a shared cache may keep
    /// it (`public`, `s-maxage`, `must-revalidate`). Set with the access plan.
    pub credentials: bool,
    /// `lock`: concurrent misses of a key make one origin request, the
    /// others wait for it (nginx's proxy_cache_lock).
    pub lock: bool,
    /// `lock_timeout`: how long a request waits for another's fetch before
    /// it goes to the origin itself, without storing (default 5 s).
    pub lock_timeout: Duration,
    /// `use_stale`: when a stale entry is served because the origin failed
    /// (nginx's proxy_cache_use_stale; RFC 5861's stale-if-error is read
    /// from responses as well).
    pub use_stale: UseStale,
    /// `purge_allow`: clients (CIDRs or addresses) whose `PURGE` removes
    /// the request's entry; a `PURGE` from anyone else gets 403, and none
    /// goes to the origin (nginx's proxy_cache_purge, a commercial one).
    pub purge_allow: Vec<ipnet::IpNet>,
    /// `min_uses`: a response is stored from the Nth miss of its key on
    /// (nginx's proxy_cache_min_uses; default 1).
    pub min_uses: u32,
    /// `background_update` (with `updating` in `use_stale`): the request
    /// that finds an entry stale is answered from it too, and the refresh
    /// runs in the background (nginx's proxy_cache_background_update).
    pub background_update: bool,
}

/// The origin failures `use_stale` lists.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UseStale {
    /// `error`: no connection, a reset, no live server.
    pub error: bool,
    /// `timeout`: connect, send or read timed out.
    pub timeout: bool,
    /// `invalid_header`: the origin's answer was not valid HTTP.
    pub invalid_header: bool,
    /// `updating`: while one request refreshes a stale entry, the others
    /// get the stale entry at once.
    pub updating: bool,
    /// `http_500`, `http_502`, `http_503`, `http_504`.
    pub statuses: [bool; 4],
}

/// The statuses `use_stale` can name, in `UseStale::statuses` order.
pub const STALE_STATUSES: [u16; 4] = [500, 502, 503, 504];

impl UseStale {
    pub fn on_status(&self, status: u16) -> bool {
        STALE_STATUSES
            .iter()
            .zip(self.statuses)
            .any(|(s, on)| on && *s == status)
    }
}

const USE_STALE: [&str; 8] = [
    "error",
    "timeout",
    "invalid_header",
    "updating",
    "http_500",
    "http_502",
    "http_503",
    "http_504",
];

/// `"10m"`, `"1h"`, `"30s"`, `"0"`: a duration in whole seconds.
fn seconds(s: &str) -> Option<u64> {
    let s = s.trim();
    if s == "0" {
        return Some(0);
    }
    humantime::parse_duration(s).ok().map(|d| d.as_secs())
}

/// A size value, as every size of the config is written.
fn size<R: Report>(r: &mut R, v: &Spanned<StrOrInt>, key: String) -> Option<u64> {
    let n = match v.get_ref() {
        StrOrInt::Int(n) => u64::try_from(*n).ok(),
        StrOrInt::Str(s) => r.parse_size(s),
    };
    if n.is_none() {
        r.error(
            v.span(),
            key,
            "must be a size such as \"512m\", \"8k\" or a number of bytes".into(),
        );
    }
    n
}

/// Checks every `[[cache]]`; the ones in error are left out.
pub fn check_zones<R: Report>(r: &mut R, raw: &[Spanned<RawZone>]) -> Vec<ZoneDef> {
    let mut out: Vec<ZoneDef> = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    for (i, z) in raw.iter().enumerate() {
        let key = format!("cache[{i}]");
        let z = z.get_ref();
        let name = z.name.get_ref().trim().to_string();
        if name.is_empty() {
            r.error(
                z.name.span(),
                format!("{key}.name"),
                "needs a name, which locations give as `cache = { zone = \"...\" }`".into(),
            );
            continue;
        }
        if seen.contains(&name) {
            r.error(
                z.name.span(),
                format!("{key}.name"),
                format!("cache {name:?} is defined twice"),
            );
            continue;
        }
        seen.push(name.clone());
        let memory = match &z.memory {
            None => {
                r.error(
                    z.name.span(),
                    format!("{key}.memory"),
                    "needs `memory = \"512m\"`: the bytes the zone may hold".into(),
                );
                None
            }
            Some(m) => match size(r, m, format!("{key}.memory")) {
                Some(n) if n < MIN_MEMORY => {
                    r.error(
                        m.span(),
                        format!("{key}.memory"),
                        "is below 64k: too small to hold anything worth caching".into(),
                    );
                    None
                }
                n => n,
            },
        };
        let max_object = match &z.max_object {
            None => Some(DEFAULT_MAX_OBJECT.min(memory.unwrap_or(u64::MAX))),
            Some(m) => match (size(r, m, format!("{key}.max_object")), memory) {
                (Some(0), _) => {
                    r.error(m.span(), format!("{key}.max_object"), "must be above 0".into());
                    None
                }
                (Some(o), Some(mem)) if o > mem => {
                    r.error(
                        m.span(),
                        format!("{key}.max_object"),
                        "is larger than `memory`: no such object could be held".into(),
                    );
                    None
                }
                (o, _) => o,
            },
        };
        if let (Some(memory), Some(max_object)) = (memory, max_object) {
            out.push(ZoneDef {
                name,
                memory,
                max_object,
            });
        }
    }
    out
}

/// The statuses a `valid` key lists: whole numbers from 100 to 599, or
/// `any` (0).
fn statuses(s: &str) -> Option<Vec<u16>> {
    s.split_whitespace()
        .map(|w| match w {
            "any" => Some(0),
            _ => w.parse::<u16>().ok().filter(|n| (100..=599).contains(n)),
        })
        .collect::<Option<Vec<u16>>>()
        .filter(|v| !v.is_empty())
}

/// The fields `ignore_headers` may name (nginx's proxy_ignore_headers).
const IGNORABLE: [&str; 3] = ["Set-Cookie", "Cache-Control", "Expires"];

/// A location's `cache`; `zones` are the checked zones, `defined` every
/// zone name written (one in error is not also called unknown).
pub fn check_location<R: Report>(
    r: &mut R,
    v: &Spanned<RawCache>,
    key: &str,
    zones: &[ZoneDef],
    defined: &[String],
    scope: Scope,
) -> Option<Cache> {
    let c = v.get_ref();
    let mut ok = true;
    let zname = c.zone.get_ref().trim();
    let zone = zones.iter().position(|z| z.name == zname);
    if zone.is_none() && !defined.iter().any(|d| d == zname) {
        let hint = closest(zname, defined);
        let msg = match (hint, defined.is_empty()) {
            (_, true) => {
                format!("unknown cache zone {zname:?} (none defined: add a [[cache]] with this name)")
            }
            (Some(h), _) => format!("unknown cache zone {zname:?}; did you mean {h:?}?"),
            (None, _) => format!(
                "unknown cache zone {zname:?} (defined: {})",
                defined
                    .iter()
                    .map(|d| format!("{d:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        r.error(c.zone.span(), format!("{key}.zone"), msg);
        ok = false;
    }
    let key_text = c.key.as_ref().map_or(DEFAULT_KEY, |k| k.get_ref().as_str());
    let template = match Template::parse(key_text, scope) {
        Ok(t) if t.as_literal().is_some() => {
            let span = c.key.as_ref().map_or(c.zone.span(), |k| k.span());
            r.error(
                span,
                format!("{key}.key"),
                "a key without variables puts every request on one entry: write one such as \"$scheme$host$request_uri\"".into(),
            );
            ok = false;
            None
        }
        Ok(t) => Some(t),
        Err(e) => {
            let span = c.key.as_ref().map_or(c.zone.span(), |k| k.span());
            r.error(span, format!("{key}.key"), e);
            ok = false;
            None
        }
    };
    let mut valid = Vec::new();
    if let Some(vs) = &c.valid {
        for (codes, time) in vs.get_ref() {
            let Some(list) = statuses(codes) else {
                r.error(
                    time.span(),
                    format!("{key}.valid.{codes:?}"),
                    format!("bad status list {codes:?}: write statuses from 100 to 599 and `any`, such as \"200 301 302\""),
                );
                ok = false;
                continue;
            };
            let Some(secs) = seconds(time.get_ref()) else {
                r.error(
                    time.span(),
                    format!("{key}.valid.{codes:?}"),
                    format!(
                        "bad time {:?}: write a duration such as \"10m\", \"1h\" or \"30s\"",
                        time.get_ref()
                    ),
                );
                ok = false;
                continue;
            };
            for s in list {
                if valid.iter().any(|(v, _)| *v == s) {
                    let what = if s == 0 { "any".to_string() } else { s.to_string() };
                    r.error(
                        time.span(),
                        format!("{key}.valid.{codes:?}"),
                        format!("status {what} is given two times"),
                    );
                    ok = false;
                } else {
                    valid.push((s, secs));
                }
            }
        }
    }
    let mut bypass = Vec::new();
    for (i, b) in c
        .bypass
        .as_ref()
        .map_or(&[][..], |b| b.get_ref())
        .iter()
        .enumerate()
    {
        match Template::parse(b.get_ref(), scope) {
            Ok(t) if t.as_literal().is_some() => {
                r.error(
                    b.span(),
                    format!("{key}.bypass[{i}]"),
                    "a bypass without variables is always or never true: write one such as \"$http_x_no_cache\"".into(),
                );
                ok = false;
            }
            Ok(t) => bypass.push(t),
            Err(e) => {
                r.error(b.span(), format!("{key}.bypass[{i}]"), e);
                ok = false;
            }
        }
    }
    let status_header = match &c.status_header {
        None => None,
        Some(h) => {
            let name = h.get_ref().trim();
            if name.is_empty() || !name.bytes().all(crate::http::encode::is_token) {
                r.error(
                    h.span(),
                    format!("{key}.status_header"),
                    format!("{name:?} is not a field name: write one such as \"X-Cache-Status\""),
                );
                ok = false;
            }
            Some(name.to_string())
        }
    };
    let (mut ignore_set_cookie, mut ignore_cache_control, mut ignore_expires) = (false, false, false);
    for (i, h) in c
        .ignore_headers
        .as_ref()
        .map_or(&[][..], |h| h.get_ref())
        .iter()
        .enumerate()
    {
        match h.get_ref().to_ascii_lowercase().as_str() {
            "set-cookie" => ignore_set_cookie = true,
            "cache-control" => ignore_cache_control = true,
            "expires" => ignore_expires = true,
            other => {
                let names = IGNORABLE.map(String::from);
                let msg = match closest(other, &names) {
                    Some(k) => format!("{:?} cannot be ignored; did you mean {k:?}?", h.get_ref()),
                    None => format!(
                        "{:?} cannot be ignored: only \"Set-Cookie\", \"Cache-Control\" and \"Expires\" can",
                        h.get_ref()
                    ),
                };
                r.error(h.span(), format!("{key}.ignore_headers[{i}]"), msg);
                ok = false;
            }
        }
    }
    let heuristic = c.heuristic.as_ref().is_some_and(|h| *h.get_ref());
    let mut use_stale = UseStale::default();
    for (i, u) in c
        .use_stale
        .as_ref()
        .map_or(&[][..], |u| u.get_ref())
        .iter()
        .enumerate()
    {
        match u.get_ref().as_str() {
            "error" => use_stale.error = true,
            "timeout" => use_stale.timeout = true,
            "invalid_header" => use_stale.invalid_header = true,
            "updating" => use_stale.updating = true,
            "http_500" => use_stale.statuses[0] = true,
            "http_502" => use_stale.statuses[1] = true,
            "http_503" => use_stale.statuses[2] = true,
            "http_504" => use_stale.statuses[3] = true,
            other => {
                let names = USE_STALE.map(String::from);
                let msg = match closest(other, &names) {
                    Some(k) => format!("unknown condition {other:?}; did you mean {k:?}?"),
                    None => format!("unknown condition {other:?} (known: {})", USE_STALE.join(", ")),
                };
                r.error(u.span(), format!("{key}.use_stale[{i}]"), msg);
                ok = false;
            }
        }
    }
    let mut purge_allow = Vec::new();
    for (i, a) in c
        .purge_allow
        .as_ref()
        .map_or(&[][..], |a| a.get_ref())
        .iter()
        .enumerate()
    {
        let s = a.get_ref().trim();
        match s
            .parse::<ipnet::IpNet>()
            .ok()
            .or_else(|| s.parse::<std::net::IpAddr>().ok().map(ipnet::IpNet::from))
        {
            Some(net) => purge_allow.push(net.trunc()),
            None => {
                r.error(
                    a.span(),
                    format!("{key}.purge_allow[{i}]"),
                    format!("{s:?} is not an address or a CIDR such as \"10.0.0.0/8\""),
                );
                ok = false;
            }
        }
    }
    let min_uses = match &c.min_uses {
        None => 1,
        Some(m) if (1..=1_000_000).contains(m.get_ref()) => *m.get_ref() as u32,
        Some(m) => {
            r.error(
                m.span(),
                format!("{key}.min_uses"),
                "must be a whole number from 1 to 1000000".into(),
            );
            ok = false;
            1
        }
    };
    let background_update = match &c.background_update {
        Some(b) if *b.get_ref() && !use_stale.updating => {
            r.error(
                b.span(),
                format!("{key}.background_update"),
                "needs \"updating\" in `use_stale`: the stale entry is what the client gets meanwhile".into(),
            );
            ok = false;
            false
        }
        b => b.as_ref().is_some_and(|b| *b.get_ref()),
    };
    let lock = c.lock.as_ref().is_some_and(|l| *l.get_ref());
    let lock_timeout = match &c.lock_timeout {
        None => DEFAULT_LOCK_TIMEOUT,
        Some(t) if !lock => {
            r.error(
                t.span(),
                format!("{key}.lock_timeout"),
                "only applies with `lock = true`".into(),
            );
            ok = false;
            DEFAULT_LOCK_TIMEOUT
        }
        Some(t) => match humantime::parse_duration(t.get_ref().trim()) {
            Ok(d) if !d.is_zero() && d <= Duration::from_secs(600) => d,
            _ => {
                r.error(
                    t.span(),
                    format!("{key}.lock_timeout"),
                    format!(
                        "bad time {:?}: write a duration above 0 and at most 10m, such as \"5s\"",
                        t.get_ref()
                    ),
                );
                ok = false;
                DEFAULT_LOCK_TIMEOUT
            }
        },
    };
    let (zone, key) = (zone?, template?);
    ok.then(|| Cache {
        zone,
        zone_name: zname.to_string(),
        key_is_default: key.text == DEFAULT_KEY,
        key,
        valid,
        bypass,
        status_header,
        ignore_set_cookie,
        ignore_cache_control,
        ignore_expires,
        heuristic,
        credentials: false,
        lock,
        lock_timeout,
        use_stale,
        purge_allow,
        min_uses,
        background_update,
    })
}

/// The closest of `names` to `s`, when it is near enough to be a typo
/// (the loader's own rule: an edit distance of 2 at most).
fn closest<'a>(s: &str, names: &'a [String]) -> Option<&'a str> {
    names
        .iter()
        .map(|n| {
            (
                strsim::levenshtein(&s.to_ascii_lowercase(), &n.to_ascii_lowercase()),
                n,
            )
        })
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, n)| n.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lists_and_times() {
        assert_eq!(statuses("200 301 302"), Some(vec![200, 301, 302]));
        assert_eq!(statuses("any"), Some(vec![0]));
        assert_eq!(statuses("200 abc"), None);
        assert_eq!(statuses("600"), None);
        assert_eq!(statuses(""), None);
        assert_eq!(seconds("10m"), Some(600));
        assert_eq!(seconds("0"), Some(0));
        assert_eq!(seconds("ten"), None);
    }
}

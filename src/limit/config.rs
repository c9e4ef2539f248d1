//! `[[limit]]` as written, its checks and the compiled [`Limit`]; and the
//! `limits = [...]` lists of server blocks and locations. The config loader
//! hands a [`Report`] in, so these errors carry file:line:col like every
//! other.

use serde::Deserialize;
use toml::Spanned;

pub use crate::compress::Report;
use crate::vars::{Scope, Template};

/// `[[limit]] name = "per_ip", key = "$remote_addr", rate = "10r/s",
/// burst = 20, delay = 0 | nodelay = true, status = 429, dry_run = false,
/// max_keys = 100000` or, instead of `rate`, `connections = 10`.
#[derive(Debug, Deserialize)]
pub struct RawLimit {
    pub name: Spanned<String>,
    pub key: Spanned<String>,
    pub rate: Option<Spanned<String>>,
    pub burst: Option<Spanned<i64>>,
    pub delay: Option<Spanned<i64>>,
    pub nodelay: Option<Spanned<bool>>,
    pub connections: Option<Spanned<i64>>,
    pub status: Option<Spanned<i64>>,
    pub dry_run: Option<bool>,
    pub max_keys: Option<Spanned<i64>>,
}

/// One `[[limit]]`, checked.
#[derive(Debug, Clone)]
pub struct Limit {
    pub name: String,
    /// `key`: what requests are counted by; a request whose key expands
    /// to nothing is not limited (as nginx).
    pub key: Template,
    pub kind: Kind,
    /// `status`: the refusal's. Default 429 for a rate, 503 for connections.
    pub status: u16,
    /// `dry_run`: count and log what would be refused or delayed, but
    /// serve everything at once (nginx's `limit_req_dry_run`).
    pub dry_run: bool,
    /// `max_keys`: keys the table holds. Default 100,000.
    pub max_keys: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `rate`, `burst`, `delay`: one request per `interval` ns per key,
    /// `burst` beyond it; of those, the ones past `delay` wait (`None`:
    /// `nodelay`).
    Rate {
        interval: u64,
        burst: u64,
        delay: Option<u64>,
    },
    /// `connections`: requests in flight per key.
    Connections(u64),
}

pub const DEFAULT_MAX_KEYS: usize = 100_000;
/// A table slot is 16 bytes and there are two per key: 10 million keys is
/// 512 MiB, which is as far as one limit may go.
const MOST_KEYS: i64 = 10_000_000;

/// `"10r/s"` or `"600r/m"`: the interval between two requests, in ns.
fn parse_rate(s: &str) -> Option<u64> {
    let s = s.trim();
    let (n, per) = s
        .strip_suffix("r/s")
        .map(|n| (n, 1_000_000_000u64))
        .or_else(|| s.strip_suffix("r/m").map(|n| (n, 60_000_000_000)))?;
    let n: u64 = n.parse().ok().filter(|n| *n > 0 && *n <= 1_000_000_000)?;
    Some((per / n).max(1))
}

/// Checks every `[[limit]]`; the ones in error are left out.
pub fn check<R: Report>(r: &mut R, raw: &[Spanned<RawLimit>]) -> Vec<Limit> {
    let mut out: Vec<Limit> = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for (i, l) in raw.iter().enumerate() {
        let key = format!("limit[{i}]");
        let l = l.get_ref();
        let name = l.name.get_ref().trim();
        if seen.contains(&name) {
            r.error(
                l.name.span(),
                format!("{key}.name"),
                format!("limit {name:?} is defined twice"),
            );
            continue;
        }
        seen.push(name);
        if let Some(plan) = check_one(r, l, &key) {
            out.push(plan);
        }
    }
    out
}

fn check_one<R: Report>(r: &mut R, l: &RawLimit, key: &str) -> Option<Limit> {
    let mut ok = true;
    let mut err = |r: &mut R, span: std::ops::Range<usize>, k: &str, m: String| {
        r.error(span, format!("{key}.{k}"), m);
        ok = false;
    };
    let name = l.name.get_ref().trim().to_string();
    if name.is_empty() {
        err(
            r,
            l.name.span(),
            "name",
            "needs a name, which locations list in `limits`".into(),
        );
    }
    let template = match Template::parse(l.key.get_ref(), Scope::default()) {
        Ok(t) if t.as_literal() == Some("") => {
            err(
                r,
                l.key.span(),
                "key",
                "an empty key limits nothing: write a variable such as \"$remote_addr\"".into(),
            );
            None
        }
        Ok(t) => Some(t),
        Err(e) => {
            err(r, l.key.span(), "key", e);
            None
        }
    };
    let kind = match (&l.rate, &l.connections) {
        (Some(_), Some(c)) => {
            err(
                r,
                c.span(),
                "connections",
                "a limit has `rate` or `connections`, not both: write two [[limit]]s".into(),
            );
            None
        }
        (None, None) => {
            err(
                r,
                l.name.span(),
                "rate",
                "needs `rate = \"10r/s\"` (or \"600r/m\") or `connections = 10`".into(),
            );
            None
        }
        (Some(rate), None) => {
            let interval = parse_rate(rate.get_ref());
            if interval.is_none() {
                err(
                    r,
                    rate.span(),
                    "rate",
                    format!(
                        "bad rate {:?}: write whole requests per second or minute, \"10r/s\" or \"600r/m\"",
                        rate.get_ref()
                    ),
                );
            }
            let burst = match &l.burst {
                None => Some(0),
                Some(b) if (0..=1_000_000).contains(b.get_ref()) => Some(*b.get_ref() as u64),
                Some(b) => {
                    err(
                        r,
                        b.span(),
                        "burst",
                        "must be a whole number from 0 to 1000000".into(),
                    );
                    None
                }
            };
            let delay = match (&l.delay, &l.nodelay) {
                (Some(d), Some(n)) if *n.get_ref() => {
                    err(
                        r,
                        d.span(),
                        "delay",
                        "`delay` and `nodelay = true` contradict each other: keep one".into(),
                    );
                    None
                }
                (_, Some(n)) if *n.get_ref() => Some(None),
                (None, _) => Some(Some(0)),
                (Some(d), _) => match (u64::try_from(*d.get_ref()), burst) {
                    (Ok(n), Some(b)) if n <= b => Some(Some(n)),
                    (Ok(_), Some(_)) => {
                        err(
                            r,
                            d.span(),
                            "delay",
                            "is above `burst`, so no request would wait: write `nodelay = true`".into(),
                        );
                        None
                    }
                    (Ok(_), None) => None,
                    (Err(_), _) => {
                        err(
                            r,
                            d.span(),
                            "delay",
                            "must be a whole number from 0 to `burst`".into(),
                        );
                        None
                    }
                },
            };
            match (interval, burst, delay) {
                (Some(interval), Some(burst), Some(delay)) => Some(Kind::Rate {
                    interval,
                    burst,
                    delay,
                }),
                _ => None,
            }
        }
        (None, Some(c)) => {
            for (k, span) in [
                ("burst", l.burst.as_ref().map(Spanned::span)),
                ("delay", l.delay.as_ref().map(Spanned::span)),
                ("nodelay", l.nodelay.as_ref().map(Spanned::span)),
            ] {
                if let Some(span) = span {
                    err(
                        r,
                        span,
                        k,
                        format!("`{k}` belongs to a `rate` limit, not to `connections`"),
                    );
                }
            }
            match *c.get_ref() {
                n @ 1..=1_000_000_000 => Some(Kind::Connections(n as u64)),
                _ => {
                    err(
                        r,
                        c.span(),
                        "connections",
                        "must be a whole number above 0".into(),
                    );
                    None
                }
            }
        }
    };
    let default_status = if matches!(kind, Some(Kind::Connections(_))) {
        503
    } else {
        429
    };
    let status = match &l.status {
        None => default_status,
        Some(s) if (400..=599).contains(s.get_ref()) => *s.get_ref() as u16,
        Some(s) => {
            err(
                r,
                s.span(),
                "status",
                format!(
                    "{} is not an error status: write one from 400 to 599",
                    s.get_ref()
                ),
            );
            default_status
        }
    };
    let max_keys = match &l.max_keys {
        None => DEFAULT_MAX_KEYS,
        Some(m) if (1..=MOST_KEYS).contains(m.get_ref()) => *m.get_ref() as usize,
        Some(m) => {
            err(
                r,
                m.span(),
                "max_keys",
                format!("must be a whole number from 1 to {MOST_KEYS}"),
            );
            DEFAULT_MAX_KEYS
        }
    };
    let (key, kind) = (template?, kind?);
    ok.then_some(Limit {
        name,
        key,
        kind,
        status,
        dry_run: l.dry_run.unwrap_or(false),
        max_keys,
    })
}

/// A `limits = ["per_ip", ...]` list: indices into the checked limits.
/// `defined` are the names of every `[[limit]]`, checked or not, so one in
/// error is not also called unknown.
pub fn names<R: Report>(
    r: &mut R,
    v: &Spanned<Vec<Spanned<String>>>,
    key: &str,
    limits: &[Limit],
    defined: &[String],
) -> Vec<usize> {
    let mut out = Vec::new();
    for (i, n) in v.get_ref().iter().enumerate() {
        let name = n.get_ref();
        match limits.iter().position(|l| &l.name == name) {
            Some(at) if out.contains(&at) => r.error(
                n.span(),
                format!("{key}[{i}]"),
                format!("{name:?} is listed twice"),
            ),
            Some(at) => out.push(at),
            None if defined.contains(name) => {}
            None => {
                let known = if defined.is_empty() {
                    "none defined: add a [[limit]] with this name".to_string()
                } else {
                    let list: Vec<String> = defined.iter().map(|d| format!("{d:?}")).collect();
                    format!("defined: {}", list.join(", "))
                };
                r.error(
                    n.span(),
                    format!("{key}[{i}]"),
                    format!("unknown limit {name:?} ({known})"),
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates() {
        assert_eq!(parse_rate("10r/s"), Some(100_000_000));
        assert_eq!(parse_rate("600r/m"), Some(100_000_000));
        assert_eq!(parse_rate(" 1r/m "), Some(60_000_000_000));
        for bad in ["0r/s", "10", "10r/h", "1.5r/s", "-1r/s", "r/s", "10 r/s"] {
            assert_eq!(parse_rate(bad), None, "{bad}");
        }
    }
}

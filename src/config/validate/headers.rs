//! The checks of `request_headers` and `response_headers` (server and
//! location): field names that are tokens and not hop-by-hop or framing
//! fields, values without CR, LF or NUL, variables known.

use std::collections::BTreeMap;

use super::raw::{RawRequestHeaders, RawResponseHeaders};
use super::*;
use crate::vars::{Scope, Template};

/// Fields a rule may not name: hop-by-hop ones (RFC 9110 §7.6.1) and the
/// framing ringway writes itself; `host` is `preserve_host`'s.
const REFUSED: [(&str, &str); 10] = [
    ("connection", "a hop-by-hop field, never forwarded"),
    ("keep-alive", "a hop-by-hop field, never forwarded"),
    ("proxy-connection", "a hop-by-hop field, never forwarded"),
    ("te", "a hop-by-hop field, never forwarded"),
    ("trailer", "a hop-by-hop field, never forwarded"),
    ("transfer-encoding", "framing is ringway's own"),
    ("upgrade", "upgrades are the location's `upgrade` list"),
    ("content-length", "framing is ringway's own"),
    ("host", "the upstream's Host is chosen by `preserve_host`"),
    ("proxy-authenticate", "a hop-by-hop field, never forwarded"),
];

fn check_name(c: &mut Checker, name: &str, span: Range<usize>, key: &str) -> Option<String> {
    if name.is_empty() || !name.bytes().all(is_token) {
        c.error(span, key, format!("{name:?} is not a header field name"));
        return None;
    }
    let lower = name.to_ascii_lowercase();
    if let Some((_, why)) = REFUSED.iter().find(|(n, _)| *n == lower) {
        c.error(span, key, format!("{name:?} cannot be set or removed: {why}"));
        return None;
    }
    Some(lower)
}

fn check_value(c: &mut Checker, v: &Spanned<String>, key: &str) -> Option<Template> {
    if v.get_ref().bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
        c.error(v.span(), key, "a field value cannot hold CR, LF or NUL");
        return None;
    }
    rewrite::template(c, v, key, Scope::default())
}

/// The span of a table's key, for errors about a field name.
fn fields(
    c: &mut Checker,
    map: &BTreeMap<String, Spanned<String>>,
    key: &str,
    out: &mut Vec<(String, Template)>,
    hidden: &mut Vec<String>,
    hide: bool,
) {
    for (name, v) in map {
        let k = format!("{key}.{name}");
        let (Some(lower), Some(t)) = (check_name(c, name, v.span(), &k), check_value(c, v, &k)) else {
            continue;
        };
        if hide && !hidden.contains(&lower) {
            hidden.push(lower);
        }
        out.push((name.clone(), t));
    }
}

fn removed(c: &mut Checker, list: &[Spanned<String>], key: &str, hidden: &mut Vec<String>) {
    for (i, n) in list.iter().enumerate() {
        if let Some(lower) = check_name(c, n.get_ref(), n.span(), &format!("{key}[{i}]")) {
            if !hidden.contains(&lower) {
                hidden.push(lower);
            }
        }
    }
}

#[allow(clippy::type_complexity)]
pub(super) fn check(
    c: &mut Checker,
    req: Option<&Spanned<RawRequestHeaders>>,
    resp: Option<&Spanned<RawResponseHeaders>>,
    key: &str,
) -> (Option<Arc<RequestHeaders>>, Option<Arc<ResponseHeaders>>) {
    let req = req.map(|r| {
        let r = r.get_ref();
        let k = format!("{key}.request_headers");
        let mut set = Vec::new();
        let mut hidden = Vec::new();
        if let Some(m) = &r.set {
            fields(c, m, &format!("{k}.set"), &mut set, &mut hidden, true);
        }
        if let Some(l) = &r.remove {
            removed(c, l, &format!("{k}.remove"), &mut hidden);
        }
        Arc::new(RequestHeaders { set, hidden })
    });
    let resp = resp.map(|r| {
        let r = r.get_ref();
        let k = format!("{key}.response_headers");
        let mut out = Vec::new();
        let mut replaced = Vec::new();
        let mut gone = Vec::new();
        if let Some(m) = &r.set {
            fields(c, m, &format!("{k}.set"), &mut out, &mut replaced, true);
        }
        if let Some(m) = &r.add {
            fields(c, m, &format!("{k}.add"), &mut out, &mut replaced, false);
        }
        if let Some(l) = &r.remove {
            removed(c, l, &format!("{k}.remove"), &mut gone);
        }
        Arc::new(ResponseHeaders {
            fields: out,
            replaced,
            removed: gone,
            always: r.always.unwrap_or(false),
        })
    });
    (req, resp)
}

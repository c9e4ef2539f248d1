//! `[[limit]]` and the `limits` lists of server blocks and locations: the
//! checks are the features' (`crate::limit`); here they get the loader's
//! error list, and a location gets its own list or, without one, its
//! server's.

use super::*;
use crate::access::Plan;
use crate::limit::config as limit;

/// Checks every `[[limit]]`, and keeps them (and every name written) for
/// the lists that name them.
pub(super) fn limits(c: &mut Checker, raw: &RawConfig) -> Vec<crate::limit::Limit> {
    c.limit_names = Vec::new();
    for l in &raw.limit {
        let name = l.get_ref().name.get_ref().trim();
        if !c.limit_names.iter().any(|n| n == name) {
            c.limit_names.push(name.to_string());
        }
    }
    c.limits = limit::check(c, &raw.limit);
    c.limits.clone()
}

/// The server block's plan (what its locations inherit).
pub(super) fn server(c: &mut Checker, s: &RawServer, key: &str) -> Plan {
    Plan {
        limits: s.limits.as_ref().map_or_else(Vec::new, |v| names(c, v, key)),
    }
}

/// The plan of a location: its own `limits`, else its server block's.
pub(super) fn location(c: &mut Checker, l: &RawLocation, lkey: &str, server: &Plan) -> Plan {
    Plan {
        limits: match &l.limits {
            Some(v) => names(c, v, lkey),
            None => server.limits.clone(),
        },
    }
}

fn names(c: &mut Checker, v: &Spanned<Vec<Spanned<String>>>, at: &str) -> Vec<usize> {
    let (limits, names) = (std::mem::take(&mut c.limits), std::mem::take(&mut c.limit_names));
    let list = limit::names(c, v, &format!("{at}.limits"), &limits, &names);
    (c.limits, c.limit_names) = (limits, names);
    list
}

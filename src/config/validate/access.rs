//! `[[limit]]`, the `limits` lists and the access keys (IP rules) of
//! server blocks and locations: the checks are the features'
//! (`crate::limit`, `crate::access`); here they get the loader's error
//! list, and a location gets its own setting or, without one, its
//! server's.

use std::path::{Path, PathBuf};

use super::*;
use crate::access::config::{self as access, RawIp, Setting};
use crate::access::Plan;
use crate::limit::config as limit;

impl access::Report for Checker<'_> {
    fn error_in_file(&mut self, file: &Path, line: usize, key: String, message: String) {
        self.errors.push(ConfigError {
            file: file.display().to_string(),
            line,
            col: 1,
            key,
            message,
        });
    }

    fn resolve(&self, authority: &str) -> Result<std::net::SocketAddr, String> {
        super::upstream::resolve(authority)
    }

    fn base_dir(&self) -> PathBuf {
        Path::new(&self.file)
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default()
    }
}

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
    let raw = RawIp {
        allow: s.allow.as_ref(),
        deny: s.deny.as_ref(),
        access: s.access.as_ref(),
    };
    let auth = match s.auth.as_ref().and_then(|a| access::auth(c, a, key, false)) {
        Some(Setting::On(a)) => Some(Arc::from(a)),
        Some(Setting::Off) | None => None,
    };
    Plan {
        limits: s.limits.as_ref().map_or_else(Vec::new, |v| names(c, v, key)),
        ip: access::ip(c, &raw, key),
        strip: Vec::new(),
        auth,
    }
}

/// The plan of a location: its own `limits`, else its server block's.
pub(super) fn location(c: &mut Checker, l: &RawLocation, lkey: &str, server: &Plan) -> Plan {
    let raw = RawIp {
        allow: l.allow.as_ref(),
        deny: l.deny.as_ref(),
        access: l.access.as_ref(),
    };
    let auth = match &l.auth {
        Some(a) => match access::auth(c, a, lkey, true) {
            Some(Setting::On(a)) => Some(Arc::from(a)),
            // `off = true`, or in error (reported).
            Some(Setting::Off) | None => None,
        },
        None => server.auth.clone(),
    };
    Plan {
        limits: match &l.limits {
            Some(v) => names(c, v, lkey),
            None => server.limits.clone(),
        },
        // As nginx: a location's rules replace its server block's whole.
        ip: access::ip(c, &raw, lkey).or_else(|| server.ip.clone()),
        strip: Vec::new(),
        auth,
    }
}

fn names(c: &mut Checker, v: &Spanned<Vec<Spanned<String>>>, at: &str) -> Vec<usize> {
    let (limits, names) = (std::mem::take(&mut c.limits), std::mem::take(&mut c.limit_names));
    let list = limit::names(c, v, &format!("{at}.limits"), &limits, &names);
    (c.limits, c.limit_names) = (limits, names);
    list
}

/// Fills every location's `strip` list: the fields any `auth` of the
/// config sets, and the location's own API key field. Config-wide, since
/// an unauthenticated location may proxy to the same upstream as an
/// authenticated one, which then cannot tell a forged `X-User` from ours.
pub(super) fn strip_identity_fields(servers: &mut [Server]) {
    let mut set: Vec<String> = Vec::new();
    for loc in servers.iter().flat_map(|s| s.locations.iter()) {
        for f in loc.access.auth.iter().flat_map(|a| a.sets()) {
            if !set.contains(&f) {
                set.push(f);
            }
        }
    }
    for loc in servers.iter_mut().flat_map(|s| s.locations.iter_mut()) {
        let mut strip = set.clone();
        if let Some(c) = loc.access.auth.as_deref().and_then(|a| a.carrier()) {
            if !strip.iter().any(|s| s == c) {
                strip.push(c.to_string());
            }
        }
        loc.access.strip = strip;
    }
}

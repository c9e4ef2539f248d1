//! The access keys of server blocks and locations as written (`allow`,
//! `deny`, `access`, `auth`), their checks, and the compiled rules. The
//! config loader hands a [`Report`] in, so these errors carry
//! file:line:col like every other, and those found in a file the config
//! names (a users file, a keys file) carry that file's line.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::ip::{Net, Rule, Rules};

/// Where the checks' findings go.
pub trait Report: crate::compress::Report {
    /// An error in a file the config names, at line `line` (1-based).
    fn error_in_file(&mut self, file: &Path, line: usize, key: String, message: String);
    /// The directory relative paths are taken from (the config file's).
    fn base_dir(&self) -> PathBuf;
    /// Resolves `host:port`, as upstream servers are at load.
    fn resolve(&self, authority: &str) -> Result<std::net::SocketAddr, String>;
}

/// One entry of the ordered form: `{ allow = "10.0.0.0/8" }` or
/// `{ deny = "all" }`.
#[derive(Debug, Deserialize)]
pub struct RawRule {
    pub allow: Option<Spanned<String>>,
    pub deny: Option<Spanned<String>>,
}

/// A block's IP keys as written.
pub struct RawIp<'a> {
    pub allow: Option<&'a Spanned<Vec<Spanned<String>>>>,
    pub deny: Option<&'a Spanned<Vec<Spanned<String>>>>,
    pub access: Option<&'a Spanned<Vec<Spanned<RawRule>>>>,
}

/// A block's IP rules: `None` when it writes none (a location then keeps
/// its server block's), `Some` of the compiled list otherwise (an empty
/// list, as `allow = []`, allows everyone and still replaces the block's).
pub fn ip<R: Report>(r: &mut R, raw: &RawIp<'_>, key: &str) -> Option<Rules> {
    if raw.allow.is_none() && raw.deny.is_none() && raw.access.is_none() {
        return None;
    }
    let mut out = Vec::new();
    if let Some(access) = raw.access {
        for (k, span) in [
            ("allow", raw.allow.map(Spanned::span)),
            ("deny", raw.deny.map(Spanned::span)),
        ] {
            if let Some(span) = span {
                r.error(
                    span,
                    format!("{key}.{k}"),
                    "a block has `allow`/`deny` lists or the ordered `access = [...]`, not both: move these into `access`"
                        .into(),
                );
            }
        }
        for (i, rule) in access.get_ref().iter().enumerate() {
            let at = format!("{key}.access[{i}]");
            let rule_ref = rule.get_ref();
            let (net, allow) = match (&rule_ref.allow, &rule_ref.deny) {
                (Some(n), None) => (n, true),
                (None, Some(n)) => (n, false),
                _ => {
                    r.error(
                        rule.span(),
                        at,
                        "each entry is `{ allow = \"...\" }` or `{ deny = \"...\" }`, one key".into(),
                    );
                    continue;
                }
            };
            let which = if allow { "allow" } else { "deny" };
            match Net::parse(net.get_ref()) {
                Ok(net) => out.push(Rule { net, allow }),
                Err(e) => r.error(net.span(), format!("{at}.{which}"), e),
            }
        }
    } else {
        for (list, allow, k) in [(raw.allow, true, "allow"), (raw.deny, false, "deny")] {
            for (i, n) in list.iter().flat_map(|l| l.get_ref().iter().enumerate()) {
                match Net::parse(n.get_ref()) {
                    Ok(net) => out.push(Rule { net, allow }),
                    Err(e) => r.error(n.span(), format!("{key}.{k}[{i}]"), e),
                }
            }
        }
    }
    Some(Rules(out.into_boxed_slice()))
}

/// `auth = { basic = { ... } }`, `{ api_key = { ... } }`,
/// `{ jwt = { ... } }` or `{ request = { ... } }`: one method per block;
/// or, on a location, `{ off = true }`: none, whatever its block has
/// (nginx's `auth_basic off`).
#[derive(Debug, Deserialize)]
pub struct RawAuth {
    pub off: Option<Spanned<bool>>,
    pub basic: Option<Spanned<super::basic::RawBasic>>,
    pub api_key: Option<Spanned<super::apikey::RawApiKey>>,
    pub jwt: Option<Spanned<super::jwt::RawJwt>>,
    pub request: Option<Spanned<super::request::RawRequest>>,
}

/// A checked `auth`.
pub enum Setting {
    /// `off = true`: this location authenticates no one.
    Off,
    On(Box<super::Auth>),
}

/// A block's `auth`, checked (`None`: in error, reported); `location`:
/// whether it is a location's, which alone may be `off`.
pub fn auth<R: Report>(r: &mut R, raw: &Spanned<RawAuth>, key: &str, location: bool) -> Option<Setting> {
    let a = raw.get_ref();
    let key = format!("{key}.auth");
    let any = a.basic.is_some() || a.api_key.is_some() || a.jwt.is_some() || a.request.is_some();
    if let Some(off) = &a.off {
        let m = match (*off.get_ref(), location, any) {
            (true, true, false) => return Some(Setting::Off),
            (false, _, _) => "`off = false` does nothing: leave it out",
            (true, false, _) => {
                "only a location turns authentication off (its server block's); here, leave `auth` out"
            }
            (true, true, true) => "`off = true` and a method contradict each other: keep one",
        };
        r.error(off.span(), format!("{key}.off"), m.into());
        return None;
    }
    let methods = [
        ("basic", a.basic.as_ref().map(Spanned::span)),
        ("api_key", a.api_key.as_ref().map(Spanned::span)),
        ("jwt", a.jwt.as_ref().map(Spanned::span)),
        ("request", a.request.as_ref().map(Spanned::span)),
    ];
    let mut given: Vec<_> = methods.iter().filter(|(_, s)| s.is_some()).collect();
    // The second one written is the one in error.
    given.sort_by_key(|(_, s)| s.as_ref().map(|s| s.start));
    match given.as_slice() {
        [] => {
            r.error(
                raw.span(),
                key,
                "names no method: write `basic`, `api_key`, `jwt` or `request = { ... }` (or, on a location, `off = true`)".into(),
            );
            return None;
        }
        [_] => {}
        [_, (second, Some(span)), ..] => {
            r.error(
                span.clone(),
                format!("{key}.{second}"),
                "a block has one authentication method: keep one".into(),
            );
            return None;
        }
        _ => return None,
    }
    let method = if let Some(b) = &a.basic {
        super::basic::check(r, b.get_ref(), &format!("{key}.basic")).map(super::Auth::Basic)
    } else if let Some(k) = &a.api_key {
        super::apikey::check(r, k.get_ref(), &format!("{key}.api_key")).map(super::Auth::ApiKey)
    } else if let Some(j) = &a.jwt {
        super::jwt::check(r, j.get_ref(), &format!("{key}.jwt")).map(super::Auth::Jwt)
    } else if let Some(q) = &a.request {
        super::request::check(r, q.get_ref(), &format!("{key}.request")).map(super::Auth::Request)
    } else {
        None
    };
    method.map(|m| Setting::On(Box::new(m)))
}

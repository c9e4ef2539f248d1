//! `auth = { basic = { realm, users_file } }`: HTTP Basic authentication
//! (RFC 7617; nginx's `auth_basic` and `auth_basic_user_file`).
//!
//! The users file is read and every entry checked when the config loads
//! (so a reload re-reads it). A request's password is verified on the
//! helper threads of `verify.rs`; a verified (user, password) is
//! remembered in a [`Verified`] cache by its keyed tag, so a client
//! repeating its credentials costs an HMAC and a lookup. The cache belongs
//! to one load of the users file: after a reload, a password changed or
//! removed in the file is never taken from it.

use std::sync::Arc;

use base64::Engine;
use serde::Deserialize;
use toml::Spanned;

use super::cache::{self, Verified};
use super::config::Report;
use super::htpasswd::{self, Hash, Users};
use super::verify;
use crate::http::RequestHead;
use crate::limit::Refusal;

/// `basic = { realm = "staff", users_file = "htpasswd" }`.
#[derive(Debug, Deserialize)]
pub struct RawBasic {
    pub realm: Spanned<String>,
    pub users_file: Spanned<String>,
}

/// Verified credentials remembered, across workers.
const CACHE_SLOTS: usize = 4096;

pub struct Basic {
    users: Users,
    /// A hash of the slowest format in the file, checked for unknown users.
    decoy: Option<Arc<Hash>>,
    cache: Verified,
    /// The `WWW-Authenticate` line of a 401, with its CRLF.
    challenge: Vec<u8>,
}

impl std::fmt::Debug for Basic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Basic({} users)", self.users.0.len())
    }
}

/// A realm goes out as a quoted string (RFC 9110 §5.6.4): printable, with
/// no quote or backslash to escape.
pub fn check_realm<R: Report>(r: &mut R, realm: &Spanned<String>, key: &str) -> bool {
    let s = realm.get_ref();
    if s.is_empty()
        || !s
            .bytes()
            .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
    {
        r.error(
            realm.span(),
            key.to_string(),
            "a realm is printable ASCII without `\"` or `\\`, and not empty".into(),
        );
        return false;
    }
    true
}

/// Reads a file the auth config names, relative to the config file's
/// directory, refusing one over [`htpasswd::MAX_FILE`].
pub fn read_file<R: Report>(
    r: &mut R,
    v: &Spanned<String>,
    key: &str,
) -> Option<(std::path::PathBuf, String)> {
    let path = r.base_dir().join(v.get_ref());
    let fail = |r: &mut R, m: String| {
        r.error(v.span(), key.to_string(), m);
        None
    };
    match std::fs::metadata(&path) {
        Ok(m) if m.len() > htpasswd::MAX_FILE => {
            return fail(
                r,
                format!(
                    "{} is {} bytes, over the 16 MiB read at most",
                    path.display(),
                    m.len()
                ),
            )
        }
        Ok(_) => {}
        Err(e) => return fail(r, format!("cannot read {}: {e}", path.display())),
    }
    match std::fs::read_to_string(&path) {
        Ok(t) => Some((path, t)),
        Err(e) => fail(r, format!("cannot read {}: {e}", path.display())),
    }
}

/// Checks `basic` and reads its users file.
pub fn check<R: Report>(r: &mut R, raw: &RawBasic, key: &str) -> Option<Basic> {
    let realm_ok = check_realm(r, &raw.realm, &format!("{key}.realm"));
    let fkey = format!("{key}.users_file");
    let (path, text) = read_file(r, &raw.users_file, &fkey)?;
    let users = match htpasswd::parse(&text) {
        Ok(u) => u,
        Err(errors) => {
            for (line, m) in errors {
                r.error_in_file(&path, line, fkey.clone(), m);
            }
            return None;
        }
    };
    if !realm_ok {
        return None;
    }
    // bcrypt, then SHA-crypt, then apr1, then the SHA-1 forms.
    let rank = |h: &Hash| match h {
        Hash::Bcrypt(_) => 0,
        Hash::ShaCrypt(_) => 1,
        Hash::Apr1 { .. } => 2,
        Hash::Sha1(_) | Hash::Ssha { .. } => 3,
    };
    let decoy = users.0.values().min_by_key(|h| rank(h)).cloned();
    Some(Basic {
        users,
        decoy,
        cache: Verified::new(CACHE_SLOTS),
        challenge: format!(
            "WWW-Authenticate: Basic realm=\"{}\", charset=\"UTF-8\"\r\n",
            raw.realm.get_ref()
        )
        .into_bytes(),
    })
}

/// The user and password of a request's one `Authorization: Basic` field;
/// `None` when there is none, or two, or it does not decode.
fn credentials(head: &RequestHead) -> Option<(Vec<u8>, usize)> {
    let mut fields = head
        .headers()
        .filter(|(n, _)| n.eq_ignore_ascii_case(b"authorization"));
    let value = fields.next()?.1;
    if fields.next().is_some() {
        return None;
    }
    let value = value.trim_ascii();
    let at = value.iter().position(|b| *b == b' ')?;
    let (scheme, token) = value.split_at(at);
    if !scheme.eq_ignore_ascii_case(b"basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token.trim_ascii())
        .ok()?;
    // RFC 7617 §2: the user name has no colon; the password may.
    let colon = decoded.iter().position(|b| *b == b':')?;
    Some((decoded, colon))
}

/// The helpers' queue is full.
fn busy() -> Refusal {
    Refusal {
        status: 503,
        lines: Vec::new(),
        body: None,
    }
}

impl Basic {
    fn refuse(&self) -> Refusal {
        Refusal {
            status: 401,
            lines: self.challenge.clone(),
            body: None,
        }
    }

    /// 401 with the challenge for missing, malformed or wrong credentials;
    /// 503 when the helpers' queue is full.
    pub async fn check(&self, head: &RequestHead) -> Result<(), Refusal> {
        let Some((decoded, colon)) = credentials(head) else {
            return Err(self.refuse());
        };
        let (user, password) = (&decoded[..colon], &decoded[colon + 1..]);
        let Some(hash) = std::str::from_utf8(user).ok().and_then(|u| self.users.0.get(u)) else {
            tracing::debug!("Basic: unknown user");
            // As slow as a wrong password, so that the time of the answer
            // does not tell which users exist: the password is checked
            // against some user's hash, and refused whatever the result.
            if let Some(decoy) = &self.decoy {
                if verify::verify(decoy, password).await.is_err() {
                    return Err(busy());
                }
            }
            return Err(self.refuse());
        };
        let tag = self.cache.tag(&[user, password]);
        if self.cache.hit(tag, cache::now()) {
            return Ok(());
        }
        match verify::verify(hash, password).await {
            Ok(true) => {
                // Good until the config is loaded again (a new cache).
                self.cache.insert(tag, u64::MAX);
                Ok(())
            }
            Ok(false) => {
                tracing::debug!("Basic: wrong password");
                Err(self.refuse())
            }
            Err(verify::Busy) => Err(busy()),
        }
    }
}

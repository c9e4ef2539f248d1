//! `auth = { jwt = { ... } }`: bearer tokens (RFC 7519 JWTs, RFC 6750
//! challenges) verified with the `jsonwebtoken` crate: the signature, then
//! `exp`, `nbf`, `iss` and `aud`.
//!
//! Which key checks a token is decided here, not by the token: its `alg`
//! must be one the config lists; an HMAC algorithm only ever uses
//! `secret_file` (never a JWKS entry, so a token "signed" with a public key
//! as an HMAC secret fails); any other algorithm only a `jwks_file` key of
//! its family, chosen by `kid` (without a `kid`, the only key of that
//! family). `alg = none` is no algorithm the crate knows, and none can be
//! listed.
//!
//! A verified token is remembered by an HMAC tag of its bytes (see
//! `cache.rs`) until its `exp` or 60 s, whichever is sooner, and each
//! worker keeps the fields its claims set, so a client repeating its token
//! costs a hash and two lookups, not an RSA verification. Verification runs on the worker: an RS256 check is
//! tens of microseconds of CPU, less than a hop to another thread.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use base64::Engine;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};
use toml::Spanned;

use super::basic::read_file;
use super::cache::{self, Verified};
use super::config::Report;
use crate::http::RequestHead;
use crate::limit::Refusal;

/// `jwt = { jwks_file, secret_file, algorithms, issuer, audience, leeway,
/// claims_to_headers, cookie, realm }`.
#[derive(Debug, Deserialize)]
pub struct RawJwt {
    pub jwks_file: Option<Spanned<String>>,
    pub secret_file: Option<Spanned<String>>,
    pub algorithms: Spanned<Vec<Spanned<String>>>,
    pub issuer: Option<Spanned<String>>,
    pub audience: Option<Spanned<String>>,
    pub leeway: Option<Spanned<String>>,
    pub claims_to_headers: Option<Spanned<std::collections::BTreeMap<String, Spanned<String>>>>,
    pub cookie: Option<Spanned<String>>,
    pub realm: Option<Spanned<String>>,
}

/// Verified tokens remembered, across workers.
const CACHE_SLOTS: usize = 4096;
/// The longest a verified token is taken from the cache.
const CACHE_FOR: u64 = 60;
/// An HMAC secret shorter than this is refused (RFC 7518 §3.2 asks for
/// one as long as the hash; 32 bytes is HS256's).
const MIN_SECRET: usize = 32;

/// A JWKS key and what it may check.
struct Key {
    kid: Option<String>,
    family: AlgorithmFamily,
    /// The JWK's own `alg`, when it names one.
    alg: Option<Algorithm>,
    key: DecodingKey,
}

pub struct Jwt {
    keys: Vec<Key>,
    secret: Option<DecodingKey>,
    /// One validation per accepted algorithm (the crate wants a family).
    validations: HashMap<Algorithm, Validation>,
    /// (claim, lower-case field name) in the order written.
    pub claims_to_headers: Vec<(String, String)>,
    cookie: Option<String>,
    realm: String,
    cache: Verified,
    /// Tells this config load's entries in [`FIELDS`] from another's.
    id: u64,
}

thread_local! {
    // Per worker thread: the fields a verified token's claims set, by
    // (Jwt, tag), so a repeated token costs no JSON read. Whether a token
    // is (still) good is always the shared `Verified` table's to say; a
    // token's fields never change, since they are its signed bytes'.
    static FIELDS: std::cell::RefCell<Fields> = std::cell::RefCell::new(HashMap::new());
}

/// A worker's fields of verified tokens, by (Jwt, tag).
type Fields = HashMap<(u64, [u64; 2]), std::rc::Rc<[u8]>>;

impl std::fmt::Debug for Jwt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Jwt({} keys, secret: {})",
            self.keys.len(),
            self.secret.is_some()
        )
    }
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Checks `jwt` and reads its key files.
pub fn check<R: Report>(r: &mut R, raw: &RawJwt, key: &str) -> Option<Jwt> {
    let mut ok = true;
    // Errors reported elsewhere (a file that cannot be read, a realm).
    let mut failed = false;
    let mut err = |r: &mut R, span: std::ops::Range<usize>, k: &str, m: String| {
        r.error(
            span,
            if k.is_empty() {
                key.to_string()
            } else {
                format!("{key}.{k}")
            },
            m,
        );
        ok = false;
    };
    let mut algorithms = Vec::new();
    if raw.algorithms.get_ref().is_empty() {
        err(
            r,
            raw.algorithms.span(),
            "algorithms",
            "list the algorithms tokens may use, as [\"RS256\"]".into(),
        );
    }
    for (i, a) in raw.algorithms.get_ref().iter().enumerate() {
        match a.get_ref().parse::<Algorithm>() {
            Ok(alg) => algorithms.push(alg),
            Err(_) if a.get_ref().eq_ignore_ascii_case("none") => err(
                r,
                a.span(),
                &format!("algorithms[{i}]"),
                "`none` means unsigned tokens, which anyone can make: it is never accepted".into(),
            ),
            Err(_) => err(
                r,
                a.span(),
                &format!("algorithms[{i}]"),
                format!(
                    "unknown algorithm {:?} (known: HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA)",
                    a.get_ref()
                ),
            ),
        }
    }
    let wants_hmac = algorithms.iter().any(|a| a.family() == AlgorithmFamily::Hmac);
    let wants_public = algorithms.iter().any(|a| a.family() != AlgorithmFamily::Hmac);

    let mut secret = None;
    match (&raw.secret_file, wants_hmac) {
        (Some(f), _) => {
            if let Some((_, text)) = read_file(r, f, &format!("{key}.secret_file")) {
                // The raw secret; an editor's final newline is not part of it.
                let s = text.strip_suffix('\n').unwrap_or(&text);
                let s = s.strip_suffix('\r').unwrap_or(s);
                if s.len() < MIN_SECRET {
                    err(
                        r,
                        f.span(),
                        "secret_file",
                        format!(
                            "the secret is {} bytes; an HMAC secret needs at least {MIN_SECRET}",
                            s.len()
                        ),
                    );
                } else {
                    secret = DecodingKey::from_secret(s.as_bytes()).ok();
                }
            } else {
                failed = true;
            }
            if !wants_hmac {
                err(
                    r,
                    f.span(),
                    "secret_file",
                    "no HMAC algorithm (HS256, HS384, HS512) is listed, so the secret would check nothing"
                        .into(),
                );
            }
        }
        (None, true) => err(
            r,
            raw.algorithms.span(),
            "secret_file",
            "HMAC algorithms check tokens only with `secret_file`: give one".into(),
        ),
        (None, false) => {}
    }

    let mut keys = Vec::new();
    match (&raw.jwks_file, wants_public) {
        (Some(f), _) => {
            let fkey = format!("{key}.jwks_file");
            if let Some((_, text)) = read_file(r, f, &fkey) {
                match serde_json::from_str::<JwkSet>(&text) {
                    Err(e) => err(r, f.span(), "jwks_file", format!("not a JWK set: {e}")),
                    Ok(set) => {
                        for (i, jwk) in set.keys.iter().enumerate() {
                            let alg = jwk
                                .common
                                .key_algorithm
                                .and_then(|a| a.to_string().parse::<Algorithm>().ok());
                            match DecodingKey::from_jwk(jwk) {
                                Ok(k) if k.family() == AlgorithmFamily::Hmac => err(
                                    r,
                                    f.span(),
                                    "jwks_file",
                                    format!("keys[{i}] is a secret (kty \"oct\"): HMAC secrets go in `secret_file`"),
                                ),
                                Ok(k) => keys.push(Key {
                                    kid: jwk.common.key_id.clone(),
                                    family: k.family(),
                                    alg,
                                    key: k,
                                }),
                                Err(e) => err(r, f.span(), "jwks_file", format!("keys[{i}]: {e}")),
                            }
                        }
                        if keys.is_empty() {
                            err(r, f.span(), "jwks_file", "holds no key".into());
                        }
                    }
                }
            } else {
                failed = true;
            }
        }
        (None, true) => err(
            r,
            raw.algorithms.span(),
            "jwks_file",
            "RSA, ECDSA and EdDSA algorithms check tokens with `jwks_file`: give one".into(),
        ),
        (None, false) => {}
    }

    let leeway = match &raw.leeway {
        None => Duration::ZERO,
        Some(l) => match humantime::parse_duration(l.get_ref().trim()) {
            Ok(d) => d,
            Err(e) => {
                err(
                    r,
                    l.span(),
                    "leeway",
                    format!("bad duration {:?}: {e}", l.get_ref()),
                );
                Duration::ZERO
            }
        },
    };
    let mut claims_to_headers = Vec::new();
    for (claim, field) in raw.claims_to_headers.iter().flat_map(|m| m.get_ref().iter()) {
        if !is_token(field.get_ref()) {
            err(
                r,
                field.span(),
                &format!("claims_to_headers.{claim}"),
                format!("{:?} is not a field name", field.get_ref()),
            );
        } else {
            claims_to_headers.push((claim.clone(), field.get_ref().to_ascii_lowercase()));
        }
    }
    if let Some(c) = &raw.cookie {
        if !is_token(c.get_ref()) {
            err(
                r,
                c.span(),
                "cookie",
                format!("{:?} is not a cookie name", c.get_ref()),
            );
        }
    }
    let realm = raw.realm.as_ref().map_or("ringway", |r| r.get_ref().as_str());
    if let Some(rs) = &raw.realm {
        failed |= !super::basic::check_realm(r, rs, &format!("{key}.realm"));
    }
    for (k, v) in [("issuer", &raw.issuer), ("audience", &raw.audience)] {
        if let Some(v) = v.as_ref().filter(|v| v.get_ref().is_empty()) {
            err(
                r,
                v.span(),
                k,
                "is empty: give the value tokens must carry, or leave it out".into(),
            );
        }
    }
    if !ok || failed {
        return None;
    }
    let validations = algorithms
        .iter()
        .map(|&alg| {
            let mut v = Validation::new(alg);
            v.leeway = leeway.as_secs();
            v.validate_nbf = true;
            if let Some(iss) = &raw.issuer {
                v.set_issuer(&[iss.get_ref()]);
                v.required_spec_claims.insert("iss".into());
            }
            match &raw.audience {
                Some(aud) => {
                    v.set_audience(&[aud.get_ref()]);
                    v.required_spec_claims.insert("aud".into());
                }
                None => v.validate_aud = false,
            }
            (alg, v)
        })
        .collect();
    Some(Jwt {
        keys,
        secret,
        validations,
        claims_to_headers,
        cookie: raw.cookie.as_ref().map(|c| c.get_ref().clone()),
        realm: realm.to_string(),
        cache: Verified::new(CACHE_SLOTS),
        id: {
            static IDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            IDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        },
    })
}

/// Where a request's token was found.
enum Found<'a> {
    None,
    Token(&'a [u8]),
    /// Two `Authorization` fields: no one token.
    Ambiguous,
}

impl Jwt {
    fn token<'a>(&self, head: &'a RequestHead) -> Found<'a> {
        let mut bearer = None;
        for (n, v) in head.headers() {
            if !n.eq_ignore_ascii_case(b"authorization") {
                continue;
            }
            if bearer.is_some() {
                return Found::Ambiguous;
            }
            let v = v.trim_ascii();
            if v.len() > 7 && v[..7].eq_ignore_ascii_case(b"bearer ") {
                bearer = Some(v[7..].trim_ascii());
            } else {
                // Another scheme: no bearer token there.
                bearer = Some(&b""[..]);
            }
        }
        if let Some(t) = bearer.filter(|t| !t.is_empty()) {
            return Found::Token(t);
        }
        let Some(name) = &self.cookie else {
            return Found::None;
        };
        // HTTP/2 may split cookies over several fields (RFC 9113 §8.2.3).
        for (n, v) in head.headers() {
            if !n.eq_ignore_ascii_case(b"cookie") {
                continue;
            }
            for pair in v.split(|b| *b == b';') {
                let pair = pair.trim_ascii();
                if let Some(val) = pair
                    .strip_prefix(name.as_bytes())
                    .and_then(|rest| rest.strip_prefix(b"="))
                    .filter(|v| !v.is_empty())
                {
                    return Found::Token(val);
                }
            }
        }
        Found::None
    }

    fn challenge(&self, why: Option<&str>) -> Refusal {
        let mut line = format!("WWW-Authenticate: Bearer realm=\"{}\"", self.realm);
        if let Some(why) = why {
            // RFC 6750 §3: error_description is printable ASCII without
            // `"` or `\`; ours are fixed texts.
            line.push_str(&format!(", error=\"invalid_token\", error_description=\"{why}\""));
        }
        line.push_str("\r\n");
        Refusal {
            status: 401,
            lines: line.into_bytes(),
            body: None,
        }
    }

    /// The key that checks a token of `alg` with `kid`, or why none does.
    fn key_for(&self, alg: Algorithm, kid: Option<&str>) -> Result<&DecodingKey, &'static str> {
        if alg.family() == AlgorithmFamily::Hmac {
            return self.secret.as_ref().ok_or("no secret for an HMAC token");
        }
        let mut fits = self
            .keys
            .iter()
            .filter(|k| k.family == alg.family() && k.alg.is_none_or(|a| a == alg));
        match kid {
            Some(kid) => fits
                .find(|k| k.kid.as_deref() == Some(kid))
                .map(|k| &k.key)
                .ok_or("unknown key id"),
            None => match (fits.next(), fits.next()) {
                (Some(k), None) => Ok(&k.key),
                (None, _) => Err("no key for the token's algorithm"),
                (Some(_), Some(_)) => Err("the token names no key id, and several keys fit"),
            },
        }
    }

    /// Verifies the token: the fields its claims set upstream (whole
    /// lines), or 401 with the challenge (and, for a bad token, why).
    pub fn check(&self, head: &RequestHead, lines: &mut Vec<u8>) -> Result<(), Refusal> {
        let token = match self.token(head) {
            Found::None => return Err(self.challenge(None)),
            Found::Ambiguous => return Err(self.challenge(Some("two Authorization fields"))),
            Found::Token(t) => t,
        };
        let now = cache::now();
        let tag = self.cache.tag(&[token]);
        let claims = if self.cache.hit(tag, now) {
            // The same bytes were verified. Their fields are this worker's
            // from an earlier request, or read again from the claims
            // without a signature check.
            let key = (self.id, tag.words());
            if let Some(l) = FIELDS.with(|f| f.borrow().get(&key).cloned()) {
                lines.extend_from_slice(&l);
                return Ok(());
            }
            let claims = payload(token).ok_or_else(|| self.challenge(Some("malformed token")))?;
            let mut mine = Vec::new();
            self.fields_of(&claims, &mut mine);
            lines.extend_from_slice(&mine);
            FIELDS.with(|f| {
                let mut f = f.borrow_mut();
                // Bounded: the table starts afresh rather than grow.
                if f.len() >= CACHE_SLOTS {
                    f.clear();
                }
                f.insert(key, mine.into());
            });
            return Ok(());
        } else {
            let claims = self.verify(token).map_err(|why| {
                tracing::debug!("JWT refused: {why}");
                self.challenge(Some(why))
            })?;
            let exp = claims.get("exp").and_then(Value::as_u64).unwrap_or(0);
            self.cache.insert(tag, exp.min(now + CACHE_FOR));
            claims
        };
        self.fields_of(&claims, lines);
        Ok(())
    }

    /// The `claims_to_headers` fields of `claims`, as whole lines.
    fn fields_of(&self, claims: &Map<String, Value>, lines: &mut Vec<u8>) {
        for (claim, field) in &self.claims_to_headers {
            if let Some(v) = claims.get(claim).and_then(field_value) {
                crate::http::encode::header(field.as_bytes(), v.as_bytes(), lines);
            }
        }
    }

    fn verify(&self, token: &[u8]) -> Result<Map<String, Value>, &'static str> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| "malformed token header, or an algorithm no one may use")?;
        let validation = self
            .validations
            .get(&header.alg)
            .ok_or("the token's algorithm is not accepted")?;
        let key = self.key_for(header.alg, header.kid.as_deref())?;
        use jsonwebtoken::errors::ErrorKind as E;
        match jsonwebtoken::decode::<Map<String, Value>>(token, key, validation) {
            Ok(data) => Ok(data.claims),
            Err(e) => Err(match e.kind() {
                E::InvalidSignature => "bad signature",
                E::ExpiredSignature => "the token expired",
                E::ImmatureSignature => "the token is not valid yet",
                E::InvalidIssuer => "wrong issuer",
                E::InvalidAudience => "wrong audience",
                E::InvalidAlgorithm => "the token's algorithm does not fit its key",
                E::MissingRequiredClaim(c) if c == "exp" => "the token has no exp",
                E::MissingRequiredClaim(c) if c == "iss" => "the token has no iss",
                E::MissingRequiredClaim(c) if c == "aud" => "the token has no aud",
                E::InvalidClaimFormat(_) => "a claim has the wrong type",
                _ => "malformed token",
            }),
        }
    }
}

/// The claims of a token whose signature was checked before.
fn payload(token: &[u8]) -> Option<Map<String, Value>> {
    let mut parts = token.split(|b| *b == b'.');
    let _header = parts.next()?;
    let body = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(parts.next()?)
        .ok()?;
    serde_json::from_slice(&body).ok()
}

/// A claim as a field value: a string as it is, a number or boolean
/// written out, an array of those joined by spaces (as `scope` is
/// written); nothing for objects, or for text a field cannot carry.
fn field_value(v: &Value) -> Option<String> {
    let s = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Array(a) => {
            let parts: Option<Vec<String>> = a
                .iter()
                .map(|v| match v {
                    Value::Array(_) | Value::Object(_) => None,
                    v => field_value(v),
                })
                .collect();
            parts?.join(" ")
        }
        Value::Null | Value::Object(_) => return None,
    };
    // RFC 9110 §5.5: no control characters in a field value.
    s.bytes()
        .all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f))
        .then_some(s)
}

/// The lower-case field names `claims_to_headers` sets.
pub fn fields(j: &Jwt) -> impl Iterator<Item = String> + '_ {
    let set: HashSet<&String> = j.claims_to_headers.iter().map(|(_, f)| f).collect();
    set.into_iter().cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_as_field_values() {
        assert_eq!(field_value(&Value::from("alice")).as_deref(), Some("alice"));
        assert_eq!(field_value(&serde_json::json!(42)).as_deref(), Some("42"));
        assert_eq!(
            field_value(&serde_json::json!(["a", "b", 3])).as_deref(),
            Some("a b 3")
        );
        assert_eq!(field_value(&serde_json::json!({"a": 1})), None);
        assert_eq!(field_value(&serde_json::json!([["a"]])), None);
        assert_eq!(field_value(&Value::from("a\r\nX-Evil: 1")), None);
    }
}

//! `auth = { api_key = { header = "X-API-Key" | query = "api_key",
//! keys_file = "keys.txt" } }`: API keys, as Kong's key-auth and Traefik's
//! plugins have them.
//!
//! The keys file holds `name:key` lines (`#` comments, blank lines), read
//! when the config loads; a name or key given twice is a load error. A
//! request's key is found by an HMAC of it under a key drawn at load (so
//! the lookup's timing says nothing of the stored keys), then compared
//! with the stored key in constant time. The key never goes upstream: the
//! header is dropped, or the query parameter cut from the upstream target;
//! the key's name goes as `X-Consumer`.

use std::collections::HashMap;

use ring::hmac;
use serde::Deserialize;
use subtle::ConstantTimeEq;
use toml::Spanned;

use super::basic::read_file;
use super::config::Report;
use crate::http::RequestHead;
use crate::limit::Refusal;

/// `api_key = { header = "X-API-Key", keys_file = "keys.txt" }` or with
/// `query = "api_key"` instead of `header`.
#[derive(Debug, Deserialize)]
pub struct RawApiKey {
    pub header: Option<Spanned<String>>,
    pub query: Option<Spanned<String>>,
    pub keys_file: Spanned<String>,
}

/// Where a request carries its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum From {
    /// A field (lower-case name).
    Header(String),
    /// A query parameter of the request target.
    Query(String),
}

/// A key's name and the key.
type Entry = (Box<str>, Box<[u8]>);

/// What a keys file holds, or where it is wrong: (line, message).
pub type Parsed = Result<Vec<(String, String)>, Vec<(usize, String)>>;

pub struct ApiKey {
    pub from: From,
    hmac: hmac::Key,
    /// By the HMAC of the key: (name, key).
    keys: HashMap<[u8; 32], Entry>,
    challenge: Vec<u8>,
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKey({:?}, {} keys)", self.from, self.keys.len())
    }
}

/// The field the key's name goes upstream in.
pub const CONSUMER: &str = "x-consumer";

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Parses a keys file: (name, key) pairs, or (line, message) errors.
pub fn parse(text: &str) -> Parsed {
    let (mut out, mut errors) = (Vec::<(String, String)>::new(), Vec::new());
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((name, key)) = line.split_once(':') else {
            errors.push((n, "not a `name:key` line".to_string()));
            continue;
        };
        let (name, key) = (name.trim(), key.trim());
        // The name goes upstream as a field value; the key is compared as
        // sent, so it must survive a header or a query as written.
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) {
            errors.push((n, "the name is empty or not printable ASCII".to_string()));
        } else if key.is_empty() || !key.bytes().all(|b| b.is_ascii_graphic()) {
            errors.push((n, format!("the key of {name:?} is empty or not printable ASCII")));
        } else if out.iter().any(|(o, _)| o == name) {
            errors.push((n, format!("the name {name:?} is given twice: names are unique")));
        } else if out.iter().any(|(_, k)| k == key) {
            errors.push((
                n,
                format!("the key of {name:?} is another name's too: keys are unique"),
            ));
        } else {
            out.push((name.to_string(), key.to_string()));
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Checks `api_key` and reads its keys file.
pub fn check<R: Report>(r: &mut R, raw: &RawApiKey, key: &str) -> Option<ApiKey> {
    let from = match (&raw.header, &raw.query) {
        (Some(h), None) if is_token(h.get_ref()) => Some(From::Header(h.get_ref().to_ascii_lowercase())),
        (Some(h), None) => {
            r.error(
                h.span(),
                format!("{key}.header"),
                format!("{:?} is not a field name", h.get_ref()),
            );
            None
        }
        (None, Some(q))
            if !q.get_ref().is_empty()
                && q.get_ref()
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && !b"&=#?".contains(&b)) =>
        {
            Some(From::Query(q.get_ref().clone()))
        }
        (None, Some(q)) => {
            r.error(
                q.span(),
                format!("{key}.query"),
                format!("{:?} is not a query parameter name", q.get_ref()),
            );
            None
        }
        (Some(_), Some(q)) => {
            r.error(
                q.span(),
                format!("{key}.query"),
                "give `header` or `query`, not both".into(),
            );
            None
        }
        (None, None) => {
            r.error(
                raw.keys_file.span(),
                key.to_string(),
                "needs `header = \"X-API-Key\"` or `query = \"api_key\"`: where requests carry the key"
                    .into(),
            );
            None
        }
    };
    let fkey = format!("{key}.keys_file");
    let (path, text) = read_file(r, &raw.keys_file, &fkey)?;
    let pairs = match parse(&text) {
        Ok(p) => p,
        Err(errors) => {
            for (line, m) in errors {
                r.error_in_file(&path, line, fkey.clone(), m);
            }
            return None;
        }
    };
    let from = from?;
    let rng = ring::rand::SystemRandom::new();
    let hmac = hmac::Key::generate(hmac::HMAC_SHA256, &rng).ok()?;
    let keys = pairs
        .into_iter()
        .map(|(name, k)| (mac(&hmac, k.as_bytes()), (name.into(), k.into_bytes().into())))
        .collect();
    let challenge = match &from {
        From::Header(_) => format!(
            "WWW-Authenticate: ApiKey header=\"{}\"\r\n",
            raw.header.as_ref().map_or("", |h| h.get_ref())
        ),
        From::Query(q) => format!("WWW-Authenticate: ApiKey query=\"{q}\"\r\n"),
    };
    Some(ApiKey {
        from,
        hmac,
        keys,
        challenge: challenge.into_bytes(),
    })
}

fn mac(k: &hmac::Key, data: &[u8]) -> [u8; 32] {
    let t = hmac::sign(k, data);
    t.as_ref().try_into().unwrap_or([0; 32])
}

/// The value of query parameter `name` in `target` (as sent, no
/// percent-decoding); `None` when absent or given twice.
pub fn query_param<'a>(target: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let q = &target[target.iter().position(|b| *b == b'?')? + 1..];
    let mut found = None;
    for pair in q.split(|b| *b == b'&') {
        let (n, v) = match pair.iter().position(|b| *b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &b""[..]),
        };
        if n == name {
            if found.is_some() {
                return None;
            }
            found = Some(v);
        }
    }
    found
}

/// `target` without its `name` query parameters; `None` when it has none.
pub fn strip_query_param(target: &[u8], name: &[u8]) -> Option<Vec<u8>> {
    let at = target.iter().position(|b| *b == b'?')?;
    let is_it = |pair: &[u8]| pair == name || (pair.starts_with(name) && pair.get(name.len()) == Some(&b'='));
    let q = &target[at + 1..];
    if !q.split(|b| *b == b'&').any(is_it) {
        return None;
    }
    let mut out = target[..at].to_vec();
    let mut first = true;
    for pair in q.split(|b| *b == b'&').filter(|p| !is_it(p)) {
        out.push(if first { b'?' } else { b'&' });
        out.extend_from_slice(pair);
        first = false;
    }
    Some(out)
}

impl ApiKey {
    /// The key's name, or 401 with the challenge.
    pub fn check(&self, head: &RequestHead) -> Result<&str, Refusal> {
        let presented = match &self.from {
            From::Header(h) => {
                let mut fields = head
                    .headers()
                    .filter(|(n, _)| n.eq_ignore_ascii_case(h.as_bytes()));
                match (fields.next(), fields.next()) {
                    (Some((_, v)), None) => Some(v.trim_ascii()),
                    _ => None,
                }
            }
            From::Query(q) => query_param(head.target.of(&head.buf), q.as_bytes()),
        };
        let found = presented
            .filter(|p| !p.is_empty())
            .and_then(|p| self.keys.get(&mac(&self.hmac, p)).map(|e| (p, e)))
            .filter(|(p, (_, stored))| bool::from(stored.ct_eq(p)));
        match found {
            Some((_, (name, _))) => Ok(name),
            None => {
                tracing::debug!("API key missing or unknown");
                Err(Refusal {
                    status: 401,
                    lines: self.challenge.clone(),
                    body: None,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_files() {
        let ok = parse("# partners\n\nacme: k-123 \nglobex:k-456\n").unwrap();
        assert_eq!(
            ok,
            [("acme".into(), "k-123".into()), ("globex".into(), "k-456".into())]
        );
        let e = parse("a:1\na:2\nb:1\nnocolon\n:3\nc:\n").unwrap_err();
        let lines: Vec<usize> = e.iter().map(|(n, _)| *n).collect();
        assert_eq!(lines, [2, 3, 4, 5, 6], "{e:?}");
        assert!(e[0].1.contains("given twice"), "{e:?}");
        assert!(e[1].1.contains("another name's too"), "{e:?}");
    }

    #[test]
    fn query_parameters_found_and_cut() {
        assert_eq!(query_param(b"/a?x=1&api_key=K&y=2", b"api_key"), Some(&b"K"[..]));
        assert_eq!(query_param(b"/a?api_key=K&api_key=K", b"api_key"), None);
        assert_eq!(query_param(b"/a?api_keys=K", b"api_key"), None);
        assert_eq!(query_param(b"/a", b"api_key"), None);
        let cut = |t: &[u8]| strip_query_param(t, b"api_key").map(|v| String::from_utf8(v).unwrap());
        assert_eq!(cut(b"/a?x=1&api_key=K&y=2").as_deref(), Some("/a?x=1&y=2"));
        assert_eq!(cut(b"/a?api_key=K").as_deref(), Some("/a"));
        assert_eq!(cut(b"/a?api_key=K&z").as_deref(), Some("/a?z"));
        assert_eq!(cut(b"/a?api_key").as_deref(), Some("/a"));
        assert_eq!(cut(b"/a?api_keys=K"), None);
        assert_eq!(cut(b"/a"), None);
    }
}

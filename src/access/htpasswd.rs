//! htpasswd files: `user:hash` lines, read when the config loads, and the
//! hash formats Apache's `htpasswd` writes that are still worth accepting:
//! bcrypt (`$2y$`, `$2b$`, `$2a$`), Apache's MD5 (`$apr1$`), `{SHA}`,
//! `{SSHA}` and SHA-crypt (`$5$`, `$6$`, with `rounds=`).
//!
//! Plaintext and 13-character DES-crypt entries are refused at load: the
//! two cannot be told apart (a DES hash is also a possible password), and
//! both are weak. The message says how to rehash.
//!
//! Verifying is slow on purpose for bcrypt and SHA-crypt: [`Hash::verify`]
//! runs on the helper threads of `verify.rs`, never on a worker.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine;
use md5::{Digest, Md5};
use sha1::Sha1;
use subtle::ConstantTimeEq;

/// The slowest entries accepted: bcrypt's cost (htpasswd -B goes to 17),
/// SHA-crypt's rounds (5000 by default).
const MAX_BCRYPT_COST: u32 = 17;
const MAX_SHA_ROUNDS: u64 = 1_000_000;

/// One stored hash, parsed at load so a malformed one is found then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hash {
    /// `$2y$`/`$2b$`/`$2a$`: the whole string, as the bcrypt crate reads it.
    Bcrypt(String),
    /// `$apr1$salt$digest`: up to 8 salt characters, 22 of digest.
    Apr1 { salt: Vec<u8>, digest: Vec<u8> },
    /// `{SHA}`: SHA-1 of the password, base64.
    Sha1([u8; 20]),
    /// `{SSHA}`: SHA-1 of the password and salt, then the salt, base64.
    Ssha { digest: [u8; 20], salt: Vec<u8> },
    /// `$5$`/`$6$`: the whole string, as the sha-crypt crate reads it.
    ShaCrypt(String),
}

impl Hash {
    /// Parses a stored hash; the error says what is wrong and what to do.
    pub fn parse(s: &str) -> Result<Hash, String> {
        const REHASH: &str = "rehash it with `htpasswd -B` (bcrypt)";
        if let Some(rest) = s.strip_prefix("{SHA}") {
            let d = b64(rest).filter(|d| d.len() == 20);
            return d
                .map(|d| Hash::Sha1(d.try_into().unwrap_or([0; 20])))
                .ok_or_else(|| format!("a {{SHA}} entry is 20 bytes in base64; this one is not: {REHASH}"));
        }
        if let Some(rest) = s.strip_prefix("{SSHA}") {
            let d = b64(rest).filter(|d| d.len() > 20);
            return d
                .map(|d| Hash::Ssha {
                    digest: d[..20].try_into().unwrap_or([0; 20]),
                    salt: d[20..].to_vec(),
                })
                .ok_or_else(|| {
                    format!(
                        "a {{SSHA}} entry is a SHA-1 digest and a salt in base64; this one is not: {REHASH}"
                    )
                });
        }
        if let Some(rest) = s.strip_prefix("$apr1$") {
            let ok = rest.split_once('$').filter(|(salt, digest)| {
                !salt.is_empty() && salt.len() <= 8 && digest.len() == 22 && digest.bytes().all(is_crypt64)
            });
            return ok
                .map(|(salt, digest)| Hash::Apr1 {
                    salt: salt.as_bytes().to_vec(),
                    digest: digest.as_bytes().to_vec(),
                })
                .ok_or_else(|| {
                    format!("a malformed $apr1$ entry (salt of 1 to 8 characters, 22 of digest): {REHASH}")
                });
        }
        if ["$2y$", "$2b$", "$2a$"].iter().any(|p| s.starts_with(p)) {
            // The crate checks the cost and the lengths; a hash of an
            // empty password is as good a probe as any.
            // A helper thread is busy for the whole of a verification: a
            // cost past htpasswd's own maximum would hold it for minutes.
            let cost: Option<u32> = s.get(4..6).and_then(|c| c.parse().ok());
            if cost.is_some_and(|c| c > MAX_BCRYPT_COST) {
                return Err(format!(
                    "a bcrypt cost above {MAX_BCRYPT_COST} (htpasswd's maximum) would hold a helper thread for minutes: {REHASH}"
                ));
            }
            return match bcrypt::verify(b"", s) {
                Ok(_) => Ok(Hash::Bcrypt(s.to_string())),
                Err(e) => Err(format!("a malformed bcrypt entry ({e}): {REHASH}")),
            };
        }
        if s.starts_with("$5$") || s.starts_with("$6$") {
            let rounds: Option<u64> = s[3..]
                .strip_prefix("rounds=")
                .and_then(|r| r.split('$').next())
                .and_then(|r| r.parse().ok());
            if rounds.is_some_and(|r| r > MAX_SHA_ROUNDS) {
                return Err(format!(
                    "more than {MAX_SHA_ROUNDS} SHA-crypt rounds would hold a helper thread for seconds: {REHASH}"
                ));
            }
            use sha_crypt::{PasswordHashRef, PasswordVerifier, ShaCrypt};
            let parsed = PasswordHashRef::new(s).map_err(|e| e.to_string()).and_then(|h| {
                // Any error but a wrong password is a malformed entry.
                match ShaCrypt::default().verify_password(b"", h) {
                    Ok(()) | Err(sha_crypt::password_hash::Error::PasswordInvalid) => Ok(()),
                    Err(e) => Err(e.to_string()),
                }
            });
            return match parsed {
                Ok(()) => Ok(Hash::ShaCrypt(s.to_string())),
                Err(e) => Err(format!("a malformed SHA-crypt entry ({e}): {REHASH}")),
            };
        }
        if s.starts_with('$') || s.starts_with('{') {
            // The scheme: `$id$` or `{ID}`.
            let end = match s.as_bytes()[0] {
                b'$' => s[1..].find('$').map(|i| i + 2),
                _ => s.find('}').map(|i| i + 1),
            };
            let scheme = &s[..end.unwrap_or(s.len()).min(16)];
            return Err(format!(
                "the hash format {scheme:?} is not one ringway reads ($2y$, $2b$, $2a$, $apr1$, {{SHA}}, {{SSHA}}, $5$, $6$): {REHASH}"
            ));
        }
        Err(format!(
            "a plaintext or DES-crypt entry (the two cannot be told apart, and both are weak): {REHASH}"
        ))
    }

    /// Whether `password` matches. Slow for bcrypt and SHA-crypt: run it
    /// on a helper thread. Digests are compared in constant time.
    pub fn verify(&self, password: &[u8]) -> bool {
        match self {
            Hash::Bcrypt(h) => bcrypt::verify(password, h).unwrap_or(false),
            Hash::ShaCrypt(h) => {
                use sha_crypt::{PasswordVerifier, ShaCrypt};
                ShaCrypt::default().verify_password(password, h.as_str()).is_ok()
            }
            Hash::Apr1 { salt, digest } => apr1(password, salt).ct_eq(digest).into(),
            Hash::Sha1(d) => {
                let got: [u8; 20] = Sha1::digest(password).into();
                got.ct_eq(d).into()
            }
            Hash::Ssha { digest, salt } => {
                let mut h = Sha1::new();
                h.update(password);
                h.update(salt);
                let got: [u8; 20] = h.finalize().into();
                got.ct_eq(digest).into()
            }
        }
    }
}

fn b64(s: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD.decode(s.trim()).ok()
}

/// The alphabet of crypt(3)'s base64: `./0-9A-Za-z`.
const CRYPT64: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

fn is_crypt64(b: u8) -> bool {
    CRYPT64.contains(&b)
}

/// Apache's `$apr1$`: Poul-Henning Kamp's MD5-crypt with the magic string
/// `$apr1$`, as its public description (FreeBSD's crypt-md5, Apache's
/// apr_md5) gives it: a digest of the password, magic and salt, with a
/// second digest of password, salt, password mixed in by the password's
/// length and bits, then 1000 rounds that alternate what goes in; the 16
/// bytes are written in crypt64 in a fixed shuffled order. Returns the 22
/// characters after the salt.
pub fn apr1(password: &[u8], salt: &[u8]) -> [u8; 22] {
    const MAGIC: &[u8] = b"$apr1$";
    let salt = &salt[..salt.len().min(8)];
    let alt: [u8; 16] = {
        let mut h = Md5::new();
        h.update(password);
        h.update(salt);
        h.update(password);
        h.finalize().into()
    };
    let mut h = Md5::new();
    h.update(password);
    h.update(MAGIC);
    h.update(salt);
    // As many bytes of `alt` as the password is long, 16 at a time.
    let mut left = password.len();
    while left > 0 {
        let n = left.min(16);
        h.update(&alt[..n]);
        left -= n;
    }
    // For each bit of the length, low first: a zero byte for a one bit,
    // the password's first byte for a zero bit.
    let mut bits = password.len();
    while bits > 0 {
        if bits & 1 == 1 {
            h.update([0u8]);
        } else {
            h.update(&password[..1]);
        }
        bits >>= 1;
    }
    let mut fin: [u8; 16] = h.finalize().into();
    for i in 0..1000 {
        let mut h = Md5::new();
        if i % 2 == 1 {
            h.update(password);
        } else {
            h.update(fin);
        }
        if i % 3 != 0 {
            h.update(salt);
        }
        if i % 7 != 0 {
            h.update(password);
        }
        if i % 2 == 1 {
            h.update(fin);
        } else {
            h.update(password);
        }
        fin = h.finalize().into();
    }
    // Groups of three bytes, 24 bits each written as four characters low
    // bits first; the last byte alone makes two.
    let mut out = [0u8; 22];
    let groups = [(0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)];
    for (g, (a, b, c)) in groups.into_iter().enumerate() {
        let mut v = (u32::from(fin[a]) << 16) | (u32::from(fin[b]) << 8) | u32::from(fin[c]);
        for k in 0..4 {
            out[g * 4 + k] = CRYPT64[(v & 0x3f) as usize];
            v >>= 6;
        }
    }
    let mut v = u32::from(fin[11]);
    out[20] = CRYPT64[(v & 0x3f) as usize];
    v >>= 6;
    out[21] = CRYPT64[(v & 0x3f) as usize];
    out
}

/// Files read for `users_file` and `keys_file` at most this long.
pub const MAX_FILE: u64 = 16 << 20;

/// A users file: each user's stored hash.
#[derive(Debug, Default)]
pub struct Users(pub HashMap<Box<str>, Arc<Hash>>);

/// Parses a users file: `user:hash` lines; blank lines and `#` comments
/// are skipped. Each error is (line, message); all are returned.
pub fn parse(text: &str) -> Result<Users, Vec<(usize, String)>> {
    let mut users = HashMap::new();
    let mut errors = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let Some((user, hash)) = line.split_once(':') else {
            errors.push((n, "not a `user:hash` line".to_string()));
            continue;
        };
        if user.is_empty() {
            errors.push((n, "the user name is empty".to_string()));
            continue;
        }
        // Apache's files may carry a comment field after a second colon;
        // no hash format ringway reads has a colon in it.
        let hash = hash.split(':').next().unwrap_or("");
        match Hash::parse(hash) {
            Ok(h) => {
                if users.insert(user.into(), Arc::new(h)).is_some() {
                    errors.push((n, format!("user {user:?} appears twice: keep one line")));
                }
            }
            Err(e) => errors.push((n, format!("user {user:?}: {e}"))),
        }
    }
    if errors.is_empty() {
        Ok(Users(users))
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Made with `openssl passwd` and Python's hashlib, not by this code.
    const APR1: &str = "$apr1$abcdefgh$h9FWgUz3n9YxylKLlR5SQ/";
    const SHA256_ROUNDS: &str = "$5$rounds=10000$saltsalt$RUsnTSO2Cw.gkRW/RZSmG6BCeuh1a6eDbZfnX4oz1c5";
    const SHA512: &str =
        "$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1";
    const SHA: &str = "{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=";

    #[test]
    fn every_format_verifies_its_password_only() {
        for h in [APR1, SHA256_ROUNDS, SHA512, SHA] {
            let hash = Hash::parse(h).unwrap_or_else(|e| panic!("{h}: {e}"));
            assert!(hash.verify(b"secret"), "{h}");
            assert!(!hash.verify(b"secreT"), "{h}");
            assert!(!hash.verify(b""), "{h}");
        }
    }

    #[test]
    fn apr1_matches_openssl() {
        // `openssl passwd -apr1 -salt abcdefgh secret`.
        assert_eq!(&apr1(b"secret", b"abcdefgh"), b"h9FWgUz3n9YxylKLlR5SQ/");
    }

    #[test]
    fn weak_and_unknown_entries_are_refused_with_how_to_rehash() {
        for (h, says) in [
            ("secret", "plaintext or DES-crypt"),
            ("abJnggxhB/yWI", "plaintext or DES-crypt"),
            ("", "plaintext or DES-crypt"),
            ("$1$abc$def", "not one ringway reads"),
            ("$apr1$abc$short", "malformed $apr1$"),
            ("{SHA}abc", "{SHA} entry"),
            ("$2y$99$abc", "a bcrypt cost above 17"),
            ("$2y$4$abc", "malformed bcrypt"),
            ("$6$rounds=5000000$salt$abc", "more than 1000000 SHA-crypt rounds"),
            ("$6$x", "malformed SHA-crypt"),
        ] {
            let e = Hash::parse(h).unwrap_err();
            assert!(e.contains(says), "{h}: {e}");
            assert!(e.contains("htpasswd -B"), "{h}: {e}");
        }
    }

    #[test]
    fn files_with_comments_duplicates_and_errors() {
        let ok = parse(&format!("# staff\n\nalice:{APR1}\r\nbob:{SHA}:Bob the builder\n")).unwrap();
        assert_eq!(ok.0.len(), 2);
        assert!(ok.0["bob"].verify(b"secret"));
        let e = parse(&format!("alice:{APR1}\nbob:plain\nalice:{SHA}\nnocolon\n")).unwrap_err();
        let lines: Vec<usize> = e.iter().map(|(n, _)| *n).collect();
        assert_eq!(lines, [2, 3, 4], "{e:?}");
        assert!(e[0].1.starts_with("user \"bob\": a plaintext"), "{e:?}");
    }
}

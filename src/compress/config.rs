//! `compress` as written (`true`, `false` or a table), its checks and the
//! compiled [`Compress`]. The config loader hands a [`Report`] in, so these
//! errors carry file:line:col like every other.

use std::ops::Range;
use std::sync::Arc;

use serde::Deserialize;
use toml::Spanned;

use super::{Algorithm, Compress, Levels, TypePattern};

/// `compress = true` (the defaults), `false` (off: a location's turns its
/// server's off) or `{ algorithms = [...], types = [...], min_length = "1k",
/// level = { gzip = 5, br = 4, zstd = 3 } }`.
#[derive(Debug)]
pub enum RawCompressSetting {
    Bool(bool),
    Table(Box<RawCompress>),
}

// Written out rather than `#[serde(untagged)]`, so that values inside the
// table keep their positions and a misspelt key is named.
impl<'de> Deserialize<'de> for RawCompressSetting {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawCompressSetting;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("true, false or a table { algorithms = [...], types = [...], ... }")
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(RawCompressSetting::Bool(v))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                RawCompress::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(|t| RawCompressSetting::Table(Box::new(t)))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCompress {
    pub algorithms: Option<Spanned<Vec<Spanned<String>>>>,
    pub types: Option<Spanned<Vec<Spanned<String>>>>,
    pub min_length: Option<Spanned<RawSize>>,
    pub level: Option<Spanned<RawLevels>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLevels {
    pub gzip: Option<Spanned<i64>>,
    pub br: Option<Spanned<i64>>,
    pub zstd: Option<Spanned<i64>>,
}

/// A size: bytes, or `"1k"`, `"2m"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawSize {
    Int(i64),
    Str(String),
}

/// Where the checks' findings go (the config loader's error list).
pub trait Report {
    fn error(&mut self, span: Range<usize>, key: String, message: String);
    /// Parses a size as every size of the config is (`"8k"`, `"1m"`).
    fn parse_size(&self, s: &str) -> Option<u64>;
}

pub const DEFAULT_ALGORITHMS: [Algorithm; 3] = [Algorithm::Zstd, Algorithm::Br, Algorithm::Gzip];
pub const DEFAULT_TYPES: [&str; 4] = [
    "text/*",
    "application/json",
    "application/javascript",
    "image/svg+xml",
];
pub const DEFAULT_MIN_LENGTH: u64 = 1024;
pub const DEFAULT_LEVELS: Levels = Levels {
    gzip: 5,
    br: 4,
    zstd: 3,
};

/// The level ranges accepted, per coding: gzip's 1-9 (nginx's; 0 would
/// store), brotli's 0-11, zstd's 1-19 (20-22 need windows larger than the
/// 8 MiB RFC 9659 lets a client refuse beyond).
const LEVEL_RANGES: [(&str, i64, i64); 3] = [("gzip", 1, 9), ("br", 0, 11), ("zstd", 1, 19)];

/// Checks a `compress` setting; `Some(None)` is `compress = false`, `None`
/// an error (reported).
pub fn check<R: Report>(
    r: &mut R,
    v: &Spanned<RawCompressSetting>,
    key: &str,
) -> Option<Option<Arc<Compress>>> {
    let t = match v.get_ref() {
        RawCompressSetting::Bool(false) => return Some(None),
        RawCompressSetting::Bool(true) => return Some(Some(Arc::new(defaults()))),
        RawCompressSetting::Table(t) => t,
    };
    let mut ok = true;
    let mut plan = defaults();
    if let Some(algs) = &t.algorithms {
        plan.algorithms.clear();
        if algs.get_ref().is_empty() {
            r.error(
                algs.span(),
                format!("{key}.algorithms"),
                "needs at least one of \"zstd\", \"br\", \"gzip\" (to turn compression off, write compress = false)".into(),
            );
            ok = false;
        }
        for (i, a) in algs.get_ref().iter().enumerate() {
            let name = a.get_ref().as_str();
            match Algorithm::from_name(name) {
                Some(alg) if plan.algorithms.contains(&alg) => {
                    r.error(
                        a.span(),
                        format!("{key}.algorithms[{i}]"),
                        format!("{name:?} is listed twice"),
                    );
                    ok = false;
                }
                Some(alg) => plan.algorithms.push(alg),
                None => {
                    let hint = match closest(name, &Algorithm::NAMES) {
                        Some(k) => format!("; did you mean {k:?}?"),
                        None => " (known: \"zstd\", \"br\", \"gzip\")".into(),
                    };
                    let extra = if name.eq_ignore_ascii_case("deflate") {
                        " (deflate is not offered: clients disagree on its framing; gzip is the same codec)"
                    } else {
                        ""
                    };
                    r.error(
                        a.span(),
                        format!("{key}.algorithms[{i}]"),
                        format!("unknown algorithm {name:?}{hint}{extra}"),
                    );
                    ok = false;
                }
            }
        }
    }
    if let Some(types) = &t.types {
        plan.types.clear();
        if types.get_ref().is_empty() {
            r.error(
                types.span(),
                format!("{key}.types"),
                "needs at least one media type, such as \"text/*\" (\"*\": any)".into(),
            );
            ok = false;
        }
        for (i, ty) in types.get_ref().iter().enumerate() {
            match type_pattern(ty.get_ref()) {
                Ok(p) => plan.types.push(p),
                Err(why) => {
                    r.error(
                        ty.span(),
                        format!("{key}.types[{i}]"),
                        format!("{:?}: {why}", ty.get_ref()),
                    );
                    ok = false;
                }
            }
        }
    }
    if let Some(m) = &t.min_length {
        let parsed = match m.get_ref() {
            RawSize::Int(n) => u64::try_from(*n).ok(),
            RawSize::Str(s) => r.parse_size(s),
        };
        match parsed {
            Some(n) => plan.min_length = n,
            None => {
                r.error(
                    m.span(),
                    format!("{key}.min_length"),
                    "bad size: write bytes as a number, or with a k, m or g suffix (\"1k\")".into(),
                );
                ok = false;
            }
        }
    }
    if let Some(l) = &t.level {
        let l = l.get_ref();
        for ((name, lo, hi), v) in LEVEL_RANGES.iter().zip([&l.gzip, &l.br, &l.zstd]) {
            let Some(v) = v else { continue };
            let n = *v.get_ref();
            if !(*lo..=*hi).contains(&n) {
                r.error(
                    v.span(),
                    format!("{key}.level.{name}"),
                    format!("{name} levels go from {lo} to {hi}, not {n}"),
                );
                ok = false;
                continue;
            }
            match *name {
                "gzip" => plan.levels.gzip = n as u32,
                "br" => plan.levels.br = n as u32,
                _ => plan.levels.zstd = n as i32,
            }
        }
    }
    ok.then(|| Some(Arc::new(plan)))
}

fn defaults() -> Compress {
    Compress {
        algorithms: DEFAULT_ALGORITHMS.to_vec(),
        types: DEFAULT_TYPES
            .iter()
            .map(|t| type_pattern(t).expect("default types"))
            .collect(),
        min_length: DEFAULT_MIN_LENGTH,
        levels: DEFAULT_LEVELS,
    }
}

/// The known name nearest to `name`: within two edits, or one it starts
/// with (`"brotli"` is `"br"`).
fn closest<'k>(name: &str, known: &[&'k str]) -> Option<&'k str> {
    let lower = name.to_ascii_lowercase();
    known
        .iter()
        .map(|k| (strsim::levenshtein(&lower, k), *k))
        .filter(|(d, k)| *d <= 2 || lower.starts_with(k))
        .min()
        .map(|(_, k)| k)
}

/// RFC 9110 §5.6.2 `token` characters.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// `type/subtype`, `type/*` or `*`; lower-cased. No parameters: a type
/// matches whatever its parameters (`text/html; charset=utf-8`).
fn type_pattern(s: &str) -> Result<TypePattern, &'static str> {
    let s = s.trim();
    if s == "*" || s == "*/*" {
        return Ok(TypePattern::Any);
    }
    if s.contains(';') {
        return Err(
            "write the media type without parameters (\"text/html\", not \"text/html; charset=utf-8\")",
        );
    }
    let Some((ty, sub)) = s.split_once('/') else {
        return Err("not a media type: write \"type/subtype\", \"type/*\" or \"*\"");
    };
    if ty == "*" || !is_token(ty) || !is_token(sub) || (sub.contains('*') && sub != "*") {
        return Err("not a media type: write \"type/subtype\", \"type/*\" or \"*\"");
    }
    let lower = s.to_ascii_lowercase();
    Ok(if sub == "*" {
        TypePattern::Prefix(lower[..lower.len() - 1].to_string())
    } else {
        TypePattern::Exact(lower)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_patterns() {
        assert_eq!(type_pattern("text/*"), Ok(TypePattern::Prefix("text/".into())));
        assert_eq!(
            type_pattern("Application/JSON"),
            Ok(TypePattern::Exact("application/json".into()))
        );
        assert_eq!(type_pattern("*"), Ok(TypePattern::Any));
        assert_eq!(
            type_pattern("image/svg+xml"),
            Ok(TypePattern::Exact("image/svg+xml".into()))
        );
        for bad in [
            "text",
            "text/",
            "/json",
            "*/json",
            "text/h*",
            "text/html; charset=utf-8",
            "te xt/html",
            "a/b/c",
        ] {
            assert!(type_pattern(bad).is_err(), "{bad}");
        }
    }
}

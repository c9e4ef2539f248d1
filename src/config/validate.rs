//! Turns `raw` types into a [`Config`], collecting every error with its
//! position: `ringway.toml:14:12: server[0].location[2].proxy_pass: unknown
//! upstream "api" (defined: "web", "static")`.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use ipnet::IpNet;
use toml::Spanned;

use super::raw::{
    BoolOrInt, Number, RawAccessLog, RawConfig, RawHsts, RawLocation, RawPeer, RawServer, RawSplit,
    RawSticky, RawTls, RawUpstream, RawWhen, StrOrInt,
};
use super::*;

mod access;
mod access_log;
mod admin;
mod cache;
mod compress;
mod files;
mod headers;
mod http2;
mod location;
mod rewrite;
mod server;
mod tls;
mod upstream;
mod upstream_tls;
mod user;

use location::*;
use server::*;
use tls::*;
use upstream::*;

/// One problem in a config file, with where it is and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub col: usize,
    /// Which key, e.g. `server[0].location[2].proxy_pass`; empty for the whole file.
    pub key: String,
    pub message: String,
}

impl ConfigError {
    pub(super) fn whole_file(path: &Path, message: String) -> ConfigError {
        ConfigError {
            file: path.display().to_string(),
            line: 0,
            col: 0,
            key: String::new(),
            message,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: ", self.file)?;
        } else {
            write!(f, "{}:{}:{}: ", self.file, self.line, self.col)?;
        }
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

/// Every error found in one file, in file order.
#[derive(Debug, Clone)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

struct Checker<'a> {
    text: &'a str,
    /// The main file and what it includes: where an offset in `text` is.
    sources: &'a super::include::Sources,
    file: String,
    errors: Vec<ConfigError>,
    /// The system's CA certificates, read the first time an upstream needs them.
    system_roots: Option<Result<Arc<rustls::RootCertStore>, String>>,
    /// Upstreams that are defined but failed their checks: a location naming
    /// one is not also told the name is unknown (its error is reported once).
    failed_upstreams: std::collections::HashSet<String>,
    /// The names of the `[log_format.NAME]` tables that parsed, in order.
    log_formats: Vec<String>,
    /// The checked `[[limit]]`s, and the names of all, for `limits` lists.
    limits: Vec<crate::limit::Limit>,
    limit_names: Vec<String>,
    /// The checked `[[cache]]` zones, and the names of all.
    caches: Vec<crate::cache::ZoneDef>,
    cache_names: Vec<String>,
}

impl Checker<'_> {
    fn error(&mut self, span: Range<usize>, key: impl Into<String>, message: impl Into<String>) {
        let (file, line, col) = self.sources.locate(span.start);
        self.errors.push(ConfigError {
            file: file.to_string(),
            line,
            col,
            key: key.into(),
            message: message.into(),
        });
    }

    fn duration(&mut self, v: &Option<Spanned<String>>, key: &str, default: Duration) -> Duration {
        let Some(v) = v else { return default };
        match humantime::parse_duration(v.get_ref().trim()) {
            Ok(d) => d,
            Err(e) => {
                self.error(
                    v.span(),
                    key,
                    format!(
                        "bad duration {:?}: {e} (write it like \"750ms\", \"5s\" or \"2m\")",
                        v.get_ref()
                    ),
                );
                default
            }
        }
    }

    fn size(&mut self, v: &Spanned<StrOrInt>, key: &str) -> Option<u64> {
        let parsed = match v.get_ref() {
            StrOrInt::Int(n) if *n >= 0 => Some(*n as u64),
            StrOrInt::Int(_) => None,
            StrOrInt::Str(s) => parse_size(s),
        };
        if parsed.is_none() {
            self.error(
                v.span(),
                key,
                "bad size: write bytes as a number, or with a k, m or g suffix (\"8k\", \"1m\")",
            );
        }
        parsed
    }

    fn positive(&mut self, v: &Option<Spanned<i64>>, key: &str, default: u64) -> u64 {
        match v {
            None => default,
            Some(v) if *v.get_ref() > 0 => *v.get_ref() as u64,
            Some(v) => {
                self.error(v.span(), key, "must be a whole number above 0");
                default
            }
        }
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub(super) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// `"8k"`, `"1m"`, `"2g"` or plain bytes, as nginx writes sizes.
fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (digits, mult) = match s.as_bytes().last()?.to_ascii_lowercase() {
        b'k' => (&s[..s.len() - 1], 1u64 << 10),
        b'm' => (&s[..s.len() - 1], 1 << 20),
        b'g' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    digits.parse::<u64>().ok()?.checked_mul(mult)
}

/// One step of a key path: a table key or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
}

fn segments(path: &serde_ignored::Path) -> Vec<Seg> {
    use serde_ignored::Path;
    let mut out = match path {
        Path::Root => return Vec::new(),
        Path::Seq { parent, .. }
        | Path::Map { parent, .. }
        | Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => segments(parent),
    };
    match path {
        // The fields of toml's `Spanned` wrapper are not keys of the file.
        Path::Map { key, .. } if key.starts_with("$__serde_spanned") => {}
        Path::Map { key, .. } => out.push(Seg::Key(key.clone())),
        Path::Seq { index, .. } => out.push(Seg::Index(*index)),
        _ => {}
    }
    out
}

/// `server[0].location[1].pth`
fn key_name(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) if s.is_empty() => s.push_str(k),
            Seg::Key(k) => {
                s.push('.');
                s.push_str(k);
            }
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

/// Where a key is written, found in the document's syntax tree.
fn key_span(doc: &toml_edit::ImDocument<&str>, path: &[Seg]) -> Option<Range<usize>> {
    let (Seg::Key(last), parents) = path.split_last()? else {
        return None;
    };
    let mut item = doc.as_item();
    for seg in parents {
        item = match seg {
            Seg::Key(k) => item.get(k.as_str())?,
            Seg::Index(i) => item.get(*i)?,
        };
    }
    let (key, _) = item.as_table_like()?.get_key_value(last)?;
    key.span()
}

/// The keys a table accepts, by where it sits, for "did you mean".
fn known_keys(parents: &[Seg]) -> &'static [&'static str] {
    use super::raw::{RawGlobal, RawReturn};
    let keys: Vec<&str> = parents
        .iter()
        .filter_map(|s| match s {
            Seg::Key(k) => Some(k.as_str()),
            Seg::Index(_) => None,
        })
        .collect();
    match keys.as_slice() {
        [] => fields_of::<RawConfig>(),
        ["global"] => fields_of::<RawGlobal>(),
        ["upstream"] => fields_of::<RawUpstream>(),
        ["upstream", "sticky"] => fields_of::<RawSticky>(),
        ["upstream", "health_check"] => fields_of::<super::raw::RawHealthCheck>(),
        ["server"] => fields_of::<RawServer>(),
        ["admin"] => fields_of::<super::raw::RawAdmin>(),
        ["log_format", _] => fields_of::<super::raw::RawLogFormat>(),
        ["server", "location"] => fields_of::<RawLocation>(),
        ["server", "tls"] => fields_of::<RawTls>(),
        ["server", "hsts"] => fields_of::<RawHsts>(),
        ["server", "location", "return"] => fields_of::<RawReturn>(),
        ["server", "rewrite"] | ["server", "location", "rewrite"] => fields_of::<super::raw::RawRewrite>(),
        ["server", "request_headers"] | ["server", "location", "request_headers"] => {
            fields_of::<super::raw::RawRequestHeaders>()
        }
        ["server", "response_headers"] | ["server", "location", "response_headers"] => {
            fields_of::<super::raw::RawResponseHeaders>()
        }
        ["server", "compress"] | ["server", "location", "compress"] => {
            fields_of::<crate::compress::RawCompress>()
        }
        ["server", "location", "split"] => fields_of::<RawSplit>(),
        ["limit"] => fields_of::<crate::limit::RawLimit>(),
        ["server", "access"] | ["server", "location", "access"] => fields_of::<crate::access::RawRule>(),
        ["server", "auth"] | ["server", "location", "auth"] => fields_of::<crate::access::RawAuth>(),
        ["server", "auth", "basic"] | ["server", "location", "auth", "basic"] => {
            fields_of::<crate::access::basic::RawBasic>()
        }
        ["server", "auth", "api_key"] | ["server", "location", "auth", "api_key"] => {
            fields_of::<crate::access::apikey::RawApiKey>()
        }
        ["server", "auth", "jwt"] | ["server", "location", "auth", "jwt"] => {
            fields_of::<crate::access::jwt::RawJwt>()
        }
        ["server", "auth", "request"] | ["server", "location", "auth", "request"] => {
            fields_of::<crate::access::request::RawRequest>()
        }
        ["cache"] => fields_of::<crate::cache::RawZone>(),
        ["server", "location", "cache"] => fields_of::<crate::cache::RawCache>(),
        ["server", "location", "split", "when"] => fields_of::<RawWhen>(),
        _ => &[],
    }
}

/// The field names of a derived `Deserialize` struct, read by asking it to
/// deserialize from a probe that records what it is asked for.
fn fields_of<T: serde::de::DeserializeOwned>() -> &'static [&'static str] {
    use serde::de::{Deserializer, Visitor};

    #[derive(Debug)]
    struct Stop;
    impl fmt::Display for Stop {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("probe")
        }
    }
    impl std::error::Error for Stop {}
    impl serde::de::Error for Stop {
        fn custom<M: fmt::Display>(_: M) -> Self {
            Stop
        }
    }

    struct Probe<'a>(&'a mut &'static [&'static str]);
    impl<'de> Deserializer<'de> for Probe<'_> {
        type Error = Stop;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
            Err(Stop)
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Stop> {
            *self.0 = fields;
            Err(Stop)
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map
            enum identifier ignored_any
        }
    }

    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Probe(&mut fields));
    fields
}

fn report_unknown_keys(c: &mut Checker, unknown: &[Vec<Seg>]) {
    let doc = toml_edit::ImDocument::parse(c.text).ok();
    for path in unknown {
        let Some((Seg::Key(name), parents)) = path.split_last() else {
            continue;
        };
        let span = doc.as_ref().and_then(|d| key_span(d, path)).unwrap_or(0..0);
        let known = known_keys(parents);
        let closest = known
            .iter()
            .map(|k| (strsim::levenshtein(name, k), *k))
            .filter(|(d, _)| *d <= 2)
            .min();
        let message = match closest {
            Some((_, k)) => format!("unknown key `{name}`; did you mean `{k}`?"),
            None if known.is_empty() => format!("unknown key `{name}`"),
            None => format!("unknown key `{name}` (known here: {})", known.join(", ")),
        };
        c.error(span, key_name(path), message);
    }
}

/// Adds a suggestion to serde's "unknown field `lisen`, expected one of
/// `listen`, ..." and explains the usual cause of "expected a sequence".
fn with_hint(message: &str) -> String {
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let Some((field, expected)) = rest.split_once('`') else {
            return message.to_string();
        };
        let closest = expected
            .split('`')
            .skip(1)
            .step_by(2)
            .map(|k| (strsim::levenshtein(field, k), k))
            .filter(|(d, _)| *d <= 2)
            .min();
        if let Some((_, k)) = closest {
            return format!("{message}; did you mean `{k}`?");
        }
    } else if message.contains("invalid type: map, expected a sequence") {
        return format!(
            "{message} (repeated tables are written [[server]], [[upstream]], [[server.location]])"
        );
    }
    message.to_string()
}

const LOG_LEVELS: [&str; 5] = ["error", "warn", "info", "debug", "trace"];

pub(super) fn validate(text: &str, origin: &Path) -> Result<Config, ConfigErrors> {
    let sources = super::include::assemble(text, origin).map_err(ConfigErrors)?;
    let text = sources.text.as_str();
    let mut c = Checker {
        text,
        sources: &sources,
        file: origin.display().to_string(),
        errors: Vec::new(),
        system_roots: None,
        failed_upstreams: Default::default(),
        log_formats: Vec::new(),
        limits: Vec::new(),
        limit_names: Vec::new(),
        caches: Vec::new(),
        cache_names: Vec::new(),
    };
    let mut unknown: Vec<Vec<Seg>> = Vec::new();
    let de = toml::Deserializer::new(text);
    let raw: RawConfig = match serde_ignored::deserialize(de, |path| unknown.push(segments(&path))) {
        Ok(raw) => raw,
        Err(e) => {
            // A syntax or type error stops serde, so it comes alone.
            let span = e.span().unwrap_or(0..0);
            c.error(span, "", with_hint(e.message().trim()));
            return Err(ConfigErrors(c.errors));
        }
    };
    if !unknown.is_empty() {
        report_unknown_keys(&mut c, &unknown);
    }

    let global = check_global(&mut c, &raw);
    let log_formats = access_log::check_formats(&mut c, &raw);
    let limits = access::limits(&mut c, &raw);
    let caches = cache::zones(&mut c, &raw);
    let mut upstreams = Vec::new();
    let mut by_name: HashMap<String, usize> = HashMap::new();
    for (i, u) in raw.upstream.iter().enumerate() {
        let key = format!("upstream[{i}]");
        let Some(up) = check_upstream(&mut c, u.get_ref(), &key) else {
            c.failed_upstreams.insert(u.get_ref().name.get_ref().clone());
            continue;
        };
        if by_name.contains_key(&up.name) {
            c.error(
                u.get_ref().name.span(),
                format!("{key}.name"),
                format!("upstream {:?} is defined twice", up.name),
            );
            continue;
        }
        by_name.insert(up.name.clone(), upstreams.len());
        upstreams.push(up);
    }

    if raw.server.is_empty() {
        c.error(0..0, "", "no [[server]] block: nothing would listen");
    }
    let mut servers = Vec::new();
    for (i, s) in raw.server.iter().enumerate() {
        let server = check_server(&mut c, s, i, &mut upstreams, &mut by_name);
        servers.push(server);
    }
    access::strip_identity_fields(&mut servers);
    check_name_conflicts(&mut c, &raw, &servers);
    check_tls_addresses(&mut c, &raw, &servers);
    http2::check_addresses(&mut c, &raw, &servers);
    let admin = admin::check(&mut c, &raw, &servers);

    if c.errors.is_empty() {
        Ok(Config {
            global,
            upstreams,
            servers,
            admin,
            log_formats,
            limits,
            caches,
            files: sources.files.clone(),
        })
    } else {
        c.errors.sort_by_key(|e| (sources.order(&e.file), e.line, e.col));
        Err(ConfigErrors(c.errors))
    }
}

fn check_global(c: &mut Checker, raw: &RawConfig) -> Global {
    let g = &raw.global;
    let workers = match &g.workers {
        None => Workers::Auto,
        Some(w) => match w.get_ref() {
            StrOrInt::Str(s) if s == "auto" => Workers::Auto,
            StrOrInt::Int(n) if (1..=1024).contains(n) => Workers::Count(*n as usize),
            _ => {
                c.error(
                    w.span(),
                    "global.workers",
                    "must be \"auto\" or a number from 1 to 1024",
                );
                Workers::Auto
            }
        },
    };
    let log_level = match &g.log_level {
        None => "info".to_string(),
        Some(l) if LOG_LEVELS.contains(&l.get_ref().as_str()) => l.get_ref().clone(),
        Some(l) => {
            c.error(
                l.span(),
                "global.log_level",
                format!(
                    "unknown level {:?} (one of: {})",
                    l.get_ref(),
                    LOG_LEVELS.join(", ")
                ),
            );
            "info".to_string()
        }
    };
    let drain_timeout = c.duration(&g.drain_timeout, "global.drain_timeout", Duration::from_secs(10));
    let max_connections = c.positive(&g.max_connections, "global.max_connections", 16384) as usize;
    let mut trusted_proxies = Vec::new();
    for (i, p) in g.trusted_proxies.iter().flatten().enumerate() {
        let s = p.get_ref().trim();
        let net = s
            .parse::<IpNet>()
            .ok()
            .or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from));
        match net {
            Some(n) => trusted_proxies.push(n),
            None => c.error(
                p.span(),
                format!("global.trusted_proxies[{i}]"),
                format!("{s:?} is not an address or CIDR (\"10.0.0.0/8\", \"::1\")"),
            ),
        }
    }
    let pid_file = g.pid_file.as_ref().and_then(|p| {
        if p.get_ref().trim().is_empty() {
            c.error(
                p.span(),
                "global.pid_file",
                "an empty path: write a file path or leave the key out",
            );
            return None;
        }
        // Relative to the config file's directory, as certificate paths are.
        let path = Path::new(p.get_ref());
        Some(match Path::new(&c.file).parent() {
            Some(dir) if path.is_relative() => dir.join(path),
            _ => path.to_path_buf(),
        })
    });
    Global {
        workers,
        log_level,
        drain_timeout,
        max_connections,
        trusted_proxies,
        pid_file,
        reload_watch: g.reload_watch.unwrap_or(false),
        run_as: user::check(c, g),
        trace: g.trace.unwrap_or(false),
    }
}

/// `defined: "a", "b"` or `none defined`, for unknown-upstream errors.
fn defined_upstreams(upstreams: &[Upstream]) -> String {
    let mut defined: Vec<String> = upstreams
        .iter()
        .filter(|u| !u.implicit)
        .map(|u| format!("{:?}", u.name))
        .collect();
    defined.sort();
    if defined.is_empty() {
        "none defined".to_string()
    } else {
        format!("defined: {}", defined.join(", "))
    }
}

/// Two server blocks claiming the same name on the same address would make the
/// second unreachable; nginx only warns, which hides the mistake.
fn check_name_conflicts(c: &mut Checker, raw: &RawConfig, servers: &[Server]) {
    let mut seen: HashMap<(SocketAddr, String), usize> = HashMap::new();
    for (i, s) in servers.iter().enumerate() {
        for addr in &s.listen {
            for name in &s.server_names {
                if let Some(first) = seen.insert((*addr, name.clone()), i) {
                    if first != i {
                        c.error(
                            raw.server[i].span(),
                            format!("server[{i}].server_name"),
                            format!("{name:?} on {addr} is already served by server[{first}]"),
                        );
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;

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
    BoolOrInt, Number, RawConfig, RawHsts, RawLocation, RawPeer, RawServer, RawSplit, RawSticky, RawTls,
    RawUpstream, RawWhen, StrOrInt,
};
use super::*;

mod http2;
mod upstream_tls;

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
    file: String,
    errors: Vec<ConfigError>,
    /// The system's CA certificates, read the first time an upstream needs them.
    system_roots: Option<Result<Arc<rustls::RootCertStore>, String>>,
    /// Upstreams that are defined but failed their checks: a location naming
    /// one is not also told the name is unknown (its error is reported once).
    failed_upstreams: std::collections::HashSet<String>,
}

impl Checker<'_> {
    fn error(&mut self, span: Range<usize>, key: impl Into<String>, message: impl Into<String>) {
        let (line, col) = line_col(self.text, span.start);
        self.errors.push(ConfigError {
            file: self.file.clone(),
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
fn line_col(text: &str, offset: usize) -> (usize, usize) {
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
        ["server", "location"] => fields_of::<RawLocation>(),
        ["server", "tls"] => fields_of::<RawTls>(),
        ["server", "hsts"] => fields_of::<RawHsts>(),
        ["server", "location", "return"] => fields_of::<RawReturn>(),
        ["server", "location", "split"] => fields_of::<RawSplit>(),
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
    let mut c = Checker {
        text,
        file: origin.display().to_string(),
        errors: Vec::new(),
        system_roots: None,
        failed_upstreams: Default::default(),
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
    check_name_conflicts(&mut c, &raw, &servers);
    check_tls_addresses(&mut c, &raw, &servers);
    http2::check_addresses(&mut c, &raw, &servers);

    if c.errors.is_empty() {
        Ok(Config {
            global,
            upstreams,
            servers,
        })
    } else {
        c.errors.sort_by_key(|e| (e.line, e.col));
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
    Global {
        workers,
        log_level,
        drain_timeout,
        max_connections,
        trusted_proxies,
    }
}

fn upstream_defaults(name: String, servers: Vec<Peer>, implicit: bool) -> Upstream {
    let servers_len = servers.len();
    Upstream {
        name,
        servers,
        keepalive: 32,
        keepalive_timeout: Duration::from_secs(60),
        connect_timeout: Duration::from_secs(5),
        read_timeout: Duration::from_secs(60),
        send_timeout: Duration::from_secs(60),
        implicit,
        balance: Balance::RoundRobin,
        // nginx tries every server by default; one retry elsewhere covers a
        // dead server without multiplying the load of a slow one.
        tries: if servers_len > 1 { 2 } else { 1 },
        tries_timeout: Duration::ZERO,
        sticky: None,
        next_upstream: NextUpstream::DEFAULT,
        tls: None,
        health_check: None,
        resolve_interval: None,
        protocol: UpstreamProtocol::Http1,
        h2_connections: 1,
    }
}

/// Resolves `host:port` once, at load. Blocking, which is why it lives here.
#[allow(clippy::disallowed_methods)]
fn resolve(authority: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = authority.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let Some((host, port)) = authority.rsplit_once(':') else {
        return Err(format!("{authority:?} has no port (write host:port)"));
    };
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(format!("{authority:?} is not host:port"));
    }
    match authority.to_socket_addrs() {
        Ok(mut addrs) => addrs
            .next()
            .ok_or_else(|| format!("{host:?} resolves to no address")),
        Err(e) => Err(format!("cannot resolve {host:?}: {e}")),
    }
}

fn check_upstream(c: &mut Checker, u: &RawUpstream, key: &str) -> Option<Upstream> {
    let name = u.name.get_ref().clone();
    let mut ok = true;
    if name.is_empty() || name.contains(['/', ':', ' ']) {
        c.error(
            u.name.span(),
            format!("{key}.name"),
            "must be a plain name such as \"app\"",
        );
        ok = false;
    }
    if u.servers.get_ref().is_empty() {
        c.error(
            u.servers.span(),
            format!("{key}.servers"),
            "needs at least one server",
        );
        ok = false;
    }
    let mut servers = Vec::new();
    for (j, p) in u.servers.get_ref().iter().enumerate() {
        let pkey = format!("{key}.servers[{j}]");
        let (authority, weight, t) = match p.get_ref() {
            RawPeer::Addr(a) => (a.clone(), 1, None),
            RawPeer::Full(t) => (t.addr.clone(), t.weight.unwrap_or(1), Some(t)),
        };
        if !(1..=10_000).contains(&weight) {
            c.error(p.span(), &pkey, "weight must be from 1 to 10000");
            ok = false;
            continue;
        }
        let addr = match resolve(&authority) {
            Ok(addr) => addr,
            Err(e) => {
                c.error(p.span(), &pkey, e);
                ok = false;
                continue;
            }
        };
        let mut peer = Peer::new(authority, addr);
        peer.weight = weight as u32;
        if let Some(t) = t {
            peer.backup = t.backup.unwrap_or(false);
            if let Some(n) = t.max_fails {
                match u32::try_from(n) {
                    Ok(n) if n <= 1000 => peer.max_fails = n,
                    _ => {
                        c.error(p.span(), format!("{pkey}.max_fails"), "must be from 0 to 1000");
                        ok = false;
                    }
                }
            }
            // Inside an untagged enum the value has no span of its own: the
            // error points at the server entry.
            if let Some(d) = &t.fail_timeout {
                match humantime::parse_duration(d.trim()) {
                    Ok(d) if !d.is_zero() => peer.fail_timeout = d,
                    Ok(_) => {
                        c.error(
                            p.span(),
                            format!("{pkey}.fail_timeout"),
                            "must be above 0 (write max_fails = 0 to never mark the server down)",
                        );
                        ok = false;
                    }
                    Err(e) => {
                        c.error(
                            p.span(),
                            format!("{pkey}.fail_timeout"),
                            format!("bad duration {d:?}: {e} (write it like \"750ms\", \"5s\" or \"2m\")"),
                        );
                        ok = false;
                    }
                }
            }
        }
        servers.push(peer);
    }
    if !servers.is_empty() && servers.iter().all(|s| s.backup) {
        c.error(
            u.servers.span(),
            format!("{key}.servers"),
            "every server is a backup: at least one must not be",
        );
        ok = false;
    }
    let mut up = upstream_defaults(name, servers, false);
    if let Some(k) = &u.keepalive {
        match usize::try_from(*k.get_ref()) {
            Ok(n) if n <= 65_536 => up.keepalive = n,
            _ => {
                c.error(k.span(), format!("{key}.keepalive"), "must be from 0 to 65536");
                ok = false;
            }
        }
    }
    up.keepalive_timeout = c.duration(
        &u.keepalive_timeout,
        &format!("{key}.keepalive_timeout"),
        up.keepalive_timeout,
    );
    up.connect_timeout = c.duration(
        &u.connect_timeout,
        &format!("{key}.connect_timeout"),
        up.connect_timeout,
    );
    up.read_timeout = c.duration(&u.read_timeout, &format!("{key}.read_timeout"), up.read_timeout);
    up.send_timeout = c.duration(&u.send_timeout, &format!("{key}.send_timeout"), up.send_timeout);
    if let Some(b) = &u.balance {
        match Balance::parse(b.get_ref()) {
            Some(v) => up.balance = v,
            None => {
                c.error(
                    b.span(),
                    format!("{key}.balance"),
                    format!(
                        "unknown balance {:?} (one of: {})",
                        b.get_ref(),
                        Balance::NAMES.join(", ")
                    ),
                );
                ok = false;
            }
        }
    }
    if let Some(d) = &u.ewma_decay {
        let dkey = format!("{key}.ewma_decay");
        let decay = c.duration(&u.ewma_decay, &dkey, Balance::EWMA_DECAY);
        match up.balance {
            Balance::Ewma(_) if decay.is_zero() => {
                c.error(d.span(), dkey, "must be above 0");
                ok = false;
            }
            Balance::Ewma(_) => up.balance = Balance::Ewma(decay),
            _ => {
                c.error(d.span(), dkey, "only applies with balance = \"ewma\"");
                ok = false;
            }
        }
    }
    if let Some(h) = &u.hash {
        let hkey = format!("{key}.hash");
        if u.balance.is_some() {
            c.error(
                h.span(),
                hkey,
                "`hash` chooses the server itself: remove `balance`",
            );
            ok = false;
        } else {
            match parse_key(h.get_ref()) {
                Ok(k) => up.balance = Balance::Hash(k),
                Err(why) => {
                    c.error(h.span(), hkey, why);
                    ok = false;
                }
            }
        }
    }
    if let Some(t) = &u.tries {
        match usize::try_from(*t.get_ref()) {
            Ok(n) if (1..=100).contains(&n) => up.tries = n,
            _ => {
                c.error(t.span(), format!("{key}.tries"), "must be from 1 to 100");
                ok = false;
            }
        }
    }
    up.tries_timeout = c.duration(
        &u.tries_timeout,
        &format!("{key}.tries_timeout"),
        up.tries_timeout,
    );
    if let Some(list) = &u.next_upstream {
        match check_next_upstream(c, list, &format!("{key}.next_upstream")) {
            Some(n) => up.next_upstream = n,
            None => ok = false,
        }
    }
    if let Some(st) = &u.sticky {
        match check_sticky(c, st.get_ref(), &format!("{key}.sticky")) {
            Some(st) => up.sticky = Some(st),
            None => ok = false,
        }
    }
    let tls_keys = upstream_tls::TlsKeys::upstream(u);
    match &u.tls {
        Some(on) if *on.get_ref() && ok => {
            up.tls = upstream_tls::check(c, &tls_keys, key, &up.servers, on.span());
            ok &= up.tls.is_some();
        }
        Some(on) if *on.get_ref() => {}
        _ => ok &= upstream_tls::refuse_unused(c, &tls_keys, key, "tls = true"),
    }
    ok &= http2::check_upstream(c, u, key, &mut up);
    if let Some(h) = &u.health_check {
        up.health_check = check_health_check(c, h, &format!("{key}.health_check"));
        ok &= up.health_check.is_some();
    }
    if let Some(r) = &u.resolve_interval {
        let rkey = format!("{key}.resolve_interval");
        let before = c.errors.len();
        let d = c.duration(&u.resolve_interval, &rkey, Duration::ZERO);
        if c.errors.len() > before {
            ok = false;
        } else if d.is_zero() {
            c.error(
                r.span(),
                rkey,
                "must be above 0 (leave it out to resolve names only when the config loads)",
            );
            ok = false;
        } else {
            up.resolve_interval = Some(d);
        }
    }
    ok.then_some(up)
}

/// `next_upstream = [...]`, nginx's `proxy_next_upstream` names.
fn check_next_upstream(
    c: &mut Checker,
    list: &Spanned<Vec<Spanned<String>>>,
    key: &str,
) -> Option<NextUpstream> {
    let before = c.errors.len();
    let mut flags = NextUpstream::OFF;
    let names = list.get_ref();
    if names.is_empty() {
        c.error(
            list.span(),
            key,
            "is empty: write [\"off\"] to never try another server",
        );
    }
    for (i, n) in names.iter().enumerate() {
        let name = n.get_ref().as_str();
        match (name, NextUpstream::parse(name)) {
            (_, Some(f)) => flags = flags.with(f),
            ("off", _) if names.len() == 1 => {}
            ("off", _) => c.error(n.span(), format!("{key}[{i}]"), "\"off\" goes alone"),
            ("non_idempotent", _) => c.error(
                n.span(),
                format!("{key}[{i}]"),
                "not supported: a request that is not idempotent is never sent to a second server once sent",
            ),
            _ => {
                let known: Vec<&str> = NextUpstream::NAMES
                    .iter()
                    .map(|(n, _)| *n)
                    .chain(["off"])
                    .collect();
                let closest = known
                    .iter()
                    .map(|k| (strsim::levenshtein(name, k), *k))
                    .filter(|(d, _)| *d <= 2)
                    .min();
                let hint = match closest {
                    Some((_, k)) => format!("; did you mean {k:?}?"),
                    None => format!(" (one of: {})", known.join(", ")),
                };
                c.error(
                    n.span(),
                    format!("{key}[{i}]"),
                    format!("unknown failure kind {name:?}{hint}"),
                );
            }
        }
    }
    (c.errors.len() == before).then_some(flags)
}

/// `sticky = { ... }`. Cookie attributes are checked against RFC 6265's
/// grammar, since a bad one would be sent to every client.
fn check_sticky(c: &mut Checker, r: &RawSticky, key: &str) -> Option<Sticky> {
    let before = c.errors.len();
    let mut st = Sticky {
        cookie: "rw_srv".to_string(),
        path: "/".to_string(),
        domain: None,
        max_age: None,
        httponly: r.httponly.unwrap_or(false),
        secure: r.secure.unwrap_or(false),
        samesite: None,
    };
    if let Some(n) = &r.cookie {
        // RFC 6265 §4.1.1: a cookie name is an RFC 2616 token.
        if n.get_ref().is_empty() || !n.get_ref().bytes().all(is_token) {
            c.error(
                n.span(),
                format!("{key}.cookie"),
                format!(
                    "{:?} is not a cookie name (letters, digits and !#$%&'*+-.^_`|~)",
                    n.get_ref()
                ),
            );
        }
        st.cookie = n.get_ref().clone();
    }
    // RFC 6265 §4.1.1: attribute values are any visible character but `;`.
    let attr_ok = |v: &str| !v.is_empty() && v.bytes().all(|b| b.is_ascii_graphic() && b != b';');
    if let Some(p) = &r.path {
        if !p.get_ref().starts_with('/') || !attr_ok(p.get_ref()) {
            c.error(
                p.span(),
                format!("{key}.path"),
                "must start with \"/\" and hold no spaces or `;`",
            );
        }
        st.path = p.get_ref().clone();
    }
    if let Some(d) = &r.domain {
        if !attr_ok(d.get_ref()) {
            c.error(
                d.span(),
                format!("{key}.domain"),
                "must be a host name with no spaces or `;`",
            );
        }
        st.domain = Some(d.get_ref().clone());
    }
    if r.max_age.is_some() {
        let parsed = c.errors.len();
        let d = c.duration(&r.max_age, &format!("{key}.max_age"), Duration::ZERO);
        if let (Some(v), true) = (&r.max_age, d.as_secs() == 0) {
            if c.errors.len() == parsed {
                c.error(
                    v.span(),
                    format!("{key}.max_age"),
                    "must be 1s or more (leave it out for a session cookie)",
                );
            }
        }
        st.max_age = Some(d);
    }
    if let Some(v) = &r.samesite {
        st.samesite = match v.get_ref().to_ascii_lowercase().as_str() {
            "strict" => Some("Strict"),
            "lax" => Some("Lax"),
            "none" if st.secure => Some("None"),
            "none" => {
                c.error(
                    v.span(),
                    format!("{key}.samesite"),
                    "\"None\" needs secure = true (browsers drop the cookie otherwise)",
                );
                None
            }
            _ => {
                c.error(
                    v.span(),
                    format!("{key}.samesite"),
                    "one of: \"Strict\", \"Lax\", \"None\"",
                );
                None
            }
        };
    }
    (c.errors.len() == before).then_some(st)
}

/// Variables a request key may use: (name as written, what it is).
const KEY_VARIABLES: [&str; 5] = [
    "request_uri",
    "uri",
    "remote_addr",
    "http_<name>",
    "cookie_<name>",
];

/// Compiles a request key such as `"$http_x_tenant:$cookie_session"`:
/// literal text and `$name` or `${name}` variables. An unknown variable is an
/// error with the nearest known one.
fn parse_key(text: &str) -> Result<RequestKey, String> {
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    while let Some(dollar) = rest.find('$') {
        literal.push_str(&rest[..dollar]);
        let after = &rest[dollar + 1..];
        let (name, next) = if let Some(braced) = after.strip_prefix('{') {
            let end = braced
                .find('}')
                .ok_or_else(|| format!("unclosed `${{` in {text:?}"))?;
            (&braced[..end], &braced[end + 1..])
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        if name.is_empty() {
            return Err(format!(
                "a `$` in {text:?} starts no variable (known: {})",
                known_variables()
            ));
        }
        if !literal.is_empty() {
            parts.push(KeyPart::Literal(std::mem::take(&mut literal)));
        }
        parts.push(key_variable(name)?);
        rest = next;
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        parts.push(KeyPart::Literal(literal));
    }
    if !parts.iter().any(|p| !matches!(p, KeyPart::Literal(_))) {
        return Err(format!(
            "{text:?} has no variable, so every request would get the same key (known: {})",
            known_variables()
        ));
    }
    Ok(RequestKey {
        text: text.to_string(),
        parts,
    })
}

fn known_variables() -> String {
    KEY_VARIABLES.map(|v| format!("${v}")).join(", ")
}

fn key_variable(name: &str) -> Result<KeyPart, String> {
    let field = |rest: &str| rest.to_ascii_lowercase().replace('_', "-");
    match name {
        "request_uri" => return Ok(KeyPart::RequestUri),
        "uri" => return Ok(KeyPart::Uri),
        "remote_addr" => return Ok(KeyPart::RemoteAddr),
        _ => {}
    }
    if let Some(h) = name.strip_prefix("http_").filter(|h| !h.is_empty()) {
        return Ok(KeyPart::Header(field(h)));
    }
    if let Some(c) = name.strip_prefix("cookie_").filter(|c| !c.is_empty()) {
        return Ok(KeyPart::Cookie(c.to_string()));
    }
    // The nearest known name: a fixed one, or a prefix with the rest kept
    // (`$htp_host` → `$http_host`).
    let mut candidates: Vec<String> = ["request_uri", "uri", "remote_addr"].map(String::from).to_vec();
    if let Some((_, rest)) = name.split_once('_') {
        candidates.push(format!("http_{rest}"));
        candidates.push(format!("cookie_{rest}"));
    }
    let closest = candidates
        .iter()
        .map(|k| (strsim::levenshtein(name, k), k))
        .filter(|(d, _)| *d <= 2)
        .min();
    Err(match closest {
        Some((_, k)) => format!("unknown variable `${name}`; did you mean `${k}`?"),
        None => format!("unknown variable `${name}` (known: {})", known_variables()),
    })
}

/// `"200-399"`, `"200"`, `"200,204,300-302"`: each code from 100 to 599.
fn parse_expect(s: &str) -> Option<Vec<(u16, u16)>> {
    let code = |t: &str| t.trim().parse::<u16>().ok().filter(|c| (100..=599).contains(c));
    s.split(',')
        .map(|part| match part.split_once('-') {
            Some((lo, hi)) => Some((code(lo)?, code(hi)?)).filter(|(lo, hi)| lo <= hi),
            None => code(part).map(|c| (c, c)),
        })
        .collect()
}

fn check_health_check(
    c: &mut Checker,
    h: &Spanned<super::raw::RawHealthCheck>,
    key: &str,
) -> Option<HealthCheck> {
    let r = h.get_ref();
    let k = |name: &str| format!("{key}.{name}");
    let mut ok = true;
    let tcp = match &r.type_ {
        None => false,
        Some(t) if t.get_ref() == "http" => false,
        Some(t) if t.get_ref() == "tcp" => true,
        Some(t) => {
            c.error(
                t.span(),
                k("type"),
                format!("unknown check type {:?} (one of: http, tcp)", t.get_ref()),
            );
            return None;
        }
    };
    let interval = c.duration(&r.interval, &k("interval"), Duration::from_secs(5));
    let timeout = c.duration(&r.timeout, &k("timeout"), Duration::from_secs(2));
    // Below 10ms a probe is a busy loop, not a check.
    for (v, name, d) in [
        (&r.interval, "interval", interval),
        (&r.timeout, "timeout", timeout),
    ] {
        if let (Some(v), true) = (v, d < Duration::from_millis(10)) {
            c.error(v.span(), k(name), "must be at least 10ms");
            ok = false;
        }
    }
    let mut count = |v: &Option<Spanned<i64>>, name: &str, default: u32| match v {
        None => default,
        Some(n) if (1..=100).contains(n.get_ref()) => *n.get_ref() as u32,
        Some(n) => {
            c.error(n.span(), k(name), "must be from 1 to 100");
            ok = false;
            default
        }
    };
    let rise = count(&r.rise, "rise", 2);
    let fall = count(&r.fall, "fall", 3);
    let probe = if tcp {
        for (v, name) in [(&r.path, "path"), (&r.host, "host"), (&r.expect, "expect")] {
            if let Some(v) = v {
                c.error(v.span(), k(name), "only applies to type = \"http\"");
                ok = false;
            }
        }
        Probe::Tcp
    } else {
        let path = match &r.path {
            None => "/".to_string(),
            Some(p) => {
                let v = p.get_ref();
                if !v.starts_with('/') || v.bytes().any(|b| b <= b' ' || b == 0x7f) {
                    c.error(
                        p.span(),
                        k("path"),
                        "must start with \"/\" and have no spaces or control characters",
                    );
                    ok = false;
                }
                v.clone()
            }
        };
        let host = r.host.as_ref().map(|h| {
            let v = h.get_ref();
            if v.is_empty() || v.bytes().any(|b| b <= b' ' || b == 0x7f || b == b'/') {
                c.error(h.span(), k("host"), "must be a host name or host:port");
                ok = false;
            }
            v.clone()
        });
        let expect = match &r.expect {
            None => vec![(200, 399)],
            Some(e) => parse_expect(e.get_ref()).unwrap_or_else(|| {
                c.error(
                    e.span(),
                    k("expect"),
                    format!(
                        "bad status list {:?}: write codes or ranges from 100 to 599 (\"200-399\", \"200,204\")",
                        e.get_ref()
                    ),
                );
                ok = false;
                Vec::new()
            }),
        };
        Probe::Http { path, host, expect }
    };
    ok.then_some(HealthCheck {
        probe,
        interval,
        timeout,
        rise,
        fall,
    })
}

fn check_listen(c: &mut Checker, v: &Spanned<StrOrInt>, key: &str) -> Option<SocketAddr> {
    let parsed = match v.get_ref() {
        // A bare port listens on every IPv4 address, as `listen 8080;` does in nginx.
        StrOrInt::Int(p) => u16::try_from(*p)
            .ok()
            .map(|p| SocketAddr::from(([0, 0, 0, 0], p))),
        StrOrInt::Str(s) => s
            .parse::<SocketAddr>()
            .ok()
            .or_else(|| s.parse::<u16>().ok().map(|p| SocketAddr::from(([0, 0, 0, 0], p)))),
    };
    if parsed.is_none() {
        c.error(
            v.span(),
            key,
            "not a listen address: write \"127.0.0.1:8080\", \"[::]:8080\" or a port",
        );
    }
    parsed
}

fn check_server(
    c: &mut Checker,
    s: &Spanned<RawServer>,
    i: usize,
    upstreams: &mut Vec<Upstream>,
    by_name: &mut HashMap<String, usize>,
) -> Server {
    let key = format!("server[{i}]");
    let r = s.get_ref();
    let mut listen = Vec::new();
    if r.listen.get_ref().is_empty() {
        c.error(
            r.listen.span(),
            format!("{key}.listen"),
            "needs at least one address",
        );
    }
    for (j, l) in r.listen.get_ref().iter().enumerate() {
        if let Some(a) = check_listen(c, l, &format!("{key}.listen[{j}]")) {
            listen.push(a);
        }
    }

    let mut server_names = Vec::new();
    for (j, n) in r.server_name.iter().flatten().enumerate() {
        let name = n.get_ref().trim().to_ascii_lowercase();
        let body = name.strip_prefix("*.").unwrap_or(&name);
        if body.is_empty() || body.contains(['*', '/', ' ', ':']) {
            c.error(
                n.span(),
                format!("{key}.server_name[{j}]"),
                format!("{:?} is not a host name or \"*.suffix\" wildcard", n.get_ref()),
            );
        } else {
            server_names.push(name);
        }
    }

    let access_log = match &r.access_log {
        None => AccessLog::Stdout,
        Some(v) => match v.get_ref().as_str() {
            "off" => AccessLog::Off,
            "stdout" => AccessLog::Stdout,
            "" => {
                c.error(
                    v.span(),
                    format!("{key}.access_log"),
                    "a path, \"stdout\" or \"off\"",
                );
                AccessLog::Off
            }
            p => AccessLog::File(p.into()),
        },
    };

    let limits = check_limits(c, r, &key);
    let mut locations: Vec<Location> = Vec::new();
    for (j, l) in r.location.iter().enumerate() {
        let lkey = format!("{key}.location[{j}]");
        if let Some(loc) = check_location(c, l, &lkey, upstreams, by_name) {
            if locations.iter().any(|o| o.path == loc.path) {
                c.error(
                    l.get_ref().path.span(),
                    format!("{lkey}.path"),
                    format!("location {:?} appears twice in this server", loc.path),
                );
                continue;
            }
            locations.push(loc);
        }
    }
    let tls = r
        .tls
        .as_ref()
        .and_then(|t| check_tls(c, t, &format!("{key}.tls"), i));
    let hsts = r
        .hsts
        .as_ref()
        .and_then(|h| check_hsts(c, h, &format!("{key}.hsts")));
    if let (Some(h), None) = (&r.hsts, &r.tls) {
        c.error(
            h.span(),
            format!("{key}.hsts"),
            "this block has no tls: Strict-Transport-Security is only sent over TLS",
        );
    }
    let redirect_https = check_redirect(c, r, &key);
    let http2 = http2::check(c, r, &key, &limits);
    Server {
        listen,
        server_names,
        access_log,
        limits,
        locations,
        tls,
        hsts,
        redirect_https,
        http2,
    }
}

/// `redirect_https = true` (port 443) or a port number.
fn check_redirect(c: &mut Checker, r: &RawServer, key: &str) -> Option<u16> {
    let v = r.redirect_https.as_ref()?;
    let k = format!("{key}.redirect_https");
    if matches!(v.get_ref(), BoolOrInt::Bool(false)) {
        return None;
    }
    if r.tls.is_some() {
        c.error(
            v.span(),
            k,
            "a block with tls cannot redirect to https: it is https",
        );
        return None;
    }
    match v.get_ref() {
        BoolOrInt::Bool(true) => Some(443),
        BoolOrInt::Bool(false) => None,
        BoolOrInt::Int(p) => match u16::try_from(*p) {
            Ok(p) if p > 0 => Some(p),
            _ => {
                c.error(v.span(), k, "write true (port 443) or the https port, 1 to 65535");
                None
            }
        },
    }
}

/// The TLS protocol names accepted in `protocols`, as nginx writes them.
const TLS_PROTOCOLS: [&str; 2] = ["TLSv1.2", "TLSv1.3"];

fn check_tls(c: &mut Checker, t: &Spanned<RawTls>, key: &str, index: usize) -> Option<Tls> {
    let r = t.get_ref();
    let before = c.errors.len();
    let reject_handshake = r.reject_handshake.unwrap_or(false);
    if reject_handshake {
        for (name, v) in [("cert", &r.cert), ("key", &r.key)] {
            if let Some(v) = v {
                c.error(
                    v.span(),
                    format!("{key}.{name}"),
                    "a block with reject_handshake = true serves no certificate: remove it",
                );
            }
        }
    } else {
        for (name, v) in [("cert", &r.cert), ("key", &r.key)] {
            if v.is_none() {
                c.error(
                    t.span(),
                    format!("{key}.{name}"),
                    "missing: tls needs cert and key (or reject_handshake = true)",
                );
            }
        }
    }
    let verify_client = match &r.verify_client {
        None => VerifyClient::Off,
        Some(v) => match v.get_ref().as_str() {
            "off" => VerifyClient::Off,
            "on" => VerifyClient::On,
            "optional" => VerifyClient::Optional,
            other => {
                c.error(
                    v.span(),
                    format!("{key}.verify_client"),
                    format!("{other:?} is not \"on\", \"optional\" or \"off\""),
                );
                VerifyClient::Off
            }
        },
    };
    match (&r.client_ca, verify_client, &r.verify_client) {
        (None, VerifyClient::On | VerifyClient::Optional, Some(v)) => c.error(
            v.span(),
            format!("{key}.verify_client"),
            "needs client_ca: the CA certificates that client certificates must chain to",
        ),
        (Some(ca), VerifyClient::Off, _) => c.error(
            ca.span(),
            format!("{key}.client_ca"),
            "has no effect without verify_client = \"on\" or \"optional\"",
        ),
        _ => {}
    }
    let mut protocols = Vec::new();
    match &r.protocols {
        None => protocols = vec![TlsVersion::V1_2, TlsVersion::V1_3],
        Some(list) => {
            if list.get_ref().is_empty() {
                c.error(
                    list.span(),
                    format!("{key}.protocols"),
                    "needs at least one protocol",
                );
            }
            for (j, p) in list.get_ref().iter().enumerate() {
                let v = match p.get_ref().as_str() {
                    "TLSv1.2" => TlsVersion::V1_2,
                    "TLSv1.3" => TlsVersion::V1_3,
                    other => {
                        c.error(
                            p.span(),
                            format!("{key}.protocols[{j}]"),
                            format!(
                                "{other:?} is not supported (known: {})",
                                TLS_PROTOCOLS.map(|p| format!("{p:?}")).join(", ")
                            ),
                        );
                        continue;
                    }
                };
                if !protocols.contains(&v) {
                    protocols.push(v);
                }
            }
        }
    }
    let ciphers = r.ciphers.as_ref().map(|list| {
        let known: Vec<&'static str> = crate::tls::provider()
            .cipher_suites
            .iter()
            .filter_map(|s| s.suite().as_str())
            .collect();
        if list.get_ref().is_empty() {
            c.error(
                list.span(),
                format!("{key}.ciphers"),
                "needs at least one cipher suite",
            );
        }
        let mut names = Vec::new();
        for (j, n) in list.get_ref().iter().enumerate() {
            if known.contains(&n.get_ref().as_str()) {
                names.push(n.get_ref().clone());
            } else {
                c.error(
                    n.span(),
                    format!("{key}.ciphers[{j}]"),
                    format!(
                        "unknown cipher suite {:?} (known: {})",
                        n.get_ref(),
                        known.join(", ")
                    ),
                );
            }
        }
        names
    });
    // Relative paths are taken from the config file's directory, as for
    // upstream TLS files (and as nginx takes them from its prefix).
    let mut tls = Tls {
        cert: r
            .cert
            .as_ref()
            .map(|v| c.config_path(v.get_ref()))
            .unwrap_or_default(),
        key: r
            .key
            .as_ref()
            .map(|v| c.config_path(v.get_ref()))
            .unwrap_or_default(),
        client_ca: r.client_ca.as_ref().map(|v| c.config_path(v.get_ref())),
        verify_client,
        protocols,
        ciphers,
        reject_handshake,
        material: None,
    };
    if c.errors.len() > before {
        return None;
    }
    if reject_handshake {
        return Some(tls);
    }
    // The files are read now, so --check reports what a start would fail on.
    let (Some(cert), Some(k)) = (&r.cert, &r.key) else {
        return None;
    };
    match crate::tls::server::load_material(&tls.cert, &tls.key, tls.client_ca.as_deref()) {
        Ok(m) => {
            if let Err(e) = crate::tls::server::server_config(&tls, &m, index, false) {
                let span = r.ciphers.as_ref().map_or(t.span(), |v| v.span());
                c.error(span, format!("{key}.ciphers"), e);
                return None;
            }
            tls.material = Some(std::sync::Arc::new(m));
            Some(tls)
        }
        Err((which, e)) => {
            use crate::tls::server::TlsFile;
            let (name, span) = match which {
                TlsFile::Cert => ("cert", cert.span()),
                TlsFile::Key => ("key", k.span()),
                TlsFile::ClientCa => ("client_ca", r.client_ca.as_ref().map_or(t.span(), |v| v.span())),
            };
            c.error(span, format!("{key}.{name}"), e);
            None
        }
    }
}

/// Renders the header value once: `max-age=N[; includeSubDomains][; preload]`.
fn check_hsts(c: &mut Checker, h: &Spanned<RawHsts>, key: &str) -> Option<String> {
    let r = h.get_ref();
    let before = c.errors.len();
    let max_age = c.duration(
        &Some(r.max_age.clone()),
        &format!("{key}.max_age"),
        Duration::ZERO,
    );
    if c.errors.len() > before {
        return None;
    }
    let sub = r.include_subdomains.unwrap_or(false);
    let preload = r.preload.unwrap_or(false);
    // The preload list's own requirements (hstspreload.org).
    if preload && (!sub || max_age.as_secs() < 31_536_000) {
        c.error(
            h.span(),
            format!("{key}.preload"),
            "preload needs include_subdomains = true and a max_age of at least 365d",
        );
        return None;
    }
    let mut v = format!("max-age={}", max_age.as_secs());
    if sub {
        v.push_str("; includeSubDomains");
    }
    if preload {
        v.push_str("; preload");
    }
    Some(v)
}

/// Every block on one address must agree on TLS: the listener either runs
/// a handshake first or it does not.
fn check_tls_addresses(c: &mut Checker, raw: &RawConfig, servers: &[Server]) {
    let mut first: HashMap<SocketAddr, (usize, bool)> = HashMap::new();
    for (i, s) in servers.iter().enumerate() {
        let has_tls = raw.server[i].get_ref().tls.is_some();
        for (j, addr) in s.listen.iter().enumerate() {
            match first.get(addr) {
                None => {
                    first.insert(*addr, (i, has_tls));
                }
                Some(&(other, tls)) if tls != has_tls => {
                    let span = raw.server[i].get_ref().listen.get_ref()[j].span();
                    let (with, without) = if tls { (other, i) } else { (i, other) };
                    c.error(
                        span,
                        format!("server[{i}].listen[{j}]"),
                        format!(
                            "{addr} mixes TLS and plain HTTP: server[{with}] has tls and server[{without}] does not; every block on one address needs tls, or none"
                        ),
                    );
                }
                Some(_) => {}
            }
        }
    }
}

fn check_limits(c: &mut Checker, r: &RawServer, key: &str) -> ClientLimits {
    let k = |name: &str| format!("{key}.{name}");
    let size_or = |c: &mut Checker, v: &Option<Spanned<StrOrInt>>, name: &str, d: usize| {
        v.as_ref()
            .and_then(|v| c.size(v, &k(name)))
            .map_or(d, |n| n as usize)
    };
    let max_request_line = size_or(c, &r.max_request_line, "max_request_line", 8 << 10);
    let max_header_size = size_or(c, &r.max_header_size, "max_header_size", 32 << 10);
    if let (Some(v), true) = (&r.max_header_size, max_header_size < max_request_line) {
        c.error(
            v.span(),
            k("max_header_size"),
            "must not be smaller than max_request_line",
        );
    }
    ClientLimits {
        max_request_line,
        max_header_size,
        max_headers: c.positive(&r.max_headers, &k("max_headers"), 100) as usize,
        client_max_body_size: r
            .client_max_body_size
            .as_ref()
            .and_then(|v| c.size(v, &k("client_max_body_size"))),
        header_timeout: c.duration(
            &r.client_header_timeout,
            &k("client_header_timeout"),
            Duration::from_secs(60),
        ),
        body_timeout: c.duration(
            &r.client_body_timeout,
            &k("client_body_timeout"),
            Duration::from_secs(60),
        ),
        keepalive_timeout: c.duration(
            &r.keepalive_timeout,
            &k("keepalive_timeout"),
            Duration::from_secs(75),
        ),
        keepalive_requests: c.positive(&r.keepalive_requests, &k("keepalive_requests"), 1000),
        send_timeout: c.duration(&r.send_timeout, &k("send_timeout"), Duration::from_secs(60)),
    }
}

fn check_location(
    c: &mut Checker,
    l: &Spanned<RawLocation>,
    key: &str,
    upstreams: &mut Vec<Upstream>,
    by_name: &mut HashMap<String, usize>,
) -> Option<Location> {
    let r = l.get_ref();
    let path = r.path.get_ref().clone();
    let mut ok = true;
    if !path.starts_with('/') {
        c.error(r.path.span(), format!("{key}.path"), "must start with \"/\"");
        ok = false;
    }
    let client_max_body_size = r
        .client_max_body_size
        .as_ref()
        .map(|v| c.size(v, &format!("{key}.client_max_body_size")));
    let upgrade = check_upgrade(c, r, key);
    let action = match (&r.proxy_pass, &r.return_) {
        (Some(_), Some(_)) | (None, None) => {
            c.error(l.span(), key, "give exactly one of proxy_pass or return");
            return None;
        }
        (Some(p), None) => {
            let tls_keys = upstream_tls::TlsKeys::location(r);
            let pass = check_proxy_pass(c, p, &format!("{key}.proxy_pass"), &tls_keys, upstreams, by_name);
            let (split, split_by) = check_split(c, r, key, upstreams, by_name)?;
            Action::Proxy(ProxyPass {
                preserve_host: r.preserve_host.unwrap_or(true),
                split,
                split_by,
                ..pass?
            })
        }
        (None, Some(ret)) => {
            for (v, name) in [
                (r.split.as_ref().map(|v| v.span()), "split"),
                (r.split_by.as_ref().map(|v| v.span()), "split_by"),
            ] {
                if let Some(span) = v {
                    c.error(span, format!("{key}.{name}"), "only applies with proxy_pass");
                    ok = false;
                }
            }
            ok &= upstream_tls::refuse_unused(
                c,
                &upstream_tls::TlsKeys::location(r),
                key,
                "proxy_pass = \"https://...\"",
            );
            if r.preserve_host.is_some() {
                c.error(
                    l.span(),
                    format!("{key}.preserve_host"),
                    "only applies with proxy_pass",
                );
            }
            if let Some(u) = &r.upgrade {
                c.error(u.span(), format!("{key}.upgrade"), "only applies with proxy_pass");
                ok = false;
            }
            let rr = ret.get_ref();
            let status = *rr.status.get_ref();
            let redirect = matches!(status, 301 | 302 | 303 | 307 | 308);
            if !(200..=599).contains(&status) {
                c.error(
                    rr.status.span(),
                    format!("{key}.return.status"),
                    "must be from 200 to 599",
                );
                ok = false;
            } else if redirect && rr.location.is_none() {
                c.error(
                    ret.span(),
                    format!("{key}.return"),
                    format!("a {status} redirect needs location = \"...\""),
                );
                ok = false;
            }
            Action::Return(Return {
                status: status.clamp(200, 599) as u16,
                body: rr.body.clone().unwrap_or_default(),
                location: rr.location.clone(),
            })
        }
    };
    ok.then_some(Location {
        path,
        action,
        client_max_body_size,
        upgrade: upgrade?,
    })
}

/// `upgrade`: protocol names as `Upgrade` writes them (a token, optionally
/// `/version`, RFC 9110 §7.8). `h2c` is refused: HTTP/2 from clients is the
/// server block's `http2`/`h2c`, whose limits a tunnel would bypass.
fn check_upgrade(c: &mut Checker, r: &RawLocation, key: &str) -> Option<Vec<String>> {
    let Some(list) = &r.upgrade else {
        return Some(vec!["websocket".to_string()]);
    };
    let tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    let mut out: Vec<String> = Vec::new();
    let mut ok = true;
    for (i, p) in list.get_ref().iter().enumerate() {
        let name = p.get_ref().to_ascii_lowercase();
        let k = format!("{key}.upgrade[{i}]");
        let (proto, version) = match name.split_once('/') {
            Some((p, v)) => (p, Some(v)),
            None => (name.as_str(), None),
        };
        let token = |s: &str| !s.is_empty() && s.bytes().all(tchar);
        if !token(proto) || version.is_some_and(|v| !token(v)) {
            c.error(p.span(), k, "must be a protocol name such as \"websocket\"");
            ok = false;
        } else if proto == "h2c" {
            c.error(
                p.span(),
                k,
                "HTTP/2 upgrades are not passed on; HTTP/2 from clients is the server block's `http2` / `h2c`",
            );
            ok = false;
        } else if out.contains(&name) {
            c.error(p.span(), k, format!("{name:?} is listed twice"));
            ok = false;
        } else {
            out.push(name);
        }
    }
    ok.then_some(out)
}

/// `split` and `split_by` of a proxied location. `None` when they are wrong.
#[allow(clippy::type_complexity)]
fn check_split(
    c: &mut Checker,
    r: &RawLocation,
    key: &str,
    upstreams: &[Upstream],
    by_name: &HashMap<String, usize>,
) -> Option<(Vec<Split>, Option<RequestKey>)> {
    let before = c.errors.len();
    let mut split = Vec::new();
    let mut total: u64 = 0;
    for (i, s) in r.split.iter().flat_map(|v| v.get_ref().iter()).enumerate() {
        let skey = format!("{key}.split[{i}]");
        let s = s.get_ref();
        let name = s.upstream.get_ref();
        let upstream = match by_name.get(name.as_str()) {
            Some(&u) if !upstreams[u].implicit => Some(u),
            // Defined, but with errors of its own, already reported.
            _ if c.failed_upstreams.contains(name.as_str()) => None,
            _ => {
                let mut defined: Vec<&str> = upstreams
                    .iter()
                    .filter(|u| !u.implicit)
                    .map(|u| u.name.as_str())
                    .collect();
                defined.sort();
                let closest = defined
                    .iter()
                    .map(|k| (strsim::levenshtein(name, k), *k))
                    .filter(|(d, _)| *d <= 2)
                    .min();
                let hint = match closest {
                    Some((_, k)) => format!("; did you mean {k:?}?"),
                    None if defined.is_empty() => " (none defined)".to_string(),
                    None => format!(
                        " (defined: {})",
                        defined
                            .iter()
                            .map(|d| format!("{d:?}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
                c.error(
                    s.upstream.span(),
                    format!("{skey}.upstream"),
                    format!("unknown upstream {name:?}{hint}"),
                );
                None
            }
        };
        // Hundredths of a percent: 0.01% is the finest share.
        let share = match s.weight.as_ref().map(|w| (w.span(), *w.get_ref())) {
            None => Some(0),
            Some((_, Number::Int(n))) if (0..=100).contains(&n) => Some(n as u32 * 100),
            // 0.07 * 100 is 7.000000000000001 in binary floating point.
            Some((_, Number::Float(f)))
                if (0.0..=100.0).contains(&f) && ((f * 100.0) - (f * 100.0).round()).abs() < 1e-6 =>
            {
                Some((f * 100.0).round() as u32)
            }
            Some((span, _)) => {
                c.error(
                    span,
                    format!("{skey}.weight"),
                    "a percentage of requests from 0 to 100, in steps of 0.01",
                );
                None
            }
        };
        let when = match &s.when {
            None => None,
            Some(w) => {
                let wr = w.get_ref();
                let what = match (&wr.header, &wr.cookie) {
                    (Some(h), None) if !h.is_empty() && h.bytes().all(is_token) => {
                        Some(WhenField::Header(h.to_ascii_lowercase()))
                    }
                    (None, Some(k)) if !k.is_empty() && k.bytes().all(is_token) => {
                        Some(WhenField::Cookie(k.clone()))
                    }
                    (Some(_), None) | (None, Some(_)) => {
                        c.error(w.span(), format!("{skey}.when"), "not a header or cookie name");
                        None
                    }
                    _ => {
                        c.error(
                            w.span(),
                            format!("{skey}.when"),
                            "give one of header = \"...\" or cookie = \"...\" (and value = \"...\")",
                        );
                        None
                    }
                };
                what.map(|what| When {
                    what,
                    value: wr.value.clone(),
                })
            }
        };
        if share == Some(0) && s.when.is_none() {
            c.error(
                s.weight.as_ref().map_or(s.upstream.span(), |w| w.span()),
                format!("{skey}.weight"),
                "needs a weight above 0 (or a `when` that sends requests here)",
            );
        }
        total += u64::from(share.unwrap_or(0));
        if let (Some(upstream), Some(share)) = (upstream, share) {
            split.push(Split {
                upstream,
                share,
                when,
            });
        }
    }
    if let Some(v) = &r.split {
        if total > u64::from(SPLIT_WHOLE) {
            c.error(
                v.span(),
                format!("{key}.split"),
                format!(
                    "weights add up to {}%, over 100% (the rest of the requests go to proxy_pass)",
                    total as f64 / 100.0
                ),
            );
        }
        if v.get_ref().is_empty() {
            c.error(
                v.span(),
                format!("{key}.split"),
                "is empty: remove it or add an upstream",
            );
        }
    }
    let split_by = match &r.split_by {
        None => None,
        Some(k) if r.split.is_none() => {
            c.error(k.span(), format!("{key}.split_by"), "only applies with split");
            None
        }
        Some(k) => match parse_key(k.get_ref()) {
            Ok(k) => Some(k),
            Err(why) => {
                c.error(k.span(), format!("{key}.split_by"), why);
                None
            }
        },
    };
    (c.errors.len() == before).then_some((split, split_by))
}

/// RFC 9110 §5.6.2: a token character (header and cookie names).
fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn check_proxy_pass(
    c: &mut Checker,
    p: &Spanned<String>,
    key: &str,
    tls_keys: &upstream_tls::TlsKeys,
    upstreams: &mut Vec<Upstream>,
    by_name: &mut HashMap<String, usize>,
) -> Option<ProxyPass> {
    let v = p.get_ref();
    let (https, rest) = match (v.strip_prefix("http://"), v.strip_prefix("https://")) {
        (Some(rest), _) => (false, rest),
        (_, Some(rest)) => (true, rest),
        _ => {
            c.error(p.span(), key, upstream_tls::bad_scheme(v));
            return None;
        }
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], Some(rest[i..].to_string())),
        None => (rest, None),
    };
    if c.failed_upstreams.contains(authority) {
        return None;
    }
    let named = by_name
        .get(authority)
        .copied()
        .filter(|&i| !upstreams[i].implicit);
    if let Some(idx) = named {
        // The scheme and the upstream's `tls` must agree, so that a location
        // never hides whether its traffic is encrypted.
        let up = &upstreams[idx];
        let why = match (https, up.tls.is_some()) {
            (true, false) => Some(format!(
                "upstream {authority:?} does not use TLS: add tls = true to it, or write http://{authority}"
            )),
            (false, true) => Some(format!(
                "upstream {authority:?} has tls = true: write https://{authority}"
            )),
            _ => None,
        };
        if let Some(why) = why {
            c.error(p.span(), key, why);
            return None;
        }
        if !upstream_tls::refuse_unused(
            c,
            tls_keys,
            key.trim_end_matches(".proxy_pass"),
            &format!("an address (proxy_pass = \"https://host:port\"); upstream {authority:?} takes tls_* keys itself"),
        ) {
            return None;
        }
        return Some(ProxyPass {
            upstream: idx,
            path,
            preserve_host: true,
            split: Vec::new(),
            split_by: None,
        });
    }
    if https {
        return upstream_tls::implicit_https(c, p, key, authority, path, tls_keys, upstreams);
    }
    if !upstream_tls::refuse_unused(
        c,
        tls_keys,
        key.trim_end_matches(".proxy_pass"),
        "proxy_pass = \"https://...\"",
    ) {
        return None;
    }
    let upstream = if let Some(&idx) = by_name.get(authority) {
        idx
    } else if authority.contains(':') {
        // host:port with no upstream of that name: an upstream of one server,
        // shared by every location that names the same address.
        match resolve(authority) {
            Ok(addr) => {
                let idx = upstreams.len();
                let peer = Peer::new(authority.to_string(), addr);
                upstreams.push(upstream_defaults(authority.to_string(), vec![peer], true));
                by_name.insert(authority.to_string(), idx);
                idx
            }
            Err(e) => {
                c.error(p.span(), key, e);
                return None;
            }
        }
    } else {
        c.error(
            p.span(),
            key,
            format!(
                "unknown upstream {authority:?} ({}); to proxy to one address, write host:port",
                defined_upstreams(upstreams)
            ),
        );
        return None;
    };
    Some(ProxyPass {
        upstream,
        path,
        preserve_host: true,
        split: Vec::new(),
        split_by: None,
    })
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
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_nginx_suffixes() {
        assert_eq!(parse_size("8k"), Some(8192));
        assert_eq!(parse_size("1M"), Some(1 << 20));
        assert_eq!(parse_size("2g"), Some(2 << 30));
        assert_eq!(parse_size("123"), Some(123));
        assert_eq!(parse_size("k"), None);
        assert_eq!(parse_size("1.5m"), None);
        assert_eq!(parse_size(""), None);
    }

    #[test]
    fn misspelt_keys_get_a_suggestion() {
        let e = validate(
            "[[server]]\nlisten = [\"127.0.0.1:1\"]\nlisen = 1\n",
            Path::new("t.toml"),
        )
        .unwrap_err();
        assert_eq!(e.0.len(), 1, "{e}");
        assert_eq!(e.0[0].key, "server[0].lisen");
        assert!(e.0[0].message.ends_with("did you mean `listen`?"), "{}", e.0[0]);
        assert_eq!((e.0[0].line, e.0[0].col), (3, 1));
        let e = validate("[server]\nlisten = 1\n", Path::new("t.toml")).unwrap_err();
        assert!(e.0[0].message.contains("[[server]]"), "{}", e.0[0]);
    }

    #[test]
    fn an_upstream_with_errors_is_not_also_unknown_where_it_is_named() {
        // "app" is defined but its read_timeout is wrong: one error, at the
        // upstream, not a second "unknown upstream" at each location naming it.
        let text = "[[upstream]]\nname = \"app\"\nservers = [\"127.0.0.1:1\"]\nread_timeout = \"60\"\n\
                    [[upstream]]\nname = \"canary\"\nservers = [\"127.0.0.1:2\"]\n\
                    [[server]]\nlisten = [\"127.0.0.1:3\"]\n\
                    [[server.location]]\npath = \"/\"\nproxy_pass = \"http://app/\"\n\
                    [[server.location]]\npath = \"/s/\"\nproxy_pass = \"http://canary\"\n\
                    split = [{ upstream = \"app\", weight = 5 }]\n\
                    [[server.location]]\npath = \"/t/\"\nproxy_pass = \"http://nosuch/\"\n";
        let e = validate(text, Path::new("t.toml")).unwrap_err();
        let keys: Vec<&str> = e.0.iter().map(|e| e.key.as_str()).collect();
        // A name that is not defined at all is still unknown.
        assert_eq!(
            keys,
            ["upstream[0].read_timeout", "server[0].location[2].proxy_pass"],
            "{e}"
        );
        assert!(e.0[1].message.contains(r#"unknown upstream "nosuch""#), "{e}");
    }

    #[test]
    fn all_semantic_errors_are_collected() {
        let text =
            "[global]\nworkers = \"many\"\n[[upstream]]\nname = \"app\"\nservers = [\"127.0.0.1:1\"]\n\
                    read_timeout = \"60\"\n[[server]]\nlisten = [\"nowhere\"]\n[[server.location]]\n\
                    path = \"/\"\nproxy_pass = \"http://api/\"\n";
        let e = validate(text, Path::new("t.toml")).unwrap_err();
        let keys: Vec<&str> = e.0.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "global.workers",
                "upstream[0].read_timeout",
                "server[0].listen[0]",
                "server[0].location[0].proxy_pass"
            ]
        );
        assert!(e.0[3]
            .message
            .contains(r#"unknown upstream "api" (defined: "app")"#));
        assert_eq!(
            e.to_string().lines().next().unwrap(),
            "t.toml:2:11: global.workers: must be \"auto\" or a number from 1 to 1024"
        );
    }

    #[test]
    fn every_unknown_key_is_reported_with_the_other_errors() {
        let text = "bogus = 1\n[global]\nworkers = 0\nwrokers = 2\n[[server]]\nlisten = [1]\n\
                    [[server.location]]\npath = \"/\"\nreturn = { status = 200, bdy = \"x\" }\nzzz = 1\n";
        let e = validate(text, Path::new("t.toml")).unwrap_err();
        let got: Vec<(usize, &str)> = e.0.iter().map(|e| (e.line, e.key.as_str())).collect();
        assert_eq!(
            got,
            [
                (1, "bogus"),
                (3, "global.workers"),
                (4, "global.wrokers"),
                (9, "server[0].location[0].return.bdy"),
                (10, "server[0].location[0].zzz")
            ],
            "{e}"
        );
        assert!(e.0[2].message.contains("did you mean `workers`?"));
        assert!(e.0[3].message.contains("did you mean `body`?"));
        assert!(
            e.0[4].message.contains("known here: path, proxy_pass"),
            "{}",
            e.0[4]
        );
    }

    const LISTEN: &str = "[[server]]\nlisten = [\"127.0.0.1:0\"]\n";

    #[test]
    fn balancing_keys_and_their_errors() {
        let ok = validate(
            "[[upstream]]\nname = \"app\"\nbalance = \"least_conn\"\ntries = 3\ntries_timeout = \"2s\"\n\
             servers = [\"127.0.0.1:1\", { addr = \"127.0.0.1:2\", backup = true, max_fails = 0, fail_timeout = \"30s\" }]\n\
             [[server]]\nlisten = [\"127.0.0.1:0\"]\n",
            Path::new("t.toml"),
        )
        .unwrap();
        let up = &ok.upstreams[0];
        assert_eq!(
            (up.balance.clone(), up.tries, up.tries_timeout),
            (Balance::LeastConn, 3, Duration::from_secs(2))
        );
        assert_eq!((up.servers[0].backup, up.servers[0].max_fails), (false, 1));
        assert_eq!(up.servers[0].fail_timeout, Duration::from_secs(10));
        assert_eq!((up.servers[1].backup, up.servers[1].max_fails), (true, 0));
        assert_eq!(up.servers[1].fail_timeout, Duration::from_secs(30));
        // Defaults: round robin; a second try only when there is a second server.
        let d = validate(
            &format!(
                "[[upstream]]\nname = \"one\"\nservers = [\"127.0.0.1:1\"]\n\
             [[upstream]]\nname = \"two\"\nservers = [\"127.0.0.1:1\", \"127.0.0.1:2\"]\n{LISTEN}"
            ),
            Path::new("t.toml"),
        )
        .unwrap();
        assert_eq!(
            (d.upstreams[0].balance.clone(), d.upstreams[0].tries),
            (Balance::RoundRobin, 1)
        );
        assert_eq!(
            (d.upstreams[1].tries, d.upstreams[1].tries_timeout),
            (2, Duration::ZERO)
        );

        let text = format!(
            "[[upstream]]\nname = \"app\"\nbalance = \"fastest\"\ntries = 0\n\
             servers = [{{ addr = \"127.0.0.1:1\", max_fails = -1, fail_timeout = \"soon\", backup = true }}]\n{LISTEN}"
        );
        let e = validate(&text, Path::new("t.toml")).unwrap_err();
        let got: Vec<(usize, &str)> = e.0.iter().map(|e| (e.line, e.key.as_str())).collect();
        assert_eq!(
            got,
            [
                (3, "upstream[0].balance"),
                (4, "upstream[0].tries"),
                (5, "upstream[0].servers"),
                (5, "upstream[0].servers[0].max_fails"),
                (5, "upstream[0].servers[0].fail_timeout"),
            ],
            "{e}"
        );
        assert!(e.0[0]
            .message
            .contains("one of: round_robin, least_conn, ip_hash, random_two"));
        assert!(e.0[2].message.contains("every server is a backup"));
        let h = |extra: &str| {
            validate(
                &format!("[[upstream]]\nname = \"app\"\n{extra}\nservers = [\"127.0.0.1:1\"]\n{LISTEN}"),
                Path::new("t.toml"),
            )
        };
        let up = &h("hash = \"$request_uri\"").unwrap().upstreams[0];
        let Balance::Hash(k) = &up.balance else {
            panic!("{:?}", up.balance)
        };
        assert_eq!(k.parts, [KeyPart::RequestUri]);
        let e = h("hash = \"$reqest_uri\"").unwrap_err();
        assert!(
            e.to_string().contains(
                "t.toml:3:8: upstream[0].hash: unknown variable `$reqest_uri`; did you mean `$request_uri`?"
            ),
            "{e}"
        );
        let e = h("balance = \"ip_hash\"\nhash = \"$request_uri\"").unwrap_err();
        assert!(e.to_string().contains("remove `balance`"), "{e}");

        let e = validate(
            &format!("[[upstream]]\nname = \"app\"\nservers = [{{ addr = \"127.0.0.1:1\", bakup = true }}]\n{LISTEN}"),
            Path::new("t.toml"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("bakup"), "{e}");
    }

    #[test]
    fn next_upstream_and_its_errors() {
        let up = |extra: &str| {
            validate(
                &format!("[[upstream]]\nname = \"app\"\nservers = [\"127.0.0.1:1\"]\n{extra}\n{LISTEN}"),
                Path::new("t.toml"),
            )
        };
        let n = |extra: &str| up(extra).unwrap().upstreams[0].next_upstream;
        let d = n("");
        assert_eq!(d, NextUpstream::DEFAULT);
        assert!(
            d.has(NextUpstream::ERROR) && d.has(NextUpstream::TIMEOUT) && d.has(NextUpstream::INVALID_HEADER)
        );
        assert!(!d.on_status(502) && !d.on_status(503));
        let s = n("next_upstream = [\"error\", \"http_503\", \"http_404\"]");
        assert!(s.has(NextUpstream::ERROR) && !s.has(NextUpstream::TIMEOUT));
        assert!(s.on_status(503) && s.on_status(404) && !s.on_status(502) && !s.on_status(200));
        assert!(s.status_is_failure(503) && !s.status_is_failure(404));
        assert_eq!(n("next_upstream = [\"off\"]"), NextUpstream::OFF);
        let e = up("next_upstream = [\"eror\", \"teapot\", \"off\", \"non_idempotent\"]").unwrap_err();
        let keys: Vec<&str> = e.0.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "upstream[0].next_upstream[0]",
                "upstream[0].next_upstream[1]",
                "upstream[0].next_upstream[2]",
                "upstream[0].next_upstream[3]"
            ],
            "{e}"
        );
        assert!(e.0[0].message.ends_with("did you mean \"error\"?"), "{e}");
        assert!(e.0[1].message.contains("(one of: error, timeout"), "{e}");
        assert!(e.0[2].message.contains("goes alone"), "{e}");
        assert!(e.0[3].message.contains("not supported"), "{e}");
        let e = up("next_upstream = []").unwrap_err();
        assert!(e.to_string().contains("write [\"off\"]"), "{e}");
    }

    #[test]
    fn ewma_and_its_decay() {
        let up = |extra: &str| {
            validate(
                &format!("[[upstream]]\nname = \"app\"\nservers = [\"127.0.0.1:1\"]\n{extra}\n{LISTEN}"),
                Path::new("t.toml"),
            )
        };
        let d = up("balance = \"ewma\"").unwrap();
        assert_eq!(d.upstreams[0].balance, Balance::Ewma(Duration::from_secs(10)));
        let d = up("balance = \"ewma\"\newma_decay = \"2s\"").unwrap();
        assert_eq!(d.upstreams[0].balance, Balance::Ewma(Duration::from_secs(2)));
        let e = up("ewma_decay = \"2s\"").unwrap_err();
        assert!(
            e.to_string()
                .contains("upstream[0].ewma_decay: only applies with balance = \"ewma\""),
            "{e}"
        );
        let e = up("balance = \"ewma\"\newma_decay = \"0s\"").unwrap_err();
        assert!(e.to_string().contains("must be above 0"), "{e}");
    }

    #[test]
    fn sticky_and_its_errors() {
        let up = |sticky: &str| {
            validate(
                &format!(
                    "[[upstream]]\nname = \"app\"\nservers = [\"127.0.0.1:1\"]\nsticky = {sticky}\n{LISTEN}"
                ),
                Path::new("t.toml"),
            )
        };
        let d = up("{}").unwrap();
        let st = d.upstreams[0].sticky.as_ref().unwrap();
        assert_eq!(
            (st.cookie.as_str(), st.path.as_str(), st.max_age),
            ("rw_srv", "/", None)
        );
        assert!(!st.httponly && !st.secure && st.samesite.is_none() && st.domain.is_none());
        let d = up(
            "{ cookie = \"srv\", path = \"/app\", domain = \"example.com\", max_age = \"1h\", httponly = true, \
             secure = true, samesite = \"none\" }",
        )
        .unwrap();
        let st = d.upstreams[0].sticky.as_ref().unwrap();
        assert_eq!(st.max_age, Some(Duration::from_secs(3600)));
        assert_eq!(
            (st.samesite, st.domain.as_deref()),
            (Some("None"), Some("example.com"))
        );
        let e = up(
            "{ cookie = \"a b\", path = \"app\", domain = \"x;y\", max_age = \"0s\", samesite = \"none\" }",
        )
        .unwrap_err();
        let keys: Vec<&str> = e.0.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "upstream[0].sticky.cookie",
                "upstream[0].sticky.path",
                "upstream[0].sticky.domain",
                "upstream[0].sticky.max_age",
                "upstream[0].sticky.samesite"
            ],
            "{e}"
        );
        assert!(e.0[4].message.contains("needs secure = true"), "{e}");
        let e = up("{ max_age = \"soon\", samesite = \"loose\" }").unwrap_err();
        assert!(e.0[0].message.contains("bad duration"), "{e}");
        assert!(e.0[1].message.contains("one of: \"Strict\""), "{e}");
        let e = up("{ cokie = \"x\" }").unwrap_err();
        assert!(
            e.to_string()
                .contains("upstream[0].sticky.cokie: unknown key `cokie`; did you mean `cookie`?"),
            "{e}"
        );
    }

    #[test]
    fn split_and_its_errors() {
        let loc = |keys: &str| {
            validate(
                &format!(
                    "[[upstream]]\nname = \"app\"\nservers = [\"127.0.0.1:1\"]\n\
                     [[upstream]]\nname = \"canary\"\nservers = [\"127.0.0.1:2\"]\n{LISTEN}\
                     [[server.location]]\npath = \"/\"\n{keys}\n"
                ),
                Path::new("t.toml"),
            )
        };
        let c = loc(
            "proxy_pass = \"http://app\"\nsplit = [{ upstream = \"canary\", weight = 0.07 }, \
             { upstream = \"app\", when = { header = \"X-Canary\", value = \"1\" } }]\nsplit_by = \"$cookie_uid\"",
        )
        .unwrap();
        let Action::Proxy(pass) = &c.servers[0].locations[0].action else {
            panic!()
        };
        assert_eq!(
            pass.split[0],
            Split {
                upstream: 1,
                share: 7,
                when: None
            }
        );
        assert_eq!(
            pass.split[1].when,
            Some(When {
                what: WhenField::Header("x-canary".into()),
                value: Some("1".into())
            })
        );
        assert_eq!(
            pass.split_by.as_ref().unwrap().parts,
            [KeyPart::Cookie("uid".into())]
        );

        let e = loc(
            "proxy_pass = \"http://app\"\nsplit = [{ upstream = \"canery\", weight = 5 }, \
             { upstream = \"nope\", weight = 101 }, { upstream = \"canary\", weight = 0.001 }, \
             { upstream = \"canary\" }, { upstream = \"canary\", weight = 1, when = { header = \"a b\" } }, \
             { upstream = \"canary\", weight = 1, when = { value = \"1\" } }]\nsplit_by = \"$cookei_uid\"",
        )
        .unwrap_err();
        let keys: Vec<&str> = e.0.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "server[0].location[0].split[0].upstream",
                "server[0].location[0].split[1].upstream",
                "server[0].location[0].split[1].weight",
                "server[0].location[0].split[2].weight",
                "server[0].location[0].split[3].weight",
                "server[0].location[0].split[4].when",
                "server[0].location[0].split[5].when",
                "server[0].location[0].split_by",
            ],
            "{e}"
        );
        let msg = |i: usize| e.0[i].message.as_str();
        assert!(
            msg(0).ends_with("unknown upstream \"canery\"; did you mean \"canary\"?"),
            "{e}"
        );
        assert!(msg(1).contains("(defined: \"app\", \"canary\")"), "{e}");
        assert!(msg(2).contains("from 0 to 100"), "{e}");
        assert!(msg(4).contains("needs a weight above 0"), "{e}");
        assert!(msg(6).contains("give one of header"), "{e}");
        assert!(msg(7).contains("did you mean `$cookie_uid`?"), "{e}");

        let e = loc("proxy_pass = \"http://app\"\nsplit = [{ upstream = \"canary\", weight = 60 }, { upstream = \"canary\", weight = 40.5 }]").unwrap_err();
        assert!(
            e.to_string()
                .contains("server[0].location[0].split: weights add up to 100.5%, over 100%"),
            "{e}"
        );
        let e = loc("proxy_pass = \"http://app\"\nsplit = []").unwrap_err();
        assert!(e.to_string().contains("is empty"), "{e}");
        let e = loc("proxy_pass = \"http://app\"\nsplit_by = \"$uri\"").unwrap_err();
        assert!(e.to_string().contains("split_by: only applies with split"), "{e}");
        let e =
            loc("return = { status = 200 }\nsplit = [{ upstream = \"canary\", weight = 5 }]").unwrap_err();
        assert!(
            e.to_string().contains("split: only applies with proxy_pass"),
            "{e}"
        );
        let e =
            loc("proxy_pass = \"http://app\"\nsplit = [{ upstream = \"canary\", wieght = 5 }]").unwrap_err();
        assert!(
            e.to_string()
                .contains("unknown key `wieght`; did you mean `weight`?"),
            "{e}"
        );
        let e = loc(
            "proxy_pass = \"http://app\"\nsplit = [{ upstream = \"canary\", weight = 5, when = { heder = \"x\" } }]",
        )
        .unwrap_err();
        assert!(e.to_string().contains("did you mean `header`?"), "{e}");
    }

    #[test]
    fn request_keys_compile_into_parts() {
        let k = parse_key("$http_X_Tenant:${cookie_session}-$remote_addr$uri/$request_uri").unwrap();
        assert_eq!(
            k.parts,
            [
                KeyPart::Header("x-tenant".into()),
                KeyPart::Literal(":".into()),
                KeyPart::Cookie("session".into()),
                KeyPart::Literal("-".into()),
                KeyPart::RemoteAddr,
                KeyPart::Uri,
                KeyPart::Literal("/".into()),
                KeyPart::RequestUri,
            ]
        );
        let err = |t: &str| parse_key(t).unwrap_err();
        assert!(err("$htp_x_tenant").ends_with("did you mean `$http_x_tenant`?"));
        assert!(err("$cokie_sid").ends_with("did you mean `$cookie_sid`?"));
        assert!(err("$remote_adr").ends_with("did you mean `$remote_addr`?"));
        assert!(err("$host").contains("unknown variable `$host` (known: $request_uri, $uri"));
        assert!(err("$http_").contains("unknown variable `$http_`"));
        assert!(err("a$").contains("starts no variable"));
        assert!(err("${uri").contains("unclosed"));
        assert!(err("tenant").contains("has no variable"));
        assert!(err("").contains("has no variable"));
    }

    #[test]
    fn line_col_counts_from_one() {
        let t = "a = 1\nbb = 2\n";
        assert_eq!(line_col(t, 0), (1, 1));
        assert_eq!(line_col(t, 6), (2, 1));
        assert_eq!(line_col(t, 9), (2, 4));
    }
}

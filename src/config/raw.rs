//! The config file as written: serde types that mirror the TOML one to one.
//!
//! A key these types do not know is never silently ignored: `validate.rs`
//! deserializes through `serde_ignored`, which reports every such key, and
//! each becomes an error with its position (all of them, not just the first).
//! Values that need checking beyond their TOML type are kept `Spanned`, so
//! `validate.rs` can point at the exact line and column of a bad value.

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Default, Deserialize)]
pub struct RawConfig {
    /// Read by `include.rs` before this parse; here so it is a known key.
    #[allow(dead_code)]
    #[serde(default)]
    pub include: Option<toml::Value>,
    #[serde(default)]
    pub global: RawGlobal,
    #[serde(default)]
    pub upstream: Vec<Spanned<RawUpstream>>,
    #[serde(default)]
    pub server: Vec<Spanned<RawServer>>,
    pub admin: Option<Spanned<RawAdmin>>,
    /// `[log_format.NAME]`: access log templates, named by `access_log.format`.
    #[serde(default)]
    pub log_format: std::collections::BTreeMap<String, Spanned<RawLogFormat>>,
    /// `[[limit]]`: see `crate::limit`.
    #[serde(default)]
    pub limit: Vec<Spanned<crate::limit::RawLimit>>,
    /// `[[cache]]`: response cache zones, see `crate::cache`.
    #[serde(default)]
    pub cache: Vec<Spanned<crate::cache::RawZone>>,
}

/// `[log_format.main] format = "$remote_addr ..."`, `escape = "json"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLogFormat {
    pub format: Spanned<String>,
    pub escape: Option<Spanned<String>>,
}

/// `[admin] listen = "127.0.0.1:9901"`: the metrics, status and health listener.
#[derive(Debug, Deserialize)]
pub struct RawAdmin {
    pub listen: Option<Spanned<StrOrInt>>,
}

/// A value that may be written as a string or as a whole number, such as
/// `workers = "auto"` / `workers = 4` or `client_max_body_size = "1m"` / `1048576`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum StrOrInt {
    Int(i64),
    Str(String),
}

/// `access_log = "path"` (or `"stdout"`, `"off"`), or
/// `access_log = { path = "...", format = "json" }`.
#[derive(Debug, Clone)]
pub enum RawAccessLog {
    Path(String),
    Table(RawAccessLogTable),
}

/// By hand rather than `untagged`, so a bad key in the table is named
/// ("unknown field `fromat`") instead of "did not match any variant".
impl<'de> Deserialize<'de> for RawAccessLog {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawAccessLog;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a path, \"stdout\", \"off\" or { path = \"...\", format = \"...\" }")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawAccessLog, E> {
                Ok(RawAccessLog::Path(v.to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<RawAccessLog, A::Error> {
                let t = RawAccessLogTable::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(RawAccessLog::Table(t))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAccessLogTable {
    pub path: String,
    pub format: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawGlobal {
    pub workers: Option<Spanned<StrOrInt>>,
    pub log_level: Option<Spanned<String>>,
    pub drain_timeout: Option<Spanned<String>>,
    pub max_connections: Option<Spanned<i64>>,
    pub trusted_proxies: Option<Vec<Spanned<String>>>,
    pub pid_file: Option<Spanned<String>>,
    pub reload_watch: Option<bool>,
    pub user: Option<Spanned<String>>,
    pub group: Option<Spanned<String>>,
    pub trace: Option<bool>,
}

#[derive(Debug, Deserialize)]
pub struct RawUpstream {
    pub name: Spanned<String>,
    pub servers: Spanned<Vec<Spanned<RawPeer>>>,
    pub keepalive: Option<Spanned<i64>>,
    pub keepalive_timeout: Option<Spanned<String>>,
    pub connect_timeout: Option<Spanned<String>>,
    pub read_timeout: Option<Spanned<String>>,
    pub send_timeout: Option<Spanned<String>>,
    pub balance: Option<Spanned<String>>,
    pub ewma_decay: Option<Spanned<String>>,
    pub hash: Option<Spanned<String>>,
    pub tries: Option<Spanned<i64>>,
    pub tries_timeout: Option<Spanned<String>>,
    pub next_upstream: Option<Spanned<Vec<Spanned<String>>>>,
    pub sticky: Option<Spanned<RawSticky>>,
    pub tls: Option<Spanned<bool>>,
    pub tls_verify: Option<Spanned<bool>>,
    pub tls_ca: Option<Spanned<String>>,
    pub tls_server_name: Option<Spanned<String>>,
    pub tls_cert: Option<Spanned<String>>,
    pub tls_key: Option<Spanned<String>>,
    pub health_check: Option<Spanned<RawHealthCheck>>,
    pub resolve_interval: Option<Spanned<String>>,
    pub protocol: Option<Spanned<String>>,
    pub h2_connections: Option<Spanned<i64>>,
}

/// `sticky = { cookie = "rw_srv", path = "/", max_age = "1h", httponly = true, secure = true }`.
#[derive(Debug, Deserialize)]
pub struct RawSticky {
    pub cookie: Option<Spanned<String>>,
    pub path: Option<Spanned<String>>,
    pub domain: Option<Spanned<String>>,
    pub max_age: Option<Spanned<String>>,
    pub httponly: Option<bool>,
    pub secure: Option<bool>,
    pub samesite: Option<Spanned<String>>,
}

/// `health_check = { type = "http", path = "/healthz", interval = "5s", ... }`.
#[derive(Debug, Deserialize)]
pub struct RawHealthCheck {
    #[serde(rename = "type")]
    pub type_: Option<Spanned<String>>,
    pub path: Option<Spanned<String>>,
    pub host: Option<Spanned<String>>,
    pub expect: Option<Spanned<String>>,
    pub interval: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
    pub rise: Option<Spanned<i64>>,
    pub fall: Option<Spanned<i64>>,
}

/// `"127.0.0.1:3000"` or `{ addr = "127.0.0.1:3001", weight = 2, backup = true,
/// max_fails = 3, fail_timeout = "30s" }`.
#[derive(Debug)]
pub enum RawPeer {
    Addr(String),
    Full(RawPeerTable),
}

// Written out rather than `#[serde(untagged)]`, which would turn a misspelt
// key in the table into "data did not match any variant"; this way serde's
// own message names the key and the known ones.
impl<'de> Deserialize<'de> for RawPeer {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<RawPeer, D::Error> {
        struct PeerVisitor;
        impl<'de> serde::de::Visitor<'de> for PeerVisitor {
            type Value = RawPeer;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("\"host:port\" or a table { addr = \"host:port\", ... }")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawPeer, E> {
                Ok(RawPeer::Addr(v.to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<RawPeer, A::Error> {
                RawPeerTable::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(RawPeer::Full)
            }
        }
        d.deserialize_any(PeerVisitor)
    }
}

#[derive(Debug, Deserialize)]
// Refused here: serde_ignored does not reach inside a hand-written Deserialize.
#[serde(deny_unknown_fields)]
pub struct RawPeerTable {
    pub addr: String,
    pub weight: Option<i64>,
    pub backup: Option<bool>,
    pub max_fails: Option<i64>,
    pub fail_timeout: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct RawServer {
    pub listen: Spanned<Vec<Spanned<StrOrInt>>>,
    pub server_name: Option<Vec<Spanned<String>>>,
    pub access_log: Option<Spanned<RawAccessLog>>,
    pub client_max_body_size: Option<Spanned<StrOrInt>>,
    pub client_header_timeout: Option<Spanned<String>>,
    pub client_body_timeout: Option<Spanned<String>>,
    pub keepalive_timeout: Option<Spanned<String>>,
    pub keepalive_requests: Option<Spanned<i64>>,
    pub send_timeout: Option<Spanned<String>>,
    pub max_request_line: Option<Spanned<StrOrInt>>,
    pub max_header_size: Option<Spanned<StrOrInt>>,
    pub max_headers: Option<Spanned<i64>>,
    pub tls: Option<Spanned<RawTls>>,
    pub hsts: Option<Spanned<RawHsts>>,
    pub redirect_https: Option<Spanned<BoolOrInt>>,
    /// `forwarded = true`: an RFC 7239 `Forwarded` element to the upstream;
    /// `forwarded_by`: its `by=` node.
    pub forwarded: Option<Spanned<bool>>,
    pub forwarded_by: Option<Spanned<String>>,
    pub http2: Option<Spanned<BoolOrHttp2>>,
    pub h2c: Option<Spanned<bool>>,
    pub rewrite: Option<Spanned<Vec<Spanned<RawRewrite>>>>,
    pub request_headers: Option<Spanned<RawRequestHeaders>>,
    pub response_headers: Option<Spanned<RawResponseHeaders>>,
    /// `compress`: see `crate::compress`; locations inherit it.
    pub compress: Option<Spanned<crate::compress::RawCompressSetting>>,
    /// `limits = ["per_ip"]`: `[[limit]]` names; locations inherit them.
    pub limits: Option<Spanned<Vec<Spanned<String>>>>,
    /// IP rules (`crate::access`); locations inherit them: `allow`/`deny` lists or the ordered
    /// `access = [{ deny = "..." }, ...]`.
    pub allow: Option<Spanned<Vec<Spanned<String>>>>,
    pub deny: Option<Spanned<Vec<Spanned<String>>>>,
    pub access: Option<Spanned<Vec<Spanned<crate::access::RawRule>>>>,
    /// `auth = { basic = ... }`: one method (`crate::access`).
    pub auth: Option<Spanned<crate::access::RawAuth>>,
    /// `error_pages = { "404" = "/404.html" }`: for the block's locations
    /// without their own, and for requests no location takes.
    pub error_pages: Option<Spanned<std::collections::BTreeMap<String, Spanned<String>>>>,
    #[serde(default)]
    pub location: Vec<Spanned<RawLocation>>,
}

/// `http2 = false`, `http2 = true` or a table of HTTP/2 limits (which
/// implies on).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum BoolOrHttp2 {
    Bool(bool),
    Limits(RawHttp2),
}

/// `http2 = { max_concurrent_streams = 128, initial_window = "64k",
/// max_frame_size = "16k", max_header_list = "32k", idle_timeout = "3m" }`.
/// Inside an untagged enum, values cannot carry their own spans: errors
/// point at the table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttp2 {
    pub max_concurrent_streams: Option<i64>,
    pub initial_window: Option<StrOrInt>,
    pub max_frame_size: Option<StrOrInt>,
    pub max_header_list: Option<StrOrInt>,
    pub idle_timeout: Option<String>,
}

/// `tls = { cert = "...", key = "...", client_ca = "...", verify_client = "on",
/// protocols = ["TLSv1.2", "TLSv1.3"], ciphers = [...], reject_handshake = false }`.
#[derive(Debug, Deserialize)]
pub struct RawTls {
    pub cert: Option<Spanned<String>>,
    pub key: Option<Spanned<String>>,
    pub client_ca: Option<Spanned<String>>,
    pub verify_client: Option<Spanned<String>>,
    pub protocols: Option<Spanned<Vec<Spanned<String>>>>,
    pub ciphers: Option<Spanned<Vec<Spanned<String>>>>,
    pub reject_handshake: Option<bool>,
}

/// `hsts = { max_age = "730d", include_subdomains = true, preload = false }`.
#[derive(Debug, Deserialize)]
pub struct RawHsts {
    pub max_age: Spanned<String>,
    pub include_subdomains: Option<bool>,
    pub preload: Option<bool>,
}

/// `redirect_https = true` or a port: `redirect_https = 8443`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum BoolOrInt {
    Bool(bool),
    Int(i64),
}

#[derive(Debug, Deserialize)]
pub struct RawLocation {
    /// Exactly one of `path` (prefix), `exact`, `regex` and `name`.
    pub path: Option<Spanned<String>>,
    pub exact: Option<Spanned<String>>,
    pub regex: Option<Spanned<String>>,
    pub name: Option<Spanned<String>>,
    /// On a prefix location: nginx's `^~` (no regex is tried when it is the longest).
    pub skip_regex: Option<Spanned<bool>>,
    pub rewrite: Option<Spanned<Vec<Spanned<RawRewrite>>>>,
    pub request_headers: Option<Spanned<RawRequestHeaders>>,
    pub response_headers: Option<Spanned<RawResponseHeaders>>,
    pub proxy_pass: Option<Spanned<String>>,
    #[serde(rename = "return")]
    pub return_: Option<Spanned<RawReturn>>,
    pub preserve_host: Option<bool>,
    pub client_max_body_size: Option<Spanned<StrOrInt>>,
    /// `upgrade = ["websocket"]`: the `Upgrade` protocols passed on.
    pub upgrade: Option<Spanned<Vec<Spanned<String>>>>,
    pub split: Option<Spanned<Vec<Spanned<RawSplit>>>>,
    pub split_by: Option<Spanned<String>>,
    /// TLS toward the implicit upstream of `proxy_pass = "https://host:port"`;
    /// a named upstream carries its own `tls_*` keys instead.
    pub proxy_tls_verify: Option<Spanned<bool>>,
    pub proxy_tls_ca: Option<Spanned<String>>,
    pub proxy_tls_server_name: Option<Spanned<String>>,
    pub proxy_tls_cert: Option<Spanned<String>>,
    pub proxy_tls_key: Option<Spanned<String>>,
    /// `compress`: replaces the server block's.
    pub compress: Option<Spanned<crate::compress::RawCompressSetting>>,
    /// `limits`: replaces the server block's.
    pub limits: Option<Spanned<Vec<Spanned<String>>>>,
    /// IP rules (`crate::access`), replacing the server block's: `allow`/`deny` lists or the ordered
    /// `access = [{ deny = "..." }, ...]`.
    pub allow: Option<Spanned<Vec<Spanned<String>>>>,
    pub deny: Option<Spanned<Vec<Spanned<String>>>>,
    pub access: Option<Spanned<Vec<Spanned<crate::access::RawRule>>>>,
    /// `auth = { basic = ... }`: one method (`crate::access`).
    pub auth: Option<Spanned<crate::access::RawAuth>>,
    /// Static files (`crate::files`): `root` or `alias` and their keys.
    pub root: Option<Spanned<String>>,
    pub alias: Option<Spanned<String>>,
    pub index: Option<Spanned<Vec<Spanned<String>>>>,
    pub try_files: Option<Spanned<Vec<Spanned<String>>>>,
    pub autoindex: Option<Spanned<bool>>,
    pub default_type: Option<Spanned<String>>,
    pub expires: Option<Spanned<String>>,
    pub cache_control: Option<Spanned<String>>,
    pub precompressed: Option<Spanned<bool>>,
    pub follow_symlinks: Option<Spanned<bool>>,
    pub serve_hidden: Option<Spanned<bool>>,
    /// `error_pages`: replaces the server block's.
    pub error_pages: Option<Spanned<std::collections::BTreeMap<String, Spanned<String>>>>,
    /// On a proxy location: upstream error responses get `error_pages` too.
    pub intercept_errors: Option<Spanned<bool>>,
    /// On a proxy location: `cache = { zone = "main", ... }` (`crate::cache`).
    pub cache: Option<Spanned<crate::cache::RawCache>>,
}

/// `{ upstream = "app-canary", weight = 5, when = { header = "X-Canary", value = "1" } }`.
#[derive(Debug, Deserialize)]
pub struct RawSplit {
    pub upstream: Spanned<String>,
    pub weight: Option<Spanned<Number>>,
    pub when: Option<Spanned<RawWhen>>,
}

/// A percentage, written `5` or `0.5`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(untagged)]
pub enum Number {
    Int(i64),
    Float(f64),
}

/// `{ header = "X-Canary", value = "1" }` or `{ cookie = "canary" }`.
#[derive(Debug, Deserialize)]
pub struct RawWhen {
    pub header: Option<String>,
    pub cookie: Option<String>,
    pub value: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct RawReturn {
    pub status: Spanned<i64>,
    pub body: Option<Spanned<String>>,
    pub location: Option<Spanned<String>>,
}

/// `{ from = "^/old/(.*)$", to = "/new/$1", flag = "last" }`.
#[derive(Debug, Deserialize)]
pub struct RawRewrite {
    pub from: Spanned<String>,
    pub to: Spanned<String>,
    pub flag: Option<Spanned<String>>,
}

/// `request_headers = { set = { "X-Env" = "prod" }, remove = ["X-Debug"] }`.
#[derive(Debug, Deserialize)]
pub struct RawRequestHeaders {
    pub set: Option<std::collections::BTreeMap<String, Spanned<String>>>,
    pub remove: Option<Vec<Spanned<String>>>,
}

/// `response_headers = { add = {...}, set = {...}, remove = [...], always = false }`.
#[derive(Debug, Deserialize)]
pub struct RawResponseHeaders {
    pub add: Option<std::collections::BTreeMap<String, Spanned<String>>>,
    pub set: Option<std::collections::BTreeMap<String, Spanned<String>>>,
    pub remove: Option<Vec<Spanned<String>>>,
    pub always: Option<bool>,
}

//! Configuration: the TOML file (`raw.rs`) checked and resolved into the
//! immutable [`Config`] that workers build their per-core state from.
//!
//! Loading happens once on the main thread, before anything binds. It is the
//! only place where host names are resolved (a blocking lookup is fine here and
//! never on a worker). Every problem found is reported with file, line and
//! column; all of them are collected, not just the first.

mod include;
mod raw;
mod validate;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;

pub use validate::{ConfigError, ConfigErrors};

/// The whole validated configuration. Built once, shared read-only as `Arc<Config>`.
#[derive(Debug, Clone)]
pub struct Config {
    pub global: Global,
    pub upstreams: Vec<Upstream>,
    pub servers: Vec<Server>,
    /// The files read: the main one first, then each included one
    /// (what `reload_watch` polls).
    pub files: Vec<PathBuf>,
    /// `[admin]`: `/metrics`, `/status` and `/healthz`. Off when absent.
    pub admin: Option<Admin>,
    /// `[log_format.NAME]` templates; `LogFormat::Named` indexes them.
    pub log_formats: Vec<Arc<crate::log::LogTemplate>>,
    /// `[[limit]]`: rate and connection limits, by name.
    pub limits: Vec<crate::limit::Limit>,
    /// `[[cache]]` zones, in the order written.
    pub caches: Vec<crate::cache::ZoneDef>,
}

/// `[admin]`: the operator's listener, served apart from every `[[server]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admin {
    /// `listen`: the address, such as `"127.0.0.1:9901"`. Required.
    pub listen: SocketAddr,
}

/// `[global]`: process-wide settings.
#[derive(Debug, Clone)]
pub struct Global {
    /// `workers = "auto"` (one per available core) or a number.
    pub workers: Workers,
    /// `log_level`: error, warn, info, debug or trace. Default `info`.
    pub log_level: String,
    /// `drain_timeout`: how long in-flight requests may run after SIGTERM. Default `10s`.
    pub drain_timeout: Duration,
    /// `max_connections`: client connections one worker serves at once;
    /// past it, new ones get a 503 and are closed. Default 16384.
    pub max_connections: usize,
    /// `trusted_proxies`: CIDRs whose X-Forwarded-For is believed when taking the
    /// client address (nginx's `set_real_ip_from`). Default: none.
    pub trusted_proxies: Vec<IpNet>,
    /// `pid_file`: where the process id is written at start (and removed at
    /// exit); `ringway --reload` signals the process it names. Default: none.
    pub pid_file: Option<PathBuf>,
    /// `reload_watch`: reload when the config file or an included file
    /// changes (polled every second, debounced). Default false.
    pub reload_watch: bool,
    /// `user` (and `group`): started as root, the process binds its
    /// listeners and opens its files, then every thread runs as this user
    /// and group, keeping only `CAP_NET_BIND_SERVICE`. Default: none (the
    /// ids it was started with).
    pub run_as: Option<RunAs>,
    /// `trace`: start a W3C trace context for requests that bring none.
    pub trace: bool,
}

/// The user and group of `global.user` / `global.group`, looked up when the
/// config is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    pub user: String,
    pub uid: u32,
    /// `global.group`'s name, or the user's primary group's.
    pub group: String,
    pub gid: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workers {
    Auto,
    Count(usize),
}

/// `[[upstream]]`: a named group of servers and how to talk to them.
#[derive(Debug, Clone)]
pub struct Upstream {
    pub name: String,
    pub servers: Vec<Peer>,
    /// `keepalive`: idle connections kept per worker. Default 32; 0 disables reuse.
    pub keepalive: usize,
    /// `keepalive_timeout`: how long an idle pooled connection is kept. Default `60s`.
    pub keepalive_timeout: Duration,
    /// `connect_timeout`. Default `5s`.
    pub connect_timeout: Duration,
    /// `read_timeout`: the longest wait for any read from the upstream. Default `60s`.
    pub read_timeout: Duration,
    /// `send_timeout`: the longest wait for any write to the upstream. Default `60s`.
    pub send_timeout: Duration,
    /// True for an upstream made from a `proxy_pass` that names host:port directly.
    pub implicit: bool,
    /// `balance`: how a server is chosen. Default `round_robin`.
    pub balance: Balance,
    /// `tries`: how many servers one request may be tried on (the first
    /// included). Default 2 when the upstream has more than one server, else 1.
    pub tries: usize,
    /// `tries_timeout`: no further server is tried once this much time has
    /// passed since the first. Default `0s`: no limit.
    pub tries_timeout: Duration,
    /// `sticky`: a cookie that keeps a client on the server it was sent to.
    pub sticky: Option<Sticky>,
    /// `next_upstream`: which failures and statuses send a request on to the
    /// next server (nginx's `proxy_next_upstream`).
    pub next_upstream: NextUpstream,
    /// `tls = true` (or `proxy_pass = "https://..."`): speak TLS to the servers.
    pub tls: Option<UpstreamTls>,
    /// `health_check`: active probes of every server. Default: none.
    pub health_check: Option<HealthCheck>,
    /// `resolve_interval`: how often servers written as a host name are
    /// resolved again. Default: never (only when the config loads).
    pub resolve_interval: Option<Duration>,
    /// `protocol`: `"http1"` (default) or `"h2"` (HTTP/2: ALPN h2 with
    /// `tls = true`, else cleartext with prior knowledge). Needed for gRPC.
    pub protocol: UpstreamProtocol,
    /// `h2_connections`: HTTP/2 connections per server per worker that
    /// requests are multiplexed on. Default 1.
    pub h2_connections: usize,
}

/// What an upstream's servers speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamProtocol {
    Http1,
    H2,
}

/// `next_upstream = ["error", "timeout", "http_503"]`, as a set of flags.
/// Default: `error`, `timeout` and `invalid_header`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextUpstream(u16);

impl NextUpstream {
    /// A connection refused or reset, or closed before a response head.
    pub const ERROR: u16 = 1;
    /// `connect_timeout`, `send_timeout` or `read_timeout` before a response head.
    pub const TIMEOUT: u16 = 1 << 1;
    /// A response head that is not valid HTTP.
    pub const INVALID_HEADER: u16 = 1 << 2;
    /// The names nginx uses, with their flags; the statuses follow.
    pub const NAMES: [(&'static str, u16); 10] = [
        ("error", Self::ERROR),
        ("timeout", Self::TIMEOUT),
        ("invalid_header", Self::INVALID_HEADER),
        ("http_500", 1 << 3),
        ("http_502", 1 << 4),
        ("http_503", 1 << 5),
        ("http_504", 1 << 6),
        ("http_403", 1 << 7),
        ("http_404", 1 << 8),
        ("http_429", 1 << 9),
    ];
    pub const DEFAULT: NextUpstream = NextUpstream(Self::ERROR | Self::TIMEOUT | Self::INVALID_HEADER);
    /// `["off"]`: no failure sends a request to another server.
    pub const OFF: NextUpstream = NextUpstream(0);

    pub fn parse(name: &str) -> Option<u16> {
        Self::NAMES.iter().find(|(n, _)| *n == name).map(|&(_, f)| f)
    }

    pub fn with(self, flag: u16) -> NextUpstream {
        NextUpstream(self.0 | flag)
    }

    pub fn has(self, flag: u16) -> bool {
        self.0 & flag != 0
    }

    /// A response with this status goes on to the next server.
    pub fn on_status(self, status: u16) -> bool {
        let flag = match status {
            500 => 1 << 3,
            502 => 1 << 4,
            503 => 1 << 5,
            504 => 1 << 6,
            403 => 1 << 7,
            404 => 1 << 8,
            429 => 1 << 9,
            _ => 0,
        };
        self.has(flag)
    }

    /// A response with this status counts against the server's health
    /// (`max_fails`), as in nginx: the 5xx statuses listed; 403, 404 and 429
    /// never do, since they answer for the request and not the server.
    pub fn status_is_failure(self, status: u16) -> bool {
        matches!(status, 500 | 502 | 503 | 504) && self.on_status(status)
    }
}

/// `sticky = { cookie = "rw_srv", ... }`: the first response to a client
/// sets a cookie naming its server by an opaque id; while that server is up,
/// the client's requests go there whatever `balance` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sticky {
    /// `cookie`: the cookie's name. Default `rw_srv`.
    pub cookie: String,
    /// `path`. Default `/`.
    pub path: String,
    /// `domain`. Default: none (the cookie goes back to the host that set it).
    pub domain: Option<String>,
    /// `max_age`. Default: none, a session cookie.
    pub max_age: Option<Duration>,
    /// `httponly`. Default false.
    pub httponly: bool,
    /// `secure`. Default false.
    pub secure: bool,
    /// `samesite`: `Strict`, `Lax` or `None`. Default: not sent.
    pub samesite: Option<&'static str>,
}

/// TLS toward an upstream's servers, checked and loaded at config load.
#[derive(Clone)]
pub struct UpstreamTls {
    /// The settings as written, to tell whether two `https://` locations
    /// naming the same address can share one implicit upstream.
    pub spec: TlsSpec,
    /// The name each server is sent as SNI and verified against, by server
    /// index: `tls_server_name`, else the server's host as written. For an
    /// IP address written as such no SNI is sent (SNI carries only DNS
    /// names) and the certificate must name that address.
    pub names: Vec<rustls::pki_types::ServerName<'static>>,
    /// `tls_server_name = "$host"`: the request's host is the name instead,
    /// and `names` only stand in for a request without one.
    pub name_from_host: bool,
    /// Roots, verifier, ALPN and client certificate, ready at load. Each
    /// worker uses a copy with its own session cache.
    pub client: Arc<rustls::ClientConfig>,
}

/// Everything but the loaded client config: what a reload compares to tell
/// an unchanged upstream from a changed one (`Upstream::same_as`).
impl std::fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTls")
            .field("spec", &self.spec)
            .field("names", &self.names)
            .field("name_from_host", &self.name_from_host)
            .finish_non_exhaustive()
    }
}

impl Upstream {
    /// Same name and same definition (every key as loaded, addresses
    /// included; upstream TLS by its settings, not its files' contents):
    /// a reload keeps such an upstream's pools, health and balancer.
    pub fn same_as(&self, other: &Upstream) -> bool {
        self.name == other.name && format!("{self:?}") == format!("{other:?}")
    }
}

/// The TLS keys of an upstream (or of an `https://` location), as written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSpec {
    /// `tls_verify`: check the certificate chain and name. Default true.
    pub verify: bool,
    /// `tls_ca`: trusted CA certificates (PEM); default the system's roots.
    pub ca: Option<PathBuf>,
    /// `tls_server_name`: the name sent as SNI and checked in the
    /// certificate, or `$host` for the request's.
    pub server_name: Option<String>,
    /// `tls_cert` and `tls_key`: a client certificate for upstreams that ask for one.
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

/// `health_check = { ... }`: one probe per server per `interval`, made by
/// one prober for the whole process (not per worker).
#[derive(Debug, Clone)]
pub struct HealthCheck {
    /// `type`: `"http"` (default) or `"tcp"`.
    pub probe: Probe,
    /// `interval`: time between the starts of two probes of one server. Default `5s`.
    pub interval: Duration,
    /// `timeout`: a probe that has not passed by then fails. Default `2s`.
    pub timeout: Duration,
    /// `rise`: passes in a row that bring a server that is down back. Default 2.
    pub rise: u32,
    /// `fall`: failures in a row that take a server out. Default 3.
    pub fall: u32,
}

/// What a probe does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// Connect, then close: passes when the connect succeeds.
    Tcp,
    /// `GET path` with `Host: host`; passes when the status is in `expect`.
    Http {
        /// `path`. Default `/`.
        path: String,
        /// `host`: the Host header. Default: the server as written in `servers`.
        host: Option<String>,
        /// `expect`: status codes and ranges, `"200-399"` (default) or `"200,204"`.
        expect: Vec<(u16, u16)>,
    },
}

/// `balance = "..."`: the rule that picks a server for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Balance {
    /// Smooth weighted round robin, nginx's sequence.
    RoundRobin,
    /// Fewest requests in flight (on this worker) per unit of weight; ties by round robin.
    LeastConn,
    /// A stable hash of the client address, weighted: a client sticks to one server.
    IpHash,
    /// Two servers drawn at random (weighted), the less busy one taken.
    RandomTwo,
    /// `hash = "..."`: consistent hashing of a request key (a ketama ring).
    Hash(RequestKey),
    /// Peak EWMA of response-head latency times requests in flight, the
    /// lower of two servers drawn at random; the decay time (`ewma_decay`).
    Ewma(Duration),
}

/// A key built from parts of a request, such as `"$http_x_tenant:$cookie_session"`:
/// literal text and variables of the variable engine, compiled when the
/// config loads (`hash`, `split_by`).
pub type RequestKey = crate::vars::Template;

impl Balance {
    pub const NAMES: [&'static str; 5] = ["round_robin", "least_conn", "ip_hash", "random_two", "ewma"];
    /// `ewma_decay`'s default: latencies older than this count for about a third.
    pub const EWMA_DECAY: Duration = Duration::from_secs(10);

    pub fn parse(s: &str) -> Option<Balance> {
        Some(match s {
            "round_robin" => Balance::RoundRobin,
            "least_conn" => Balance::LeastConn,
            "ip_hash" => Balance::IpHash,
            "random_two" => Balance::RandomTwo,
            "ewma" => Balance::Ewma(Balance::EWMA_DECAY),
            _ => return None,
        })
    }
}

/// One server of an upstream.
#[derive(Debug, Clone)]
pub struct Peer {
    /// As written in the config (`app.internal:3000`), used to recognise redirects.
    pub authority: String,
    /// Resolved when the config was loaded.
    pub addr: SocketAddr,
    /// `addr` as text, to recognise a redirect to it without formatting
    /// the address per response.
    pub addr_text: String,
    pub weight: u32,
    /// `backup`: sent requests only while every other server is down.
    pub backup: bool,
    /// `max_fails`: failures within `fail_timeout` that mark the server down
    /// for `fail_timeout`. Default 1; 0 never marks it down.
    pub max_fails: u32,
    /// `fail_timeout`. Default `10s`.
    pub fail_timeout: Duration,
}

impl Peer {
    /// A server with every option at its default.
    pub fn new(authority: String, addr: SocketAddr) -> Peer {
        Peer {
            authority,
            addr,
            addr_text: addr.to_string(),
            weight: 1,
            backup: false,
            max_fails: 1,
            fail_timeout: Duration::from_secs(10),
        }
    }

    /// Host and port when the server is written as a host name (not an
    /// address): the servers that `resolve_interval` looks up again.
    pub fn host_name(&self) -> Option<(&str, u16)> {
        let (host, port) = self.authority.rsplit_once(':')?;
        let port = port.parse().ok()?;
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        (bare.parse::<std::net::IpAddr>().is_err() && !host.is_empty()).then_some((host, port))
    }
}

/// Where a server block writes its access log.
/// `access_log`: where a server block's access log goes, and its format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLog {
    Off,
    Stdout(LogFormat),
    File(PathBuf, LogFormat),
}

/// `access_log.format`: `"combined"` (the default), `"json"`, or the name
/// of a `[log_format.NAME]` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Combined,
    Json,
    /// An index into [`Config::log_formats`].
    Named(usize),
}

/// `[[server]]`: a virtual server, chosen by listen address and Host.
#[derive(Debug, Clone)]
pub struct Server {
    pub listen: Vec<SocketAddr>,
    /// Exact names and `*.suffix` wildcards, lower-cased. Empty: the default
    /// server for its listen addresses.
    pub server_names: Vec<String>,
    pub access_log: AccessLog,
    pub limits: ClientLimits,
    pub locations: Vec<Location>,
    /// `tls`: terminate TLS on this block's listen addresses.
    pub tls: Option<Tls>,
    /// `hsts`: the `Strict-Transport-Security` value added to responses
    /// sent over TLS, rendered once.
    pub hsts: Option<String>,
    /// `redirect_https`: answer every plain-HTTP request with a 301 to
    /// `https://` on this port (443: no port in the URL).
    pub redirect_https: Option<u16>,
    /// `forwarded = true`: RFC 7239 `Forwarded` to the upstream, with the
    /// `by=` node of `forwarded_by`; a trusted peer's elements are kept and
    /// believed for the client address.
    pub forwarded: Option<Forwarded>,
    /// `rewrite`: rules run on every request before a location is chosen.
    pub rewrites: Vec<Rewrite>,
    /// `error_pages`: for requests that no location takes (each location
    /// has the block's unless it has its own).
    pub error_pages: Option<Arc<crate::files::ErrorPages>>,
    /// `http2` and `h2c`: HTTP/2 from clients and its limits.
    pub http2: Http2,
}

/// `forwarded` of a server block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forwarded {
    /// `forwarded_by`, written as its `by=` value.
    pub by: Option<String>,
}

/// HTTP/2 from clients, for the addresses of a server block. Blocks that
/// share an address agree on `tls_alpn` and `h2c` (a config error otherwise);
/// the limits are those of the address's default block.
#[derive(Debug, Clone)]
pub struct Http2 {
    /// Offer `h2` in TLS ALPN (before `http/1.1`). Default: on for TLS blocks.
    pub tls_alpn: bool,
    /// `h2c = true`: accept cleartext HTTP/2 with prior knowledge on plain
    /// listeners, beside HTTP/1.1 on the same port. Default off.
    pub h2c: bool,
    /// `max_concurrent_streams`: open streams per connection; more are
    /// refused with REFUSED_STREAM. Default 128 (nginx's).
    pub max_concurrent_streams: u32,
    /// `initial_window`: the flow-control window of each stream for request
    /// bodies. Default `64k` (nginx's `http2_body_preread_size`).
    pub initial_window: u32,
    /// `max_frame_size`: the largest frame accepted. Default `16k`.
    pub max_frame_size: u32,
    /// `max_header_list`: the largest decoded request head. Default: the
    /// block's `max_header_size`.
    pub max_header_list: u32,
    /// `idle_timeout`: a connection with no open stream for this long is
    /// closed with GOAWAY. Default `3m` (nginx's `http2_idle_timeout`).
    pub idle_timeout: Duration,
}

/// `tls = { ... }` of a server block.
#[derive(Debug, Clone)]
pub struct Tls {
    /// `cert`: PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// `key`: PEM private key (PKCS#8, PKCS#1 or SEC1; RSA, ECDSA or Ed25519).
    pub key: PathBuf,
    /// `client_ca`: PEM CA certificates client certificates must chain to.
    pub client_ca: Option<PathBuf>,
    /// `verify_client`: `off` (default), `on` or `optional`.
    pub verify_client: VerifyClient,
    /// `protocols`: default TLSv1.2 and TLSv1.3.
    pub protocols: Vec<TlsVersion>,
    /// `ciphers`: cipher suite names to allow; default every suite rustls
    /// offers for the chosen protocols.
    pub ciphers: Option<Vec<String>>,
    /// `reject_handshake`: refuse handshakes that choose this block (nginx's
    /// `ssl_reject_handshake`); such a block needs no certificate.
    pub reject_handshake: bool,
    /// The certificate and key as loaded when the config was read.
    pub material: Option<std::sync::Arc<crate::tls::server::Material>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyClient {
    Off,
    On,
    Optional,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVersion {
    V1_2,
    V1_3,
}

/// Limits and deadlines that apply to the downstream side of a server block.
/// Defaults follow nginx's.
#[derive(Debug, Clone)]
pub struct ClientLimits {
    /// `max_request_line`: longer request lines get 414. Default `8k`.
    pub max_request_line: usize,
    /// `max_header_size`: a larger request head gets 431. Default `32k`.
    pub max_header_size: usize,
    /// `max_headers`: more header fields than this get 431. Default 100.
    pub max_headers: usize,
    /// `client_max_body_size`: larger bodies get 413. Default: no limit.
    pub client_max_body_size: Option<u64>,
    /// `client_header_timeout`: to receive a whole request head. Default `60s`.
    pub header_timeout: Duration,
    /// `client_body_timeout`: between two reads of the request body. Default `60s`.
    pub body_timeout: Duration,
    /// `keepalive_timeout`: idle time between requests. Default `75s`; `0s` disables keep-alive.
    pub keepalive_timeout: Duration,
    /// `keepalive_requests`: requests served on one connection before closing it. Default 1000.
    pub keepalive_requests: u64,
    /// `send_timeout`: between two writes to the client. Default `60s`.
    pub send_timeout: Duration,
}

/// `[[server.location]]`: a path prefix and what to do with it.
#[derive(Debug, Clone)]
pub struct Location {
    /// The prefix, exact path, regex or name, as written.
    pub path: String,
    /// How requests are matched to it.
    pub kind: LocationKind,
    /// `rewrite`: rules run on the URI once this location is chosen.
    pub rewrites: Vec<Rewrite>,
    /// `request_headers`: the location's, else the block's.
    pub request_headers: Option<Arc<RequestHeaders>>,
    /// `response_headers`: the location's, else the block's.
    pub response_headers: Option<Arc<ResponseHeaders>>,
    pub action: Action,
    /// Overrides the server block's `client_max_body_size` when set.
    pub client_max_body_size: Option<Option<u64>>,
    /// `upgrade`: the protocols a client may switch to through this
    /// location (`Upgrade`, RFC 9110 §7.8; RFC 8441 over HTTP/2), lowercased.
    /// Default `["websocket"]`; empty: requests are passed on without
    /// `Upgrade`.
    pub upgrade: Vec<String>,
    /// `compress`: the location's own, else its server block's (a
    /// location's replaces the server's, as nginx inherits). None: off.
    pub compress: Option<Arc<crate::compress::Compress>>,
    /// Limits and access rules run before the content phase.
    pub access: crate::access::Plan,
    /// `error_pages`: the location's, else its server block's.
    pub error_pages: Option<Arc<crate::files::ErrorPages>>,
    /// `intercept_errors`: an upstream's response with a status that has an
    /// error page is replaced by the page (nginx's `proxy_intercept_errors`).
    pub intercept_errors: bool,
    /// `cache`: the response cache of a proxy location (`crate::cache`).
    pub cache: Option<Arc<crate::cache::Cache>>,
}

impl Location {
    /// The location passes on an upgrade to `protocol` (case ignored).
    pub fn allows_upgrade(&self, protocol: &[u8]) -> bool {
        self.upgrade
            .iter()
            .any(|p| p.as_bytes().eq_ignore_ascii_case(protocol))
    }
}

/// `request_headers`: fields sent to the upstream (nginx's `proxy_set_header`).
#[derive(Debug, Clone)]
pub struct RequestHeaders {
    /// `set`: (name, value); whatever the client sent under the name is
    /// replaced; a value that expands to nothing sends no field.
    pub set: Vec<(String, crate::vars::Template)>,
    /// `set` and `remove` names, lower-case: the client's fields (and
    /// ringway's own forwarding fields) of these names are not sent.
    pub hidden: Vec<String>,
}

/// `response_headers`: fields the client gets (nginx's `add_header` and
/// `proxy_hide_header`).
#[derive(Debug, Clone)]
pub struct ResponseHeaders {
    /// `set` then `add`, in that order: (name, value).
    pub fields: Vec<(String, crate::vars::Template)>,
    /// `set` names, lower-case: the upstream's fields of these names are
    /// not passed on where the fields apply.
    pub replaced: Vec<String>,
    /// `remove` names, lower-case: never passed on, whatever the status
    /// (nginx's `proxy_hide_header`).
    pub removed: Vec<String>,
    /// `always`: also on error statuses and ringway's own answers; else
    /// only on 200, 201, 204, 206, 301, 302, 303, 304, 307 and 308 (nginx's).
    pub always: bool,
}

impl ResponseHeaders {
    /// Whether the fields go on a response of this status.
    pub fn applies(&self, status: u16) -> bool {
        self.always || matches!(status, 200 | 201 | 204 | 206 | 301 | 302 | 303 | 304 | 307 | 308)
    }
}

/// Which of `path`, `exact`, `regex` and `name` a location has (nginx's
/// `location /p`, `location = /p`, `location ~ re` and `location @name`).
#[derive(Debug, Clone)]
pub enum LocationKind {
    /// `path`: a prefix; `skip_regex` is nginx's `^~`.
    Prefix { skip_regex: bool },
    /// `exact`: the whole path.
    Exact,
    /// `regex`: tried in config order after prefixes (`(?i)` ignores case).
    Regex(regex::bytes::Regex),
    /// `name`: never matched by a path; reached by name only.
    Named,
}

/// One rule of `rewrite = [{ from, to, flag }]`.
#[derive(Debug, Clone)]
pub struct Rewrite {
    /// `from`: matched against the current path (`$uri`).
    pub from: regex::bytes::Regex,
    /// `to`: the new URI (its captures from `from`), without a final `?`.
    pub to: crate::vars::Template,
    pub flag: RewriteFlag,
    /// `to` ended with `?`: the request's query is dropped.
    pub drop_args: bool,
    /// `to` starts with `http://` or `https://`: a redirect.
    pub absolute: bool,
}

/// A rewrite's `flag`, nginx's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RewriteFlag {
    /// No flag: the next rule sees the new URI; then the location is chosen again.
    Next,
    /// `last`: stop, choose the location again with the new URI.
    Last,
    /// `break`: stop, stay in this location with the new URI.
    Break,
    /// `redirect`: 302 to the new URI.
    Redirect,
    /// `permanent`: 301 to the new URI.
    Permanent,
}

#[derive(Debug, Clone)]
pub enum Action {
    Proxy(ProxyPass),
    Return(Return),
    /// `root` or `alias`: files from a directory.
    Static(Arc<crate::files::Static>),
}

/// `proxy_pass = "http://name/path/"`.
#[derive(Debug, Clone)]
pub struct ProxyPass {
    /// Index into [`Config::upstreams`].
    pub upstream: usize,
    /// The path part of `proxy_pass`, if one was written: it replaces the
    /// matched location prefix, as nginx does.
    pub path: Option<String>,
    /// A path with variables (required in a `regex` location): the whole
    /// URI sent upstream, as nginx builds it.
    pub uri: Option<crate::vars::Template>,
    /// `preserve_host`: send the client's Host upstream (default) or the
    /// upstream server's address.
    pub preserve_host: bool,
    /// `split`: shares of the requests sent to other upstreams instead
    /// (canary, A/B); the rest go to `upstream`.
    pub split: Vec<Split>,
    /// `split_by`: with it, a request's side is chosen by a hash of this key,
    /// so one user always lands on the same side; without it, by turns.
    pub split_by: Option<RequestKey>,
}

/// One entry of `split = [{ upstream = "app-canary", weight = 5 }]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// Index into [`Config::upstreams`].
    pub upstream: usize,
    /// The share of requests, in hundredths of a percent (`weight = 5` is 500).
    pub share: u32,
    /// `when`: requests that match go to this side whatever the shares say.
    pub when: Option<When>,
}

/// `when = { header = "X-Canary", value = "1" }` or `{ cookie = "canary" }`:
/// the field or cookie present with that value (any value, without `value`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct When {
    pub what: WhenField,
    pub value: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WhenField {
    /// A request header field name, lower-case.
    Header(String),
    Cookie(String),
}

/// `split` shares are in hundredths of a percent: 10_000 is every request.
pub const SPLIT_WHOLE: u32 = 10_000;

/// `return = { status = 301, location = "https://example.com/", body = "..." }`.
#[derive(Debug, Clone)]
pub struct Return {
    pub status: u16,
    /// `body` and `location`, with variables.
    pub body: crate::vars::Template,
    pub location: Option<crate::vars::Template>,
}

impl Config {
    /// Reads and validates a config file. Errors carry `path:line:col`.
    #[allow(clippy::disallowed_methods)] // loading runs before the workers start
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError::whole_file(
                path,
                format!("cannot read config file: {e}"),
            )])
        })?;
        Self::parse(&text, path)
    }

    /// Validates config text; `origin` names it in error messages.
    pub fn parse(text: &str, origin: &Path) -> Result<Config, ConfigErrors> {
        validate::validate(text, origin)
    }

    /// The number of worker threads to start.
    pub fn worker_count(&self) -> usize {
        match self.global.workers {
            Workers::Count(n) => n,
            Workers::Auto => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every shipped config must load: a documented key that stopped parsing
    /// would otherwise go unnoticed.
    #[test]
    fn shipped_configs_load() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
        let mut files = vec![root.join("ringway.toml")];
        for entry in std::fs::read_dir(root.join("examples")).unwrap() {
            let path = entry.unwrap().path();
            // certs/ holds the TLS example's files.
            if path.extension().is_some_and(|e| e == "toml") {
                files.push(path);
            }
        }
        assert!(files.len() >= 3);
        for f in files {
            if let Err(e) = Config::load(&f) {
                panic!("{}: {e}", f.display());
            }
        }
    }
}

//! Configuration: the TOML file (`raw.rs`) checked and resolved into the
//! immutable [`Config`] that workers build their per-core state from.
//!
//! Loading happens once on the main thread, before anything binds. It is the
//! only place where host names are resolved (a blocking lookup is fine here and
//! never on a worker). Every problem found is reported with file, line and
//! column; all of them are collected, not just the first.

mod raw;
mod validate;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;

pub use validate::{ConfigError, ConfigErrors};

/// The whole validated configuration. Built once, shared read-only as `Arc<Config>`.
#[derive(Debug, Clone)]
pub struct Config {
    pub global: Global,
    pub upstreams: Vec<Upstream>,
    pub servers: Vec<Server>,
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
    /// `health_check`: active probes of every server. Default: none.
    pub health_check: Option<HealthCheck>,
    /// `resolve_interval`: how often servers written as a host name are
    /// resolved again. Default: never (only when the config loads).
    pub resolve_interval: Option<Duration>,
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    Hash(HashKey),
}

/// What `hash` hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashKey {
    /// `$request_uri`: the request target as the client sent it, with its query.
    RequestUri,
}

impl Balance {
    pub const NAMES: [&'static str; 4] = ["round_robin", "least_conn", "ip_hash", "random_two"];

    pub fn parse(s: &str) -> Option<Balance> {
        Some(match s {
            "round_robin" => Balance::RoundRobin,
            "least_conn" => Balance::LeastConn,
            "ip_hash" => Balance::IpHash,
            "random_two" => Balance::RandomTwo,
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLog {
    Off,
    Stdout,
    File(PathBuf),
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
    pub path: String,
    pub action: Action,
    /// Overrides the server block's `client_max_body_size` when set.
    pub client_max_body_size: Option<Option<u64>>,
}

#[derive(Debug, Clone)]
pub enum Action {
    Proxy(ProxyPass),
    Return(Return),
}

/// `proxy_pass = "http://name/path/"`.
#[derive(Debug, Clone)]
pub struct ProxyPass {
    /// Index into [`Config::upstreams`].
    pub upstream: usize,
    /// The path part of `proxy_pass`, if one was written: it replaces the
    /// matched location prefix, as nginx does.
    pub path: Option<String>,
    /// `preserve_host`: send the client's Host upstream (default) or the
    /// upstream server's address.
    pub preserve_host: bool,
}

/// `return = { status = 301, location = "https://example.com/", body = "..." }`.
#[derive(Debug, Clone)]
pub struct Return {
    pub status: u16,
    pub body: String,
    pub location: Option<String>,
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
            files.push(entry.unwrap().path());
        }
        assert!(files.len() >= 3);
        for f in files {
            if let Err(e) = Config::load(&f) {
                panic!("{}: {e}", f.display());
            }
        }
    }
}

//! The config contract: the example from the issue parses exactly as written
//! and means what its comments say; the shipped configs parse.

use std::path::Path;
use std::time::Duration;

use ringway::config::{AccessLog, Action, Config, Workers};

/// The block under "Config contract", byte for byte.
const CONTRACT: &str = r#"[global]
workers = "auto"                # or a number; one pinned worker per core

[[upstream]]
name = "app"
servers = ["127.0.0.1:3000", { addr = "127.0.0.1:3001", weight = 2 }]
keepalive = 32                  # idle connections kept per worker
connect_timeout = "5s"
read_timeout = "60s"
send_timeout = "60s"

[[server]]
listen = ["0.0.0.0:8080"]
server_name = ["example.com", "*.example.com"]   # absent: the default server for its listen addresses
access_log = "stdout"           # a path, "stdout" or "off"

[[server.location]]
path = "/api/"                  # longest matching prefix wins
proxy_pass = "http://app/v2/"   # an upstream's name or host:port; a path here replaces the matched prefix, as in nginx

[[server.location]]
path = "/"
return = { status = 200, body = "Welcome to ringway\n" }
"#;

#[test]
fn contract_example_parses_as_written() {
    let c = Config::parse(CONTRACT, Path::new("contract.toml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.global.workers, Workers::Auto);

    let user_upstreams: Vec<_> = c.upstreams.iter().filter(|u| !u.implicit).collect();
    assert_eq!(user_upstreams.len(), 1);
    let app = user_upstreams[0];
    assert_eq!(app.name, "app");
    let servers: Vec<(String, u32)> = app
        .servers
        .iter()
        .map(|p| (p.addr.to_string(), p.weight))
        .collect();
    assert_eq!(
        servers,
        [
            ("127.0.0.1:3000".to_string(), 1),
            ("127.0.0.1:3001".to_string(), 2)
        ]
    );
    assert_eq!(app.keepalive, 32);
    assert_eq!(app.connect_timeout, Duration::from_secs(5));
    assert_eq!(app.read_timeout, Duration::from_secs(60));
    assert_eq!(app.send_timeout, Duration::from_secs(60));

    assert_eq!(c.servers.len(), 1);
    let s = &c.servers[0];
    assert_eq!(s.listen, ["0.0.0.0:8080".parse().unwrap()]);
    assert_eq!(s.server_names, ["example.com", "*.example.com"]);
    assert_eq!(
        s.access_log,
        AccessLog::Stdout(ringway::config::LogFormat::Combined)
    );
    assert_eq!(s.locations.len(), 2);

    let api = &s.locations[0];
    assert_eq!(api.path, "/api/");
    let Action::Proxy(pass) = &api.action else {
        panic!("/api/ should proxy")
    };
    assert_eq!(c.upstreams[pass.upstream].name, "app");
    assert_eq!(pass.path.as_deref(), Some("/v2/"));
    assert!(pass.preserve_host, "Host passes unchanged by default");

    let root = &s.locations[1];
    assert_eq!(root.path, "/");
    let Action::Return(ret) = &root.action else {
        panic!("/ should return")
    };
    assert_eq!(ret.status, 200);
    assert_eq!(ret.body.as_literal(), Some("Welcome to ringway\n"));
    assert_eq!(ret.location, None);
}

#[test]
fn contract_workers_may_be_a_number() {
    let text = CONTRACT.replace("workers = \"auto\"", "workers = 3");
    let c = Config::parse(&text, Path::new("contract.toml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.global.workers, Workers::Count(3));
    assert_eq!(c.worker_count(), 3);
}

#[test]
fn shipped_configs_parse() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let default = root.join("ringway.toml");
    let c = Config::load(&default).unwrap_or_else(|e| panic!("{}: {e}", default.display()));
    // What its header comment promises: / answered, /api/ proxied to 127.0.0.1:3000.
    let s = &c.servers[0];
    assert_eq!(s.listen, ["127.0.0.1:8080".parse().unwrap()]);
    let api = s
        .locations
        .iter()
        .find(|l| l.path == "/api/")
        .expect("/api/ location");
    let Action::Proxy(pass) = &api.action else {
        panic!("/api/ should proxy")
    };
    assert_eq!(
        c.upstreams[pass.upstream].servers[0].addr,
        "127.0.0.1:3000".parse().unwrap()
    );

    let mut n = 0;
    for entry in std::fs::read_dir(root.join("examples")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            Config::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            n += 1;
        }
    }
    assert!(n >= 1, "config/examples/ has no example");
}

#[test]
fn every_documented_key_is_accepted() {
    // Each key named in the contract and the key reference, at once: a key
    // that stopped parsing would fail here rather than in production.
    let text = r#"
[global]
workers = 2
log_level = "warn"
drain_timeout = "3s"
max_connections = 1000
trusted_proxies = ["10.0.0.0/8", "::1"]

[[upstream]]
name = "app"
servers = ["127.0.0.1:3000"]
keepalive = 0
keepalive_timeout = "30s"
connect_timeout = "1s"
read_timeout = "2s"
send_timeout = "3s"

[[upstream]]
name = "h2app"
servers = ["127.0.0.1:3001"]
protocol = "h2"
h2_connections = 3

[[server]]
listen = ["127.0.0.1:8080", 8081]
server_name = ["a.example"]
access_log = "off"
client_max_body_size = "1m"
client_header_timeout = "4s"
client_body_timeout = "5s"
keepalive_timeout = "6s"
keepalive_requests = 7
send_timeout = "8s"
max_request_line = "1k"
max_header_size = 4096
max_headers = 9
h2c = true
http2 = { max_concurrent_streams = 10, initial_window = "128k", max_frame_size = "32k", max_header_list = "8k", idle_timeout = "10s" }

[[server.location]]
path = "/"
proxy_pass = "http://app"
preserve_host = false
client_max_body_size = 10
upgrade = ["websocket"]
"#;
    let c = Config::parse(text, Path::new("all.toml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.global.drain_timeout, Duration::from_secs(3));
    assert_eq!(c.global.trusted_proxies.len(), 2);
    assert_eq!(c.upstreams[0].keepalive, 0);
    assert_eq!(c.upstreams[1].protocol, ringway::config::UpstreamProtocol::H2);
    assert_eq!(c.upstreams[1].h2_connections, 3);
    let h = &c.servers[0].http2;
    assert!(h.h2c && !h.tls_alpn);
    assert_eq!(
        (
            h.max_concurrent_streams,
            h.initial_window,
            h.max_frame_size,
            h.max_header_list
        ),
        (10, 128 << 10, 32 << 10, 8 << 10)
    );
    assert_eq!(h.idle_timeout, Duration::from_secs(10));
    let l = &c.servers[0].limits;
    assert_eq!(l.client_max_body_size, Some(1 << 20));
    assert_eq!(l.header_timeout, Duration::from_secs(4));
    assert_eq!(l.body_timeout, Duration::from_secs(5));
    assert_eq!(l.keepalive_timeout, Duration::from_secs(6));
    assert_eq!(l.keepalive_requests, 7);
    assert_eq!(l.send_timeout, Duration::from_secs(8));
    assert_eq!(
        (l.max_request_line, l.max_header_size, l.max_headers),
        (1024, 4096, 9)
    );
    assert_eq!(c.servers[0].listen[1], "0.0.0.0:8081".parse().unwrap());
    let loc = &c.servers[0].locations[0];
    assert_eq!(loc.client_max_body_size, Some(Some(10)));
    let Action::Proxy(pass) = &loc.action else {
        panic!()
    };
    assert!(!pass.preserve_host);
    assert_eq!(pass.path, None);
}

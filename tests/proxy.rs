//! Integration tests: the real proxy, started in-process through the library
//! (or as the binary, for the command line and signals), in front of real
//! backends on loopback sockets. Each test would fail if the behaviour it is
//! named after broke; refusals are checked as carefully as successes,
//! including that nothing reached the backend.

// Tests are plain threads with blocking sockets, not workers: the locks and
// sleeps that clippy.toml keeps off the request path are right here.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod support;

#[path = "proxy/access_apikey.rs"]
mod access_apikey;
#[path = "proxy/access_basic.rs"]
mod access_basic;
#[path = "proxy/access_ip.rs"]
mod access_ip;
#[path = "proxy/access_jwt.rs"]
mod access_jwt;
#[path = "proxy/access_request.rs"]
mod access_request;
#[path = "proxy/access_spoof.rs"]
mod access_spoof;
#[path = "proxy/balance.rs"]
mod balance;
#[path = "proxy/balance_more.rs"]
mod balance_more;
#[path = "proxy/bodies.rs"]
mod bodies;
#[path = "proxy/cache.rs"]
mod cache;
#[path = "proxy/cache_stale.rs"]
mod cache_stale;
#[path = "proxy/cli.rs"]
mod cli;
#[path = "proxy/compress.rs"]
mod compress;
#[path = "proxy/config.rs"]
mod config;
#[path = "proxy/error_pages.rs"]
mod error_pages;
#[path = "proxy/failures.rs"]
mod failures;
#[path = "proxy/forwarded.rs"]
mod forwarded;
#[path = "proxy/grpc.rs"]
mod grpc;
#[path = "proxy/h2.rs"]
mod h2;
#[path = "proxy/h2_tls.rs"]
mod h2_tls;
#[path = "proxy/header_rules.rs"]
mod header_rules;
#[path = "proxy/headers.rs"]
mod headers;
#[path = "proxy/health.rs"]
mod health;
#[path = "proxy/import.rs"]
mod import;
#[path = "proxy/import_diff.rs"]
mod import_diff;
#[path = "proxy/interim.rs"]
mod interim;
#[path = "proxy/keepalive.rs"]
mod keepalive;
#[path = "proxy/lifecycle.rs"]
mod lifecycle;
#[path = "proxy/limits.rs"]
mod limits;
#[path = "proxy/limits_conn.rs"]
mod limits_conn;
#[path = "proxy/locations.rs"]
mod locations;
#[path = "proxy/log_format.rs"]
mod log_format;
#[path = "proxy/logs.rs"]
mod logs;
#[path = "proxy/metrics.rs"]
mod metrics;
#[path = "proxy/metrics_reload.rs"]
mod metrics_reload;
#[path = "proxy/pool.rs"]
mod pool;
#[path = "proxy/refusals.rs"]
mod refusals;
#[path = "proxy/reload.rs"]
mod reload;
#[path = "proxy/request_id.rs"]
mod request_id;
#[path = "proxy/rewrites.rs"]
mod rewrites;
#[path = "proxy/robust.rs"]
mod robust;
#[path = "proxy/routing.rs"]
mod routing;
#[path = "proxy/service.rs"]
mod service;
#[path = "proxy/static_confinement.rs"]
mod static_confinement;
#[path = "proxy/static_files.rs"]
mod static_files;
#[path = "proxy/tls.rs"]
mod tls;
#[path = "proxy/trace.rs"]
mod trace;
#[path = "proxy/trailers.rs"]
mod trailers;
#[path = "proxy/upgrade.rs"]
mod upgrade;
#[path = "proxy/upstream_tls.rs"]
mod upstream_tls;
#[path = "proxy/websocket.rs"]
mod websocket;

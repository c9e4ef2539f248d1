//! The config loader: `Config::parse` must return a config or errors, and
//! never panic, on any UTF-8 text.
//!
//! Loading resolves upstream host names, which would send fuzzed names to
//! the system resolver. Texts that could cause a lookup (a `host:port` string
//! anywhere whose host is not an IP address or `localhost`) are skipped, and
//! `run.sh` also runs this target without a network where it can.
#![no_main]

use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use ringway::config::Config;

/// True if `s`, used as `host:port` or `http://host:port/...`, could make
/// the loader call the resolver.
fn needs_lookup(s: &str) -> bool {
    let authority = |r: &str| r.split('/').next().unwrap_or(r).to_string();
    let candidates = [
        Some(s.to_string()),
        s.strip_prefix("http://").map(authority),
        // `https://host` without a port is host:443.
        s.strip_prefix("https://")
            .map(authority)
            .map(|a| if a.contains(':') { a } else { format!("{a}:443") }),
    ];
    candidates.into_iter().flatten().any(|a| {
        if a.parse::<SocketAddr>().is_ok() {
            return false;
        }
        let Some((host, port)) = a.rsplit_once(':') else {
            return false;
        };
        if host.is_empty() || port.parse::<u16>().is_err() {
            return false;
        }
        // Names the resolver answers from the hosts file or parses itself.
        !(host == "localhost" || host.parse::<IpAddr>().is_ok())
    })
}

fn any_lookup(v: &toml::Value) -> bool {
    match v {
        toml::Value::String(s) => needs_lookup(s),
        toml::Value::Array(a) => a.iter().any(any_lookup),
        toml::Value::Table(t) => t.iter().any(|(k, v)| needs_lookup(k) || any_lookup(v)),
        _ => false,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match text.parse::<toml::Table>() {
        Ok(t) if t.iter().any(|(k, v)| needs_lookup(k) || any_lookup(v)) => return,
        Ok(_) => {}
        // Not TOML for this parser: the loader must refuse it before it
        // resolves anything. Skip the rare text that still holds something
        // lookup-shaped, in case the two parsers disagree.
        Err(_) if text.contains(':') && text.split(['"', '\'']).any(needs_lookup) => return,
        Err(_) => {}
    }
    match Config::parse(text, Path::new("fuzz.toml")) {
        Ok(c) => {
            let _ = c.worker_count();
        }
        Err(e) => {
            // Errors must format (they carry file, line and column).
            let _ = e.to_string();
        }
    }
});

//! Unit tests of rewrite.rs: client addresses, address text, the heads.

use super::*;
use crate::config::{Action, Config};
use crate::http::parse::{parse_request, HeadLimits, Parsed};
use bytes::Bytes;
use std::path::Path;

fn head(raw: &str) -> RequestHead {
    let l = HeadLimits {
        max_request_line: 8192,
        max_header_size: 8192,
        max_headers: 64,
    };
    match parse_request(raw.as_bytes(), &l).unwrap() {
        Parsed::Complete(p, n) => p.into_head(Bytes::copy_from_slice(&raw.as_bytes()[..n])),
        Parsed::Partial => panic!(),
    }
}

#[test]
fn address_text() {
    for ip in [
        "0.0.0.0",
        "127.0.0.1",
        "255.255.255.255",
        "10.20.3.4",
        "::1",
        "2001:db8::ff00:42:8329",
    ] {
        let addr: IpAddr = ip.parse().unwrap();
        assert_eq!(AddrText::ip(addr).as_bytes(), ip.as_bytes());
    }
    let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
    assert_eq!(AddrText::ip(mapped).as_bytes(), b"192.0.2.1");
    let longest: IpAddr = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255".parse().unwrap();
    assert_eq!(AddrText::ip(longest).as_bytes(), longest.to_string().as_bytes());
    assert_eq!(AddrText::port(0).as_bytes(), b"0");
    assert_eq!(AddrText::port(65535).as_bytes(), b"65535");
}

#[test]
fn client_address_from_trusted_chain() {
    let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
    let h = head(
        "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.1.1.1, 2.2.2.2\r\nX-Forwarded-For: 10.0.0.5\r\n\r\n",
    );
    let peer: IpAddr = "10.1.1.1".parse().unwrap();
    assert_eq!(
        client_addr(peer, &h, &trusted, false),
        "2.2.2.2".parse::<IpAddr>().unwrap()
    );
    // An untrusted peer's header is not believed.
    let stranger: IpAddr = "9.9.9.9".parse().unwrap();
    assert_eq!(client_addr(stranger, &h, &trusted, false), stranger);
    assert_eq!(client_addr(peer, &h, &[], false), peer);
    // Garbage stops the walk at the last good address.
    let h = head("GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: junk, 10.0.0.9\r\n\r\n");
    assert_eq!(
        client_addr(peer, &h, &trusted, false),
        "10.0.0.9".parse::<IpAddr>().unwrap()
    );
}

#[test]
fn client_address_from_a_trusted_forwarded_chain() {
    let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
    let peer: IpAddr = "10.1.1.1".parse().unwrap();
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let h = head(
        "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 3.3.3.3\r\n\
         Forwarded: for=\"[2001:db8::7]:4711\";proto=https, for=10.0.0.3\r\nForwarded: for=10.0.0.4\r\n\r\n",
    );
    // With forwarded on, Forwarded decides and X-Forwarded-For is not read.
    assert_eq!(client_addr(peer, &h, &trusted, true), ip("2001:db8::7"));
    assert_eq!(client_addr(peer, &h, &trusted, false), ip("3.3.3.3"));
    assert_eq!(client_addr(ip("9.9.9.9"), &h, &trusted, true), ip("9.9.9.9"));
    // `unknown` or an obfuscated node ends the walk at the last address.
    let h = head("GET / HTTP/1.1\r\nHost: a\r\nForwarded: for=1.1.1.1, for=unknown, for=10.0.0.8\r\n\r\n");
    assert_eq!(client_addr(peer, &h, &trusted, true), ip("10.0.0.8"));
    // No Forwarded field: X-Forwarded-For as before.
    let h = head("GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 4.4.4.4\r\n\r\n");
    assert_eq!(client_addr(peer, &h, &trusted, true), ip("4.4.4.4"));
}

fn cfg() -> Config {
    Config::parse(
        r#"
        [[upstream]]
        name = "app"
        servers = ["127.0.0.1:3000", "localhost:3001"]
        [[server]]
        listen = ["127.0.0.1:8080"]
        [[server.location]]
        path = "/api/"
        proxy_pass = "http://app/v2/"
        "#,
        Path::new("t.toml"),
    )
    .unwrap()
}

#[test]
fn redirects_do_not_leak_the_backend() {
    let c = cfg();
    let loc = &c.servers[0].locations[0];
    let Action::Proxy(pass) = &loc.action else {
        panic!()
    };
    let r = Redirect {
        upstream: &c.upstreams[0],
        location: loc,
        pass,
        public_host: b"example.com",
        https: false,
        local_port: &AddrText::port(80),
    };
    let rw = |v: &str| rewrite_redirect(v.as_bytes(), &r).map(|v| String::from_utf8(v).unwrap());
    assert_eq!(
        rw("http://127.0.0.1:3000/v2/users?x=1").as_deref(),
        Some("http://example.com/api/users?x=1")
    );
    assert_eq!(
        rw("http://localhost:3001/v2/").as_deref(),
        Some("http://example.com/api/")
    );
    assert_eq!(
        rw("http://app/other").as_deref(),
        Some("http://example.com/other")
    );
    assert_eq!(
        rw("http://127.0.0.1:3000").as_deref(),
        Some("http://example.com/")
    );
    assert_eq!(rw("http://elsewhere.org/v2/"), None);
    assert_eq!(rw("/v2/relative"), None);
    // The upstream speaks plain HTTP: an https:// URL is somewhere else.
    assert_eq!(rw("https://127.0.0.1:3000/v2/"), None);
}

#[test]
fn redirects_from_tls_upstreams_are_mapped_back_too() {
    let c = Config::parse(
        r#"
        [[upstream]]
        name = "api"
        servers = ["127.0.0.1:8443", "127.0.0.2:443"]
        tls = true
        tls_verify = false
        tls_server_name = "api.internal"
        [[server]]
        listen = ["127.0.0.1:8080"]
        [[server.location]]
        path = "/api/"
        proxy_pass = "https://api/v2/"
        [[server.location]]
        path = "/one/"
        proxy_pass = "https://127.0.0.3"
        proxy_tls_verify = false
        "#,
        Path::new("t.toml"),
    )
    .unwrap();
    let rw = |loc: usize, v: &str| {
        let loc = &c.servers[0].locations[loc];
        let Action::Proxy(pass) = &loc.action else {
            panic!()
        };
        let r = Redirect {
            upstream: &c.upstreams[pass.upstream],
            location: loc,
            pass,
            public_host: b"example.com",
            https: false,
            local_port: &AddrText::port(80),
        };
        rewrite_redirect(v.as_bytes(), &r).map(|v| String::from_utf8(v).unwrap())
    };
    let mapped = Some("http://example.com/api/x?y=1".to_string());
    assert_eq!(rw(0, "https://127.0.0.1:8443/v2/x?y=1"), mapped);
    // By the name the servers' certificates carry, and without the default port.
    assert_eq!(rw(0, "https://api.internal/v2/x?y=1"), mapped);
    assert_eq!(rw(0, "https://API.internal:443/v2/x?y=1"), mapped);
    assert_eq!(rw(0, "https://127.0.0.2/v2/x?y=1"), mapped);
    assert_eq!(rw(0, "https://api/v2/x?y=1"), mapped);
    // Another scheme or port is another place.
    assert_eq!(rw(0, "http://127.0.0.1:8443/v2/x"), None);
    assert_eq!(rw(0, "https://api.internal:8443/v2/x"), None);
    assert_eq!(rw(0, "https://127.0.0.1/v2/x"), None);
    // An address without a port in proxy_pass is port 443.
    assert_eq!(
        rw(1, "https://127.0.0.3:443/a").as_deref(),
        Some("http://example.com/a")
    );
    assert_eq!(
        rw(1, "https://127.0.0.3/a").as_deref(),
        Some("http://example.com/a")
    );
}

#[test]
fn redirects_name_the_scheme_and_port_the_client_used() {
    let c = cfg();
    let loc = &c.servers[0].locations[0];
    let Action::Proxy(pass) = &loc.action else {
        panic!()
    };
    let rw = |host: &str, https: bool, port: u16| {
        let local_port = AddrText::port(port);
        let r = Redirect {
            upstream: &c.upstreams[0],
            location: loc,
            pass,
            public_host: host.as_bytes(),
            https,
            local_port: &local_port,
        };
        let v = rewrite_redirect(b"http://127.0.0.1:3000/v2/x", &r).unwrap();
        String::from_utf8(v).unwrap()
    };
    // The scheme's default port is left out.
    assert_eq!(rw("example.com", true, 443), "https://example.com/api/x");
    assert_eq!(rw("example.com", false, 80), "http://example.com/api/x");
    // Another port is named, unless Host already names one.
    assert_eq!(rw("example.com", true, 8443), "https://example.com:8443/api/x");
    assert_eq!(rw("example.com", false, 8080), "http://example.com:8080/api/x");
    assert_eq!(rw("example.com", true, 80), "https://example.com:80/api/x");
    assert_eq!(
        rw("example.com:9443", true, 8443),
        "https://example.com:9443/api/x"
    );
    assert_eq!(rw("[::1]", false, 8080), "http://[::1]:8080/api/x");
    assert_eq!(rw("[::1]:81", false, 8080), "http://[::1]:81/api/x");
    // No host to name (HTTP/1.0 without Host): a relative reference.
    assert_eq!(rw("", true, 8443), "/api/x");
}

#[test]
fn target_replaces_matched_prefix() {
    let c = cfg();
    let loc = &c.servers[0].locations[0];
    let Action::Proxy(pass) = &loc.action else {
        panic!()
    };
    let t = upstream_target(b"/api/users?q=1", b"/api/users", b"?q=1", false, loc, pass);
    assert_eq!(&*t, b"/v2/users?q=1");
    let bare = ProxyPass {
        path: None,
        ..pass.clone()
    };
    let t = upstream_target(b"/api/users?q=1", b"/api/users", b"?q=1", false, loc, &bare);
    assert_eq!(&*t, b"/api/users?q=1");
}

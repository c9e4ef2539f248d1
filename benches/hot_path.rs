//! Micro-benchmarks of the pure functions on every request.
//!
//! - `parse`: request head parsing plus framing analysis, for a tiny request and
//!   a long browser request; bytes/s tells whether the parser or the network is
//!   the limit (it should be orders of magnitude above line rate).
//! - `route`: host and location lookup with 10 and 1,000 locations; decides
//!   whether the linear longest-prefix scan needs replacing by a trie.
//! - `rewrite`: building the upstream request head (hop-by-hop removal,
//!   X-Forwarded-*), the per-request copy that replaces a buffer splice.

use std::fmt::Write;
use std::hint::black_box;
use std::net::SocketAddr;
use std::path::Path;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ringway::config::{Action, Config};
use ringway::http::framing::request_meta;
use ringway::http::parse::{parse_request, HeadLimits, Parsed, RequestHead};
use ringway::proxy::rewrite::{request_head, AddrText, RequestRewrite};
use ringway::route::Router;

const TINY: &[u8] = b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n";

const BROWSER: &[u8] = b"GET /wp-content/uploads/2010/03/hello-kitty-darth-vader-pink.jpg HTTP/1.1\r\n\
Host: www.kittyhell.com\r\n\
User-Agent: Mozilla/5.0 (Macintosh; U; Intel Mac OS X 10.6; ja-JP-mac; rv:1.9.2.3) Gecko/20100401 Firefox/3.6.3 Pathtraq/0.9\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n\
Accept-Language: ja,en-us;q=0.7,en;q=0.3\r\n\
Accept-Encoding: gzip,deflate\r\n\
Accept-Charset: Shift_JIS,utf-8;q=0.7,*;q=0.7\r\n\
Keep-Alive: 115\r\n\
Connection: keep-alive\r\n\
Cookie: wp_ozh_wsa_visits=2; wp_ozh_wsa_visit_lasttime=xxxxxxxxxx; __utma=xxxxxxxxx.xxxxxxxxxx.xxxxxxxxxx.xxxxxxxxxx.xxxxxxxxxx.x; __utmz=xxxxxxxxx.xxxxxxxxxx.x.x.utmccn=(referral)|utmcsr=reader.livedoor.com|utmcct=/reader/|utmcmd=referral\r\n\r\n";

const LIMITS: HeadLimits = HeadLimits {
    max_request_line: 8192,
    max_header_size: 32768,
    max_headers: 100,
};

fn head(raw: &[u8]) -> RequestHead {
    match parse_request(raw, &LIMITS).unwrap() {
        Parsed::Complete(p, n) => p.into_head(Bytes::copy_from_slice(&raw[..n])),
        Parsed::Partial => panic!("partial"),
    }
}

fn parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse");
    for (name, raw) in [("tiny", TINY), ("browser", BROWSER)] {
        g.throughput(Throughput::Bytes(raw.len() as u64));
        g.bench_function(name, |b| {
            let buf = Bytes::from_static(raw);
            b.iter(|| {
                let Ok(Parsed::Complete(parts, n)) = parse_request(black_box(&buf), &LIMITS) else {
                    panic!()
                };
                let h = parts.into_head(buf.slice(..n));
                black_box(request_meta(&h).unwrap());
            })
        });
    }
    g.finish();
}

fn config_with_locations(n: usize) -> Config {
    let mut t = String::from(
        "[[upstream]]\nname = \"app\"\nservers = [\"127.0.0.1:3000\"]\n\
         [[server]]\nlisten = [\"127.0.0.1:8080\"]\nserver_name = [\"example.com\", \"*.example.org\"]\n",
    );
    for i in 0..n {
        let _ = write!(
            t,
            "[[server.location]]\npath = \"/svc{i}/api/\"\nproxy_pass = \"http://app/\"\n"
        );
    }
    t.push_str("[[server.location]]\npath = \"/\"\nproxy_pass = \"http://app/\"\n");
    Config::parse(&t, Path::new("bench.toml")).unwrap()
}

fn route(c: &mut Criterion) {
    let mut g = c.benchmark_group("route");
    for n in [10, 1000] {
        let cfg = config_with_locations(n);
        let router = Router::new(&cfg);
        let path = format!("/svc{}/api/users/42", n / 2);
        g.bench_function(format!("{n}_locations"), |b| {
            b.iter(|| {
                let s = router.server_for(0, Some(black_box(b"www.example.org:8080")));
                black_box(router.location_for(s, black_box(path.as_bytes()), &mut None))
            })
        });
    }
    g.finish();
}

fn rewrite(c: &mut Criterion) {
    let cfg = config_with_locations(1);
    let Action::Proxy(pass) = &cfg.servers[0].locations[0].action else {
        panic!()
    };
    let mut g = c.benchmark_group("rewrite");
    for (name, raw) in [("tiny", TINY), ("browser", BROWSER)] {
        let h = head(raw);
        let meta = request_meta(&h).unwrap();
        let peer: SocketAddr = "192.0.2.7:55555".parse().unwrap();
        let peer = AddrText::ip(peer.ip());
        let port = AddrText::port(8080);
        let mut out = Vec::with_capacity(2048);
        g.throughput(Throughput::Bytes(raw.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                request_head(
                    &RequestRewrite {
                        head: &h,
                        meta: &meta,
                        target: h.target(),
                        host: h.header("host"),
                        preserve_host: pass.preserve_host,
                        upstream_authority: "127.0.0.1:3000",
                        peer: &peer,
                        client: &peer,
                        local_port: &port,
                        https: false,
                        client_cert_subject: None,
                        upgrade: None,
                        hidden: &[],
                        dropped: &[],
                        extra: b"",
                        request_id: b"0123456789abcdef0000000000000001",
                        traceparent: None,
                        tracestate: false,
                        forwarded: None,
                    },
                    &mut out,
                );
                black_box(out.len())
            })
        });
    }
    g.finish();
}

criterion_group!(benches, parse, route, rewrite);
criterion_main!(benches);
